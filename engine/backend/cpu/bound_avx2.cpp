// AVX2 page-summary bound (see ops.h). Called only after cpu::active_isa() reported AVX2.
#include <immintrin.h>

#include <algorithm>

namespace fkv::cpu::avx2 {

float page_bound(const float* q, int group, const float* mn, const float* mx, int head_dim) {
  __m256 acc = _mm256_setzero_ps();
  int c = 0;
  for (; c + 8 <= head_dim; c += 8) {
    const __m256 lo = _mm256_loadu_ps(mn + c);
    const __m256 hi = _mm256_loadu_ps(mx + c);
    for (int g = 0; g < group; ++g) {
      const __m256 qc = _mm256_loadu_ps(q + g * head_dim + c);
      acc = _mm256_add_ps(acc, _mm256_max_ps(_mm256_mul_ps(qc, lo), _mm256_mul_ps(qc, hi)));
    }
  }
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  float r = _mm_cvtss_f32(s);
  for (; c < head_dim; ++c)
    for (int g = 0; g < group; ++g) {
      const float qc = q[g * head_dim + c];
      r += std::max(qc * mn[c], qc * mx[c]);
    }
  return r;
}

}  // namespace fkv::cpu::avx2
