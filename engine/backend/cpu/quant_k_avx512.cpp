// The one-token dots of Q4_K and Q6_K weights against Q8_K activations with 512-bit vectors: the decode matmul.
// Decode reads each weight once per token, and on these cores the AVX2 dot spends more instructions per byte than
// memory allows for: one core runs out of instructions before memory runs out of bandwidth. These kernels cover a
// 64-code span per instruction and unpack the packed 6-bit scales with a few 32-bit operations instead of a byte
// loop, so the same row takes about half the instructions.
// Spans are laid out so that a 512-bit load of the activations is contiguous: a Q4_K chunk of 32 bytes, broadcast to
// both halves and shifted by 0 and 4 bits, is its two sub-blocks' 64 codes in element order; a Q6_K half-block's 64
// low-nibble bytes are elements 0..63 of the half and its high nibbles 64..127, with the 2 high bits of each taken
// from the same 32 qh bytes at a per-quarter shift.
// The integer sums are exact and equal the reference's; only the float accumulation differs.
// Built with the AVX2 flags and AVX-512 F, VL, BW (the *_avx512.cpp rule in engine/CMakeLists.txt); quant.cpp calls
// in only after its runtime check (vnni_active).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12: see quant_lanes_vnni.cpp
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/avx2_util.h"
#include "backend/cpu/quant_impl.h"

namespace fkv::cpu::vnni {

namespace {

__m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
__m512i load512(const void* p) { return _mm512_loadu_si512(p); }
__m512i broadcast256(const void* p) { return _mm512_broadcast_i64x4(load256(p)); }

// The sum of the two 256-bit halves.
__m256i fold(__m512i v) { return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)); }

// Q4_K's 8 scales and 8 mins, 6 bits each in 12 bytes, as 16 int16 [sc0..sc7 | m0..m7]. Bytes 0-3 hold sc0-3 in
// their low 6 bits, 4-7 m0-3; bytes 8-11 hold the low 4 bits of sc4-7 (low nibble) and m4-7 (high nibble), whose
// top 2 bits sit in bits 6-7 of bytes 0-3 (sc) and 4-7 (m).
__m256i k_scales_mins(const uint8_t* s) {
  uint32_t u[3];
  std::memcpy(u, s, sizeof(u));
  const uint32_t sc_lo = u[0] & 0x3F3F3F3Fu, m_lo = u[1] & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (u[2] & 0x0F0F0F0Fu) | ((u[0] >> 2) & 0x30303030u);
  const uint32_t m_hi = ((u[2] >> 4) & 0x0F0F0F0Fu) | ((u[1] >> 2) & 0x30303030u);
  return _mm256_cvtepu8_epi16(_mm_setr_epi32(static_cast<int>(sc_lo), static_cast<int>(sc_hi),
                                             static_cast<int>(m_lo), static_cast<int>(m_hi)));
}

// Lane index vectors for vpermw: int16 lane i of the result takes lane idx[i] of the source.
template <class F>
__m512i index16(F f) {
  alignas(64) int16_t idx[32];
  for (int i = 0; i < 32; ++i) idx[i] = static_cast<int16_t>(f(i));
  return _mm512_load_si512(idx);
}

}  // namespace

float dot_q4_k(const void* w, const void* x, int64_t n) {
  const auto* wb = static_cast<const BlockQ4_K*>(w);
  const auto* xb = static_cast<const BlockQ8_K*>(x);
  // Chunk c's codes: sub-block 2c (low nibbles) in the low half, 2c+1 (high nibbles) in the high half.
  const __m512i shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
  const __m512i m4 = _mm512_set1_epi8(0xF);
  static const __m512i kScaleIdx[4] = {index16([](int i) { return 0 + i / 16; }),
                                       index16([](int i) { return 2 + i / 16; }),
                                       index16([](int i) { return 4 + i / 16; }),
                                       index16([](int i) { return 6 + i / 16; })};
  // Each min repeated for the two 16-element sums of its sub-block.
  static const __m512i kMinIdx = index16([](int i) { return 8 + (i % 16) / 2; });
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m512i sm = _mm512_castsi256_si512(k_scales_mins(wb[b].scales));
    __m512i s = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      const __m512i q = _mm512_and_si512(_mm512_srlv_epi64(broadcast256(wb[b].qs + 32 * c), shift), m4);
      const __m512i p = _mm512_maddubs_epi16(q, load512(xb[b].qs + 64 * c));
      s = _mm512_add_epi32(s, _mm512_madd_epi16(p, _mm512_permutexvar_epi16(kScaleIdx[c], sm)));
    }
    const __m256i mins = _mm512_castsi512_si256(_mm512_permutexvar_epi16(kMinIdx, sm));
    const __m256i mm = _mm256_madd_epi16(load256(xb[b].bsums), mins);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(wb[b].d)), dmin = _mm256_set1_ps(_cvtsh_ss(wb[b].dmin));
    const __m256 v = _mm256_fmsub_ps(_mm256_cvtepi32_ps(fold(s)), d, _mm256_mul_ps(_mm256_cvtepi32_ps(mm), dmin));
    acc = _mm256_fmadd_ps(v, _mm256_set1_ps(xb[b].d), acc);
  }
  return avx2::hsum(acc);
}

float dot_q6_k(const void* w, const void* x, int64_t n) {
  const auto* wb = static_cast<const BlockQ6_K*>(w);
  const auto* xb = static_cast<const BlockQ8_K*>(x);
  // The 2 high bits of element l + 32j (j = 0..3) of a half are bits 2j, 2j+1 of qh[l]: moved to bits 4-5.
  const __m512i up_lo = _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2);    // quarters 0, 1: left by 4, 2
  const __m512i down_hi = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);  // quarters 2, 3: right by 0, 2
  const __m512i m4 = _mm512_set1_epi8(0xF), m3 = _mm512_set1_epi8(0x30);
  // Group k of 16 elements has scale k: lane i of a span's products is elements 2i, 2i+1 of it.
  static const __m512i kScaleIdx[4] = {index16([](int i) { return 0 + i / 8; }),
                                       index16([](int i) { return 4 + i / 8; }),
                                       index16([](int i) { return 8 + i / 8; }),
                                       index16([](int i) { return 12 + i / 8; })};
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[b].scales)));
    const __m512i sc = _mm512_castsi256_si512(sc16);
    __m512i s = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = load512(wb[b].ql + 64 * h);
      const __m512i qh = broadcast256(wb[b].qh + 32 * h);
      const __m512i lo = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi64(qh, up_lo), m3));
      const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                         _mm512_and_si512(_mm512_srlv_epi64(qh, down_hi), m3));
      const __m512i pl = _mm512_maddubs_epi16(lo, load512(xb[b].qs + 128 * h));
      const __m512i ph = _mm512_maddubs_epi16(hi, load512(xb[b].qs + 128 * h + 64));
      s = _mm512_add_epi32(s, _mm512_madd_epi16(pl, _mm512_permutexvar_epi16(kScaleIdx[2 * h], sc)));
      s = _mm512_add_epi32(s, _mm512_madd_epi16(ph, _mm512_permutexvar_epi16(kScaleIdx[2 * h + 1], sc)));
    }
    // The codes carry +32: subtract 32 * sum_k sc[k] * bsums[k] to get the signed dot exactly.
    const __m256i bias = _mm256_madd_epi16(load256(xb[b].bsums), sc16);
    const __m256i sumi = _mm256_sub_epi32(fold(s), _mm256_slli_epi32(bias, 5));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(_cvtsh_ss(wb[b].d) * xb[b].d), acc);
  }
  return avx2::hsum(acc);
}

VecDotFn vec_dot_fn(DType t) {
  switch (t) {
    case DType::Q4_K:
      return dot_q4_k;
    case DType::Q6_K:
      return dot_q6_k;
    default:
      return nullptr;
  }
}

}  // namespace fkv::cpu::vnni
