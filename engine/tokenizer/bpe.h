// Byte-level BPE, the tokenizer model of Llama 3, Qwen2 and DeepSeek-R1-Distill vocabularies (GGUF
// tokenizer.ggml.model "gpt2"). Every byte of the text is first written as one printable character (the byte-level
// alphabet: bytes that are printable Latin-1 stand for themselves, the others are moved to U+0100 and up), so any byte
// sequence has a spelling in the vocabulary; the text is split into words by the PreTokenizer, and inside each word
// adjacent symbols are merged, always the pair whose merge comes first in tokenizer.ggml.merges, until none applies.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fkv/status.h"
#include "tokenizer/pretokenizer.h"

namespace fkv {

// The byte-level spelling of raw bytes ("Hello world" -> "HelloĠworld").
std::string bytes_to_byte_level(std::string_view bytes);
// The raw bytes a byte-level spelling stands for. Characters outside the byte-level alphabet (an added token such
// as "<think>" is written plainly) are kept as they are.
std::string byte_level_to_bytes(std::string_view text);

// Vocabulary string -> id, the first id winning for a repeated string (the Tokenizer's own lookup).
using TokenLookup = std::unordered_map<std::string_view, int32_t>;

class BpeModel {
 public:
  // `by_text` is the vocabulary's lookup; the model keeps a pointer to it, so it must outlive the model. `merges`
  // are "left right" pairs in priority order, read only during create(). Errors name the merge or byte that does
  // not fit the vocabulary, prefixed by `label`.
  static Result<std::unique_ptr<BpeModel>> create(const TokenLookup& by_text,
                                                  std::span<const std::string_view> merges,
                                                  std::unique_ptr<PreTokenizer> pre, const std::string& label);

  // Appends the ids of valid UTF-8 `text`: pre-tokenized words, each merged on its own.
  Status encode(std::string_view text, std::vector<int32_t>& out) const;

  const PreTokenizer& pre_tokenizer() const { return *pre_; }
  size_t n_merges() const { return merges_.size(); }

 private:
  struct Merge {
    int32_t rank = 0;    // position in tokenizer.ggml.merges: lower merges first
    int32_t result = 0;  // id of the merged symbol
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }

  BpeModel() = default;
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void merge_symbols(std::vector<int32_t>& ids) const;

  std::unique_ptr<PreTokenizer> pre_;
  std::array<int32_t, 256> byte_ids_{};                  // (256) id of each byte's one-character token
  const TokenLookup* by_text_ = nullptr;                 // the Tokenizer's lookup of byte-level strings
  std::unordered_map<uint64_t, Merge> merges_;           // (left id, right id) -> merge
};

}  // namespace fkv
