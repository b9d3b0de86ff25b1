// AVX2 page-summary bounds (see ops.h). Called only after cpu::active_isa() reported AVX2.
#include <immintrin.h>

#include <cstddef>

#include "backend/cpu/avx2_util.h"

namespace fkv::cpu::avx2 {

namespace {
float bound(const float* q_split, const float* mn_mx, int len) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int c = 0;
  for (; c + 16 <= len; c += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q_split + c), _mm256_loadu_ps(mn_mx + c), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q_split + c + 8), _mm256_loadu_ps(mn_mx + c + 8), acc1);
  }
  for (; c + 8 <= len; c += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q_split + c), _mm256_loadu_ps(mn_mx + c), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; c < len; ++c) s += q_split[c] * mn_mx[c];
  return s;
}
}  // namespace

void page_bounds_heads(const float* q_splits, const float* summaries, size_t stride, int n, int n_heads, int head_dim,
                       float* out) {
  const int len = 2 * head_dim;  // (min, max) against (neg, pos)
  for (int i = 0; i < n; ++i) {
    const float* page = summaries + static_cast<size_t>(i) * stride;
    for (int h = 0; h < n_heads; ++h)
      out[static_cast<size_t>(h) * n + i] =
          bound(q_splits + static_cast<size_t>(h) * len, page + static_cast<size_t>(h) * len, len);
  }
}

}  // namespace fkv::cpu::avx2
