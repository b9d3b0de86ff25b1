// The AVX2 tiled matmul kernel of Q4_0, Q5_0 and Q8_0 weights against Q8_0 activations (quant_avx2.cpp), for CPUs
// without AVX-512 VNNI; those take quant_lanes_vnni.cpp's. Internal linkage throughout, like unpack_q32.h, so no
// build for another instruction set can ever call its copy of a helper. Include it only from files built with at
// least -mavx2 -mfma -mf16c.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "backend/cpu/quant_impl.h"
#include "backend/cpu/unpack_q32.h"

namespace fkv::cpu::q32 {
namespace {  // NOLINT(google-build-namespaces): see the note above

constexpr int64_t kTileRows = 16;
constexpr int64_t kScaleChunk = 128;  // blocks per chunk: 2 KiB of token scales on the stack

float h2f(uint16_t h) { return _cvtsh_ss(h); }

// Stores the 4 per-token sums of a tile accumulator laid out [t0 t1 t2 t3 | t0 t1 t2 t3] into y[t * ldy].
void store_tile_column(__m256 acc, int n_tok, float* y, int64_t ldy) {
  float out[4];
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)));
  for (int t = 0; t < n_tok; ++t) y[t * ldy] = out[t];
}

// Sum of each of four int32x8 vectors, laid out [s0 s1 s2 s3 | s0 s1 s2 s3] (the two halves still to be added).
__m256i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
  return _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
}

// Rows of 32-element block weights against NT tokens (TileArgs, NT a multiple of 4): each block is unpacked once
// for all of them, and each group of four tokens' integer dots (Dot::dot: unsigned x signed int8, 8 int32 sums) is
// reduced together into one float accumulator. Offset formats multiply their codes and subtract offset * sum(x_t) per block; Q8_0 moves each
// weight's sign onto x (|w| <= 128 and |x| <= 127 keep a pair sum inside int16). The tokens' scales and block sums
// are taken once per chunk of blocks and shared by up to kTileRows rows.
template <class U, class Dot, int NT>
void tile_q32(const TileArgs& a) {
  static_assert(NT % 4 == 0);
  constexpr int kGroups = NT / 4;  // groups of four tokens, each reduced into one accumulator
  const BlockQ8_0* xt[NT];
  for (int t = 0; t < NT; ++t) xt[t] = reinterpret_cast<const BlockQ8_0*>(a.x + std::min(t, a.n_tok - 1) * a.x_stride);
  const int64_t nb = a.n / kQ32;
  alignas(16) float dx[kScaleChunk][NT];              // (blocks in chunk, tokens)
  alignas(32) int32_t sx[kScaleChunk][kGroups][8];    // offset * sum(x_t) in lanes 0..3 (the half hsum4 adds it to)
  const __m256i ones = _mm256_set1_epi8(1);
  for (int64_t r0 = 0; r0 < a.n_rows; r0 += kTileRows) {
    const int64_t n_rows = std::min(kTileRows, a.n_rows - r0);
    __m256 acc[kTileRows][kGroups];
    for (auto& row : acc)
      for (auto& v : row) v = _mm256_setzero_ps();
    for (int64_t c0 = 0; c0 < nb; c0 += kScaleChunk) {
      const int64_t n_chunk = std::min(kScaleChunk, nb - c0);
      for (int64_t b = 0; b < n_chunk; ++b) {
        for (int g = 0; g < kGroups; ++g) {
          const BlockQ8_0* const* xg = xt + 4 * g;
          const __m128i h =
              _mm_setr_epi16(static_cast<int16_t>(xg[0][c0 + b].d), static_cast<int16_t>(xg[1][c0 + b].d),
                             static_cast<int16_t>(xg[2][c0 + b].d), static_cast<int16_t>(xg[3][c0 + b].d), 0, 0, 0, 0);
          _mm_store_ps(dx[b] + 4 * g, _mm_cvtph_ps(h));
          if constexpr (U::kOffsetShift == 0) continue;
          __m256i p[4];
          for (int t = 0; t < 4; ++t)
            p[t] = Dot::dot(ones, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xg[t][c0 + b].qs)));
          const __m256i hs = hsum4_epi32(p[0], p[1], p[2], p[3]);
          const __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(hs), _mm256_extracti128_si256(hs, 1));
          _mm256_store_si256(reinterpret_cast<__m256i*>(sx[b][g]),
                             _mm256_set_m128i(_mm_setzero_si128(), _mm_slli_epi32(sum, U::kOffsetShift)));
        }
      }
      for (int64_t r = 0; r < n_rows; ++r) {
        const uint8_t* wr = a.w + (r0 + r) * a.w_stride + c0 * U::kBytes;
        __m256 sum[kGroups];
        for (int g = 0; g < kGroups; ++g) sum[g] = acc[r][g];
        for (int64_t b = 0; b < n_chunk; ++b) {
          const uint8_t* wb = wr + b * U::kBytes;
          uint16_t dw;
          std::memcpy(&dw, wb, 2);
          const __m256 vdw = _mm256_set1_ps(h2f(dw));
          // The block is unpacked once for all NT tokens.
          __m256i wq, aw;
          if constexpr (U::kOffsetShift > 0) {
            wq = U::codes(wb);
          } else {
            wq = U::load(wb);
            aw = _mm256_sign_epi8(wq, wq);
          }
          for (int g = 0; g < kGroups; ++g) {
            __m256i p[4];
            for (int t = 0; t < 4; ++t) {
              const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xt[4 * g + t][c0 + b].qs));
              if constexpr (U::kOffsetShift > 0) {
                p[t] = Dot::dot(wq, xq);
              } else {
                p[t] = Dot::dot(aw, _mm256_sign_epi8(xq, wq));
              }
            }
            __m256i dots = hsum4_epi32(p[0], p[1], p[2], p[3]);
            if constexpr (U::kOffsetShift > 0)
              dots = _mm256_sub_epi32(dots, _mm256_load_si256(reinterpret_cast<const __m256i*>(sx[b][g])));
            const __m256 s = _mm256_mul_ps(vdw, _mm256_broadcast_ps(reinterpret_cast<const __m128*>(dx[b] + 4 * g)));
            sum[g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots), s, sum[g]);
          }
        }
        for (int g = 0; g < kGroups; ++g) acc[r][g] = sum[g];
      }
    }
    for (int g = 0; g < kGroups && 4 * g < a.n_tok; ++g)
      for (int64_t r = 0; r < n_rows; ++r)
        store_tile_column(acc[r][g], std::min(4, a.n_tok - 4 * g), a.y + 4 * g * a.ldy + r0 + r, a.ldy);
  }
}

}  // namespace
}  // namespace fkv::cpu::q32
