// Prompt layouts of evaluation tasks and the search for the filler that reaches a target length.
#include "eval/eval_prompt.h"

#include <algorithm>

#include "tokenizer/tokenizer.h"

namespace fkv {

namespace {

// Stands in for the user's text while the chat template renders; no template touches it.
constexpr std::string_view kMarker =
    "\x1f"
    "FKV-EVAL-TASK"
    "\x1f";

std::string user_content(const TaskText& t, std::string_view body) {
  std::string s = t.intro;
  s += body;
  s += "\n\n";
  s += t.question;
  return s;
}

}  // namespace

uint64_t mix_seed(uint64_t seed, std::string_view kind, int target, int index) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the kind name
  for (char c : kind) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  Rng r(seed ^ h ^ (static_cast<uint64_t>(target) << 20) ^ static_cast<uint64_t>(index));
  return r.next();
}

Result<PromptLayout> PromptLayout::make(const TaskPrompt& prompt) {
  PromptLayout l;
  l.prompt_ = prompt;
  if (prompt.style == PromptStyle::Completion) return l;
  std::vector<ChatMessage> turns;
  if (!prompt.system.empty()) turns.push_back({"system", prompt.system});
  turns.push_back({"user", std::string(kMarker)});
  FKV_ASSIGN_OR_RETURN(const std::string text,
                       apply_chat_template(prompt.chat_template, turns, /*add_generation_prompt=*/true));
  const size_t at = text.find(kMarker);
  if (at == std::string::npos)
    return err("the ", chat_template_name(prompt.chat_template), " chat template dropped the user's text");
  l.head_ = text.substr(0, at);
  l.tail_ = text.substr(at + kMarker.size());
  return l;
}

Status PromptLayout::render(const Tokenizer& tok, const TaskText& t, std::string_view body, std::string& text,
                            std::vector<int32_t>& tokens) const {
  if (prompt_.style == PromptStyle::Completion) {
    text = t.intro;
    text += body;
    text += t.completion_tail;
    FKV_ASSIGN_OR_RETURN(tokens, tok.encode(text, tok.add_bos_default(), /*parse_special=*/false));
    return {};
  }
  const std::string content = user_content(t, body);
  text = head_ + content + tail_;
  tokens.clear();
  if (tok.add_bos_default() && tok.bos_id() >= 0) tokens.push_back(tok.bos_id());
  // As the document prompt encodes them: the head starts the text, the rest continue it.
  FKV_TRY(tok.encode_append(head_, /*space_prefix=*/true, /*parse_special=*/true, tokens));
  FKV_TRY(tok.encode_append(content, /*space_prefix=*/false, /*parse_special=*/false, tokens));
  FKV_TRY(tok.encode_append(tail_, /*space_prefix=*/false, /*parse_special=*/true, tokens));
  return {};
}

Result<EvalTask> fit_prompt(const Tokenizer& tok, const PromptLayout& layout, const TaskText& t, const BodyOf& body,
                            int target, int max_units, int slack) {
  EvalTask task;
  task.style = layout.prompt().style;
  auto tokens_with = [&](int n) -> Result<int> {
    FKV_TRY(layout.render(tok, t, body(n), task.prompt, task.tokens));
    return static_cast<int>(task.tokens.size());
  };
  const bool bounded = max_units >= 0;
  FKV_ASSIGN_OR_RETURN(const int fixed, tokens_with(0));
  if (fixed > target) {
    return err("target length ", target, " tokens is too short: the task's text without filler takes ", fixed,
               " tokens");
  }
  const int probe = bounded ? std::min(32, max_units) : 32;
  FKV_ASSIGN_OR_RETURN(const int sample, tokens_with(probe));
  const double per_unit = probe > 0 ? std::max(1.0, static_cast<double>(sample - fixed) / probe) : 1.0;
  // Probe upward from an estimate until the prompt no longer fits, then bisect between fitting and not fitting.
  int lo = 0, hi = std::max(1, static_cast<int>((target - fixed) / per_unit));
  if (bounded) hi = std::min(hi, max_units);
  for (;;) {
    FKV_ASSIGN_OR_RETURN(const int n_tok, tokens_with(hi));
    if (n_tok > target) break;
    lo = hi;
    if (bounded && hi == max_units) {
      if (n_tok + slack < target)
        return err("target length ", target, " tokens: the filler ran out at ", n_tok, " tokens (", max_units,
                   " units)");
      break;
    }
    hi += std::max(2, hi / 8);
    if (bounded) hi = std::min(hi, max_units);
  }
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    FKV_ASSIGN_OR_RETURN(const int n_tok, tokens_with(mid));
    (n_tok <= target ? lo : hi) = mid;
  }
  FKV_ASSIGN_OR_RETURN(task.n_tokens, tokens_with(lo));
  return task;
}

}  // namespace fkv
