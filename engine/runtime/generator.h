// The generation loop: prefill a prompt, then sample and evaluate one token at a time, streaming whole UTF-8
// characters to a callback until an end-of-generation token, the token limit, a stop string, a cancel request or a
// full context. Every buffer is sized before the loop, so decoding a token allocates nothing on the heap.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fkv/status.h"
#include "runtime/context.h"
#include "runtime/sampler.h"

namespace fkv {

struct GenerateParams {
  int max_tokens = 256;  // tokens to sample at most (0: only prefill the prompt)
  // Benchmarks: an end-of-generation token does not end generation (llama.cpp's --ignore-eos), so a decode speed is
  // measured over max_tokens steps whatever the model answers. Its text is not streamed.
  bool ignore_eos = false;
  SamplerParams sampler;
  // Generation stops when the text contains one of these; the stop string and what follows are not streamed.
  std::vector<std::string> stop;
  // Checked once per token; true stops with stop_reason "cancelled". May be set from any thread.
  const std::atomic<bool>* cancel = nullptr;
  // Called before each prompt batch and after the last with the prompt tokens evaluated so far (a prefill stopped by
  // `cancel` still reports where it stopped); false cancels like `cancel`. May be empty.
  std::function<bool(int64_t done, int64_t total)> prefill_progress;

  // An error naming the first bad field: negative max_tokens, an empty or invalid-UTF-8 stop string, bad sampler
  // values.
  Status validate() const;
};

// Why generation ended.

struct GenerateStats {
  int n_prompt = 0;             // prompt tokens evaluated by this call
  int n_generated = 0;          // tokens sampled, the end-of-generation token included
  double prefill_s = 0;         // evaluating the prompt
  double decode_s = 0;          // from the end of the prefill to the end of the loop (sampling, evaluation, callbacks)
  StopReason stop_reason = StopReason::eos;
  std::vector<int32_t> tokens;  // (n_generated) the sampled tokens; all but possibly the last are in the context
};

// Appends `prompt` to the context and generates after it. `on_text` (may be empty) receives non-empty pieces of valid
// UTF-8 and returns false to cancel. Errors: bad params, an empty prompt, a prompt that does not fit the context, a
// failed evaluation (text streamed before the failure stays streamed). A context that fills up while generating is not
// an error: it ends generation with stop_reason "context_full".
Result<GenerateStats> generate(Context& ctx, std::span<const int32_t> prompt, const GenerateParams& params,
                               const std::function<bool(std::string_view piece)>& on_text);

}  // namespace fkv
