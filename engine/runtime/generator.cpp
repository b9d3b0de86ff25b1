#include "runtime/generator.h"

#include <algorithm>

#include "core/clock.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace fkv {

namespace {



enum class SinkState { Open, Stopped, Cancelled };

// Passes text to the callback, holding back a tail that may be the beginning of a stop string, so a stop string is
// never partly streamed before it is recognised.
class TextSink {
 public:
  TextSink(std::span<const std::string> stop, const std::function<bool(std::string_view)>& on_text)
      : stop_(stop), on_text_(on_text) {
    size_t longest = 0;
    for (const std::string& s : stop_) longest = std::max(longest, s.size());
    held_.reserve(2 * longest + 64);  // a held tail (< longest) plus a few pieces; pieces are a handful of bytes
  }

  SinkState push(std::string_view text) {
    if (stop_.empty()) return send(text);
    held_.append(text);
    const size_t stop_at = first_stop();
    if (stop_at != std::string::npos) {
      const SinkState s = send(std::string_view(held_).substr(0, stop_at));
      held_.clear();
      return s == SinkState::Cancelled ? s : SinkState::Stopped;
    }
    const size_t n_send = held_.size() - stop_prefix_tail();
    const SinkState s = send(std::string_view(held_).substr(0, n_send));
    held_.erase(0, n_send);
    return s;
  }

  // Streams what is still held back (the generation ended without completing a stop string).
  SinkState finish() {
    const SinkState s = send(held_);
    held_.clear();
    return s;
  }

 private:
  SinkState send(std::string_view text) {
    if (text.empty() || !on_text_) return SinkState::Open;
    return on_text_(text) ? SinkState::Open : SinkState::Cancelled;
  }

  // Earliest position where a stop string occurs in held_, or npos.
  size_t first_stop() const {
    size_t best = std::string::npos;
    for (const std::string& s : stop_) best = std::min(best, held_.find(s));
    return best;
  }

  // Length of the longest tail of held_ that is a proper prefix of a stop string.
  size_t stop_prefix_tail() const {
    const std::string_view held(held_);
    size_t best = 0;
    for (const std::string& s : stop_) {
      for (size_t n = std::min(s.size() - 1, held.size()); n > best; --n) {
        if (held.substr(held.size() - n) == std::string_view(s).substr(0, n)) {
          best = n;
          break;
        }
      }
    }
    return best;
  }

  std::span<const std::string> stop_;
  const std::function<bool(std::string_view)>& on_text_;
  std::string held_;  // (< longest stop string) text that may begin a stop string
};

Status check_prompt(const Context& ctx, std::span<const int32_t> prompt) {
  if (prompt.empty()) return err("generate: the prompt is empty, expected at least one token");
  const size_t room = static_cast<size_t>(ctx.n_ctx() - ctx.n_past());
  if (prompt.size() > room) {
    return err("generate: the prompt has ", prompt.size(), " tokens but the context has room for ", room, " (",
               ctx.n_ctx(), " tokens, ", ctx.n_past(), " in use)");
  }
  return {};
}

bool cancel_requested(const std::atomic<bool>* cancel) {
  return cancel != nullptr && cancel->load(std::memory_order_relaxed);
}

// Reports before looking at the cancel flag, so the last report of a cancelled prefill says how far it got.
bool keep_going(const GenerateParams& params, size_t done, size_t total) {
  if (params.prefill_progress &&
      !params.prefill_progress(static_cast<int64_t>(done), static_cast<int64_t>(total)))
    return false;
  return !cancel_requested(params.cancel);
}

// Evaluates the prompt one batch at a time so progress is reported and a cancel request is seen between batches of
// a long prompt. False when cancelled (the batches before the request stay in the context).
Result<bool> prefill(Context& ctx, std::span<const int32_t> prompt, const GenerateParams& params,
                     std::span<float> logits) {
  const size_t n_batch = static_cast<size_t>(ctx.params().n_batch);
  for (size_t i = 0; i < prompt.size(); i += n_batch) {
    if (!keep_going(params, i, prompt.size())) return false;
    FKV_TRY(ctx.eval(prompt.subspan(i, std::min(n_batch, prompt.size() - i)), LogitsMode::Last, logits));
  }
  return keep_going(params, prompt.size(), prompt.size());
}

}  // namespace

Status GenerateParams::validate() const {
  if (max_tokens < 0) return err("generate: max_tokens is ", max_tokens, ", expected 0 or more");
  for (const std::string& s : stop) {
    if (s.empty()) return err("generate: a stop string is empty, expected at least one character");
    if (auto bad = utf8_first_invalid(s)) {
      return err("generate: stop string '", s, "' is not valid UTF-8 (bad byte at offset ", *bad, ")");
    }
  }
  return sampler.validate();
}

Result<GenerateStats> generate(Context& ctx, std::span<const int32_t> prompt, const GenerateParams& params,
                               const std::function<bool(std::string_view piece)>& on_text) {
  FKV_TRY(params.validate());
  FKV_TRY(check_prompt(ctx, prompt));
  const Tokenizer& tok = ctx.model().tokenizer();
  const int n_vocab = ctx.model().config().n_vocab;

  GenerateStats stats;
  stats.n_prompt = static_cast<int>(prompt.size());
  // At most one token per free cache slot plus the one sampled when the cache is full.
  const int room = ctx.n_ctx() - ctx.n_past() - stats.n_prompt;
  stats.tokens.reserve(static_cast<size_t>(std::min(params.max_tokens, room + 1)));
  std::vector<float> logits(static_cast<size_t>(n_vocab));  // (n_vocab) of the last evaluated token
  Sampler sampler(params.sampler, n_vocab);
  FKV_TRY(sampler.status());
  for (int32_t id : prompt) sampler.accept(id);
  Utf8Streamer utf8;
  TextSink sink(params.stop, on_text);

  const Clock::time_point t_prefill = Clock::now();
  FKV_ASSIGN_OR_RETURN(const bool prefilled, prefill(ctx, prompt, params, logits));
  stats.prefill_s = seconds_since(t_prefill);
  if (!prefilled) {
    stats.stop_reason = StopReason::cancelled;
    return stats;
  }

  const Clock::time_point t_decode = Clock::now();
  SinkState state = SinkState::Open;
  StopReason reason = StopReason::max_tokens;  // also the answer when max_tokens is 0
  while (stats.n_generated < params.max_tokens) {
    const int32_t id = sampler.sample(logits);
    if (id < 0) return sampler.status();
    sampler.accept(id);
    stats.tokens.push_back(id);
    ++stats.n_generated;
    const bool eog = tok.is_eog(id);
    if (eog && !params.ignore_eos) {
      reason = StopReason::eos;
      break;
    }
    if (!eog) state = sink.push(utf8.push(tok.token_piece(id)));
    if (state != SinkState::Open) break;
    if (stats.n_generated == params.max_tokens) break;
    if (cancel_requested(params.cancel)) {
      reason = StopReason::cancelled;
      break;
    }
    if (ctx.n_past() >= ctx.n_ctx()) {
      reason = StopReason::context_full;
      break;
    }
    FKV_TRY(ctx.eval(std::span<const int32_t>(&stats.tokens.back(), 1), LogitsMode::Last, logits));
  }
  if (state == SinkState::Open) state = sink.push(utf8.flush());
  if (state == SinkState::Open) state = sink.finish();
  if (state == SinkState::Stopped) reason = StopReason::stop_string;
  if (state == SinkState::Cancelled) reason = StopReason::cancelled;
  stats.stop_reason = reason;
  stats.decode_s = seconds_since(t_decode);
  return stats;
}

}  // namespace fkv
