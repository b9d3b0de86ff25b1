// Element-wise and row ops of the CUDA forward pass, the device twins of backend/cpu/ops.h, plus cuBLAS matmuls.
// Every op takes device pointers and a stream, checks its arguments on the host (a zero-size op launches nothing),
// enqueues its work and checks the launch; asynchronous faults surface at the next synchronize. F16 buffers are
// passed as uint16_t (IEEE binary16 bits) so this header stays plain C++.
//
// Numerics follow the CPU reference: rms_norm as cpu::rms_norm, rope angles as Context::fill_rope
// (float(pos) * inv_freq[i], then cos and sin in float, each times scale), gelu in its tanh form, f32 -> f16 rounding
// to nearest even.
//
// tests/gpu/test_cuda_ops.cpp compares each op with the CPU op.
#pragma once

#include <cstdint>

#include "backend/cuda/cuda_util.h"
#include "fkv/status.h"

namespace fkv::cuda {

// y = x / sqrt(mean(x^2) + eps) * w, row by row.   x, y: (n_rows, n); w: (n). y may alias x.
Status rms_norm(const float* x, const float* w, float* y, int n_rows, int n, float eps, StreamHandle stream);

// Rotates every head of every token in place at angles positions[t] * inv_freq[i], cos and sin multiplied by `scale`
// (runtime/rope.h rope_mscale: 1 unless YaRN); `neox` pairs (i, i + head_dim/2), otherwise (2i, 2i+1).
// x: (n_tokens, n_heads, head_dim); positions: (n_tokens); inv_freq: (head_dim / 2).
Status rope(float* x, const int32_t* positions, const float* inv_freq, int n_tokens, int n_heads, int head_dim,
            bool neox, float scale, StreamHandle stream);

// x = x * silu(g) or x * gelu_tanh(g), element-wise (the gated FFN's activation).   g, x: (n)
Status silu_mul(const float* g, float* x, int64_t n, StreamHandle stream);
Status gelu_mul(const float* g, float* x, int64_t n, StreamHandle stream);

// x += y, element-wise (residual connections).   x, y: (n)
Status add_inplace(float* x, const float* y, int64_t n, StreamHandle stream);

// Conversions, f32 -> f16 rounding to nearest even (overflow to infinity).   x, y: (n)
Status f32_to_f16(const float* x, uint16_t* y, int64_t n, StreamHandle stream);
Status f16_to_f32(const uint16_t* x, float* y, int64_t n, StreamHandle stream);

// Token embeddings: out row t = table row tokens[t] * scale (scale is gemma's sqrt(n_embd), else 1).
// table: (n_vocab, n_embd) F32 or F16; tokens: (n_tokens) device ints; out: (n_tokens, n_embd).
// Token ids are validated on the host before upload; an id outside [0, n_vocab) that slips through yields a zero
// row rather than a read out of bounds.
Status embed_f32(const float* table, int n_vocab, int n_embd, const int32_t* tokens, int n_tokens, float scale,
                 float* out, StreamHandle stream);
Status embed_f16(const uint16_t* table, int n_vocab, int n_embd, const int32_t* tokens, int n_tokens, float scale,
                 float* out, StreamHandle stream);

// out = a . w^T with row-major operands, as cpu matmul: a (n_rows, k), w (n, k) (one output feature per row),
// out (n_rows, n). Runs on ctx's cuBLAS handle, bound to `stream` for this call. FP32 throughout (no TF32).
Status matmul_f32(DeviceContext& ctx, const float* a, const float* w, float* out, int n_rows, int k, int n,
                  StreamHandle stream);

// The same with F16 weights and F16 activations (convert with f32_to_f16 first), FP32 accumulation and output.
// a: (n_rows, k) f16; w: (n, k) f16; out: (n_rows, n) f32.
Status matmul_f16(DeviceContext& ctx, const uint16_t* a, const uint16_t* w, float* out, int n_rows, int k, int n,
                  StreamHandle stream);

// Scratch of matmul_f16_scaled, device memory: a16 (n_rows, k) f16, row_scale (n_rows).
struct F16Staging {
  uint16_t* a16 = nullptr;
  float* row_scale = nullptr;
};

// out = a . w^T with F32 activations and F16 weights. The CPU keeps such activations in F32, where a plain f32_to_f16
// would turn every |x| > 65504 into inf (a gated FFN's down projection input reaches that): each row of `a` is
// divided by a power of two that brings its largest magnitude within 2^15 (1 for rows already inside, the usual
// case, so they convert exactly as f32_to_f16 would), multiplied by matmul_f16, and its output row multiplied back.
// A scaled row keeps F16's relative precision; only its elements below 2^-24 of the scale flush to zero.
// a: (n_rows, k) f32; w: (n, k) f16; out: (n_rows, n) f32.
Status matmul_f16_scaled(DeviceContext& ctx, const float* a, const uint16_t* w, float* out, int n_rows, int k, int n,
                         F16Staging staging, StreamHandle stream);

}  // namespace fkv::cuda
