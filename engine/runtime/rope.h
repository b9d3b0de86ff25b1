// RoPE frequencies of a model, shared by the CPU forward pass (runtime/context.cpp) and the CUDA one
// (backend/cuda/forward.cpp), so both rotate by exactly the same angles.
#pragma once

#include <vector>

#include "model/config.h"

namespace fkv {

// (head_dim / 2) inverse frequencies base^(-2i / head_dim); when `scaled`, divided by the file's per-pair divisors
// (llama3 files carry them as rope_freqs.weight) or by the configured linear / llama3 scaling.
std::vector<float> rope_inv_freq(const ModelConfig& c, const float* divisors, float base, bool scaled);

}  // namespace fkv
