// AVX2 page-summary bounds (see ops.h). Called only after cpu::active_isa() reported AVX2.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "backend/cpu/avx2_util.h"
#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"

namespace fkv::cpu::avx2 {

namespace {
// 8 F16 summary values as floats.
inline __m256 load8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

float bound(const float* q_split, const uint16_t* mn_mx, int len) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int c = 0;
  for (; c + 16 <= len; c += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q_split + c), load8(mn_mx + c), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q_split + c + 8), load8(mn_mx + c + 8), acc1);
  }
  for (; c + 8 <= len; c += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q_split + c), load8(mn_mx + c), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; c < len; ++c) s += q_split[c] * f16_to_f32(mn_mx[c]);
  return s;
}
}  // namespace

void page_bounds_heads(const float* q_splits, const uint16_t* summaries, size_t stride, int n, int n_heads, int head_dim,
                       float* out, size_t out_stride) {
  const int len = 2 * head_dim;  // (min, max) against (neg, pos)
  for (int i = 0; i < n; ++i) {
    const uint16_t* page = summaries + static_cast<size_t>(i) * stride;
    for (int h = 0; h < n_heads; ++h)
      out[static_cast<size_t>(h) * out_stride + i] =
          bound(q_splits + static_cast<size_t>(h) * len, page + static_cast<size_t>(h) * len, len);
  }
}

void summary_to_f16(const float* mn_mx, uint16_t* out, int head_dim) {
  const float* mx = mn_mx + head_dim;
  uint16_t* out_mx = out + head_dim;
  int c = 0;
  for (; c + 8 <= head_dim; c += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c),
                     _mm256_cvtps_ph(_mm256_loadu_ps(mn_mx + c), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out_mx + c),
                     _mm256_cvtps_ph(_mm256_loadu_ps(mx + c), _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC));
  }
  for (; c < head_dim; ++c) {
    out[c] = f16_round_down(mn_mx[c]);
    out_mx[c] = f16_round_up(mx[c]);
  }
}

// The VNNI kernel's sums without VNNI: each 16 codes are widened to int16 and multiplied by the query's int16
// columns with vpmaddwd, whose pair sums cannot saturate (255 x 128 x 2 fits int32), so the sums are exact and the
// same as the reference's.
void code_scores(const int8_t* q, const uint8_t* blocks, int cols, int first, int n, float* out) {
  static_assert(kCodeBlockPages == 16, "four 256-bit accumulators of four pages each per block");
  const size_t block_bytes = static_cast<size_t>(cols) * kCodeBlockPages;
  const int quads = cols / 4;
  alignas(32) int16_t q16[2 * kMaxHeadDim];
  for (int c = 0; c < cols; ++c) q16[c] = q[c];
  const int end = first + n;
  for (int b = first / kCodeBlockPages; b * kCodeBlockPages < end; ++b) {
    const uint8_t* blk = blocks + static_cast<size_t>(b) * block_bytes;
    // acc[a]: pages 4a..4a+3, two partial sums each (columns 0-1 and 2-3 of every quad).
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    __m256i acc2 = _mm256_setzero_si256(), acc3 = _mm256_setzero_si256();
    for (int j = 0; j < quads; ++j) {
      int64_t qq;
      std::memcpy(&qq, q16 + 4 * j, 8);
      const __m256i qv = _mm256_set1_epi64x(qq);
      const uint8_t* src = blk + static_cast<size_t>(j) * 64;
      const auto part = [&](int off) {
        const __m128i codes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + off));
        return _mm256_madd_epi16(_mm256_cvtepu8_epi16(codes), qv);
      };
      acc0 = _mm256_add_epi32(acc0, part(0));
      acc1 = _mm256_add_epi32(acc1, part(16));
      acc2 = _mm256_add_epi32(acc2, part(32));
      acc3 = _mm256_add_epi32(acc3, part(48));
    }
    // hadd gives pages (0 1 4 5 | 2 3 6 7); the 64-bit permute puts them in order.
    const __m256i lo = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc0, acc1), _MM_SHUFFLE(3, 1, 2, 0));
    const __m256i hi = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc2, acc3), _MM_SHUFFLE(3, 1, 2, 0));
    const int p0 = b * kCodeBlockPages;
    const int from = std::max(first, p0) - p0;
    const int to = std::min(end, p0 + kCodeBlockPages) - p0;
    if (from == 0 && to == kCodeBlockPages) {
      _mm256_storeu_ps(out + (p0 - first), _mm256_cvtepi32_ps(lo));
      _mm256_storeu_ps(out + (p0 - first) + 8, _mm256_cvtepi32_ps(hi));
    } else {
      alignas(32) float tmp[kCodeBlockPages];
      _mm256_store_ps(tmp, _mm256_cvtepi32_ps(lo));
      _mm256_store_ps(tmp + 8, _mm256_cvtepi32_ps(hi));
      for (int i = from; i < to; ++i) out[p0 + i - first] = tmp[i];
    }
  }
}

}  // namespace fkv::cpu::avx2
