// Helpers shared by the AVX2 kernels (*_avx2.cpp). Internal linkage, should a file built for AVX-512 ever include it:
// such a copy must never be the one an AVX2 file links to. Include it only from files built with at least -mavx2
// -mfma -mf16c.
#pragma once

#include <immintrin.h>

namespace fkv::cpu::avx2 {
namespace {  // NOLINT(google-build-namespaces): see the note above

// The sum of the 8 lanes of v.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace
}  // namespace fkv::cpu::avx2
