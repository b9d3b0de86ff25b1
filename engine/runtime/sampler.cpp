#include "runtime/sampler.h"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>

#include "core/rng.h"

namespace fkv {
namespace {

// repeat_last_n sizes a buffer: bound it so a typo cannot ask for gigabytes.
constexpr int kMaxRepeatLastN = 1 << 20;

}  // namespace

Status SamplerParams::validate() const {
  if (!std::isfinite(temperature) || temperature < 0.f) {
    return err("sampler: temperature is ", temperature, ", expected a finite value >= 0 (0 = greedy)");
  }
  if (top_k < 0) return err("sampler: top_k is ", top_k, ", expected >= 0 (0 = off)");
  if (!(top_p > 0.f && top_p <= 1.f)) return err("sampler: top_p is ", top_p, ", expected a value in (0, 1] (1 = off)");
  if (!(min_p >= 0.f && min_p <= 1.f)) {
    return err("sampler: min_p is ", min_p, ", expected a value in [0, 1] (0 = off)");
  }
  if (!std::isfinite(repeat_penalty) || repeat_penalty <= 0.f) {
    return err("sampler: repeat_penalty is ", repeat_penalty, ", expected a finite value > 0 (1 = off)");
  }
  if (repeat_last_n < 0 || repeat_last_n > kMaxRepeatLastN) {
    return err("sampler: repeat_last_n is ", repeat_last_n, ", expected 0..", kMaxRepeatLastN, " (0 = off)");
  }
  return Status();
}

Sampler::Sampler(const SamplerParams& params, int n_vocab) : params_(params), n_vocab_(n_vocab) {
  status_ = params.validate();
  if (status_.ok() && n_vocab <= 0) status_ = err("sampler: n_vocab is ", n_vocab, ", expected > 0");
  if (!status_.ok()) return;
  work_.resize(n_vocab);
  cand_.resize(n_vocab);
  weight_.resize(n_vocab);
  penalized_.assign(n_vocab, 0);
  recent_.resize(params.repeat_last_n);
  reset();
}

void Sampler::reset() {
  n_recent_ = 0;
  recent_next_ = 0;
  uint64_t s = params_.seed;
  for (uint64_t& word : rng_) word = splitmix64(s);
}

void Sampler::accept(int32_t id) {
  if (recent_.empty() || id < 0 || id >= n_vocab_) return;
  recent_[recent_next_] = id;
  recent_next_ = (recent_next_ + 1) % recent_.size();
  n_recent_ = std::min(n_recent_ + 1, recent_.size());
}

uint64_t Sampler::next_random() {
  // xoshiro256** (Blackman and Vigna): small, fast, and the same numbers everywhere.
  const uint64_t result = std::rotl(rng_[1] * 5, 7) * 9;
  const uint64_t t = rng_[1] << 17;
  rng_[2] ^= rng_[0];
  rng_[3] ^= rng_[1];
  rng_[1] ^= rng_[2];
  rng_[0] ^= rng_[3];
  rng_[2] ^= t;
  rng_[3] = std::rotl(rng_[3], 45);
  return result;
}

void Sampler::apply_penalty(std::span<const float> logits) {
  std::copy(logits.begin(), logits.end(), work_.begin());
  if (params_.repeat_penalty == 1.f) return;
  // A token seen several times in the window is still penalized once, as llama.cpp does.
  for (size_t i = 0; i < n_recent_; ++i) {
    const int32_t id = recent_[i];
    if (penalized_[id]) continue;
    penalized_[id] = 1;
    float& x = work_[id];
    x = x > 0.f ? x / params_.repeat_penalty : x * params_.repeat_penalty;
  }
  for (size_t i = 0; i < n_recent_; ++i) penalized_[recent_[i]] = 0;
}

int32_t Sampler::argmax() const {
  int32_t best = -1;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    if (std::isnan(work_[i])) continue;
    if (best < 0 || work_[i] > work_[best]) best = i;  // strict: the first (lowest) id wins ties
  }
  return best;
}

size_t Sampler::collect_candidates() {
  size_t n = 0;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    const float x = work_[i];
    if (std::isnan(x) || x == -INFINITY) continue;    // masked or broken: probability 0
    cand_[n++] = Candidate{std::min(x, FLT_MAX), i};  // +inf would make the softmax inf/inf
  }
  return n;
}

// top-k, softmax with temperature, top-p, min-p over the n collected candidates; returns how many are kept.
size_t Sampler::truncate(size_t n) {
  const size_t k = params_.top_k > 0 ? std::min(n, static_cast<size_t>(params_.top_k)) : n;
  // Best first; equal logits by lower id, so the order (and with it every draw) is fully determined.
  const auto better = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.begin() + n, better);
  n = k;
  const float max_logit = cand_[0].logit;
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    weight_[i] = std::exp((cand_[i].logit - max_logit) / params_.temperature);
    total += weight_[i];
  }
  if (params_.top_p < 1.f) {
    double cumulative = 0.0;
    size_t keep = 0;
    while (keep < n && cumulative < params_.top_p * total) cumulative += weight_[keep++];
    n = std::max<size_t>(keep, 1);
  }
  if (params_.min_p > 0.f) {
    const float threshold = params_.min_p * weight_[0];  // weight_[0] is the best token's
    size_t keep = 1;
    while (keep < n && weight_[keep] >= threshold) ++keep;
    n = keep;
  }
  return n;
}

int32_t Sampler::draw(size_t n) {
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += weight_[i];
  const double u = static_cast<double>(next_random() >> 11) * 0x1.0p-53 * total;  // uniform in [0, total)
  double cumulative = 0.0;
  for (size_t i = 0; i < n; ++i) {
    cumulative += weight_[i];
    if (u < cumulative) return cand_[i].id;
  }
  return cand_[n - 1].id;  // u landed on the rounding slack at the end
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (!status_.ok()) return -1;
  if (logits.size() != static_cast<size_t>(n_vocab_)) {
    status_ = err("sampler: got ", logits.size(), " logits, expected ", n_vocab_, " (one per vocabulary entry)");
    return -1;
  }
  apply_penalty(logits);
  if (params_.temperature == 0.f) {
    const int32_t id = argmax();
    if (id < 0) status_ = err("sampler: every logit is NaN");
    return id;
  }
  const size_t n = collect_candidates();
  if (n == 0) {
    status_ = err("sampler: every logit is NaN or -inf, nothing to sample");
    return -1;
  }
  return draw(truncate(n));
}

}  // namespace fkv
