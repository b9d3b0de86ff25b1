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

// s[r * ld + j] = scale * q_r . k_j for n_rows query rows against nb keys, the keys transposed: kt (hd, 64) holds key
// j in column j, zeros past nb up to a multiple of 16. Four rows by sixteen keys in registers: each step over d loads
// two key vectors and broadcasts four query elements for eight FMAs, with no horizontal sums.
void score_rows_t(const float* q, int n_rows, const float* kt, int nb, int hd, float scale, float* s, int ld) {
  constexpr int kLd = 64;
  const __m256 vs = _mm256_set1_ps(scale);
  for (int j = 0; j < nb; j += 16) {
    int r = 0;
    for (; r + 4 <= n_rows; r += 4) {
      __m256 a[4][2];
      for (auto& x : a) x[0] = x[1] = _mm256_setzero_ps();
      const float* q0 = q + static_cast<size_t>(r) * hd;
      for (int d = 0; d < hd; ++d) {
        const __m256 k0 = _mm256_loadu_ps(kt + d * kLd + j), k1 = _mm256_loadu_ps(kt + d * kLd + j + 8);
        for (int i = 0; i < 4; ++i) {
          const __m256 b = _mm256_broadcast_ss(q0 + i * hd + d);
          a[i][0] = _mm256_fmadd_ps(b, k0, a[i][0]);
          a[i][1] = _mm256_fmadd_ps(b, k1, a[i][1]);
        }
      }
      for (int i = 0; i < 4; ++i) {
        float* si = s + (r + i) * ld + j;
        alignas(32) float tmp[16];
        _mm256_store_ps(tmp, _mm256_mul_ps(a[i][0], vs));
        _mm256_store_ps(tmp + 8, _mm256_mul_ps(a[i][1], vs));
        for (int c = 0; c < 16 && j + c < nb; ++c) si[c] = tmp[c];
      }
    }
    for (; r < n_rows; ++r) {
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      const float* qr = q + static_cast<size_t>(r) * hd;
      for (int d = 0; d < hd; ++d) {
        const __m256 b = _mm256_broadcast_ss(qr + d);
        a0 = _mm256_fmadd_ps(b, _mm256_loadu_ps(kt + d * kLd + j), a0);
        a1 = _mm256_fmadd_ps(b, _mm256_loadu_ps(kt + d * kLd + j + 8), a1);
      }
      alignas(32) float tmp[16];
      _mm256_store_ps(tmp, _mm256_mul_ps(a0, vs));
      _mm256_store_ps(tmp + 8, _mm256_mul_ps(a1, vs));
      for (int c = 0; c < 16 && j + c < nb; ++c) s[r * ld + j + c] = tmp[c];
    }
  }
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
