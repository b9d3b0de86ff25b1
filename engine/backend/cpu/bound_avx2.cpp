// AVX2 page-summary bounds (see ops.h). Called only after cpu::active_isa() reported AVX2.
#include <immintrin.h>

#include <cstddef>

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

}  // namespace fkv::cpu::avx2
