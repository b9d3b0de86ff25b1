// Token sampler: repetition penalty -> top-k -> softmax(temperature) -> top-p -> min-p -> draw, or greedy argmax at
// temperature 0. Every buffer is sized in the constructor, so sample() never allocates on the decode path. Draws come
// from an own xoshiro256** generator seeded with splitmix64, so a seed gives the same tokens with any standard library.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "fkv/status.h"

namespace fkv {

struct SamplerParams {
  float temperature = 0.f;      // 0 = greedy
  int top_k = 40;               // keep the k most likely tokens; 0 = off
  float top_p = 0.95f;          // keep the smallest set whose probability reaches top_p; 1 = off
  float min_p = 0.05f;          // drop tokens below min_p * (probability of the best); 0 = off
  float repeat_penalty = 1.0f;  // llama-style: positive logits divided, negative multiplied; 1 = off
  int repeat_last_n = 64;       // how many recently accepted tokens are penalized; 0 = off
  uint64_t seed = 0;

  // An error naming the first bad field and its value, e.g. "sampler: top_p is 1.5, expected a value in (0, 1]".
  Status validate() const;
};

class Sampler {
 public:
  // `params` should pass validate(); if they do not (or n_vocab <= 0), status() holds the error and sample()
  // returns -1, so a bad request can never crash a decode loop.
  Sampler(const SamplerParams& params, int n_vocab);

  // The next token for these logits ((n_vocab) floats). NaN logits are never chosen; among equal best logits greedy
  // takes the lowest id. Returns -1 and sets status() when logits.size() != n_vocab or every logit is NaN.
  int32_t sample(std::span<const float> logits);
  // Records a token of the sequence (prompt or generated) for the repetition penalty.
  void accept(int32_t id);
  // Forgets accepted tokens and restarts the random stream from the seed.
  void reset();

  const Status& status() const { return status_; }
  const SamplerParams& params() const { return params_; }

 private:
  struct Candidate {
    float logit;
    int32_t id;
  };
  void apply_penalty(std::span<const float> logits);
  int32_t argmax() const;
  size_t collect_candidates();
  size_t truncate(size_t n);
  int32_t draw(size_t n);
  uint64_t next_random();

  SamplerParams params_;
  int32_t n_vocab_ = 0;
  Status status_;
  std::vector<float> work_;         // (n_vocab) logits after the repetition penalty
  std::vector<Candidate> cand_;     // (n_vocab) candidate tokens, best first once sorted
  std::vector<float> weight_;       // (n_vocab) unnormalized probability of cand_[i]
  std::vector<int32_t> recent_;     // (repeat_last_n) ring buffer of accepted tokens
  size_t n_recent_ = 0;             // valid entries in recent_
  size_t recent_next_ = 0;          // where the next accepted token goes
  std::vector<uint8_t> penalized_;  // (n_vocab) 1 while a token's penalty is applied, so repeats count once
  uint64_t rng_[4] = {0, 0, 0, 0};  // xoshiro256** state
};

}  // namespace fkv
