// The weight blocks of Q4_0, Q5_0 and Q8_0 as 32 int8 values in a 256-bit register, for the kernels of tile_q32.h
// and quant_lanes_vnni.cpp; and Q6_K's codes, for quant_k_avx2.cpp and quant_lanes_vnni.cpp. Internal linkage
// throughout, as in tile_q32.h: the files that include it are built for different instruction sets. Include it only
// from files built with at least -mavx2 -mfma -mf16c.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "backend/cpu/quant_impl.h"

namespace fkv::cpu::q32 {
namespace {  // NOLINT(google-build-namespaces): see the note above

// An unpacker turns a weight block into 32 int8 values: load() the signed weights; for the offset formats also
// codes(), the stored unsigned codes (w = code - offset, offset 1 << kOffsetShift).
struct UnpackQ8_0 {
  static constexpr size_t kBytes = sizeof(BlockQ8_0);
  static constexpr int kOffsetShift = 0;  // signed as stored
  static __m256i load(const uint8_t* b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)); }
};
// Q4_0 and Q5_0 store unsigned codes with a fixed offset (w = code - offset). The tiled kernel multiplies the
// codes themselves (the int8 dots want one unsigned operand, and code * x stays inside int16: 31 * 127 * 2 < 32767)
// and subtracts offset * sum(x) once per block and token, instead of re-signing every lane.
struct UnpackQ4_0 {
  static constexpr size_t kBytes = sizeof(BlockQ4_0);
  static constexpr int kOffsetShift = 3;  // offset 8
  static __m256i codes(const uint8_t* b) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0xF));
  }
  static __m256i load(const uint8_t* b) { return _mm256_sub_epi8(codes(b), _mm256_set1_epi8(8)); }
};
struct UnpackQ5_0 {
  static constexpr size_t kBytes = sizeof(BlockQ5_0);
  static constexpr int kOffsetShift = 4;  // offset 16
  static __m256i codes(const uint8_t* b) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 6));
    const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0xF));
    int32_t qh;
    std::memcpy(&qh, b + 2, 4);
    // Byte j gets qh byte j/8, then keeps bit j%8: a 0xFF mask where element j has its fifth bit.
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(qh), _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
    const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201));
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_or_si256(nib, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
  }
  static __m256i load(const uint8_t* b) { return _mm256_sub_epi8(codes(b), _mm256_set1_epi8(16)); }
};

// Q6_K's codes 0..63 of elements 128n + [0,32), [32,64), [64,96), [96,128) (n = 0, 1): low nibble | two high
// bits << 4. Inline: not every file that includes this header calls it.
inline void q6_k_codes(const BlockQ6_K& b, int n, __m256i* q) {
  const __m256i m4 = _mm256_set1_epi8(0xF);
  const __m256i m3 = _mm256_set1_epi8(0x30);
  const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * n));
  const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * n + 32));
  const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * n));
  q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m3));
  q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m3));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m3));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), m3));
}

}  // namespace
}  // namespace fkv::cpu::q32
