// Tokenizer: encoding (special-piece splitting, then libsentencepiece or BPE per text fragment), decoding and lookups.
#include "tokenizer/tokenizer.h"

#include <sentencepiece_processor.h>

#include <cstdio>

namespace fkv {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";     // U+2581 '▁', SentencePiece's escaped space
constexpr std::string_view kUnknownSurface = "\xE2\x81\x87";  // U+2047 '⁇', what SentencePiece shows for <unk>

uint8_t byte_piece_value(std::string_view s) {
  // load_vocab() has checked the form "<0xHH>" of every byte piece.
  auto hex = [](char c) { return c <= '9' ? c - '0' : c - 'A' + 10; };
  return static_cast<uint8_t>(hex(s[3]) * 16 + hex(s[4]));
}

std::string unescape_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    if (s.substr(pos, kSpaceSymbol.size()) == kSpaceSymbol) {
      out.push_back(' ');
      pos += kSpaceSymbol.size();
    } else {
      out.push_back(s[pos++]);
    }
  }
  return out;
}

}  // namespace

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
  FKV_TRY(encode_append(text, true, parse_special, out));
  return out;
}

Status Tokenizer::encode_append(std::string_view text, bool space_prefix, bool parse_special,
                                std::vector<int32_t>& out) const {
  if (const auto bad = utf8_first_invalid(text)) {
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned>(static_cast<uint8_t>(text[*bad])));
    return err("encode: invalid UTF-8 at byte offset ", *bad, " (byte ", byte, "), expected UTF-8 text");
  }
  const size_t n_before = out.size();
  Status status = encode_valid(text, space_prefix && add_space_prefix_, parse_special, out);
  if (!status.ok()) out.resize(n_before);
  return status;
}

Status Tokenizer::encode_valid(std::string_view text, bool space_prefix, bool parse_special,
                               std::vector<int32_t>& out) const {
  // llama.cpp puts the space prefix before the text and after each control piece (the reference chat code of Llama 2
  // encodes each turn on its own, so "</s><s>[INST]" is "▁[INST]" there too). After a user-defined piece there is
  // none: libsentencepiece handles those pieces itself when parse_special is off, and both modes must agree.
  size_t start = 0;
  const SpecialMatcher* matcher = parse_special ? &special_ : bpe_ ? &user_defined_ : nullptr;
  if (matcher != nullptr && matcher->n_pieces() > 0) {
    for (size_t pos = 0; pos < text.size();) {
      const SpecialMatcher::Match m = matcher->longest_at(text, pos);
      if (m.length == 0) {
        ++pos;
        continue;
      }
      if (pos > start) FKV_TRY(encode_fragment(text.substr(start, pos - start), space_prefix, out));
      out.push_back(m.id);
      space_prefix = add_space_prefix_ && types_[m.id] != TokenType::UserDefined;
      pos += m.length;
      start = pos;
    }
  }
  if (start < text.size()) FKV_TRY(encode_fragment(text.substr(start), space_prefix, out));
  return Status();
}

Status Tokenizer::encode_fragment(std::string_view text, bool space_prefix, std::vector<int32_t>& out) const {
  // BPE never merges across the pre-tokenizer's words, so it needs no cutting.
  if (bpe_ && !space_prefix) return bpe_->encode(text, out);
  if (bpe_) {
    std::string prefixed(1, ' ');
    prefixed.append(text);
    return bpe_->encode(prefixed, out);
  }
  // Cut only texts well past the chunk size, so a cut never leaves a tiny tail.
  constexpr size_t kChunkBytes = 4096;
  size_t start = 0;
  while (text.size() - start > 2 * kChunkBytes) {
    const size_t cut = next_cut(text, start + kChunkBytes);
    if (cut >= text.size()) break;
    FKV_TRY(encode_chunk(text.substr(start, cut - start), space_prefix && start == 0, out));
    start = cut;
  }
  return encode_chunk(text.substr(start), space_prefix && start == 0, out);
}

// The first position >= from where a space or newline follows a character no piece joins to it; text.size() if none.
size_t Tokenizer::next_cut(std::string_view text, size_t from) const {
  for (size_t pos = std::max<size_t>(from, 1); pos < text.size(); ++pos) {
    const char c = text[pos];
    if (c != ' ' && c != '\n') continue;
    size_t prev = pos - 1;
    while (prev > 0 && (static_cast<uint8_t>(text[prev]) & 0xC0) == 0x80) --prev;  // back to the lead byte
    const std::string_view before = text.substr(prev, pos - prev);
    const auto& joined = c == ' ' ? joined_before_space_ : joined_before_newline_;
    // The text's spaces become '▁' only inside libsentencepiece, so a space before the cut is looked up as '▁'.
    const std::string key = before == " " ? std::string(kSpaceSymbol) : std::string(before);
    if (!joined.contains(key)) return pos;
  }
  return text.size();
}

Status Tokenizer::encode_chunk(std::string_view text, bool space_prefix, std::vector<int32_t>& out) const {
  std::string prefixed;
  if (space_prefix) {
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) {
    return err("encode: libsentencepiece failed on a ", text.size(), "-byte fragment: ", status.ToString());
  }
  out.insert(out.end(), ids.begin(), ids.end());
  return Status();
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  bool at_start = true;
  for (const int32_t id : ids) {
    std::string piece = token_piece(id);
    if (piece.empty()) continue;
    // The prefix encode() put before the text is not part of it; SentencePiece drops it the same way.
    if (at_start && add_space_prefix_ && piece.front() == ' ') piece.erase(0, 1);
    at_start = false;
    out += piece;
  }
  return out;
}

std::string Tokenizer::token_piece(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return {};
  if (bpe_) {
    // Added pieces ("<think>") are stored as plain text, the merged ones in the byte-level alphabet (llama.cpp).
    if (types_[id] == TokenType::Control) return {};
    return types_[id] == TokenType::UserDefined ? tokens_[id] : byte_level_to_bytes(tokens_[id]);
  }
  switch (types_[id]) {
    case TokenType::Control:
      return {};
    case TokenType::Byte:
      return std::string(1, static_cast<char>(byte_piece_value(tokens_[id])));
    case TokenType::Unknown:
      return std::string(kUnknownSurface);
    default:
      return unescape_spaces(tokens_[id]);
  }
}

std::string_view Tokenizer::token_text(int32_t id) const {
  return id >= 0 && id < n_vocab() ? std::string_view(tokens_[id]) : std::string_view();
}

TokenType Tokenizer::token_type(int32_t id) const {
  return id >= 0 && id < n_vocab() ? types_[id] : TokenType::Control;
}

bool Tokenizer::is_eog(int32_t id) const {
  for (const int32_t e : eog_ids_) {
    if (e == id) return true;
  }
  return false;
}

std::optional<int32_t> Tokenizer::find_token(std::string_view piece) const {
  const auto it = by_text_.find(piece);
  if (it == by_text_.end()) return std::nullopt;
  return it->second;
}

}  // namespace fkv
