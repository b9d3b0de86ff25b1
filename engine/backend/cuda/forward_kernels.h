// The kernels of the dense CUDA forward pass (forward.cpp) that ops.h and kv_kernels.h do not have: bias rows and an
// attention over a contiguous F16 cache that masks to a position range, serving prefill chunks and sliding-window
// layers (kv_kernels' paged_attention attends whole pages, so it cannot start a window inside a page).
// Plain C++17 header, included by forward.cpp and forward.cu.
//
// tests/gpu/test_cuda_forward.cpp checks them end to end against the CPU context.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cuda/cuda_util.h"
#include "fkv/status.h"

namespace fkv::cuda {

// x[r, i] += b[i] for every row r (qwen2's q, k, v biases).   x: (n_rows, n); b: (n)
Status add_bias_rows(float* x, const float* b, int n_rows, int n, StreamHandle stream);

// Causal GQA attention of n_tokens queries at positions pos0 .. pos0 + n_tokens - 1 over one layer's cache. Query
// head h reads KV head h / (n_heads / n_kv_heads); the query at position p sees keys [lo, p], lo = max(0, p - window
// + 1) when window > 0, else 0, as Context::prefill_attention. Keys of positions up to pos0 + n_tokens - 1 must be in
// the cache already. The cache rows are token-major: an NHD page table whose slot s holds page s is exactly that.
struct DenseAttentionArgs {
  const float* q = nullptr;     // device (n_tokens, n_heads, head_dim)
  const uint16_t* k = nullptr;  // device (n_cache_tokens, n_kv_heads, head_dim) f16
  const uint16_t* v = nullptr;  // device (n_cache_tokens, n_kv_heads, head_dim) f16
  int n_cache_tokens = 0;       // rows the cache holds (bounds check)
  int n_tokens = 0;
  int pos0 = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int window = 0;  // 0: every earlier position
  float scale = 1.f;
  float* out = nullptr;  // device (n_tokens, n_heads, head_dim)
};

// Largest head_dim dense_attention takes (its shared memory holds a query and an accumulator of head_dim floats).
constexpr int kMaxDenseHeadDim = 1024;
Status dense_attention(const DenseAttentionArgs& a, StreamHandle stream);

}  // namespace fkv::cuda
