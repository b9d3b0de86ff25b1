// AVX2/FMA/F16C inner loops of attention. Called only after cpu::active_isa() reported AVX2.
#include <immintrin.h>

#include <cstdint>

namespace fkv::cpu::avx2 {

namespace {
float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
float f16_scalar(uint16_t h) { return _cvtsh_ss(h); }
}  // namespace

float dot_f16(const uint16_t* k, const float* q, int n) {
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i)));
    const __m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i + 8)));
    acc0 = _mm256_fmadd_ps(k0, _mm256_loadu_ps(q + i), acc0);
    acc1 = _mm256_fmadd_ps(k1, _mm256_loadu_ps(q + i + 8), acc1);
  }
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += f16_scalar(k[i]) * q[i];
  return s;
}

void axpy_f16(float a, const uint16_t* v, float* y, int n) {
  const __m256 va = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, x, _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * f16_scalar(v[i]);
}

float dot_f32(const float* k, const float* q, int n) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(k + i), _mm256_loadu_ps(q + i), acc);
  float s = hsum(acc);
  for (; i < n; ++i) s += k[i] * q[i];
  return s;
}

void axpy_f32(float a, const float* v, float* y, int n) {
  const __m256 va = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(v + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * v[i];
}

}  // namespace fkv::cpu::avx2
