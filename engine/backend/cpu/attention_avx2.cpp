// AVX2/FMA/F16C inner loops of attention. Called only after cpu::active_isa() reported AVX2.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "backend/cpu/avx2_util.h"

namespace fkv::cpu::avx2 {

namespace {

// exp(x) for x <= 0 to about 2e-7 relative: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 Taylor polynomial,
// 2^n built in the exponent bits. Inputs below -87 are clamped (their weight, ~1e-38, is negligible next to the max's 1).
__m256 exp_ps(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 split in two for an exact first step
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 720.f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
}  // namespace

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

// s[g * ld + j] = scale * q_g . k_j for every head g of the group and key j of the block; k: (nb, hd) floats.
void score_block(const float* q, int n_q, const float* k, int nb, int hd, float scale, float* s, int ld) {
  for (int j = 0; j < nb; ++j) {
    const float* kj = k + static_cast<size_t>(j) * hd;
    int g = 0;
    for (; g + 4 <= n_q; g += 4) {  // four heads share each loaded key vector
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
      const float* q0 = q + static_cast<size_t>(g) * hd;
      int d = 0;
      for (; d + 8 <= hd; d += 8) {
        const __m256 kv = _mm256_loadu_ps(kj + d);
        a0 = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q0 + d), a0);
        a1 = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q0 + hd + d), a1);
        a2 = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q0 + 2 * hd + d), a2);
        a3 = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q0 + 3 * hd + d), a3);
      }
      float r[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
      for (; d < hd; ++d)
        for (int i = 0; i < 4; ++i) r[i] += kj[d] * q0[i * hd + d];
      for (int i = 0; i < 4; ++i) s[(g + i) * ld + j] = r[i] * scale;
    }
    for (; g < n_q; ++g) s[g * ld + j] = dot_f32(kj, q + static_cast<size_t>(g) * hd, hd) * scale;
  }
}

namespace {

// Rows r..r+R-1 against keys j..j+8V-1 (kt columns; the keys from nb on are computed and dropped): R x V accumulators
// in registers, each step over d loads V key vectors and broadcasts R query elements, with no horizontal sums.
template <int R, int V>
void score_tile(const float* q, int r, const float* kt, int j, int nb, int hd, __m256 vs, float* s, int ld) {
  constexpr int kLd = 64;
  // Unrolled explicitly: left to itself GCC kept the accumulators on the stack, a store and a load per FMA.
  __m256 a[R][V];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) a[i][v] = _mm256_setzero_ps();
  const float* q0 = q + static_cast<size_t>(r) * hd;
  for (int d = 0; d < hd; ++d) {
    __m256 k[V];
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) k[v] = _mm256_loadu_ps(kt + d * kLd + j + 8 * v);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m256 b = _mm256_broadcast_ss(q0 + i * hd + d);
#pragma GCC unroll 2
      for (int v = 0; v < V; ++v) a[i][v] = _mm256_fmadd_ps(b, k[v], a[i][v]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
    float* si = s + (r + i) * ld + j;
    if (j + 8 * V <= nb) {
#pragma GCC unroll 2
      for (int v = 0; v < V; ++v) _mm256_storeu_ps(si + 8 * v, _mm256_mul_ps(a[i][v], vs));
      continue;
    }
    alignas(32) float tmp[8 * V];
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) _mm256_store_ps(tmp + 8 * v, _mm256_mul_ps(a[i][v], vs));
    for (int c = 0; c < 8 * V && j + c < nb; ++c) si[c] = tmp[c];
  }
}

// Every row against keys j.. in tiles of R rows: R x V accumulators, the rest of the rows one at a time.
template <int R, int V>
void score_columns(const float* q, int n_rows, const float* kt, int j, int nb, int hd, __m256 vs, float* s, int ld) {
  int r = 0;
  for (; r + R <= n_rows; r += R) score_tile<R, V>(q, r, kt, j, nb, hd, vs, s, ld);
  for (; r < n_rows; ++r) score_tile<1, V>(q, r, kt, j, nb, hd, vs, s, ld);
}

}  // namespace

// s[r * ld + j] = scale * q_r . k_j for n_rows query rows against nb <= 64 keys, the keys transposed: kt (hd, 64)
// holds key j in column j; columns past nb (up to the next multiple of 16) are scored too and dropped. Four rows
// by sixteen keys at a time (measured no faster: three rows by a page's 32 keys).
void score_rows_t(const float* q, int n_rows, const float* kt, int nb, int hd, float scale, float* s, int ld) {
  const __m256 vs = _mm256_set1_ps(scale);
  for (int j = 0; j < nb; j += 16) score_columns<4, 2>(q, n_rows, kt, j, nb, hd, vs, s, ld);
}

// kt[d * 64 + i] = k[i * hd + d] for nb keys (rows of k) of hd floats: 8 x 8 tiles through registers, the edges
// one element at a time.
void transpose_keys(const float* k, int nb, int hd, float* kt) {
  constexpr int kLd = 64;
  const int nb8 = nb / 8 * 8, hd8 = hd / 8 * 8;
  for (int i0 = 0; i0 < nb8; i0 += 8) {
    for (int d0 = 0; d0 < hd8; d0 += 8) {
      __m256 r[8], t[8], u[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(k + static_cast<size_t>(i0 + i) * hd + d0);
      for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
      }
      for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
      }
      for (int m = 0; m < 4; ++m) {
        _mm256_storeu_ps(kt + (d0 + m) * kLd + i0, _mm256_permute2f128_ps(u[m], u[m + 4], 0x20));
        _mm256_storeu_ps(kt + (d0 + m + 4) * kLd + i0, _mm256_permute2f128_ps(u[m], u[m + 4], 0x31));
      }
    }
    for (int d = hd8; d < hd; ++d)
      for (int i = i0; i < i0 + 8; ++i) kt[d * kLd + i] = k[static_cast<size_t>(i) * hd + d];
  }
  for (int i = nb8; i < nb; ++i)
    for (int d = 0; d < hd; ++d) kt[d * kLd + i] = k[static_cast<size_t>(i) * hd + d];
}

namespace {

// R heads from g: acc_g += sum_j w[g * ld + j] v_j, each loaded value vector shared by the R heads.
template <int R>
void accumulate_rows(const float* w, int ld, int g, const float* v, int nb, int hd, float* acc) {
  float* ap[R];
  const float* wp[R];
  for (int r = 0; r < R; ++r) {
    ap[r] = acc + static_cast<size_t>(g + r) * hd;
    wp[r] = w + (g + r) * ld;
  }
  int d = 0;
  for (; d + 32 <= hd; d += 32) {
    __m256 a[R][4];
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < 4; ++i) a[r][i] = _mm256_loadu_ps(ap[r] + d + 8 * i);
    for (int j = 0; j < nb; ++j) {
      __m256 b[R];
      for (int r = 0; r < R; ++r) b[r] = _mm256_set1_ps(wp[r][j]);
      const float* vj = v + static_cast<size_t>(j) * hd + d;
      for (int i = 0; i < 4; ++i) {
        const __m256 x = _mm256_loadu_ps(vj + 8 * i);
        for (int r = 0; r < R; ++r) a[r][i] = _mm256_fmadd_ps(b[r], x, a[r][i]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < 4; ++i) _mm256_storeu_ps(ap[r] + d + 8 * i, a[r][i]);
  }
  for (int j = 0; j < nb && d < hd; ++j)
    for (int r = 0; r < R; ++r) axpy_f32(wp[r][j], v + static_cast<size_t>(j) * hd + d, ap[r] + d, hd - d);
}

}  // namespace

// acc_g += sum_j w[g * ld + j] v_j for every head g; v: (nb, hd) floats. Two heads at a time share each loaded value
// vector; accumulators stay in registers across keys. Each accumulator sees the same FMAs in the same order as it
// would alone.
void accumulate_block(const float* w, int ld, int n_q, const float* v, int nb, int hd, float* acc) {
  int g = 0;
  for (; g + 2 <= n_q; g += 2) accumulate_rows<2>(w, ld, g, v, nb, hd, acc);
  if (g < n_q) accumulate_rows<1>(w, ld, g, v, nb, hd, acc);
}

float exp_sub_max(float* x, int n, float mx) {
  const __m256 vm = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = hsum(acc);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  return sum;
}

}  // namespace fkv::cpu::avx2
