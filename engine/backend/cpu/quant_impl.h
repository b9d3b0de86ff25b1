// Internal to backend/cpu: the block layouts of the quantized types (byte-compatible with GGUF/ggml files) and the
// kernel tables the dispatcher in quant.cpp picks from. Nothing outside backend/cpu should include this.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace fkv::cpu {

constexpr int kQ32 = 32;  // elements per block of Q4_0, Q5_0, Q8_0
constexpr int kQK = 256;  // elements per super-block of the K-quants

// x = d * q
struct BlockQ8_0 {
  uint16_t d;       // f16
  int8_t qs[kQ32];  // (32)
};
// x = d * (q - 8); element j < 16 is the low nibble of qs[j], element j + 16 the high nibble
struct BlockQ4_0 {
  uint16_t d;            // f16
  uint8_t qs[kQ32 / 2];  // (16)
};
// x = d * (q - 16); like Q4_0 plus bit j of the little-endian qh as bit 4 of element j
struct BlockQ5_0 {
  uint16_t d;            // f16
  uint8_t qh[4];         // (32 bits)
  uint8_t qs[kQ32 / 2];  // (16)
};
// 8 sub-blocks of 32 with 6-bit scales and mins packed in `scales`: x = d * sc * q - dmin * m
struct BlockQ4_K {
  uint16_t d;           // f16
  uint16_t dmin;        // f16
  uint8_t scales[12];   // (8 scales + 8 mins, 6 bits each)
  uint8_t qs[kQK / 2];  // (128) chunk i holds sub-block 2i in low nibbles, 2i+1 in high nibbles
};
// Q4_K plus a fifth bit per element: bit 2i (low half) / 2i+1 (high half) of qh[l] for element l of chunk i
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQK / 8];  // (32)
  uint8_t qs[kQK / 2];  // (128)
};
// 16 groups of 16 with int8 scales: x = d * sc * (q - 32), q 6 bits split over ql (low 4) and qh (high 2)
struct BlockQ6_K {
  uint8_t ql[kQK / 2];      // (128)
  uint8_t qh[kQK / 4];      // (64)
  int8_t scales[kQK / 16];  // (16)
  uint16_t d;               // f16
};
// Activations only: x = d * q with bsums[k] = sum of qs[16k .. 16k+15], which the K-quant dots use for their offsets
struct BlockQ8_K {
  float d;
  int8_t qs[kQK];           // (256)
  int16_t bsums[kQK / 16];  // (16)
};

// Activations of 16 tokens interleaved for the VNNI K-quant tiles, one per super-block: qs[k][t] holds codes
// 4k..4k+3 of token t, so one 512-bit load serves a weight's 4 codes to all 16 tokens; bsums[p][t] holds the token's
// bsums[2p] and bsums[2p+1]; d[t] its scale. A group of fewer tokens repeats its last one. A tile reads a group per
// block, so with the weights' block unpacked once, one broadcast and one vpdpbusd serve 16 tokens.
constexpr int kGroupTokens = 16;
struct GroupQ8_K {
  int8_t qs[kQK / 4][kGroupTokens][4];
  int16_t bsums[kQK / 32][kGroupTokens][2];
  float d[kGroupTokens];
};

// The same for Q8_0 activations, one per block of 32: sum[t] is the sum of token t's 32 codes.
struct GroupQ8_0 {
  int8_t qs[kQ32 / 4][kGroupTokens][4];
  float d[kGroupTokens];
  int32_t sum[kGroupTokens];
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// Internal linkage: files built for AVX2 and for AVX-512 include these, and a copy the compiler vectorised for AVX-512
// must never be the one the linker keeps for the others.
namespace {  // NOLINT(google-build-namespaces)

// The 6-bit scales and mins of Q4_K/Q5_K sub-block j (0..7).
inline void unpack_k_scales(const uint8_t* s, uint8_t* sc, uint8_t* m) {  // s (12), sc (8), m (8)
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    m[j] = s[j + 4] & 63;
  }
  for (int j = 4; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    m[j] = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// float -> int truncating, saturated to +-2^30 so NaN, inf and huge values (a block of garbage or of denormals)
// never reach an undefined cast; NaN goes to the low end, as the AVX2 encoders' float clamps send it.
inline int to_int_sat(float v) {
  constexpr float kLimit = 1073741824.0f;  // 2^30
  if (v >= kLimit) return 1 << 30;
  if (!(v > -kLimit)) return -(1 << 30);
  return static_cast<int>(v);
}

// nearbyint in the default rounding mode rounds half to even, as the AVX2 encoders do, so their bytes can match.
inline int round_even(float v) { return to_int_sat(std::nearbyint(v)); }

// 1/d for an encoder's scale, or 0 where d is 0 or so small that 1/d overflows (such a block encodes as zeros).
inline float inverse_or_zero(float d) {
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  return std::isfinite(id) ? id : 0.0f;
}

}  // namespace

using VecDotFn = float (*)(const void* w, const void* x, int64_t n);

// A block of the product for the tiled matmul: y[t * ldy + r] = dot(w row r, x row t), r < n_rows, t < n_tok <= the
// kernel's width (tile_tokens).
struct TileArgs {
  const uint8_t* w;  // (n_rows, w_stride bytes) weight rows
  size_t w_stride;
  int64_t n_rows;
  const uint8_t* x;  // (n_tok, x_stride bytes) rows encoded as vec_dot_type
  size_t x_stride;
  int n_tok;  // 1..tile_tokens(weight type)
  int64_t n;  // elements per row
  float* y;   // (n_tok, ldy)
  int64_t ldy;
  const uint8_t* xi;  // the same tokens interleaved, for the kernels of vnni::tile_lanes_fn; else unused
};
using TileFn = void (*)(const TileArgs& a);
// Tokens per tiled-kernel call: the 32-element block types unpack a block once for 16 (measured best of 8, 16 and
// 32 at a 512-token prefill of a Q5_0-heavy model), the others serve 4.
constexpr int kQ32TileTokens = 16;
constexpr int kKTileTokens = 8;  // the K-quants (Q4_K, Q5_K, Q6_K); kGroupTokens for vnni::tile_lanes_fn's
inline int tile_tokens(DType weight) {
  switch (weight) {
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
      return kQ32TileTokens;
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return kKTileTokens;
    default:
      return 4;
  }
}

namespace ref {
VecDotFn vec_dot_fn(DType t);  // nullptr for a type that is not a weight type
// The K-quants (quant_ref_k.cpp); nb super-blocks, x and y (nb * 256) floats.
void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb);
void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb);
void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb);
void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t nb);
void dequantize_q4_k(const BlockQ4_K* x, float* y, int64_t nb);
void dequantize_q5_k(const BlockQ5_K* x, float* y, int64_t nb);
void dequantize_q6_k(const BlockQ6_K* x, float* y, int64_t nb);
void dequantize_q8_k(const BlockQ8_K* x, float* y, int64_t nb);
float dot_q4_k(const void* w, const void* x, int64_t n);  // w Q4_K, x Q8_K
float dot_q5_k(const void* w, const void* x, int64_t n);
float dot_q6_k(const void* w, const void* x, int64_t n);
void f16_to_f32_row(const uint16_t* x, float* y, int64_t n);
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n);
}  // namespace ref

// Built with -mavx2 -mfma -mf16c: call only when detected_isa() == Isa::Avx2.
namespace avx2 {
VecDotFn vec_dot_fn(DType t);  // nullptr for a type that is not a weight type
TileFn tile_fn(DType t);       // nullptr where no tiled kernel exists
void f16_to_f32_row(const uint16_t* x, float* y, int64_t n);
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n);
void quantize_row_q8_0(const float* x, void* y, int64_t n);
void quantize_row_q8_k(const float* x, void* y, int64_t n);
// The K-quant kernels (quant_k_avx2.cpp), w Q4_K/Q5_K/Q6_K against x Q8_K.
float dot_q4_k(const void* w, const void* x, int64_t n);
float dot_q5_k(const void* w, const void* x, int64_t n);
float dot_q6_k(const void* w, const void* x, int64_t n);
void tile_q4_k(const TileArgs& a);
void tile_q5_k(const TileArgs& a);
void tile_q6_k(const TileArgs& a);
}  // namespace avx2

// Built with the AVX2 flags and AVX-512 F, VL, BW and VNNI: call only when vnni_active().
namespace vnni {
// The tiles on interleaved activations (TileArgs::xi: GroupQ8_K for Q4_K and Q6_K, GroupQ8_0 for Q4_0, Q5_0 and
// Q8_0), kGroupTokens tokens a call; nullptr for a type without one (quant_lanes_vnni.cpp).
TileFn tile_lanes_fn(DType t);
// Tokens [0, n_tok) (n_tok <= kGroupTokens) of Q8_K rows x, n elements each, as n / 256 groups.
void interleave_q8_k(const uint8_t* x, size_t x_stride, int n_tok, int64_t n, GroupQ8_K* out);
// The same for Q8_0 rows, as n / 32 groups.
void interleave_q8_0(const uint8_t* x, size_t x_stride, int n_tok, int64_t n, GroupQ8_0* out);
// The one-token dots with 512-bit vectors, w Q4_K/Q6_K against x Q8_K (quant_k_avx512.cpp); nullptr for another type.
VecDotFn vec_dot_fn(DType t);
float dot_q4_k(const void* w, const void* x, int64_t n);
float dot_q6_k(const void* w, const void* x, int64_t n);
}  // namespace vnni

}  // namespace fkv::cpu
