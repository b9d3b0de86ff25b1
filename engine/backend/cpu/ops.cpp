#include "backend/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backend/cpu/quant.h"

namespace fkv::cpu {

void rms_norm(const float* x, const float* w, float* y, int n, float eps) {
  double ss = 0.0;
  for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float r = 1.f / std::sqrt(static_cast<float>(ss / n) + eps);
  for (int i = 0; i < n; ++i) y[i] = x[i] * r * w[i];
}

void silu_mul(const float* g, float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= g[i] / (1.f + std::exp(-g[i]));
}

void gelu_mul(const float* g, float* x, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = g[i];
    x[i] *= 0.5f * v * (1.f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

void rope_head(float* x, const float* cos_sin, int head_dim, bool neox) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const int a = neox ? i : 2 * i;
    const int b = neox ? i + half : 2 * i + 1;
    const float c = cos_sin[2 * i];
    const float s = cos_sin[2 * i + 1];
    const float xa = x[a];
    const float xb = x[b];
    x[a] = xa * c - xb * s;
    x[b] = xa * s + xb * c;
  }
}

void load_kv_row(DType t, const uint8_t* src, float* dst, int n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); break;
    case DType::F16: f16_to_f32_row(reinterpret_cast<const uint16_t*>(src), dst, n); break;
    default: {
      const auto* s = reinterpret_cast<const uint16_t*>(src);
      for (int i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
    }
  }
}

void store_kv_row(DType t, const float* src, uint8_t* dst, int n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); break;
    case DType::F16: f32_to_f16_row(src, reinterpret_cast<uint16_t*>(dst), n); break;
    default: {
      auto* d = reinterpret_cast<uint16_t*>(dst);
      for (int i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
    }
  }
}

namespace {

float load(DType t, const uint8_t* row, int i) {
  switch (t) {
    case DType::F32: return reinterpret_cast<const float*>(row)[i];
    case DType::F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
    default: return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
  }
}

}  // namespace

namespace ref {

void attend(const float* q, const AttnPage* pages, int n_pages, DType kv, int head_dim, float scale, int lo, int hi,
            float* out) {
  const size_t row = static_cast<size_t>(head_dim) * (kv == DType::F32 ? 4 : 2);
  float m = -std::numeric_limits<float>::infinity();
  float l = 0.f;
  std::fill(out, out + head_dim, 0.f);
  for (int p = 0; p < n_pages; ++p) {
    const AttnPage& pg = pages[p];
    for (int j = 0; j < pg.len; ++j) {
      const int pos = pg.pos0 + j;
      if (pos < lo || pos > hi) continue;
      float s = 0.f;
      for (int d = 0; d < head_dim; ++d) s += q[d] * load(kv, pg.k + j * row, d);
      s *= scale;
      const float m_new = std::max(m, s);
      const float corr = std::exp(m - m_new);  // rescales what was accumulated under the old maximum
      const float e = std::exp(s - m_new);
      for (int d = 0; d < head_dim; ++d) out[d] = out[d] * corr + e * load(kv, pg.v + j * row, d);
      l = l * corr + e;
      m = m_new;
    }
  }
  if (l > 0.f)
    for (int d = 0; d < head_dim; ++d) out[d] /= l;
}

}  // namespace ref

}  // namespace fkv::cpu
