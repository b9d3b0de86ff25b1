// Fidelity of a retrieval policy against full attention on one prompt, on the same model.
// The reference ("full") prefills the prompt and decodes n_gen greedy tokens. A policy starts from the same prefill
// (prefill is exact under every policy) and is then teacher-forced on the reference's tokens, so both see the same
// sequence and their next-token distributions can be compared step by step: top-1 agreement and KL(p_full ||
// p_policy). The policy's own greedy answer (for exact-match accuracy) is the reference's answer while the two agree;
// only when they part before the answer ends does the policy decode again on its own.
// FidelitySession prefills once and rewinds to the prompt for each policy; compare_policy() builds a fresh context
// (the independent check that rewinding changes nothing).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eval/eval_tasks.h"
#include "fkv/events.h"
#include "fkv/status.h"
#include "model/model.h"
#include "runtime/context.h"

namespace fkv {

struct FidelityParams {
  int n_gen = 32;         // decode steps compared, and the longest answer
  // What the others are compared with: full attention, or past the model's trained window (where a prompt is read as
  // context memory, which full cannot) a policy that selects, with the session's tau.
  Policy reference = Policy::full;
  ContextParams context;  // threads, batch, page size, KV type, budget, tau; n_ctx and policy are set per run
  Status validate() const;
};

// The full-attention run a policy is compared against; computed once per prompt and reused for every policy.
struct ReferenceRun {
  Policy policy = Policy::full;
  int n_steps = 0;
  int n_vocab = 0;
  std::vector<int32_t> tokens;  // (n_steps + 1) greedy tokens: [0] from the prefill logits, [i] after decode step i
  std::vector<float> logits;    // (n_steps, n_vocab) logits after each decode step
  int answer_tokens = 0;        // tokens[0 .. answer_tokens) make the greedy answer
  std::string output;           // the greedy answer text (up to its first newline after some text, or n_gen tokens)
  bool correct = false;         // every expected answer occurs in `output`
  int n_found = 0;              // expected answers that occur in `output`
  RetrievalStats stats;
  double prefill_s = 0;
  double decode_s = 0;  // the n_steps decode evaluations
};

struct FidelityResult {
  Policy policy = Policy::full;
  int n_steps = 0;
  double agreement = 0;  // fraction of decode steps whose argmax equals the reference's
  double mean_kl = 0;    // mean over steps of KL(p_full || p_policy), nats
  double max_kl = 0;
  // The same two measures over the steps that predict the reference's answer after its first token (up to and
  // including the token that ends it): unlike the two above, they do not depend on how many steps run past the answer.
  int answer_steps = 0;
  double answer_agreement = 1;  // 1 and 0 when the answer is a single token
  double answer_mean_kl = 0;
  int first_divergence = 0;  // first token index (0 = after prefill) whose argmax differs; n_steps + 1 when none
  std::string output;        // the policy's own greedy answer
  bool correct = false;
  int n_found = 0;
  bool reran = false;    // the answer needed a second, free-running pass
  RetrievalStats stats;  // over the teacher-forced decode steps
  double prefill_s = 0;
  double decode_s = 0;  // the n_steps teacher-forced decode evaluations
};

// KL(softmax(p) || softmax(q)) in nats, computed in double with the maximum subtracted; equal inputs give exactly 0.
// Errors if the sizes differ or are zero.
Result<double> kl_divergence(std::span<const float> logits_p, std::span<const float> logits_q);

// One prompt, prefilled once, compared under any number of policies in turn. Holds the context (the whole KV cache of
// the prompt) and the reference's logits.
class FidelitySession {
 public:
  // Prefills `task` and decodes the reference under params.reference (full attention unless set).
  static Result<std::unique_ptr<FidelitySession>> start(const Model& model, const EvalTask& task,
                                                        const FidelityParams& params);
  const ReferenceRun& reference() const { return ref_; }
  // Rewinds to the prompt, switches to `policy`  and compares it with the reference.
  // prefill_s is the shared prefill's time.
  Result<FidelityResult> compare(Policy policy);
  // The same with freekv's correction threshold set to `tau` instead of the session's.
  Result<FidelityResult> compare(Policy policy, float tau);

 private:
  FidelitySession() = default;
  EvalTask task_;
  FidelityParams params_;
  std::unique_ptr<Context> ctx_;
  std::vector<float> first_;  // (n_vocab) logits after the prefill
  ReferenceRun ref_;
};

// Runs `task` under "full" attention.
Result<ReferenceRun> run_reference(const Model& model, const EvalTask& task, const FidelityParams& params);

// The reference as the result of comparing "full" with itself (agreement 1, KL 0) without running it again.
FidelityResult reference_result(const ReferenceRun& ref);

// Runs `task` under `policy` (full included) and compares it with `ref`, which must
// come from run_reference with the same task and n_gen.
Result<FidelityResult> compare_policy(const Model& model, const EvalTask& task, const ReferenceRun& ref,
                                      Policy policy, const FidelityParams& params);

}  // namespace fkv
