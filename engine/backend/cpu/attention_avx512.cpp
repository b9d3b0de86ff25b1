// AVX-512 inner loops of attention: the prefill scores and the value accumulation with 16-float registers and
// register tiles twice the AVX2 ones. The AVX2 tiles load a value or key vector for every 4 FMAs or fewer, and their
// loads, not the FMAs, bound them; here each load feeds 8. Built with -mavx512f -mavx512vl -mavx512bw on top of the
// AVX2 flags; attention.cpp calls in only where vnni_active() (whose check covers F, VL and BW).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace fkv::cpu::avx512 {

namespace {

constexpr int kLd = 64;  // kt's row: a block of keys

// The first n lanes (none for n <= 0: a tile's second vector may lie wholly past a short block).
__mmask16 first_lanes(int n) {
  if (n <= 0) return 0;
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// Rows r..r+R-1 against keys j..j+16V-1 (kt columns; those from nb on are computed and dropped): R x V
// accumulators, each step over d loads V key vectors and broadcasts R query elements.
template <int R, int V>
void score_tile(const float* q, int r, const float* kt, int j, int nb, int hd, __m512 vs, float* s, int ld) {
  __m512 a[R][V];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) a[i][v] = _mm512_setzero_ps();
  const float* q0 = q + static_cast<size_t>(r) * hd;
  for (int d = 0; d < hd; ++d) {
    __m512 k[V];
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) k[v] = _mm512_loadu_ps(kt + d * kLd + j + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m512 b = _mm512_set1_ps(q0[i * hd + d]);
#pragma GCC unroll 2
      for (int v = 0; v < V; ++v) a[i][v] = _mm512_fmadd_ps(b, k[v], a[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    float* si = s + (r + i) * ld + j;
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v)
      _mm512_mask_storeu_ps(si + 16 * v, first_lanes(nb - j - 16 * v), _mm512_mul_ps(a[i][v], vs));
  }
}

// R heads from g: acc_g[d0 .. d0 + 16C) += sum_j w[g * ld + j] v_j, each loaded value vector shared by the R heads.
// Full: all 16C lanes lie inside hd; else C is 1 and the lanes past hd are masked.
template <int R, int C, bool Full>
void accumulate_tile(const float* w, int ld, int g, const float* v, int nb, int hd, int d0, float* acc) {
  static_assert(Full || C == 1);
  const __mmask16 mask = Full ? static_cast<__mmask16>(0xFFFF) : first_lanes(hd - d0);
  const auto load = [mask](const float* p) { return Full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask, p); };
  __m512 a[R][C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) a[r][c] = load(acc + static_cast<size_t>(g + r) * hd + d0 + 16 * c);
  for (int j = 0; j < nb; ++j) {
    __m512 b[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) b[r] = _mm512_set1_ps(w[(g + r) * ld + j]);
    const float* vj = v + static_cast<size_t>(j) * hd + d0;
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      const __m512 x = load(vj + 16 * c);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) a[r][c] = _mm512_fmadd_ps(b[r], x, a[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    float* out = acc + static_cast<size_t>(g + r) * hd + d0;
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      if constexpr (Full) {
        _mm512_storeu_ps(out + 16 * c, a[r][c]);
      } else {
        _mm512_mask_storeu_ps(out, mask, a[r][c]);
      }
    }
  }
}

template <int R>
void accumulate_heads(const float* w, int ld, int g, const float* v, int nb, int hd, float* acc) {
  int d0 = 0;
  for (; d0 + 64 <= hd; d0 += 64) accumulate_tile<R, 4, true>(w, ld, g, v, nb, hd, d0, acc);
  for (; d0 < hd; d0 += 16) accumulate_tile<R, 1, false>(w, ld, g, v, nb, hd, d0, acc);
}

}  // namespace

void score_rows_t(const float* q, int n_rows, const float* kt, int nb, int hd, float scale, float* s, int ld) {
  const __m512 vs = _mm512_set1_ps(scale);
  for (int j = 0; j < nb; j += 32) {
    int r = 0;
    for (; r + 8 <= n_rows; r += 8) score_tile<8, 2>(q, r, kt, j, nb, hd, vs, s, ld);
    for (; r < n_rows; ++r) score_tile<1, 2>(q, r, kt, j, nb, hd, vs, s, ld);
  }
}

void accumulate_block(const float* w, int ld, int n_q, const float* v, int nb, int hd, float* acc) {
  int g = 0;
  for (; g + 4 <= n_q; g += 4) accumulate_heads<4>(w, ld, g, v, nb, hd, acc);
  for (; g < n_q; ++g) accumulate_heads<1>(w, ld, g, v, nb, hd, acc);
}

}  // namespace fkv::cpu::avx512
