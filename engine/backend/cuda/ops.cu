// Element-wise and row kernels of the CUDA backend and the cuBLAS matmuls (see ops.h for shapes and numerics).
// The kernels are the plain versions: grid-stride loops over flat indices, one block per row for rms_norm. They are
// written to be obviously correct first; tuning (vector loads, fused ops) follows a measured GPU run.
//
// tests/gpu/test_cuda_ops.cpp compares each with the CPU.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "backend/cuda/ops.h"

namespace fkv::cuda {

namespace {

constexpr int kThreads = 256;          // a multiple of the warp size, which block_reduce relies on
constexpr int64_t kMaxBlocks = 65535;  // grid-stride loops cover the rest; keeps grids within every device's limits
// Largest magnitude a scaled activation row may hold: 2^15 leaves F16's 65504 a factor of two clear of rounding.
constexpr float kF16RowLimit = 32768.f;

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
}

__device__ int64_t first_index() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ int64_t grid_stride() { return static_cast<int64_t>(blockDim.x) * gridDim.x; }

// ---- host-side argument checks: every op rejects bad shapes before it touches the device ----

Status check_count(int64_t n, const char* op, const char* what) {
  if (n < 0) return err(op, ": expected ", what, " >= 0, found ", n);
  return {};
}

Status check_ptrs(int64_t n, const char* op, std::initializer_list<const void*> ptrs) {
  if (n == 0) return {};
  for (const void* p : ptrs)
    if (p == nullptr) return err(op, ": expected device pointers for ", n, " elements, found a null pointer");
  return {};
}

// ---- kernels ----

struct Plus {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Max {  // fmaxf: a NaN loses to any number, so one NaN element does not decide a row's scale
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// op of v over the block (op's identity is 0: sums, and maxima of magnitudes), returned to every thread. Called once
// per kernel (the shared slots are not reused).
template <class Op>
__device__ float block_reduce(float v, Op op) {
  __shared__ float warp_vals[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  if (lane == 0) warp_vals[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? warp_vals[lane] : 0.f;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (lane == 0) warp_vals[0] = v;
  }
  __syncthreads();
  return warp_vals[0];
}

// One block per row. Each thread reads and writes only its own elements, so y may alias x.
__global__ void rms_norm_kernel(const float* x, const float* w, float* y, int n, float eps) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * n;  // (n)
  float* yr = y + row * n;        // (n)
  float ss = 0.f;
  for (int i = static_cast<int>(threadIdx.x); i < n; i += kThreads) ss += xr[i] * xr[i];
  ss = block_reduce(ss, Plus{});
  const float r = 1.f / sqrtf(ss / static_cast<float>(n) + eps);  // not rsqrtf: its 2 ulp would differ from the CPU
  for (int i = static_cast<int>(threadIdx.x); i < n; i += kThreads) yr[i] = xr[i] * r * w[i];
}

// One thread per rotated pair: n_total = n_tokens * n_heads * half.
__global__ void rope_kernel(float* x, const int32_t* positions, const float* inv_freq, int64_t n_total, int n_heads,
                            int head_dim, bool neox, float scale) {
  const int half = head_dim / 2;
  for (int64_t idx = first_index(); idx < n_total; idx += grid_stride()) {
    const int i = static_cast<int>(idx % half);
    const int64_t token_head = idx / half;  // t * n_heads + h
    const int64_t t = token_head / n_heads;
    float* xh = x + token_head * head_dim;  // (head_dim)
    // The angle as the CPU builds it: a float product, then cos and sin in float.
    const float angle = static_cast<float>(positions[t]) * inv_freq[i];
    const float c = cosf(angle) * scale;
    const float s = sinf(angle) * scale;
    const int a = neox ? i : 2 * i;
    const int b = neox ? i + half : 2 * i + 1;
    const float xa = xh[a];
    const float xb = xh[b];
    xh[a] = xa * c - xb * s;
    xh[b] = xa * s + xb * c;
  }
}

__global__ void silu_mul_kernel(const float* g, float* x, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] *= g[i] / (1.f + expf(-g[i]));
}

__global__ void gelu_mul_kernel(const float* g, float* x, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const float v = g[i];
    x[i] *= 0.5f * v * (1.f + tanhf(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] += y[i];
}

__global__ void f32_to_f16_kernel(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = __half_as_ushort(__float2half_rn(x[i]));
}

// One block per row: y_r = f16(x_r / s_r), s_r = 1 when max |x_r| <= kF16RowLimit, else the power of two that brings
// it into [limit / 2, limit) (a power of two, so the division only moves exponents). Rows holding an inf keep
// s_r = 1: inf stays inf, as in the CPU's F32.
__global__ void f32_to_f16_rows_scaled_kernel(const float* x, uint16_t* y, float* row_scale, int n) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * n;  // (n)
  uint16_t* yr = y + row * n;     // (n)
  float m = 0.f;
  for (int i = static_cast<int>(threadIdx.x); i < n; i += kThreads) m = fmaxf(m, fabsf(xr[i]));
  m = block_reduce(m, Max{});
  float s = 1.f;
  if (m > kF16RowLimit && isfinite(m)) {
    int e = 0;
    frexpf(m / kF16RowLimit, &e);  // m / limit = f * 2^e, f in [0.5, 1): m / 2^e < limit
    s = ldexpf(1.f, e);
  }
  const float inv = 1.f / s;  // exact: s is a power of two
  for (int i = static_cast<int>(threadIdx.x); i < n; i += kThreads)
    yr[i] = __half_as_ushort(__float2half_rn(xr[i] * inv));
  if (threadIdx.x == 0) row_scale[row] = s;
}

// out row r *= row_scale[r]: undoes the activation scaling after the GEMM.   out: (n_total / n, n)
__global__ void scale_rows_kernel(float* out, const float* row_scale, int64_t n_total, int n) {
  for (int64_t i = first_index(); i < n_total; i += grid_stride()) out[i] *= row_scale[i / n];
}

__global__ void f16_to_f32_kernel(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = __half2float(__ushort_as_half(x[i]));
}

__device__ float load_elem(const float* row, int j) { return row[j]; }
__device__ float load_elem(const uint16_t* row, int j) { return __half2float(__ushort_as_half(row[j])); }

// One thread per output element: n_total = n_tokens * n_embd.
template <class T>
__global__ void embed_kernel(const T* table, int n_vocab, int n_embd, const int32_t* tokens, int64_t n_total,
                             float scale, float* out) {
  for (int64_t idx = first_index(); idx < n_total; idx += grid_stride()) {
    const int64_t t = idx / n_embd;
    const int j = static_cast<int>(idx % n_embd);
    const int32_t tok = tokens[t];
    const bool valid = tok >= 0 && tok < n_vocab;
    out[idx] = valid ? load_elem(table + static_cast<int64_t>(tok) * n_embd, j) * scale : 0.f;
  }
}

// ---- host wrappers ----

Status elementwise_args(const char* op, int64_t n, std::initializer_list<const void*> ptrs) {
  FKV_TRY(check_count(n, op, "n"));
  return check_ptrs(n, op, ptrs);
}

template <class T>
Status embed(const char* op, const T* table, int n_vocab, int n_embd, const int32_t* tokens, int n_tokens, float scale,
             float* out, StreamHandle stream) {
  FKV_TRY(check_count(n_vocab, op, "n_vocab"));
  FKV_TRY(check_count(n_embd, op, "n_embd"));
  FKV_TRY(check_count(n_tokens, op, "n_tokens"));
  const int64_t n_total = static_cast<int64_t>(n_tokens) * n_embd;
  if (n_total == 0) return {};
  if (n_vocab == 0) return err(op, ": expected a table with at least one row, found n_vocab = 0");
  FKV_TRY(check_ptrs(n_total, op, {table, tokens, out}));
  embed_kernel<T><<<blocks_for(n_total), kThreads, 0, stream>>>(table, n_vocab, n_embd, tokens, n_total, scale, out);
  return launch_status(op);
}

// cuBLAS is column-major. A row-major (rows, cols) matrix is the column-major (cols, rows) matrix with the same
// leading dimension, so out^T (n, n_rows) = w (n, k) . a^T: w is op T on its column-major (k, n) view, a is op N.
struct GemmShape {
  int m, n, k;  // column-major result (m, n) = (features, rows), inner dimension k
  int lda, ldb, ldc;
};

GemmShape gemm_shape(int n_rows, int k, int n) { return {n, n_rows, k, k, k, n}; }

Status matmul_args(const char* op, const DeviceContext& ctx, const void* a, const void* w, const float* out, int n_rows,
                   int k, int n) {
  FKV_TRY(check_count(n_rows, op, "n_rows"));
  FKV_TRY(check_count(k, op, "k"));
  FKV_TRY(check_count(n, op, "n"));
  if (ctx.blas() == nullptr) return err(op, ": expected a created DeviceContext, found an empty one");
  const int64_t n_out = static_cast<int64_t>(n_rows) * n;  // (n_rows, n)
  FKV_TRY(check_ptrs(n_out, op, {out}));
  return check_ptrs(k > 0 ? n_out : 0, op, {a, w});
}

// With k == 0 the product is all zeros; cuBLAS is not asked to define that case.
Status zero_output(float* out, int n_rows, int n, StreamHandle stream) {
  FKV_CUDA_TRY(cudaMemsetAsync(out, 0, static_cast<size_t>(n_rows) * static_cast<size_t>(n) * sizeof(float), stream));
  return {};
}

}  // namespace

Status rms_norm(const float* x, const float* w, float* y, int n_rows, int n, float eps, StreamHandle stream) {
  FKV_TRY(check_count(n_rows, "cuda::rms_norm", "n_rows"));
  FKV_TRY(check_count(n, "cuda::rms_norm", "n"));
  if (n_rows == 0 || n == 0) return {};
  FKV_TRY(check_ptrs(n, "cuda::rms_norm", {x, w, y}));
  rms_norm_kernel<<<static_cast<unsigned>(n_rows), kThreads, 0, stream>>>(x, w, y, n, eps);
  return launch_status("rms_norm_kernel");
}

Status rope(float* x, const int32_t* positions, const float* inv_freq, int n_tokens, int n_heads, int head_dim,
            bool neox, float scale, StreamHandle stream) {
  const char* op = "cuda::rope";
  FKV_TRY(check_count(n_tokens, op, "n_tokens"));
  FKV_TRY(check_count(n_heads, op, "n_heads"));
  if (head_dim <= 0 || head_dim % 2 != 0) return err(op, ": expected an even head_dim > 0, found ", head_dim);
  if (!(scale > 0.f) || !std::isfinite(scale)) return err(op, ": expected a finite scale > 0, found ", scale);
  const int64_t n_total = static_cast<int64_t>(n_tokens) * n_heads * (head_dim / 2);
  if (n_total == 0) return {};
  FKV_TRY(check_ptrs(n_total, op, {x, positions, inv_freq}));
  rope_kernel<<<blocks_for(n_total), kThreads, 0, stream>>>(x, positions, inv_freq, n_total, n_heads, head_dim, neox,
                                                            scale);
  return launch_status("rope_kernel");
}

Status silu_mul(const float* g, float* x, int64_t n, StreamHandle stream) {
  FKV_TRY(elementwise_args("cuda::silu_mul", n, {g, x}));
  if (n == 0) return {};
  silu_mul_kernel<<<blocks_for(n), kThreads, 0, stream>>>(g, x, n);
  return launch_status("silu_mul_kernel");
}

Status gelu_mul(const float* g, float* x, int64_t n, StreamHandle stream) {
  FKV_TRY(elementwise_args("cuda::gelu_mul", n, {g, x}));
  if (n == 0) return {};
  gelu_mul_kernel<<<blocks_for(n), kThreads, 0, stream>>>(g, x, n);
  return launch_status("gelu_mul_kernel");
}

Status add_inplace(float* x, const float* y, int64_t n, StreamHandle stream) {
  FKV_TRY(elementwise_args("cuda::add_inplace", n, {x, y}));
  if (n == 0) return {};
  add_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, n);
  return launch_status("add_kernel");
}

Status f32_to_f16(const float* x, uint16_t* y, int64_t n, StreamHandle stream) {
  FKV_TRY(elementwise_args("cuda::f32_to_f16", n, {x, y}));
  if (n == 0) return {};
  f32_to_f16_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, n);
  return launch_status("f32_to_f16_kernel");
}

Status f16_to_f32(const uint16_t* x, float* y, int64_t n, StreamHandle stream) {
  FKV_TRY(elementwise_args("cuda::f16_to_f32", n, {x, y}));
  if (n == 0) return {};
  f16_to_f32_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, n);
  return launch_status("f16_to_f32_kernel");
}

Status embed_f32(const float* table, int n_vocab, int n_embd, const int32_t* tokens, int n_tokens, float scale,
                 float* out, StreamHandle stream) {
  return embed("cuda::embed_f32", table, n_vocab, n_embd, tokens, n_tokens, scale, out, stream);
}

Status embed_f16(const uint16_t* table, int n_vocab, int n_embd, const int32_t* tokens, int n_tokens, float scale,
                 float* out, StreamHandle stream) {
  return embed("cuda::embed_f16", table, n_vocab, n_embd, tokens, n_tokens, scale, out, stream);
}

Status matmul_f32(DeviceContext& ctx, const float* a, const float* w, float* out, int n_rows, int k, int n,
                  StreamHandle stream) {
  FKV_TRY(matmul_args("cuda::matmul_f32", ctx, a, w, out, n_rows, k, n));
  if (n_rows == 0 || n == 0) return {};
  if (k == 0) return zero_output(out, n_rows, n, stream);
  const GemmShape g = gemm_shape(n_rows, k, n);
  const float alpha = 1.f;
  const float beta = 0.f;
  FKV_CUBLAS_TRY(cublasSetStream(ctx.blas(), stream));
  FKV_CUBLAS_TRY(
      cublasSgemm(ctx.blas(), CUBLAS_OP_T, CUBLAS_OP_N, g.m, g.n, g.k, &alpha, w, g.lda, a, g.ldb, &beta, out, g.ldc));
  return {};
}

Status matmul_f16(DeviceContext& ctx, const uint16_t* a, const uint16_t* w, float* out, int n_rows, int k, int n,
                  StreamHandle stream) {
  FKV_TRY(matmul_args("cuda::matmul_f16", ctx, a, w, out, n_rows, k, n));
  if (n_rows == 0 || n == 0) return {};
  if (k == 0) return zero_output(out, n_rows, n, stream);
  const GemmShape g = gemm_shape(n_rows, k, n);
  const float alpha = 1.f;  // float scalars: the compute type is CUBLAS_COMPUTE_32F
  const float beta = 0.f;
  FKV_CUBLAS_TRY(cublasSetStream(ctx.blas(), stream));
  FKV_CUBLAS_TRY(cublasGemmEx(ctx.blas(), CUBLAS_OP_T, CUBLAS_OP_N, g.m, g.n, g.k, &alpha, w, CUDA_R_16F, g.lda, a,
                              CUDA_R_16F, g.ldb, &beta, out, CUDA_R_32F, g.ldc, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
  return {};
}

Status matmul_f16_scaled(DeviceContext& ctx, const float* a, const uint16_t* w, float* out, int n_rows, int k, int n,
                         F16Staging staging, StreamHandle stream) {
  const char* op = "cuda::matmul_f16_scaled";
  FKV_TRY(matmul_args(op, ctx, a, w, out, n_rows, k, n));
  if (n_rows == 0 || n == 0) return {};
  if (k == 0) return zero_output(out, n_rows, n, stream);
  FKV_TRY(check_ptrs(static_cast<int64_t>(n_rows) * k, op, {staging.a16, staging.row_scale}));
  f32_to_f16_rows_scaled_kernel<<<static_cast<unsigned>(n_rows), kThreads, 0, stream>>>(a, staging.a16,
                                                                                        staging.row_scale, k);
  FKV_TRY(launch_status("f32_to_f16_rows_scaled_kernel"));
  FKV_TRY(matmul_f16(ctx, staging.a16, w, out, n_rows, k, n, stream));
  const int64_t n_out = static_cast<int64_t>(n_rows) * n;
  scale_rows_kernel<<<blocks_for(n_out), kThreads, 0, stream>>>(out, staging.row_scale, n_out, n);
  return launch_status("scale_rows_kernel");
}

}  // namespace fkv::cuda
