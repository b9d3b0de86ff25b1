// Page scores from 8-bit codes with AVX-512 VNNI (see ops.h). bound.cpp calls in only where vnni_active().
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/ops.h"

namespace fkv::cpu::vnni {

void code_scores(const int8_t* q, const uint8_t* blocks, int cols, int first, int n, float* out) {
  static_assert(kCodeBlockPages == 16, "one 512-bit lane of int32 sums per page of a block");
  const size_t block_bytes = static_cast<size_t>(cols) * kCodeBlockPages;
  const int quads = cols / 4;
  const int end = first + n;
  for (int b = first / kCodeBlockPages; b * kCodeBlockPages < end; ++b) {
    // A block's 16 pages at once: each step multiplies four codes of every page by the same four query bytes, so
    // the sums need no horizontal reduction.
    const uint8_t* blk = blocks + static_cast<size_t>(b) * block_bytes;
    __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
    int j = 0;
    for (; j + 2 <= quads; j += 2) {
      int32_t q0, q1;
      std::memcpy(&q0, q + 4 * j, 4);
      std::memcpy(&q1, q + 4 * j + 4, 4);
      acc0 = _mm512_dpbusd_epi32(acc0, _mm512_loadu_si512(blk + static_cast<size_t>(j) * 64), _mm512_set1_epi32(q0));
      acc1 =
          _mm512_dpbusd_epi32(acc1, _mm512_loadu_si512(blk + static_cast<size_t>(j + 1) * 64), _mm512_set1_epi32(q1));
    }
    if (j < quads) {
      int32_t q0;
      std::memcpy(&q0, q + 4 * j, 4);
      acc0 = _mm512_dpbusd_epi32(acc0, _mm512_loadu_si512(blk + static_cast<size_t>(j) * 64), _mm512_set1_epi32(q0));
    }
    // The masked form: GCC 12 warns on the plain one's undefined pass-through operand.
    const __m512 sums = _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_add_epi32(acc0, acc1));
    const int p0 = b * kCodeBlockPages;
    const int lo = std::max(first, p0) - p0;
    const int hi = std::min(end, p0 + kCodeBlockPages) - p0;
    if (lo == 0 && hi == kCodeBlockPages) {
      _mm512_storeu_ps(out + (p0 - first), sums);
    } else {
      alignas(64) float tmp[kCodeBlockPages];
      _mm512_store_ps(tmp, sums);
      for (int i = lo; i < hi; ++i) out[p0 + i - first] = tmp[i];
    }
  }
}

}  // namespace fkv::cpu::vnni
