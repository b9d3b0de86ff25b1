// Element encodings and the dot products / matrix products the forward pass runs on them.
// Every function has a plain scalar reference (namespace ref) and, where it matters, an AVX2/FMA/F16C version
// chosen once at run time (cpu feature check); tests compare the two for every dtype.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace fkv::cpu {

enum class Isa { Scalar, Avx2 };
Isa detected_isa();            // what this CPU supports (AVX2 needs avx2 + fma + f16c)
Isa active_isa();              // what the dispatcher uses now (detected unless overridden)
void set_active_isa(Isa isa);  // tests and benchmarks force Scalar; asking for Avx2 on a CPU without it keeps Scalar
const char* isa_name(Isa isa);
// Under Avx2, prefill's tiled int8 dots and attention use AVX-512 (F, VL, BW and VNNI) where the CPU has it.
bool vnni_detected();
// AVX-512 F, VL, BW and VNNI detected, Avx2 active, and not turned off (FKV_VNNI=0 in the environment, set_vnni):
// the VNNI matmul tiles and the AVX-512 attention tiles run.
bool vnni_active();
void set_vnni(bool on);   // tests compare both; on is ignored where not detected
bool vnni_enabled();      // the switch set_vnni sets
const char* active_isa_label();  // "scalar", "avx2" or "avx2+vnni"

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);   // round to nearest even
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);  // round to nearest even
// Row conversions (F16C when active): x (n) -> y (n).
void f16_to_f32_row(const uint16_t* x, float* y, int64_t n);
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n);

// The encoding a weight row's partner vector must be in for vec_dot:
// F32/F16/BF16 -> F32; Q4_0/Q5_0/Q8_0 -> Q8_0; Q4_K/Q5_K/Q6_K -> Q8_K.
DType vec_dot_type(DType weight);

// Encode n floats (n a multiple of the block size) as `t`: F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K.
void quantize_row(DType t, const float* x, void* y, int64_t n);
// Decode n elements of `t` to floats (all types above).
void dequantize_row(DType t, const void* x, float* y, int64_t n);
// dot(w, x) for a weight row `w` of type `t` and `x` already encoded as vec_dot_type(t).
float vec_dot(DType t, const void* w, const void* x, int64_t n);

namespace ref {
void quantize_row(DType t, const float* x, void* y, int64_t n);
void dequantize_row(DType t, const void* x, float* y, int64_t n);
float vec_dot(DType t, const void* w, const void* x, int64_t n);
}  // namespace ref

// A weight matrix in row-major storage: n_rows rows of n_cols elements, each row `row_bytes(type, n_cols)` bytes.
struct MatrixView {
  const void* data = nullptr;  // (n_rows, n_cols) in `type`
  DType type = DType::F32;
  int64_t n_rows = 0;
  int64_t n_cols = 0;
};

// Scratch bytes matmul needs to encode `n_tok` input rows of `n_cols` for weights of type `t`.
size_t matmul_scratch_bytes(DType t, int64_t n_cols, int64_t n_tok);

// y = x W^T: x (n_tok, w.n_cols) f32, y (n_tok, w.n_rows) f32, rows of y `ldy` floats apart.
// Encodes x into `scratch` (matmul_scratch_bytes) once, then splits rows of W over the pool's threads; for n_tok > 1
// it walks W in row tiles so each tile is reused across all tokens from cache. Never allocates.
void matmul(const MatrixView& w, const float* x, int64_t n_tok, float* y, int64_t ldy, void* scratch, ThreadPool& pool);

}  // namespace fkv::cpu
