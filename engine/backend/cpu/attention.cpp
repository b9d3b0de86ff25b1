// Page-blocked attention: scores for a whole page first, then one rescale of the accumulator per page.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"

namespace fkv::cpu {

namespace avx2 {
float dot_f16(const uint16_t* k, const float* q, int n);
void axpy_f16(float a, const uint16_t* v, float* y, int n);
float dot_f32(const float* k, const float* q, int n);
void axpy_f32(float a, const float* v, float* y, int n);
}  // namespace avx2

namespace {

using DotFn = float (*)(const uint8_t* row, const float* q, int n);
using AxpyFn = void (*)(float a, const uint8_t* row, float* y, int n);

float dot_scalar_f32(const uint8_t* row, const float* q, int n) {
  const auto* k = reinterpret_cast<const float*>(row);
  float s = 0.f;
  for (int i = 0; i < n; ++i) s += k[i] * q[i];
  return s;
}
void axpy_scalar_f32(float a, const uint8_t* row, float* y, int n) {
  const auto* v = reinterpret_cast<const float*>(row);
  for (int i = 0; i < n; ++i) y[i] += a * v[i];
}
template <float (*Cvt)(uint16_t)>
float dot_scalar_16(const uint8_t* row, const float* q, int n) {
  const auto* k = reinterpret_cast<const uint16_t*>(row);
  float s = 0.f;
  for (int i = 0; i < n; ++i) s += Cvt(k[i]) * q[i];
  return s;
}
template <float (*Cvt)(uint16_t)>
void axpy_scalar_16(float a, const uint8_t* row, float* y, int n) {
  const auto* v = reinterpret_cast<const uint16_t*>(row);
  for (int i = 0; i < n; ++i) y[i] += a * Cvt(v[i]);
}
float dot_avx2_f16(const uint8_t* row, const float* q, int n) {
  return avx2::dot_f16(reinterpret_cast<const uint16_t*>(row), q, n);
}
void axpy_avx2_f16(float a, const uint8_t* row, float* y, int n) {
  avx2::axpy_f16(a, reinterpret_cast<const uint16_t*>(row), y, n);
}
float dot_avx2_f32(const uint8_t* row, const float* q, int n) {
  return avx2::dot_f32(reinterpret_cast<const float*>(row), q, n);
}
void axpy_avx2_f32(float a, const uint8_t* row, float* y, int n) {
  avx2::axpy_f32(a, reinterpret_cast<const float*>(row), y, n);
}

void pick(DType kv, DotFn& dot, AxpyFn& axpy) {
  const bool fast = active_isa() == Isa::Avx2;
  switch (kv) {
    case DType::F32:
      dot = fast ? dot_avx2_f32 : dot_scalar_f32;
      axpy = fast ? axpy_avx2_f32 : axpy_scalar_f32;
      break;
    case DType::F16:
      dot = fast ? dot_avx2_f16 : dot_scalar_16<f16_to_f32>;
      axpy = fast ? axpy_avx2_f16 : axpy_scalar_16<f16_to_f32>;
      break;
    default:
      dot = dot_scalar_16<bf16_to_f32>;
      axpy = axpy_scalar_16<bf16_to_f32>;
  }
}

constexpr int kMaxPage = 4096;  // KvGeometry::validate bounds the page size

}  // namespace

void attend(const float* q, const AttnPage* pages, int n_pages, DType kv, int head_dim, float scale, int lo, int hi,
            float* out) {
  DotFn dot = nullptr;
  AxpyFn axpy = nullptr;
  pick(kv, dot, axpy);
  const size_t row = static_cast<size_t>(head_dim) * (kv == DType::F32 ? 4 : 2);
  float s[kMaxPage];  // scores of one page
  float m = -std::numeric_limits<float>::infinity();
  float l = 0.f;
  std::fill(out, out + head_dim, 0.f);
  for (int p = 0; p < n_pages; ++p) {
    const AttnPage& pg = pages[p];
    const int j0 = std::max(0, lo - pg.pos0);
    const int j1 = std::min(pg.len, hi - pg.pos0 + 1);
    if (j0 >= j1) continue;
    float m_page = -std::numeric_limits<float>::infinity();
    for (int j = j0; j < j1; ++j) {
      s[j] = dot(pg.k + j * row, q, head_dim) * scale;
      m_page = std::max(m_page, s[j]);
    }
    const float m_new = std::max(m, m_page);
    const float corr = std::exp(m - m_new);  // rescales what was accumulated under the old maximum
    if (corr != 1.f)
      for (int d = 0; d < head_dim; ++d) out[d] *= corr;
    l *= corr;
    for (int j = j0; j < j1; ++j) {
      const float e = std::exp(s[j] - m_new);
      l += e;
      axpy(e, pg.v + j * row, out, head_dim);
    }
    m = m_new;
  }
  if (l > 0.f) {
    const float inv = 1.f / l;
    for (int d = 0; d < head_dim; ++d) out[d] *= inv;
  }
}

}  // namespace fkv::cpu
