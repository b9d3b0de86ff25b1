// Policy fidelity: the reference run, teacher-forced comparison, and the greedy answer each side gives.
#include "eval/fidelity.h"

#include <algorithm>
#include <cmath>

#include "core/clock.h"
#include "tokenizer/tokenizer.h"

namespace fkv {

namespace {



int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

Result<std::unique_ptr<Context>> make_context(const Model& model, const EvalTask& task, const FidelityParams& p,
                                              Policy policy) {
  ContextParams cp = p.context;
  cp.policy = policy;
  cp.n_ctx = task.n_tokens + p.n_gen + 1;
  // Past the trained window the prompt is read as context memory, as the engine reads such a document.
  const int train = model.config().n_ctx_train;
  if (train > 0 && cp.n_ctx > train) cp.context_memory = true;
  return Context::create(model, cp);
}

// A greedy answer as it grows: it ends at an end-of-generation token, after `max_tokens` tokens, and for completion
// prompts at a newline that follows some text (a base model may open with a newline, and after its line goes on to
// invent the next question; an instruct model ends its turn itself and may answer in a list).
class AnswerText {
 public:
  AnswerText(const Tokenizer& tok, int max_tokens, PromptStyle style)
      : tok_(tok), max_tokens_(max_tokens), stop_at_newline_(style == PromptStyle::Completion) {}

  // Adds the next token; true once the answer is complete (later calls are ignored).
  bool add(int32_t token) {
    if (done_) return true;
    ++n_consumed_;
    if (tok_.is_eog(token)) return done_ = true;
    tokens_.push_back(token);
    text_ = tok_.decode(tokens_);
    const size_t content = text_.find_first_not_of(" \t\r\n");
    const size_t newline =
        content == std::string::npos || !stop_at_newline_ ? std::string::npos : text_.find('\n', content);
    if (newline != std::string::npos) {
      text_.resize(newline);
      done_ = true;
    }
    if (n_consumed_ >= max_tokens_) done_ = true;
    return done_;
  }
  const std::string& text() const { return text_; }
  int n_consumed() const { return n_consumed_; }  // tokens that made the answer, the ending one included

 private:
  const Tokenizer& tok_;
  int max_tokens_;
  bool stop_at_newline_;
  std::vector<int32_t> tokens_;  // (answer tokens so far)
  std::string text_;
  int n_consumed_ = 0;
  bool done_ = false;
};

// The policy's own greedy answer: `ctx` holds exactly the prompt, whose last logits are `first`.
Result<std::string> free_running_answer(Context& ctx, std::span<const float> first, int n_gen, PromptStyle style) {
  const Tokenizer& tok = ctx.model().tokenizer();
  std::vector<float> logits(first.begin(), first.end());  // (n_vocab)
  AnswerText answer(tok, n_gen, style);
  for (;;) {
    const int32_t next = argmax(logits);
    if (answer.add(next)) break;
    FKV_TRY(ctx.eval(std::span<const int32_t>(&next, 1), LogitsMode::Last, logits));
  }
  return answer.text();
}

void score(std::string_view output, const EvalTask& task, bool& correct, int& n_found) {
  n_found = count_answers_found(task, output);
  correct = answers_match(task, output);
}

// Greedy decoding of the reference after the prefill: `ctx` holds the prompt, `first` its last logits.
Status decode_reference(Context& ctx, const EvalTask& task, std::span<const float> first, int n_gen,
                        ReferenceRun& ref) {
  ref.n_steps = n_gen;
  ref.n_vocab = static_cast<int>(first.size());
  const size_t n_vocab = first.size();
  ref.tokens.assign(1, argmax(first));
  ref.logits.resize(static_cast<size_t>(n_gen) * n_vocab);
  const Clock::time_point t0 = Clock::now();
  for (int i = 0; i < n_gen; ++i) {
    const std::span<float> row(ref.logits.data() + static_cast<size_t>(i) * n_vocab, n_vocab);
    FKV_TRY(ctx.eval(std::span<const int32_t>(&ref.tokens[static_cast<size_t>(i)], 1), LogitsMode::Last, row));
    ref.tokens.push_back(argmax(row));
  }
  ref.decode_s = seconds_since(t0);
  ref.stats = ctx.stats();
  AnswerText answer(ctx.model().tokenizer(), n_gen, task.style);
  for (int32_t t : ref.tokens) {
    if (answer.add(t)) break;
  }
  ref.answer_tokens = answer.n_consumed();
  ref.output = answer.text();
  score(ref.output, task, ref.correct, ref.n_found);
  return {};
}

// Decode step i predicts tokens[i + 1]; the answer is tokens[0 .. answer_tokens), and tokens[0] is predicted by the
// prefill, not by a decode step.
int answer_steps(const ReferenceRun& ref) { return std::clamp(ref.answer_tokens - 1, 0, ref.n_steps); }

// Teacher-forces the policy of `ctx` (holding exactly the prompt, `first` its last logits) on the reference's tokens.
Status teacher_force(Context& ctx, const EvalTask& task, const ReferenceRun& ref, std::span<const float> first,
                     FidelityResult& r) {
  const size_t n_vocab = first.size();
  r.n_steps = ref.n_steps;
  r.first_divergence = argmax(first) == ref.tokens[0] ? ref.n_steps + 1 : 0;
  std::vector<float> logits(n_vocab);  // (n_vocab)
  r.answer_steps = answer_steps(ref);
  int n_agree = 0;
  int n_agree_answer = 0;
  double kl_sum = 0;
  double kl_sum_answer = 0;
  for (int i = 0; i < ref.n_steps; ++i) {
    const Clock::time_point t0 = Clock::now();
    FKV_TRY(ctx.eval(std::span<const int32_t>(&ref.tokens[static_cast<size_t>(i)], 1), LogitsMode::Last, logits));
    r.decode_s += seconds_since(t0);  // timed apart from the comparison, which is not part of decoding
    const std::span<const float> ref_row(ref.logits.data() + static_cast<size_t>(i) * n_vocab, n_vocab);
    FKV_ASSIGN_OR_RETURN(const double kl, kl_divergence(ref_row, logits));
    kl_sum += kl;
    r.max_kl = std::max(r.max_kl, kl);
    const bool agree = argmax(logits) == ref.tokens[static_cast<size_t>(i) + 1];
    n_agree += agree ? 1 : 0;
    if (!agree) r.first_divergence = std::min(r.first_divergence, i + 1);
    if (i < r.answer_steps) {
      kl_sum_answer += kl;
      n_agree_answer += agree ? 1 : 0;
    }
  }
  r.agreement = static_cast<double>(n_agree) / ref.n_steps;
  r.mean_kl = kl_sum / ref.n_steps;
  if (r.answer_steps > 0) {
    r.answer_agreement = static_cast<double>(n_agree_answer) / r.answer_steps;
    r.answer_mean_kl = kl_sum_answer / r.answer_steps;
  }
  r.stats = ctx.stats();
  if (r.first_divergence >= ref.answer_tokens) {
    r.output = ref.output;  // every token of the answer was the policy's own greedy choice as well
  } else {
    FKV_TRY(ctx.truncate(task.n_tokens));
    FKV_ASSIGN_OR_RETURN(r.output, free_running_answer(ctx, first, ref.n_steps, task.style));
    r.reran = true;
  }
  score(r.output, task, r.correct, r.n_found);
  return {};
}

Status check_reference(const Model& model, const ReferenceRun& ref, const FidelityParams& params) {
  const auto n_vocab = static_cast<size_t>(model.config().n_vocab);
  if (ref.n_steps == params.n_gen && ref.n_vocab == model.config().n_vocab &&
      ref.tokens.size() == static_cast<size_t>(ref.n_steps) + 1 &&
      ref.logits.size() == static_cast<size_t>(ref.n_steps) * n_vocab)
    return {};
  return err("reference run does not match: expected ", params.n_gen, " steps over ", n_vocab, " tokens, found ",
             ref.n_steps, " steps over ", ref.n_vocab);
}

}  // namespace

Status FidelityParams::validate() const {
  if (n_gen < 1 || n_gen > 4096) return err("generated tokens must be 1..4096, found ", n_gen);
  return context.validate();
}

Result<double> kl_divergence(std::span<const float> logits_p, std::span<const float> logits_q) {
  if (logits_p.empty() || logits_p.size() != logits_q.size())
    return err("KL divergence: expected two non-empty logit vectors of one size, found ", logits_p.size(), " and ",
               logits_q.size());
  auto log_normalizer = [](std::span<const float> v) {
    const double m = *std::max_element(v.begin(), v.end());
    double s = 0;
    for (float x : v) s += std::exp(static_cast<double>(x) - m);
    return m + std::log(s);
  };
  const double zp = log_normalizer(logits_p);
  const double zq = log_normalizer(logits_q);
  double kl = 0;
  for (size_t i = 0; i < logits_p.size(); ++i) {
    const double log_p = static_cast<double>(logits_p[i]) - zp;
    const double p = std::exp(log_p);
    if (p == 0) continue;  // 0 * log(0 / q) is 0, also where both logits are -inf
    kl += p * (log_p - (static_cast<double>(logits_q[i]) - zq));
  }
  return std::max(0.0, kl);  // rounding can leave a tiny negative sum for nearly equal distributions
}

Result<std::unique_ptr<FidelitySession>> FidelitySession::start(const Model& model, const EvalTask& task,
                                                                const FidelityParams& params) {
  FKV_TRY(params.validate());
  std::unique_ptr<FidelitySession> s(new FidelitySession());
  s->task_ = task;
  s->params_ = params;
  FKV_ASSIGN_OR_RETURN(s->ctx_, make_context(model, task, params, params.reference));
  s->ref_.policy = params.reference;
  s->first_.resize(static_cast<size_t>(model.config().n_vocab));
  const Clock::time_point t0 = Clock::now();
  FKV_TRY(s->ctx_->eval(task.tokens, LogitsMode::Last, s->first_));
  s->ref_.prefill_s = seconds_since(t0);
  FKV_TRY(decode_reference(*s->ctx_, task, s->first_, params.n_gen, s->ref_));
  return s;
}

Result<FidelityResult> FidelitySession::compare(Policy policy) {
  return compare(policy, params_.context.correction_tau);
}

Result<FidelityResult> FidelitySession::compare(Policy policy, float tau) {
  FKV_TRY(ctx_->truncate(task_.n_tokens));
  FKV_TRY(ctx_->set_policy(policy, params_.context.budget, tau));
  FidelityResult r;
  r.policy = policy;
  r.prefill_s = ref_.prefill_s;
  FKV_TRY(teacher_force(*ctx_, task_, ref_, first_, r));
  return r;
}

Result<ReferenceRun> run_reference(const Model& model, const EvalTask& task, const FidelityParams& params) {
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<FidelitySession> s, FidelitySession::start(model, task, params));
  return s->reference();
}

FidelityResult reference_result(const ReferenceRun& ref) {
  FidelityResult r;
  r.policy = ref.policy;
  r.n_steps = ref.n_steps;
  r.agreement = 1;
  r.answer_steps = answer_steps(ref);
  r.first_divergence = ref.n_steps + 1;
  r.output = ref.output;
  r.correct = ref.correct;
  r.n_found = ref.n_found;
  r.stats = ref.stats;
  r.prefill_s = ref.prefill_s;
  r.decode_s = ref.decode_s;
  return r;
}

Result<FidelityResult> compare_policy(const Model& model, const EvalTask& task, const ReferenceRun& ref,
                                      Policy policy, const FidelityParams& params) {
  FKV_TRY(params.validate());
  FKV_TRY(check_reference(model, ref, params));
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<Context> ctx, make_context(model, task, params, policy));
  FidelityResult r;
  r.policy = policy;
  std::vector<float> first(static_cast<size_t>(model.config().n_vocab));  // (n_vocab)
  const Clock::time_point t0 = Clock::now();
  FKV_TRY(ctx->eval(task.tokens, LogitsMode::Last, first));
  r.prefill_s = seconds_since(t0);
  FKV_TRY(teacher_force(*ctx, task, ref, first, r));
  return r;
}

}  // namespace fkv
