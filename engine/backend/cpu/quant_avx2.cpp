// AVX2/FMA/F16C kernels: f16 row conversions, the Q8_0 and Q8_K activation encoders, and the dots and tiled
// dots of the f32-partnered types (F32, F16, BF16) and the 32-element block types (Q4_0, Q5_0, Q8_0).
// Built with -mavx2 -mfma -mf16c; quant.cpp calls in only after the runtime CPU check.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/avx2_util.h"
#include "backend/cpu/quant.h"
#include "backend/cpu/quant_impl.h"
#include "backend/cpu/tile_q32.h"

namespace fkv::cpu::avx2 {

namespace {

using namespace q32;  // NOLINT(build/namespaces): the shared tile kernel's pieces

// The int8 dot of the tile kernel: maddubs pairs into int16, madd sums pairs into int32.
struct DotMaddubs {
  static __m256i dot(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
  }
};

float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---- f32-partnered rows: a loader turns 8 stored elements into 8 floats ----

struct LoadF32 {
  static __m256 load(const void* p, int64_t i) { return _mm256_loadu_ps(static_cast<const float*>(p) + i); }
  static float one(const void* p, int64_t i) { return static_cast<const float*>(p)[i]; }
};
struct LoadF16 {
  static __m256 load(const void* p, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
  }
  static float one(const void* p, int64_t i) { return f16_to_f32(static_cast<const uint16_t*>(p)[i]); }
};
struct LoadBF16 {
  static __m256 load(const void* p, int64_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float one(const void* p, int64_t i) { return bf16_to_f32(static_cast<const uint16_t*>(p)[i]); }
};

template <class L>
float dot_f(const void* w, const void* x, int64_t n) {
  const auto* xf = static_cast<const float*>(x);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k)
      acc[k] = _mm256_fmadd_ps(L::load(w, i + 8 * k), _mm256_loadu_ps(xf + i + 8 * k), acc[k]);
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(L::load(w, i), _mm256_loadu_ps(xf + i), acc[0]);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += L::one(w, i) * xf[i];
  return sum;
}

// kR weight rows (w[k]) against four tokens over columns [c0, c1): each loaded weight vector feeds four FMAs and
// each token vector kR. Partial sums live in acc[k] (4 tokens each) between column chunks.
template <class L, int kR>
void tile_f_rows(const uint8_t* const* w, const float* const* xt, int64_t c0, int64_t c1, __m256 (*acc)[4]) {
  __m256 s[kR][4];
  for (int k = 0; k < kR; ++k) {
    for (int t = 0; t < 4; ++t) s[k][t] = acc[k][t];
  }
  for (int64_t i = c0; i < c1; i += 8) {
    __m256 wv[kR];
    for (int k = 0; k < kR; ++k) wv[k] = L::load(w[k], i);
    for (int t = 0; t < 4; ++t) {
      const __m256 xv = _mm256_loadu_ps(xt[t] + i);
      for (int k = 0; k < kR; ++k) s[k][t] = _mm256_fmadd_ps(wv[k], xv, s[k][t]);
    }
  }
  for (int k = 0; k < kR; ++k) {
    for (int t = 0; t < 4; ++t) acc[k][t] = s[k][t];
  }
}

// Up to kRows rows against four tokens, three rows at a time (12 accumulators hide the FMA latency). Columns are
// walked in chunks so the four tokens' chunk stays in L1 while every row of the group passes over it.
template <class L>
void tile_f(const TileArgs& a) {
  constexpr int64_t kRows = 16, kCols = 512;
  const float* xt[4];
  for (int t = 0; t < 4; ++t) xt[t] = reinterpret_cast<const float*>(a.x + std::min(t, a.n_tok - 1) * a.x_stride);
  const int64_t n8 = a.n / 8 * 8;
  for (int64_t r0 = 0; r0 < a.n_rows; r0 += kRows) {
    const int64_t n_rows = std::min(kRows, a.n_rows - r0);
    __m256 acc[kRows][4];  // (rows, tokens) partial sums
    for (auto& row : acc) {
      for (auto& v : row) v = _mm256_setzero_ps();
    }
    for (int64_t c0 = 0; c0 < n8; c0 += kCols) {
      const int64_t c1 = std::min(n8, c0 + kCols);
      for (int64_t r = 0; r < n_rows; r += 3) {
        const uint8_t* w[3];
        for (int k = 0; k < 3; ++k) w[k] = a.w + (r0 + r + k) * a.w_stride;
        switch (std::min<int64_t>(3, n_rows - r)) {
          case 3:
            tile_f_rows<L, 3>(w, xt, c0, c1, acc + r);
            break;
          case 2:
            tile_f_rows<L, 2>(w, xt, c0, c1, acc + r);
            break;
          default:
            tile_f_rows<L, 1>(w, xt, c0, c1, acc + r);
            break;
        }
      }
    }
    for (int64_t r = 0; r < n_rows; ++r) {
      const uint8_t* wr = a.w + (r0 + r) * a.w_stride;
      for (int t = 0; t < a.n_tok; ++t) {
        float sum = hsum(acc[r][t]);
        for (int64_t j = n8; j < a.n; ++j) sum += L::one(wr, j) * xt[t][j];
        a.y[t * a.ldy + r0 + r] = sum;
      }
    }
  }
}

// ---- 32-element blocks (the unpackers and the tiled kernel are in tile_q32.h) ----

// Signed x signed int8 dot of 32 lanes into 8 int32 partial sums. maddubs wants one unsigned operand, so the sign
// of w moves onto x; |w| <= 128 and |x| <= 127 keep each pair sum inside int16.
__m256i dot_i8(__m256i w, __m256i x) {
  const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

template <class U>
float dot_q32(const void* w, const void* x, int64_t n) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const BlockQ8_0*>(x);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const int64_t nb = n / kQ32;
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const uint8_t* w0 = wb + b * U::kBytes;
    const uint8_t* w1 = w0 + U::kBytes;
    uint16_t d0, d1;
    std::memcpy(&d0, w0, 2);
    std::memcpy(&d1, w1, 2);
    const __m256i p0 = dot_i8(U::load(w0), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[b].qs)));
    const __m256i p1 = dot_i8(U::load(w1), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[b + 1].qs)));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(h2f(d0) * h2f(xb[b].d)), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(h2f(d1) * h2f(xb[b + 1].d)), acc1);
  }
  if (b < nb) {
    const uint8_t* w0 = wb + b * U::kBytes;
    uint16_t d0;
    std::memcpy(&d0, w0, 2);
    const __m256i p0 = dot_i8(U::load(w0), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[b].qs)));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(h2f(d0) * h2f(xb[b].d)), acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

// 32 floats to int8 codes x * id rounded to even and clamped to [-127, 127] as the scalar reference does, in
// element order. The clamp is done in float so inf saturates and NaN (max_ps returns its second operand) goes to -127.
__m256i quantize32(const float* x, __m256 id, __m256i* sum_lo, __m256i* sum_hi) {
  __m256i q[4];
  for (int k = 0; k < 4; ++k) {
    __m256 v =
        _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    q[k] = _mm256_cvtps_epi32(v);
  }
  *sum_lo = _mm256_add_epi32(q[0], q[1]);  // elements 0..15
  *sum_hi = _mm256_add_epi32(q[2], q[3]);  // elements 16..31
  // packs interleaves 128-bit lanes; the permute puts the 4-byte groups back in element order
  const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  return _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

float absmax(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  // max_ps returns its second operand when the first is NaN: NaNs are skipped, as std::max(amax, v) skips them
  for (int i = 0; i < n; i += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), m);
  return hmax(m);
}

}  // namespace

void f16_to_f32_row(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  for (; i < n; ++i) y[i] = f16_to_f32(x[i]);
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) y[i] = f32_to_f16(x[i]);
}

void quantize_row_q8_0(const float* x, void* y, int64_t n) {
  auto* yb = static_cast<BlockQ8_0*>(y);
  for (int64_t b = 0; b < n / kQ32; ++b, x += kQ32) {
    const float d = absmax(x, kQ32) / 127.0f;
    const float id = inverse_or_zero(d);
    yb[b].d = f32_to_f16(d);
    __m256i lo, hi;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(yb[b].qs), quantize32(x, _mm256_set1_ps(id), &lo, &hi));
  }
}

void quantize_row_q8_k(const float* x, void* y, int64_t n) {
  auto* yb = static_cast<BlockQ8_K*>(y);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const float d = absmax(x, kQK) / 127.0f;
    const __m256 id = _mm256_set1_ps(inverse_or_zero(d));
    yb[b].d = d;
    for (int c = 0; c < kQK / 32; ++c) {
      __m256i lo, hi;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(yb[b].qs + 32 * c), quantize32(x + 32 * c, id, &lo, &hi));
      // [lo01 lo23 hi01 hi23 | lo45 lo67 hi45 hi67] -> [lo hi lo hi] after a second hadd and folding the lanes
      const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(lo, hi), _mm256_setzero_si256());
      const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
      yb[b].bsums[2 * c] = static_cast<int16_t>(_mm_cvtsi128_si32(s));
      yb[b].bsums[2 * c + 1] = static_cast<int16_t>(_mm_extract_epi32(s, 1));
    }
  }
}

VecDotFn vec_dot_fn(DType t) {
  switch (t) {
    case DType::F32:
      return dot_f<LoadF32>;
    case DType::F16:
      return dot_f<LoadF16>;
    case DType::BF16:
      return dot_f<LoadBF16>;
    case DType::Q4_0:
      return dot_q32<UnpackQ4_0>;
    case DType::Q5_0:
      return dot_q32<UnpackQ5_0>;
    case DType::Q8_0:
      return dot_q32<UnpackQ8_0>;
    case DType::Q4_K:
      return dot_q4_k;
    case DType::Q5_K:
      return dot_q5_k;
    case DType::Q6_K:
      return dot_q6_k;
    case DType::Q8_K:
      return nullptr;
  }
  return nullptr;
}

TileFn tile_fn(DType t) {
  switch (t) {
    case DType::F32:
      return tile_f<LoadF32>;
    case DType::F16:
      return tile_f<LoadF16>;
    case DType::BF16:
      return tile_f<LoadBF16>;
    case DType::Q4_0:
      return tile_q32<UnpackQ4_0, DotMaddubs, kQ32TileTokens>;
    case DType::Q5_0:
      return tile_q32<UnpackQ5_0, DotMaddubs, kQ32TileTokens>;
    case DType::Q8_0:
      return tile_q32<UnpackQ8_0, DotMaddubs, kQ32TileTokens>;
    case DType::Q4_K:
      return tile_q4_k;
    case DType::Q5_K:
      return tile_q5_k;
    case DType::Q6_K:
      return tile_q6_k;
    case DType::Q8_K:
      return nullptr;
  }
  return nullptr;
}

}  // namespace fkv::cpu::avx2
