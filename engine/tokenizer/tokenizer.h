// The tokenizer of a GGUF model. SentencePiece vocabularies (tokenizer.ggml.model "llama": Llama 1/2, Mistral, Gemma)
// are served by libsentencepiece: the GGUF arrays are turned into a serialized ModelProto (spm_proto.h) and loaded
// from memory, so no tokenizer.model file is needed. Byte-level BPE vocabularies (tokenizer.ggml.model "gpt2": Llama 3,
// Qwen2, DeepSeek-R1-Distill) are served by BpeModel (bpe.h) with the pre-tokenizer tokenizer.ggml.pre names.
// Special-token parsing and the dummy space prefix follow llama.cpp, which is the reference the parity tests check
// against.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fkv/status.h"
#include "tokenizer/bpe.h"
#include "tokenizer/special_matcher.h"
#include "tokenizer/spm_proto.h"
#include "tokenizer/utf8.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace fkv {

class GgufFile;

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* from `f`; the Tokenizer keeps its own copy, so `f` may be closed afterwards.
  static Result<std::unique_ptr<Tokenizer>> from_gguf(const GgufFile& f);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Invalid UTF-8 is an error naming the byte offset. With `parse_special`, the text of control, user-defined and
  // unknown pieces ("<start_of_turn>") becomes their ids; without it, control text is encoded as plain text (a BPE
  // vocabulary's user-defined pieces, "<think>", are still matched, as the reference tokenizers do).
  // When the vocabulary asks for a space prefix, it goes before the text and after each special piece (llama.cpp).
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_bos, bool parse_special) const;
  // Appends the ids of `text` to `out` (never a BOS), for text encoded piece by piece: a long document in segments,
  // chat-template parts around it. `space_prefix` says whether the text starts a run of its own, which gets the
  // vocabulary's space prefix when it uses one (encode() passes true); pass false for a piece that continues text
  // encoded before it, so the concatenated ids decode back to exactly the concatenated texts. With `parse_special`,
  // special pieces are parsed and the prefix after them follows encode(). On error (invalid UTF-8, named by byte
  // offset) `out` is left as it was.
  Status encode_append(std::string_view text, bool space_prefix, bool parse_special, std::vector<int32_t>& out) const;
  // Concatenates token_piece() of each id; control tokens (BOS, EOS, turn markers) and ids outside the vocabulary
  // contribute nothing, and the space prefix that encode() added at the start is removed again.
  std::string decode(std::span<const int32_t> ids) const;
  // The bytes this token contributes to the text: '▁' becomes ' ', a byte token <0xAB> is the single byte 0xAB,
  // a control token is empty, the unknown token is "⁇" (U+2047); a BPE token's byte-level spelling becomes its bytes
  // ("Ġworld" is " world"). May be part of a UTF-8 sequence: see Utf8Streamer.
  std::string token_piece(int32_t id) const;
  // The vocabulary's own string for the token ("▁Hello", "<0x0A>", "<end_of_turn>"); empty outside the vocabulary.
  std::string_view token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;  // Control outside the vocabulary (contributes nothing, like a control)

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos_id() const { return bos_id_; }  // -1 when the vocabulary names none
  int32_t eos_id() const { return eos_id_; }
  int32_t unk_id() const { return unk_id_; }
  bool add_bos_default() const { return add_bos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  bool is_bpe() const { return bpe_ != nullptr; }
  // The BPE pre-tokenizer name ("llama-bpe", "qwen2"); empty for SentencePiece vocabularies.
  std::string pre_tokenizer_name() const { return bpe_ ? bpe_->pre_tokenizer().name() : std::string(); }
  // End of generation: EOS, plus the end-of-turn control tokens the vocabulary has ("<end_of_turn>", "<|eot_id|>",
  // "<|im_end|>", "</s>") as control or user-defined tokens, except that "</s>" must be a control token: in Gemma it
  // is an ordinary user-defined HTML tag.
  bool is_eog(int32_t id) const;
  std::span<const int32_t> eog_ids() const { return eog_ids_; }
  // Exact lookup of a vocabulary string (as stored, e.g. "▁Hello").
  std::optional<int32_t> find_token(std::string_view piece) const;
  // 32 hex digits hashing tokens, scores, types, special ids and flags: equal vocabularies, equal fingerprints.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  Tokenizer();
  Status load_vocab(const GgufFile& f);
  Status load_special_ids(const GgufFile& f);
  Status build_processor();
  Status build_bpe(const GgufFile& f);
  void build_lookups();
  void compute_fingerprint();
  Status encode_valid(std::string_view text, bool space_prefix, bool parse_special, std::vector<int32_t>& out) const;
  Status encode_fragment(std::string_view text, bool space_prefix, std::vector<int32_t>& out) const;
  Status encode_chunk(std::string_view text, bool space_prefix, std::vector<int32_t>& out) const;
  size_t next_cut(std::string_view text, size_t from) const;
  void record_joins(std::string_view piece);

  std::string label_;                // the GGUF's label, for error messages
  std::vector<std::string> tokens_;  // (n_vocab) vocabulary strings in id order
  std::vector<float> scores_;        // (n_vocab) merge scores
  std::vector<TokenType> types_;     // (n_vocab)
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  int32_t unk_id_ = -1;
  int32_t pad_id_ = -1;
  bool add_bos_ = true;
  bool add_space_prefix_ = true;
  bool bpe_vocab_ = false;  // tokenizer.ggml.model is "gpt2"
  TokenLookup by_text_;  // views into tokens_, first id wins; BpeModel looks pieces up here too
  SpecialMatcher special_;
  SpecialMatcher user_defined_;  // BPE only: the user-defined pieces, matched even without parse_special
  std::vector<int32_t> eog_ids_;  // (<= 5)
  std::string fingerprint_;
  // libsentencepiece's BPE slows down more than linearly on long inputs, so encode_fragment() cuts long text. A cut
  // before a space or newline is exact when no mergeable piece holds the character before it followed by that
  // space or newline: no merge can then cross the cut. These sets hold the characters that some piece does join.
  std::unordered_set<std::string> joined_before_space_;    // characters followed by '▁' inside a piece
  std::unordered_set<std::string> joined_before_newline_;  // characters followed by '\n' inside a piece
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;  // SentencePiece vocabularies
  std::unique_ptr<BpeModel> bpe_;                               // byte-level BPE vocabularies
  std::string merges_digest_;  // BPE: a hash of tokenizer.ggml.pre and the merges, part of the fingerprint
};

}  // namespace fkv
