// RoPE frequencies and magnitude of a model, shared by the CPU forward pass (runtime/context.cpp) and the CUDA one
// (backend/cuda/forward.cpp), so both rotate by exactly the same angles and scale by exactly the same factor.
#pragma once

#include <vector>

#include "model/config.h"

namespace fkv {

// (head_dim / 2) inverse frequencies base^(-2i / head_dim); when `scaled`, divided by the file's per-pair divisors
// (llama3 files carry them as rope_freqs.weight) or by the configured linear / llama3 / YaRN scaling.
std::vector<float> rope_inv_freq(const ModelConfig& c, const float* divisors, float base, bool scaled);

// The factor that multiplies cos and sin of every rotation (so q.k scales by its square): YaRN's attention
// magnitude correction (0.1 ln(factor) + 1) times attn_factor when `scaled` and the model uses YaRN; exactly 1
// otherwise, so unscaled, linear and llama3 models rotate bit for bit as without it.
float rope_mscale(const ModelConfig& c, bool scaled);

// YaRN's ramp over pair indices: pairs at or below `low` keep their frequency, pairs at or above `high` are
// interpolated (divided by the factor), pairs between blend linearly. Exposed so tests can check the boundaries.
struct YarnRamp {
  double low = 0;
  double high = 0;
};
YarnRamp yarn_ramp(const ModelConfig& c, float base);

}  // namespace fkv
