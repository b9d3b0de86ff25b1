// AVX2 dots of the K-quants (Q4_K, Q5_K, Q6_K weights against Q8_K activations), single and tiled.
// One row kernel per type, templated on the number of tokens it serves (1 for vec_dot, 4 for the tiled matmul):
// a super-block is unpacked once and feeds every token. The integer sums are exact and equal the reference's;
// only the float accumulation differs. Built with -mavx2 -mfma -mf16c.
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "backend/cpu/avx2_util.h"
#include "backend/cpu/quant.h"
#include "backend/cpu/quant_impl.h"
#include "backend/cpu/unpack_q32.h"

namespace fkv::cpu::avx2 {

namespace {

// NT == 4: the sum of each of s[0..3], laid out [s0 s1 s2 s3 | s0 s1 s2 s3] with the halves still to be added.
// NT == 1: s[0] itself (its 8 lanes are summed at the end of the row).
template <int NT>
__m256i reduce_tokens(const __m256i* s) {
  if constexpr (NT == 1) {
    return s[0];
  } else {
    return _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
  }
}

// The tokens' Q8_K scales in the same layout as reduce_tokens.
template <int NT>
__m256 token_scales(const BlockQ8_K* const* xt, int64_t b) {
  if constexpr (NT == 1) {
    return _mm256_set1_ps(xt[0][b].d);
  } else {
    const __m128 d = _mm_setr_ps(xt[0][b].d, xt[1][b].d, xt[2][b].d, xt[3][b].d);
    return _mm256_set_m128(d, d);
  }
}

// Tokens t0.. of the group (as many of the W as the tile has) of row r.
template <int W>
void store_row(__m256 acc, const TileArgs& a, int64_t r, int t0) {
  if constexpr (W == 1) {
    a.y[r] = hsum(acc);
  } else {
    float out[4];
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)));
    for (int t = t0; t < std::min(a.n_tok, t0 + W); ++t) a.y[t * a.ldy + r] = out[t - t0];
  }
}

template <int NT>
void token_rows(const TileArgs& a, const BlockQ8_K** xt) {
  for (int t = 0; t < NT; ++t) xt[t] = reinterpret_cast<const BlockQ8_K*>(a.x + std::min(t, a.n_tok - 1) * a.x_stride);
}

__m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// ---- Q4_K / Q5_K: x = d * sc * q - dmin * m per sub-block of 32 ----

template <class Block, int NT>
void rows_k_affine(const TileArgs& a) {
  constexpr bool kFifthBit = std::is_same_v<Block, BlockQ5_K>;
  constexpr int W = NT == 1 ? 1 : 4;  // tokens per reduced group
  constexpr int G = NT / W;
  const BlockQ8_K* xt[NT];
  token_rows<NT>(a, xt);
  const __m256i m4 = _mm256_set1_epi8(0xF);
  const __m256i one8 = _mm256_set1_epi8(1);
  for (int64_t r = 0; r < a.n_rows; ++r) {
    const auto* wb = reinterpret_cast<const Block*>(a.w + r * a.w_stride);
    __m256 acc[G];
    for (auto& v : acc) v = _mm256_setzero_ps();
    for (int64_t b = 0; b < a.n / kQK; ++b) {
      uint8_t sc[8], m[8];
      unpack_k_scales(wb[b].scales, sc, m);
      __m256i s[NT];
      for (auto& v : s) v = _mm256_setzero_si256();
      __m256i hbits = _mm256_setzero_si256();
      if constexpr (kFifthBit) hbits = load256(wb[b].qh);
      for (int i = 0; i < 4; ++i) {
        const __m256i q = load256(wb[b].qs + 32 * i);
        __m256i lo = _mm256_and_si256(q, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if constexpr (kFifthBit) {  // bit 2i of qh[l] for the low half, 2i+1 for the high half
          lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hbits, one8), 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 1), one8), 4));
          hbits = _mm256_srli_epi16(hbits, 2);
        }
        const __m256i scl = _mm256_set1_epi16(sc[2 * i]);
        const __m256i sch = _mm256_set1_epi16(sc[2 * i + 1]);
        for (int t = 0; t < NT; ++t) {
          const __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load256(xt[t][b].qs + 64 * i)), scl);
          const __m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load256(xt[t][b].qs + 64 * i + 32)), sch);
          s[t] = _mm256_add_epi32(s[t], _mm256_add_epi32(pl, ph));
        }
      }
      // mins: m[j] * (bsums[2j] + bsums[2j+1]), with each min repeated for its two 16-element sums
      const __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(m));
      const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
      __m256i mm[NT];
      for (int t = 0; t < NT; ++t) mm[t] = _mm256_madd_epi16(load256(xt[t][b].bsums), mins);
      const __m256 d = _mm256_set1_ps(_cvtsh_ss(wb[b].d)), dmin = _mm256_set1_ps(_cvtsh_ss(wb[b].dmin));
      for (int g = 0; g < G; ++g) {
        const __m256 sumi = _mm256_cvtepi32_ps(reduce_tokens<W>(s + W * g));
        const __m256 summ = _mm256_cvtepi32_ps(reduce_tokens<W>(mm + W * g));
        acc[g] = _mm256_fmadd_ps(_mm256_fmsub_ps(sumi, d, _mm256_mul_ps(summ, dmin)), token_scales<W>(xt + W * g, b),
                                 acc[g]);
      }
    }
    for (int g = 0; g < G && W * g < a.n_tok; ++g) store_row<W>(acc[g], a, r, W * g);
  }
}

// ---- Q6_K: x = d * sc * (q - 32) per group of 16 ----

// [sc[j] x8 | sc[j+1] x8] as int16 from the 16 scales widened to int16 (j even): pick the int32 holding the pair,
// then the low or high int16 per 128-bit lane.
__m256i pair_scales(__m256i sc16, int j) {
  const __m256i both = _mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(j / 2));
  const __m256i pick =
      _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
  return _mm256_shuffle_epi8(both, pick);
}

template <int NT>
void rows_q6_k(const TileArgs& a) {
  constexpr int W = NT == 1 ? 1 : 4;  // tokens per reduced group
  constexpr int G = NT / W;
  const BlockQ8_K* xt[NT];
  token_rows<NT>(a, xt);
  for (int64_t r = 0; r < a.n_rows; ++r) {
    const auto* wb = reinterpret_cast<const BlockQ6_K*>(a.w + r * a.w_stride);
    __m256 acc[G];
    for (auto& v : acc) v = _mm256_setzero_ps();
    for (int64_t b = 0; b < a.n / kQK; ++b) {
      const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[b].scales)));
      __m256i s[NT];
      for (auto& v : s) v = _mm256_setzero_si256();
      for (int n = 0; n < 2; ++n) {
        __m256i q[4];
        q32::q6_k_codes(wb[b], n, q);
        for (int k = 0; k < 4; ++k) {
          const __m256i scale = pair_scales(sc16, 8 * n + 2 * k);
          for (int t = 0; t < NT; ++t) {
            const __m256i p = _mm256_maddubs_epi16(q[k], load256(xt[t][b].qs + 128 * n + 32 * k));
            s[t] = _mm256_add_epi32(s[t], _mm256_madd_epi16(p, scale));
          }
        }
      }
      // The codes carry +32: subtract 32 * sum_k sc[k] * bsums[k] to get the signed dot exactly.
      __m256i bias[NT];
      for (int t = 0; t < NT; ++t) bias[t] = _mm256_madd_epi16(load256(xt[t][b].bsums), sc16);
      const __m256 dw = _mm256_set1_ps(_cvtsh_ss(wb[b].d));
      for (int g = 0; g < G; ++g) {
        const __m256i sumi = _mm256_sub_epi32(reduce_tokens<W>(s + W * g),
                                              _mm256_slli_epi32(reduce_tokens<W>(bias + W * g), 5));
        acc[g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_mul_ps(dw, token_scales<W>(xt + W * g, b)), acc[g]);
      }
    }
    for (int g = 0; g < G && W * g < a.n_tok; ++g) store_row<W>(acc[g], a, r, W * g);
  }
}

template <void (*Rows)(const TileArgs&)>
float dot_one(const void* w, const void* x, int64_t n) {
  float y = 0.0f;
  TileArgs a{};
  a.w = static_cast<const uint8_t*>(w);
  a.n_rows = 1;
  a.x = static_cast<const uint8_t*>(x);
  a.n_tok = 1;
  a.n = n;
  a.y = &y;
  a.ldy = 1;
  Rows(a);
  return y;
}

}  // namespace

float dot_q4_k(const void* w, const void* x, int64_t n) { return dot_one<rows_k_affine<BlockQ4_K, 1>>(w, x, n); }
float dot_q5_k(const void* w, const void* x, int64_t n) { return dot_one<rows_k_affine<BlockQ5_K, 1>>(w, x, n); }
float dot_q6_k(const void* w, const void* x, int64_t n) { return dot_one<rows_q6_k<1>>(w, x, n); }

void tile_q4_k(const TileArgs& a) { rows_k_affine<BlockQ4_K, kKTileTokens>(a); }
void tile_q5_k(const TileArgs& a) { rows_k_affine<BlockQ5_K, kKTileTokens>(a); }
void tile_q6_k(const TileArgs& a) { rows_q6_k<kKTileTokens>(a); }

}  // namespace fkv::cpu::avx2
