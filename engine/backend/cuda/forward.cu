// Kernels of the dense CUDA forward pass (see forward_kernels.h). Plain first: dense attention is one block per
// (query head, token) walking its visible keys in tiles of one key per thread, with an online softmax whose running
// max and sum every thread keeps identically (they come from block-wide reductions). Every launch is checked.
//
// tests/gpu/test_cuda_forward.cpp compares the whole forward pass with the CPU context. K and V rows are read by
// single threads, not coalesced.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "backend/cuda/forward_kernels.h"

namespace fkv::cuda {

namespace {

constexpr int kThreads = 128;  // also the keys per attention tile; a multiple of the warp size
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxBlocks = 65535;

__device__ float f16(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

// Sum or max over the block, returned to every thread. `red` is (kWarps) shared floats; reusable right after return.
template <bool kMax>
__device__ float block_reduce(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, o);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = red[0];
  for (int w = 1; w < kWarps; ++w) r = kMax ? fmaxf(r, red[w]) : r + red[w];
  __syncthreads();  // every thread has read red before anyone writes it again
  return r;
}

__global__ void add_bias_rows_kernel(float* x, const float* b, int n, int64_t n_total) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n_total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    x[i] += b[i % n];
}

// grid (n_heads, n_tokens), kThreads threads; shared: q (head_dim), acc (head_dim), p (kThreads), red (kWarps).
__global__ void dense_attention_kernel(DenseAttentionArgs a) {
  extern __shared__ float smem[];
  const int D = a.head_dim;
  float* q = smem;            // (head_dim)
  float* acc = q + D;         // (head_dim) unnormalised output
  float* p = acc + D;         // (kThreads) softmax weights of the current tile
  float* red = p + kThreads;  // (kWarps)
  const int h = blockIdx.x, t = blockIdx.y, tid = threadIdx.x;
  const int kvh = h / (a.n_heads / a.n_kv_heads);
  const int pos = a.pos0 + t;
  const int lo = a.window > 0 ? max(0, pos - a.window + 1) : 0;
  const size_t q_off = (static_cast<size_t>(t) * a.n_heads + h) * D;
  for (int d = tid; d < D; d += kThreads) {
    q[d] = a.q[q_off + d];
    acc[d] = 0.f;
  }
  __syncthreads();
  float m = -INFINITY, l = 0.f;  // identical in every thread
  for (int j0 = lo; j0 <= pos; j0 += kThreads) {
    const int len = min(kThreads, pos - j0 + 1);
    // 1. One score per thread.
    float s = -INFINITY;
    if (tid < len) {
      const uint16_t* k = a.k + (static_cast<size_t>(j0 + tid) * a.n_kv_heads + kvh) * D;  // (head_dim)
      float dot = 0.f;
      for (int c = 0; c < D; ++c) dot += q[c] * f16(k[c]);
      s = dot * a.scale;
    }
    // 2. Online softmax: the tile's max (finite, len >= 1), rescale of what came before, weights and their sum.
    const float m_new = fmaxf(m, block_reduce<true>(s, red));
    const float corr = expf(m - m_new);  // 0 on the first tile (m = -inf)
    const float w = tid < len ? expf(s - m_new) : 0.f;
    p[tid] = w;
    l = l * corr + block_reduce<false>(w, red);  // its barriers also publish p
    m = m_new;
    // 3. Values: each thread owns dimensions d, d + kThreads, ...
    for (int d = tid; d < D; d += kThreads) {
      float o = acc[d] * corr;
      for (int j = 0; j < len; ++j) o += p[j] * f16(a.v[(static_cast<size_t>(j0 + j) * a.n_kv_heads + kvh) * D + d]);
      acc[d] = o;
    }
    __syncthreads();  // p is rewritten by the next tile
  }
  for (int d = tid; d < D; d += kThreads) a.out[q_off + d] = l > 0.f ? acc[d] / l : 0.f;
}

Status check_dense_args(const DenseAttentionArgs& a) {
  const char* op = "cuda::dense_attention";
  if (a.n_tokens < 0 || a.pos0 < 0 || a.window < 0)
    return err(op, ": expected n_tokens, pos0 and window >= 0, found ", a.n_tokens, ", ", a.pos0, ", ", a.window);
  if (a.n_kv_heads < 1 || a.n_heads < 1 || a.n_heads % a.n_kv_heads != 0)
    return err(op, ": expected n_heads a positive multiple of n_kv_heads, found ", a.n_heads, " and ", a.n_kv_heads);
  if (a.head_dim < 1 || a.head_dim > kMaxDenseHeadDim)
    return err(op, ": expected head_dim in [1, ", kMaxDenseHeadDim, "], found ", a.head_dim);
  if (static_cast<int64_t>(a.pos0) + a.n_tokens > a.n_cache_tokens)
    return err(op, ": queries reach position ", static_cast<int64_t>(a.pos0) + a.n_tokens - 1, " but the cache holds ",
               a.n_cache_tokens, " tokens");
  if (a.n_tokens > 65535) return err(op, ": expected at most 65535 tokens per launch, found ", a.n_tokens);
  if (a.n_tokens > 0 && (!a.q || !a.k || !a.v || !a.out))
    return err(op, ": expected device pointers for q, k, v and out, found a null one");
  return {};
}

}  // namespace

Status add_bias_rows(float* x, const float* b, int n_rows, int n, StreamHandle stream) {
  if (n_rows < 0 || n < 0) return err("cuda::add_bias_rows: expected sizes >= 0, found ", n_rows, " x ", n);
  const int64_t n_total = static_cast<int64_t>(n_rows) * n;
  if (n_total == 0) return {};
  if (!x || !b) return err("cuda::add_bias_rows: expected device pointers, found a null one");
  const auto blocks = static_cast<unsigned>(std::min<int64_t>((n_total + kThreads - 1) / kThreads, kMaxBlocks));
  add_bias_rows_kernel<<<blocks, kThreads, 0, stream>>>(x, b, n, n_total);
  return launch_status("add_bias_rows_kernel");
}

Status dense_attention(const DenseAttentionArgs& a, StreamHandle stream) {
  FKV_TRY(check_dense_args(a));
  if (a.n_tokens == 0) return {};
  const size_t smem = sizeof(float) * (2 * static_cast<size_t>(a.head_dim) + kThreads + kWarps);
  const dim3 grid(static_cast<unsigned>(a.n_heads), static_cast<unsigned>(a.n_tokens));
  dense_attention_kernel<<<grid, kThreads, smem, stream>>>(a);
  return launch_status("dense_attention_kernel");
}

}  // namespace fkv::cuda
