// How an evaluation task becomes the tokens a model reads, and how its filler grows to a target length. Shared by
// the generated kinds (eval_tasks.cpp) and the real-document kind (docqa.cpp); not part of the public surface.
//
// A task's text has three parts: an intro, a body (haystack or documents, grown unit by unit) and a question.
// Completion style (base models): intro + body + completion_tail, one plain text that ends with an answer cue
// ("The passkey is") for the model to continue. Chat style (instruct models): intro + body + "\n\n" + question is the
// user turn of the model's chat template, followed by the opening of the assistant's turn, so the model answers as
// it was fine-tuned to; no cue is put in the assistant's mouth.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "eval/eval_tasks.h"
#include "fkv/status.h"

namespace fkv {

class Tokenizer;

// SplitMix64: a generator whose output the C++ standard does not leave to the library, so the same seed gives the
// same tasks everywhere (std:: distributions are implementation-defined).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return splitmix64(state_); }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  template <size_t N>
  std::string_view pick(const std::string_view (&words)[N]) {
    return words[below(static_cast<int>(N))];
  }
  // A number of exactly `digits` digits (no leading zero).
  std::string number(int digits) {
    std::string s(1, static_cast<char>('1' + below(9)));
    while (static_cast<int>(s.size()) < digits) s += static_cast<char>('0' + below(10));
    return s;
  }
  // Fisher-Yates over `v`.
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<size_t>(below(static_cast<int>(i)))]);
  }

 private:
  uint64_t state_;
};

// A sentence of the generated tasks' filler: varied, and without digits, so only needles hold numbers.
std::string filler_sentence(Rng& r);

// The seed of task `index` of `kind` at `target` tokens, so each task draws from its own stream.
uint64_t mix_seed(uint64_t seed, std::string_view kind, int target, int index);

struct TaskText {
  std::string intro;            // before the body
  std::string question;         // chat style: the question as the user asks it
  std::string completion_tail;  // completion style: appended right after the body, ends with the answer cue
};

// The chat template's text around the user turn, rendered once per task set.
class PromptLayout {
 public:
  static Result<PromptLayout> make(const TaskPrompt& prompt);
  const TaskPrompt& prompt() const { return prompt_; }
  // The prompt text and its tokens (BOS as the vocabulary asks). Chat style encodes the template's parts with
  // special tokens parsed and the user's text without, so a document that spells "<|im_start|>" stays plain text.
  Status render(const Tokenizer& tok, const TaskText& t, std::string_view body, std::string& text,
                std::vector<int32_t>& tokens) const;

 private:
  TaskPrompt prompt_;
  std::string head_;  // chat: the template's text before the user's content
  std::string tail_;  // chat: after it, through the opening of the assistant's turn
};

// The body with `n` filler units; `n` never exceeds the max_units given to fit_prompt.
using BodyOf = std::function<std::string(int n)>;

// The task with the most filler units (at most `max_units`; negative: no limit) whose prompt fits `target` tokens.
// Errors: the text without filler is already longer than `target` (the message says "too short" and names both
// lengths), or every unit fits and the prompt is still shorter than the target by more than `slack` tokens (the
// filler ran out).
Result<EvalTask> fit_prompt(const Tokenizer& tok, const PromptLayout& layout, const TaskText& t, const BodyOf& body,
                            int target, int max_units, int slack);

}  // namespace fkv
