// The tiled kernels with AVX-512 VNNI, on activations interleaved across 16 tokens (GroupQ8_K for Q4_K and Q6_K
// weights, GroupQ8_0 for Q4_0, Q5_0 and Q8_0).
// Vector lanes are tokens: one 512-bit load of a group holds the same 4 codes of each of 16 tokens, and a weight's 4
// unpacked codes, broadcast, meet all of them in one vpdpbusd. That takes 1 instruction per 64 multiply-adds where
// the AVX2 kernel needs maddubs, madd and add per 32, and leaves no horizontal sums: a row's lanes are its outputs.
// Each broadcast is a load, and so is each group vector, shared by the rows of a pass: loads, not the dots, bound
// the loop, so the 512-bit width (half the loads of 256-bit per multiply-add) is what pays.
// The integer sums are exact, as in the AVX2 kernels; only the float accumulation differs from the reference.
// Built with -mavx512f -mavx512vl -mavx512bw -mavx512vnni on top of the AVX2 flags; quant.cpp calls in only after
// its runtime check (vnni_active).
// GCC 12's 512-bit intrinsic headers start some results from _mm512_undefined, which -Wmaybe-uninitialized reports
// as a use before set at -O3; the values are fully written.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/quant_impl.h"
#include "backend/cpu/unpack_q32.h"

namespace fkv::cpu::vnni {

namespace {

__m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
void store256(void* p, __m256i v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
__m512i load512(const void* p) { return _mm512_loadu_si512(p); }

// The 4 bytes at p, in every lane.
__m512i broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Keeps v in a register: the compiler would otherwise fold its load into every instruction that reads it.
__m512i in_register(__m512i v) {
  asm("" : "+v"(v));
  return v;
}

// v[i] lane j <- v[j] lane i, for 8 vectors of 8 int32.
void transpose8x8_epi32(__m256i* v) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(v[i], v[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(v[i], v[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
    v[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
  }
}

// A row's outputs (lanes = the group's tokens) into y, the tokens that exist.
void store_outputs(__m512 acc, const TileArgs& a, int64_t r) {
  alignas(64) float out[kGroupTokens];
  _mm512_store_ps(out, acc);
  for (int t = 0; t < a.n_tok; ++t) a.y[t * a.ldy + r] = out[t];
}

// Rows NR at a time (each pass shares its group loads among them), then one at a time.
template <int NR, void (*Rows)(const TileArgs&, int64_t), void (*Row)(const TileArgs&, int64_t)>
void by_rows(const TileArgs& a) {
  int64_t r = 0;
  for (; r + NR <= a.n_rows; r += NR) Rows(a, r);
  for (; r < a.n_rows; ++r) Row(a, r);
}

// ---- Q4_0, Q5_0, Q8_0: x = d * (code - offset) per block of 32 ----

// Q8_0's signed weights as codes: w + 128, so the dots' unsigned operand holds them.
struct CodesQ8_0 {
  static constexpr size_t kBytes = sizeof(BlockQ8_0);
  static constexpr int kOffsetShift = 7;  // offset 128
  static __m256i codes(const uint8_t* b) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)), _mm256_set1_epi8(-128));
  }
};

template <class U, int NR>
void rows_q32(const TileArgs& a, int64_t r) {
  const auto* xg = reinterpret_cast<const GroupQ8_0*>(a.xi);
  const uint8_t* wr[NR];
  for (int i = 0; i < NR; ++i) wr[i] = a.w + (r + i) * a.w_stride;
  __m512 acc[NR];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (int64_t b = 0; b < a.n / kQ32; ++b) {
    alignas(32) uint8_t codes[NR][kQ32];
    float dw[NR];
    for (int i = 0; i < NR; ++i) {
      const uint8_t* wb = wr[i] + b * U::kBytes;
      store256(codes[i], U::codes(wb));
      uint16_t h;
      std::memcpy(&h, wb, 2);
      dw[i] = _cvtsh_ss(h);
    }
    asm volatile("" ::: "memory");  // broadcasts from memory, as in rows_q4_k
    const GroupQ8_0& g = xg[b];
    __m512i s[NR];
    for (auto& v : s) v = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m512i x = in_register(load512(g.qs[k]));
      for (int i = 0; i < NR; ++i) s[i] = _mm512_dpbusd_epi32(s[i], broadcast4(codes[i] + 4 * k), x);
    }
    // offset * sum(x_t) per token, shared by the rows
    const __m512i off = _mm512_slli_epi32(load512(g.sum), U::kOffsetShift);
    const __m512 xd = _mm512_loadu_ps(g.d);
    for (int i = 0; i < NR; ++i) {
      const __m512 d = _mm512_mul_ps(_mm512_set1_ps(dw[i]), xd);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s[i], off)), d, acc[i]);
    }
  }
  for (int i = 0; i < NR; ++i) store_outputs(acc[i], a, r + i);
}

template <class U>
void tile_q32(const TileArgs& a) {
  by_rows<4, rows_q32<U, 4>, rows_q32<U, 1>>(a);
}

// ---- K-quants ----

// s[i][j]: row i's codes against the group's over span j, the 4K elements from first + width * j, for j < 8 (a
// scale each). One accumulator per row and span, so the scale applies after, and the independent chains hide
// vpdpbusd's latency; each group line loaded serves the NR rows.
template <int NR, int K>
void dot_spans(__m512i (&s)[NR][8], const uint8_t (&codes)[NR][kQK], const int8_t (*qs)[kGroupTokens][4], int first,
               int width) {
  for (auto& row : s)
    for (auto& v : row) v = _mm512_setzero_si512();
#pragma GCC unroll 8
  for (int k = 0; k < K; ++k) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const int e = first + width * j + 4 * k;
      const __m512i x = in_register(load512(qs[e / 4]));
      for (int i = 0; i < NR; ++i) s[i][j] = _mm512_dpbusd_epi32(s[i][j], broadcast4(codes[i] + e), x);
    }
  }
}

// ---- Q4_K: x = d * sc * q - dmin * m per sub-block of 32 ----

// Rows r..r+NR-1: each load of the group's codes serves NR rows (two loads per vpdpbusd would bound it otherwise).
template <int NR>
void rows_q4_k(const TileArgs& a, int64_t r) {
  const auto* xg = reinterpret_cast<const GroupQ8_K*>(a.xi);
  const __m256i m4 = _mm256_set1_epi8(0xF);
  const BlockQ4_K* wb[NR];
  for (int i = 0; i < NR; ++i) wb[i] = reinterpret_cast<const BlockQ4_K*>(a.w + (r + i) * a.w_stride);
  __m512 acc[NR];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (int64_t b = 0; b < a.n / kQK; ++b) {
    // The codes, unpacked once into element order; each 4 of them are broadcast below.
    alignas(32) uint8_t codes[NR][kQK];
    uint8_t sc[NR][8], m[NR][8];
    for (int i = 0; i < NR; ++i) {
      for (int c = 0; c < 4; ++c) {
        const __m256i q = load256(wb[i][b].qs + 32 * c);
        store256(codes[i] + 64 * c, _mm256_and_si256(q, m4));
        store256(codes[i] + 64 * c + 32, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
      }
      unpack_k_scales(wb[i][b].scales, sc[i], m[i]);
    }
    // Read the codes back from memory: a broadcast from memory costs a load, one from a register a shuffle, and the
    // shuffle port is what the dots would wait on.
    asm volatile("" ::: "memory");
    const GroupQ8_K& g = xg[b];
    __m512i s[NR][8];  // per sub-block of 32
    dot_spans<NR, 8>(s, codes, g.qs, 0, 32);
    const __m512 xd = _mm512_loadu_ps(g.d);
    for (int i = 0; i < NR; ++i) {
      __m512i sumi = _mm512_setzero_si512(), summ = _mm512_setzero_si512();
      for (int j = 0; j < 8; ++j) {
        sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(s[i][j], _mm512_set1_epi32(sc[i][j])));
        // m[j] * (bsums[2j] + bsums[2j+1]) per token: each int16 pair against (m, m)
        summ = _mm512_add_epi32(summ, _mm512_madd_epi16(load512(g.bsums[j]), _mm512_set1_epi32(m[i][j] * 0x10001)));
      }
      const __m512 d = _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(wb[i][b].d)), xd);
      const __m512 dmin = _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(wb[i][b].dmin)), xd);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), d, acc[i]);
      acc[i] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(summ), dmin, acc[i]);
    }
  }
  for (int i = 0; i < NR; ++i) store_outputs(acc[i], a, r + i);
}


void tile_q4_k(const TileArgs& a) { by_rows<2, rows_q4_k<2>, rows_q4_k<1>>(a); }

// ---- Q6_K: x = d * sc * (q - 32) per group of 16 ----

template <int NR>
void rows_q6_k(const TileArgs& a, int64_t r) {
  const auto* xg = reinterpret_cast<const GroupQ8_K*>(a.xi);
  const BlockQ6_K* wb[NR];
  for (int i = 0; i < NR; ++i) wb[i] = reinterpret_cast<const BlockQ6_K*>(a.w + (r + i) * a.w_stride);
  __m512 acc[NR];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (int64_t b = 0; b < a.n / kQK; ++b) {
    alignas(32) uint8_t codes[NR][kQK];  // 0..63, element order
    for (int i = 0; i < NR; ++i) {
      for (int n = 0; n < 2; ++n) {
        __m256i q[4];
        q32::q6_k_codes(wb[i][b], n, q);
        for (int k = 0; k < 4; ++k) store256(codes[i] + 128 * n + 32 * k, q[k]);
      }
    }
    asm volatile("" ::: "memory");  // broadcasts from memory, as in rows_q4_k
    const GroupQ8_K& g = xg[b];
    // Groups of 16 elements (4 broadcasts each) in two halves, so the accumulators of NR rows fit the registers.
    __m512i sumi[NR];
    for (auto& v : sumi) v = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      __m512i s[NR][8];  // per group of 16
      dot_spans<NR, 4>(s, codes, g.qs, 128 * h, 16);
      for (int i = 0; i < NR; ++i) {
        for (int j = 0; j < 8; ++j) {
          const __m512i sc = _mm512_set1_epi32(wb[i][b].scales[8 * h + j]);
          sumi[i] = _mm512_add_epi32(sumi[i], _mm512_mullo_epi32(s[i][j], sc));
        }
      }
    }
    const __m512 xd = _mm512_loadu_ps(g.d);
    for (int i = 0; i < NR; ++i) {
      const int8_t* sc = wb[i][b].scales;
      // The codes carry +32: subtract 32 * sum_j sc[j] * bsums[j] per token (each int16 pair against its scales).
      __m512i bias = _mm512_setzero_si512();
      for (int p = 0; p < 8; ++p) {
        const int32_t pair = static_cast<uint16_t>(sc[2 * p]) | (static_cast<int32_t>(sc[2 * p + 1]) << 16);
        bias = _mm512_add_epi32(bias, _mm512_madd_epi16(load512(g.bsums[p]), _mm512_set1_epi32(pair)));
      }
      const __m512i dot = _mm512_sub_epi32(sumi[i], _mm512_slli_epi32(bias, 5));
      const __m512 d = _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(wb[i][b].d)), xd);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), d, acc[i]);
    }
  }
  for (int i = 0; i < NR; ++i) store_outputs(acc[i], a, r + i);
}


void tile_q6_k(const TileArgs& a) { by_rows<2, rows_q6_k<2>, rows_q6_k<1>>(a); }

}  // namespace

TileFn tile_lanes_fn(DType t) {
  switch (t) {
    case DType::Q4_0:
      return tile_q32<q32::UnpackQ4_0>;
    case DType::Q5_0:
      return tile_q32<q32::UnpackQ5_0>;
    case DType::Q8_0:
      return tile_q32<CodesQ8_0>;
    case DType::Q4_K:
      return tile_q4_k;
    case DType::Q6_K:
      return tile_q6_k;
    default:
      return nullptr;
  }
}

void interleave_q8_k(const uint8_t* x, size_t x_stride, int n_tok, int64_t n, GroupQ8_K* out) {
  const BlockQ8_K* xt[kGroupTokens];
  for (int t = 0; t < kGroupTokens; ++t)
    xt[t] = reinterpret_cast<const BlockQ8_K*>(x + std::min(t, n_tok - 1) * x_stride);
  for (int64_t b = 0; b < n / kQK; ++b) {
    GroupQ8_K& g = out[b];
    for (int t0 = 0; t0 < kGroupTokens; t0 += 8) {  // 8 tokens at a time: an 8x8 transpose of 4-byte groups
      __m256i v[8];
      for (int c = 0; c < kQK / 32; ++c) {  // 32 codes of each token: 8 groups of 4
        for (int t = 0; t < 8; ++t) v[t] = load256(xt[t0 + t][b].qs + 32 * c);
        transpose8x8_epi32(v);
        for (int k = 0; k < 8; ++k) store256(g.qs[8 * c + k][t0], v[k]);
      }
      for (int t = 0; t < 8; ++t) v[t] = load256(xt[t0 + t][b].bsums);  // 8 int16 pairs each
      transpose8x8_epi32(v);
      for (int p = 0; p < 8; ++p) store256(g.bsums[p][t0], v[p]);
    }
    for (int t = 0; t < kGroupTokens; ++t) g.d[t] = xt[t][b].d;
  }
}

void interleave_q8_0(const uint8_t* x, size_t x_stride, int n_tok, int64_t n, GroupQ8_0* out) {
  const BlockQ8_0* xt[kGroupTokens];
  for (int t = 0; t < kGroupTokens; ++t)
    xt[t] = reinterpret_cast<const BlockQ8_0*>(x + std::min(t, n_tok - 1) * x_stride);
  const __m256i ones = _mm256_set1_epi8(1);
  for (int64_t b = 0; b < n / kQ32; ++b) {
    GroupQ8_0& g = out[b];
    for (int t0 = 0; t0 < kGroupTokens; t0 += 8) {
      __m256i v[8];
      for (int t = 0; t < 8; ++t) v[t] = load256(xt[t0 + t][b].qs);
      transpose8x8_epi32(v);
      __m256i sum = _mm256_setzero_si256();
      for (int k = 0; k < 8; ++k) {
        store256(g.qs[k][t0], v[k]);
        sum = _mm256_dpbusd_epi32(sum, ones, v[k]);
      }
      store256(g.sum + t0, sum);
    }
    for (int t = 0; t < kGroupTokens; ++t) g.d[t] = _cvtsh_ss(xt[t][b].d);
  }
}

}  // namespace fkv::cpu::vnni
