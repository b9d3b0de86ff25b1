// Pre-tokenization for byte-level BPE vocabularies (GGUF tokenizer.ggml.model "gpt2"): the text is split into words
// by the regular expression of the named pre-tokenizer (tokenizer.ggml.pre), and BPE merges never cross a word.
// The expressions use Unicode categories (\p{L}, \p{N}) and a look-ahead, so they run on ICU's regex engine from
// Debian's libicu rather than on hand-written character tables.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fkv/status.h"

namespace fkv {

class PreTokenizer {
 public:
  // `name` as GGUF files spell it: "default"/"gpt2", "llama-bpe"/"llama3", "qwen2", "deepseek-r1-qwen". Anything
  // else is an error listing the supported names, since a wrong split silently changes every token id.
  static Result<std::unique_ptr<PreTokenizer>> create(std::string_view name);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Splits valid UTF-8 `text` into consecutive words covering it exactly; each word is a view into `text`.
  // Thread-safe: every call uses its own matcher.
  Result<std::vector<std::string_view>> split(std::string_view text) const;

  const std::string& name() const { return name_; }
  // Llama 3 vocabularies look a whole word up before merging (a word that is a token is that token); others merge.
  bool ignore_merges() const { return ignore_merges_; }

  static std::span<const std::string_view> supported_names();

 private:
  PreTokenizer() = default;
  struct Pattern;
  std::string name_;
  bool ignore_merges_ = false;
  std::unique_ptr<Pattern> pattern_;
};

}  // namespace fkv
