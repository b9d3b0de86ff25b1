// PreTokenizer: the split expressions of the byte-level BPE families, run by ICU over the UTF-8 text (a UTF-8 UText,
// so match positions come back as byte offsets and the text is never converted to UTF-16).
#include "tokenizer/pretokenizer.h"

#include <unicode/regex.h>
#include <unicode/utext.h>

#include <array>

namespace fkv {
namespace {

// The expressions as the families' tokenizers define them, with one change of spelling: \s is written
// \p{White_Space}, because ICU's \s leaves out U+000B and U+0085 while the reference engines count them as space.
constexpr std::string_view kWs = "\\p{White_Space}";

std::string gpt2_pattern() {
  return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" + std::string(kWs) + "\\p{L}\\p{N}]+|" +
         std::string(kWs) + "+(?!\\P{White_Space})|" + std::string(kWs) + "+";
}

// Llama 3 and Qwen2 differ only in how digits group: up to three per word (Llama 3) or one (Qwen2).
std::string llama3_like_pattern(std::string_view digits) {
  const std::string ws(kWs);
  return "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" + std::string(digits) + "| ?[^" + ws +
         "\\p{L}\\p{N}]+[\\r\\n]*|" + ws + "*[\\r\\n]+|" + ws + "+(?!\\P{White_Space})|" + ws + "+";
}

constexpr std::array<std::string_view, 6> kNames = {"default", "gpt2", "llama-bpe", "llama3", "qwen2",
                                                    "deepseek-r1-qwen"};
enum class Kind { Gpt2, Llama3, Qwen2 };
constexpr std::array<Kind, 6> kKinds = {Kind::Gpt2, Kind::Gpt2, Kind::Llama3, Kind::Llama3, Kind::Qwen2, Kind::Qwen2};

struct UTextCloser {
  void operator()(UText* t) const { utext_close(t); }
};

}  // namespace

struct PreTokenizer::Pattern {
  std::unique_ptr<icu::RegexPattern> regex;
};

PreTokenizer::~PreTokenizer() = default;

std::span<const std::string_view> PreTokenizer::supported_names() { return kNames; }

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::create(std::string_view name) {
  size_t index = 0;
  while (index < kNames.size() && kNames[index] != name) ++index;
  if (index == kNames.size()) {
    std::string list;
    for (const std::string_view n : kNames) list += (list.empty() ? "" : ", ") + std::string(n);
    return err("pre-tokenizer '", name, "' is not supported (supported: ", list, ")");
  }
  const Kind kind = kKinds[index];
  const std::string pattern = kind == Kind::Gpt2     ? gpt2_pattern()
                              : kind == Kind::Llama3 ? llama3_like_pattern("{1,3}")
                                                     : llama3_like_pattern("");
  UErrorCode status = U_ZERO_ERROR;
  UParseError parse_error{};
  std::unique_ptr<icu::RegexPattern> regex(
      icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(pattern), 0, parse_error, status));
  if (U_FAILURE(status)) {
    return err("pre-tokenizer '", name, "': ICU rejected its expression at offset ", parse_error.offset, ": ",
               u_errorName(status));
  }
  std::unique_ptr<PreTokenizer> p(new PreTokenizer());
  p->name_ = std::string(name);
  p->ignore_merges_ = kind == Kind::Llama3;
  p->pattern_ = std::make_unique<Pattern>(Pattern{std::move(regex)});
  return p;
}

Result<std::vector<std::string_view>> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> words;
  if (text.empty()) return words;
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<UText, UTextCloser> utext(
      utext_openUTF8(nullptr, text.data(), static_cast<int64_t>(text.size()), &status));
  std::unique_ptr<icu::RegexMatcher> matcher(pattern_->regex->matcher(status));
  if (U_SUCCESS(status)) matcher->reset(utext.get());
  if (U_FAILURE(status)) return err("pre-tokenizer '", name_, "': ICU could not start matching: ", u_errorName(status));
  size_t covered = 0;  // bytes of `text` already in `words`
  while (matcher->find(status) && U_SUCCESS(status)) {
    const auto start = static_cast<size_t>(matcher->start64(status));
    const auto end = static_cast<size_t>(matcher->end64(status));
    if (U_FAILURE(status) || end <= start) break;
    // Text the expression does not match stays a word of its own (the reference splitters' "isolated" behaviour).
    if (start > covered) words.push_back(text.substr(covered, start - covered));
    words.push_back(text.substr(start, end - start));
    covered = end;
  }
  if (U_FAILURE(status)) return err("pre-tokenizer '", name_, "': ICU failed while matching: ", u_errorName(status));
  if (covered < text.size()) words.push_back(text.substr(covered));
  return words;
}

}  // namespace fkv
