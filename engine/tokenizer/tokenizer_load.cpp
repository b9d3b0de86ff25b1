// Tokenizer construction: reading and checking tokenizer.ggml.* from a GGUF, building the SentencePiece model, and the
// lookups (text -> id, special pieces, end-of-generation ids, fingerprint). Encoding lives in tokenizer.cpp.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <string>
#include <unordered_set>

#include "core/gguf.h"
#include "tokenizer/tokenizer.h"

namespace fkv {
namespace {

constexpr std::string_view kModelKey = "tokenizer.ggml.model";
constexpr std::string_view kTokensKey = "tokenizer.ggml.tokens";
constexpr std::string_view kScoresKey = "tokenizer.ggml.scores";
constexpr std::string_view kTypesKey = "tokenizer.ggml.token_type";

// The "<0xHH>" form libsentencepiece requires of byte pieces (upper-case hex); nullopt for anything else.
std::optional<uint8_t> parse_byte_piece(std::string_view s) {
  if (s.size() != 6 || s.substr(0, 3) != "<0x" || s[5] != '>') return std::nullopt;
  int value = 0;
  for (const char c : s.substr(3, 2)) {
    const int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (digit < 0) return std::nullopt;
    value = value * 16 + digit;
  }
  return static_cast<uint8_t>(value);
}

Result<TokenType> token_type_from(int64_t v, size_t id, const std::string& label) {
  if (v == 0) return TokenType::Normal;  // llama.cpp's "undefined": treated as an ordinary piece
  if (v < 1 || v > 6) {
    return err(label, ": ", kTypesKey, "[", id, "] is ", v, ", expected 1..6 (normal, unknown, control, user-defined, ",
               "unused, byte)");
  }
  return static_cast<TokenType>(v);
}

std::string escape_spaces(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == ' ') {
      out += "\xE2\x96\x81";  // U+2581 '▁'
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Two independent 64-bit lanes (FNV-1a and a multiply-rotate hash), finalized with splitmix64's mixer: a 128-bit
// fingerprint is plenty for cache keys and needs no crypto library.
class Hasher {
 public:
  void bytes(std::string_view s) {
    for (const char c : s) {
      const auto b = static_cast<uint8_t>(c);
      a_ = (a_ ^ b) * 0x100000001b3ull;
      b_ = std::rotl((b_ ^ b) * 0x9E3779B97F4A7C15ull, 23);
    }
  }
  void u64(uint64_t v) {
    char buf[8];
    for (int k = 0; k < 8; ++k) buf[k] = static_cast<char>((v >> (8 * k)) & 0xFF);
    bytes(std::string_view(buf, 8));
  }
  std::string hex() const {
    char out[33];
    std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(mix(a_)),
                  static_cast<unsigned long long>(mix(b_)));
    return out;
  }

 private:
  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t a_ = 0xcbf29ce484222325ull;
  uint64_t b_ = 0x6a09e667f3bcc909ull;
};

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const GgufFile& f) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->label_ = f.label();
  FKV_TRY(t->load_vocab(f));
  FKV_TRY(t->load_special_ids(f));
  t->build_lookups();
  FKV_TRY(t->bpe_vocab_ ? t->build_bpe(f) : t->build_processor());
  t->compute_fingerprint();
  return t;
}

Status Tokenizer::load_vocab(const GgufFile& f) {
  FKV_ASSIGN_OR_RETURN(const auto model, f.get_string(kModelKey));
  if (!model) return err(label_, ": ", kModelKey, " is missing (this GGUF carries no tokenizer)");
  if (*model != "llama" && *model != "gpt2") {
    return err(label_, ": tokenizer model '", *model, "' is not supported (supported: llama = SentencePiece, ",
               "gpt2 = byte-level BPE)");
  }
  bpe_vocab_ = *model == "gpt2";
  FKV_ASSIGN_OR_RETURN(const auto tokens, f.get_string_array(kTokensKey));
  if (!tokens || tokens->empty()) return err(label_, ": ", kTokensKey, " is missing or empty, expected the vocabulary");
  const size_t n = tokens->size();
  if (n > static_cast<size_t>(INT32_MAX)) return err(label_, ": ", n, " tokens, expected at most ", INT32_MAX);
  FKV_ASSIGN_OR_RETURN(const auto scores, f.get_f32_array(kScoresKey));
  FKV_ASSIGN_OR_RETURN(const auto types, f.get_int_array(kTypesKey));
  // SentencePiece's BPE merges by score and needs the types to tell bytes and control pieces apart: both are required.
  // Byte-level BPE merges by tokenizer.ggml.merges instead, so scores are optional there.
  const std::pair<std::string_view, size_t> lengths[] = {{kScoresKey, scores ? scores->size() : 0},
                                                         {kTypesKey, types ? types->size() : 0}};
  for (const auto& [key, found] : lengths) {
    if (found != n && !(bpe_vocab_ && key == kScoresKey && !scores)) {
      return err(label_, ": ", key, " has ", found, " entries, expected ", n, " (one per token in ", kTokensKey, ")");
    }
  }
  tokens_.assign(tokens->begin(), tokens->end());
  scores_ = scores ? *scores : std::vector<float>(n, 0.f);
  types_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    FKV_ASSIGN_OR_RETURN(types_[i], token_type_from((*types)[i], i, label_));
    if (!bpe_vocab_ && types_[i] == TokenType::Byte && !parse_byte_piece(tokens_[i])) {
      return err(label_, ": token ", i, " has type byte but its text is '", tokens_[i], "', expected <0xHH>");
    }
  }
  return Status();
}

Status Tokenizer::load_special_ids(const GgufFile& f) {
  const auto n = static_cast<int64_t>(tokens_.size());
  const std::pair<std::string_view, int32_t*> ids[] = {{"tokenizer.ggml.bos_token_id", &bos_id_},
                                                       {"tokenizer.ggml.eos_token_id", &eos_id_},
                                                       {"tokenizer.ggml.unknown_token_id", &unk_id_},
                                                       {"tokenizer.ggml.padding_token_id", &pad_id_}};
  for (const auto& [key, out] : ids) {
    FKV_ASSIGN_OR_RETURN(const auto v, f.get_int(key));
    if (!v || *v == -1) continue;  // -1 is the converters' spelling of "none"
    if (*v < 0 || *v >= n) return err(label_, ": ", key, " is ", *v, ", expected an id below the vocabulary size ", n);
    *out = static_cast<int32_t>(*v);
  }
  if (unk_id_ < 0) {
    for (size_t i = 0; i < types_.size() && unk_id_ < 0; ++i) {
      if (types_[i] == TokenType::Unknown) unk_id_ = static_cast<int32_t>(i);
    }
  }
  if (unk_id_ < 0 && !bpe_vocab_) {
    return err(label_, ": no unknown token (tokenizer.ggml.unknown_token_id is absent and no token has type unknown); ",
               "SentencePiece needs one");
  }
  FKV_ASSIGN_OR_RETURN(const auto add_bos, f.get_bool("tokenizer.ggml.add_bos_token"));
  FKV_ASSIGN_OR_RETURN(const auto add_space, f.get_bool("tokenizer.ggml.add_space_prefix"));
  add_bos_ = add_bos.value_or(true);
  add_space_prefix_ = add_space.value_or(!bpe_vocab_);  // byte-level BPE spells spaces itself
  return Status();
}

void Tokenizer::build_lookups() {
  by_text_.reserve(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    by_text_.emplace(tokens_[i], id);
    const TokenType t = types_[i];
    const bool special = t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown;
    // A piece that is not valid UTF-8 could split the input inside a character; such pieces are never matched.
    if (special && !utf8_first_invalid(tokens_[i])) special_.add(tokens_[i], id);
    if (bpe_vocab_ && t == TokenType::UserDefined && !utf8_first_invalid(tokens_[i])) user_defined_.add(tokens_[i], id);
  }
  if (eos_id_ >= 0) eog_ids_.push_back(eos_id_);
  // Some converters mark added chat tokens user-defined, so those count too; "</s>" only as a control token, since
  // Gemma has an ordinary user-defined "</s>" (an HTML tag) that must not end a reply.
  for (const std::string_view name : {"<end_of_turn>", "<|eot_id|>", "<|im_end|>", "</s>"}) {
    const auto id = find_token(name);
    if (!id || *id == eos_id_) continue;
    const TokenType t = types_[*id];
    if (t == TokenType::Control || (t == TokenType::UserDefined && name != "</s>")) eog_ids_.push_back(*id);
  }
}

Status Tokenizer::build_processor() {
  const size_t n = tokens_.size();
  std::array<bool, 256> have_byte{};
  for (size_t i = 0; i < n; ++i) {
    if (types_[i] == TokenType::Byte) have_byte[*parse_byte_piece(tokens_[i])] = true;
  }
  SpmModelSpec spec;
  spec.byte_fallback = std::all_of(have_byte.begin(), have_byte.end(), [](bool b) { return b; });
  spec.unk_id = unk_id_;
  spec.bos_id = bos_id_;
  spec.eos_id = eos_id_;
  spec.pad_id = pad_id_;
  spec.add_dummy_prefix = false;  // encode() adds the prefix itself: llama.cpp puts it after special pieces too
  spec.pieces.resize(n);
  std::deque<std::string> texts;  // stable storage for piece texts that differ from the vocabulary's
  std::unordered_set<std::string_view> seen;
  seen.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    SpmPiece& p = spec.pieces[i];
    p.piece = tokens_[i];
    p.score = scores_[i];
    p.type = types_[i];
    // libsentencepiece wants exactly one unknown piece, and byte pieces only together with byte fallback.
    const bool demoted = p.type == TokenType::Unknown || (p.type == TokenType::Byte && !spec.byte_fallback);
    if (id == unk_id_) {
      p.type = TokenType::Unknown;
    } else if (demoted) {
      p.type = TokenType::Control;
    }
    // GGUF converters store user-defined pieces with plain spaces (llama.cpp matches them before escaping), while
    // libsentencepiece matches them after escaping: Gemma's "  " must go back to being "▁▁".
    if (p.type == TokenType::UserDefined && p.piece.find(' ') != std::string_view::npos) {
      p.piece = texts.emplace_back(escape_spaces(p.piece));
    }
    // It also rejects empty and repeated pieces; those ids can never come out of the text anyway (llama.cpp maps a
    // repeated text to one id too), so they get an unmatchable control stand-in that keeps the ids aligned.
    if (p.piece.empty() || !seen.insert(p.piece).second) {
      p.piece = texts.emplace_back("<fkv-unreachable-" + std::to_string(i) + ">");
      if (p.type != TokenType::Unknown) p.type = TokenType::Control;
    }
    // What libsentencepiece can build by merging: normal, user-defined and unused pieces.
    const bool mergeable =
        p.type == TokenType::Normal || p.type == TokenType::UserDefined || p.type == TokenType::Unused;
    if (mergeable) record_joins(p.piece);
  }
  sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp_->LoadFromSerializedProto(build_spm_model_proto(spec));
  if (!status.ok()) return err(label_, ": libsentencepiece rejected the vocabulary: ", status.ToString());
  return Status();
}

Status Tokenizer::build_bpe(const GgufFile& f) {
  FKV_ASSIGN_OR_RETURN(const auto pre_name, f.get_string("tokenizer.ggml.pre"));
  // Converters before tokenizer.ggml.pre existed wrote GPT-2's split; llama.cpp reads a missing name the same way.
  const std::string pre_label(pre_name.value_or("default"));
  auto pre = PreTokenizer::create(pre_label);
  if (!pre.ok()) return err(label_, ": tokenizer.ggml.pre: ", pre.status().message());
  FKV_ASSIGN_OR_RETURN(const auto merges, f.get_string_array("tokenizer.ggml.merges"));
  if (!merges || merges->empty()) {
    return err(label_, ": tokenizer.ggml.merges is missing or empty, expected the merge list of the BPE vocabulary");
  }
  FKV_ASSIGN_OR_RETURN(bpe_, BpeModel::create(by_text_, *merges, std::move(*pre), label_));
  Hasher h;
  h.bytes(pre_label);
  for (const std::string_view m : *merges) {
    h.u64(m.size());
    h.bytes(m);
  }
  merges_digest_ = h.hex();
  return Status();
}

void Tokenizer::record_joins(std::string_view piece) {
  constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";
  size_t prev = 0;  // start of the previous character
  for (size_t pos = 0; pos < piece.size();) {
    const size_t len = std::max<size_t>(1, utf8_valid_length(piece, pos));
    if (pos > 0) {
      const std::string_view c = piece.substr(pos, len);
      if (c == kSpaceSymbol) joined_before_space_.emplace(piece.substr(prev, pos - prev));
      if (c == "\n") joined_before_newline_.emplace(piece.substr(prev, pos - prev));
    }
    prev = pos;
    pos += len;
  }
}

void Tokenizer::compute_fingerprint() {
  Hasher h;
  h.bytes(bpe_ ? "fkv-bpe-v1" : "fkv-spm-v1");
  if (bpe_) h.bytes(merges_digest_);
  h.u64(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    h.u64(tokens_[i].size());
    h.bytes(tokens_[i]);
    h.u64(std::bit_cast<uint32_t>(scores_[i]));
    h.u64(static_cast<uint64_t>(types_[i]));
  }
  for (const int32_t id : {bos_id_, eos_id_, unk_id_, pad_id_}) h.u64(static_cast<uint64_t>(static_cast<int64_t>(id)));
  h.u64((add_bos_ ? 1u : 0u) | (add_space_prefix_ ? 2u : 0u));
  fingerprint_ = h.hex();
}

}  // namespace fkv
