// Scalar reference for the K-quants (super-blocks of 256): Q4_K, Q5_K, Q6_K weights and Q8_K activations.
// The quantizers only need to be good enough for synthetic test models; the decoders and dots define the format.
#include <algorithm>
#include <cmath>

#include "backend/cpu/quant.h"
#include "backend/cpu/quant_impl.h"

namespace fkv::cpu::ref {

namespace {

struct Affine {
  float scale = 0.0f;  // x ~ scale * q - min
  float min = 0.0f;    // >= 0, as the format stores it
};

int affine_code(float x, const Affine& f, int nmax) {
  if (f.scale <= 0.0f) return 0;
  return std::clamp(round_even((x + f.min) / f.scale), 0, nmax);
}

float affine_sse(const float* x, int n, const Affine& f, int nmax) {
  float e = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float d = f.scale * static_cast<float>(affine_code(x[i], f, nmax)) - f.min - x[i];
    e += d * d;
  }
  return e;
}

// Least-squares refit of scale and min for the codes the current fit gives (min kept >= 0).
Affine refit(const float* x, int n, const Affine& f, int nmax) {
  double sq = 0, sx = 0, sqq = 0, sqx = 0;
  for (int i = 0; i < n; ++i) {
    const double q = affine_code(x[i], f, nmax);
    sq += q;
    sx += x[i];
    sqq += q * q;
    sqx += q * x[i];
  }
  const double den = n * sqq - sq * sq;
  if (den <= 0) return f;
  double a = (n * sqx - sq * sx) / den;
  double b = (sx - a * sq) / n;  // the offset: x ~ a q + b
  if (b > 0) {
    b = 0;
    a = sqx / sqq;
  }
  if (a <= 0) return f;
  return Affine{static_cast<float>(a), static_cast<float>(-b)};
}

// x (n) ~ scale * q - min, q in [0, nmax]: start from the range, then refit while the error drops.
Affine fit_affine(const float* x, int n, int nmax) {
  float lo = 0.0f, hi = x[0];
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (hi <= lo) return Affine{0.0f, -lo};
  Affine best{(hi - lo) / static_cast<float>(nmax), -lo};
  float best_err = affine_sse(x, n, best, nmax);
  for (int it = 0; it < 4; ++it) {
    const Affine next = refit(x, n, best, nmax);
    const float err = affine_sse(x, n, next, nmax);
    if (!(err < best_err)) break;
    best = next;
    best_err = err;
  }
  return best;
}

// Q4_K/Q5_K header: fits each sub-block, stores d/dmin and the packed 6-bit scales/mins; writes the codes (256).
void quantize_k_affine(const float* x, int nmax, uint16_t* d, uint16_t* dmin, uint8_t* scales, uint8_t* codes) {
  Affine fit[8];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    fit[j] = fit_affine(x + 32 * j, 32, nmax);
    max_scale = std::max(max_scale, fit[j].scale);
    max_min = std::max(max_min, fit[j].min);
  }
  *d = f32_to_f16(max_scale / 63.0f);
  *dmin = f32_to_f16(max_min / 63.0f);
  const float df = f16_to_f32(*d), dminf = f16_to_f32(*dmin);
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>(df > 0.0f ? std::clamp(round_even(fit[j].scale / df), 0, 63) : 0);
    m[j] = static_cast<uint8_t>(dminf > 0.0f ? std::clamp(round_even(fit[j].min / dminf), 0, 63) : 0);
  }
  for (int j = 0; j < 4; ++j) {
    scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    scales[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
  for (int j = 0; j < 8; ++j) {
    const Affine eff{df * sc[j], dminf * m[j]};  // what the decoder will use
    for (int i = 0; i < 32; ++i) codes[32 * j + i] = static_cast<uint8_t>(affine_code(x[32 * j + i], eff, nmax));
  }
}

// Q4_K/Q5_K decode of one super-block given its codes (256, already including the fifth bit for Q5_K).
void dequantize_k_affine(uint16_t d16, uint16_t dmin16, const uint8_t* scales, const uint8_t* codes, float* y) {
  const float d = f16_to_f32(d16), dmin = f16_to_f32(dmin16);
  uint8_t sc[8], m[8];
  unpack_k_scales(scales, sc, m);
  for (int j = 0; j < 8; ++j) {
    const float scale = d * sc[j], min = dmin * m[j];
    for (int i = 0; i < 32; ++i) y[32 * j + i] = scale * static_cast<float>(codes[32 * j + i]) - min;
  }
}

// Q4_K/Q5_K dot of one super-block's codes (256) with a Q8_K block: exact integer sums, then the two scales.
float dot_k_affine(uint16_t d16, uint16_t dmin16, const uint8_t* scales, const uint8_t* codes, const BlockQ8_K& x) {
  uint8_t sc[8], m[8];
  unpack_k_scales(scales, sc, m);
  int32_t sumi = 0, summ = 0;
  for (int j = 0; j < 8; ++j) {
    int32_t s = 0;
    for (int i = 0; i < 32; ++i) s += codes[32 * j + i] * x.qs[32 * j + i];
    sumi += sc[j] * s;
    summ += m[j] * (x.bsums[2 * j] + x.bsums[2 * j + 1]);
  }
  return x.d * (f16_to_f32(d16) * static_cast<float>(sumi) - f16_to_f32(dmin16) * static_cast<float>(summ));
}

// Element order of a Q4_K/Q5_K super-block: chunk i of qs holds elements 64i..64i+31 low, 64i+32..64i+63 high.
void q4_k_codes(const BlockQ4_K& b, uint8_t* codes) {  // codes (256)
  for (int i = 0; i < 4; ++i) {
    for (int l = 0; l < 32; ++l) {
      codes[64 * i + l] = b.qs[32 * i + l] & 0xF;
      codes[64 * i + 32 + l] = b.qs[32 * i + l] >> 4;
    }
  }
}

void q5_k_codes(const BlockQ5_K& b, uint8_t* codes) {  // codes (256)
  for (int i = 0; i < 4; ++i) {
    for (int l = 0; l < 32; ++l) {
      codes[64 * i + l] = static_cast<uint8_t>((b.qs[32 * i + l] & 0xF) | (((b.qh[l] >> (2 * i)) & 1) << 4));
      codes[64 * i + 32 + l] = static_cast<uint8_t>((b.qs[32 * i + l] >> 4) | (((b.qh[l] >> (2 * i + 1)) & 1) << 4));
    }
  }
}

// Q6_K codes minus 32 (256) in element order.
void q6_k_values(const BlockQ6_K& b, int* q) {
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b.ql + 64 * n;
    const uint8_t* qh = b.qh + 32 * n;
    int* y = q + 128 * n;
    for (int l = 0; l < 32; ++l) {
      y[l] = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      y[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      y[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      y[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
    }
  }
}

// Q6_K group scale: the element of largest magnitude lands on code -32, tried against a few nearby scales.
float q6_group_scale(const float* x) {  // x (16)
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < 16; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  float best = max / -32.0f, best_err = INFINITY;
  for (int step = 0; step <= 8 && max != 0.0f; ++step) {
    const float s = max / (-32.0f + 0.25f * static_cast<float>(step));
    float e = 0.0f;
    for (int i = 0; i < 16; ++i) {
      const float r = s * static_cast<float>(std::clamp(round_even(x[i] / s), -32, 31)) - x[i];
      e += r * r;
    }
    if (e < best_err) {
      best_err = e;
      best = s;
    }
  }
  return best;
}

}  // namespace

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  uint8_t codes[kQK];
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    quantize_k_affine(x, 15, &y[b].d, &y[b].dmin, y[b].scales, codes);
    for (int i = 0; i < 4; ++i) {
      for (int l = 0; l < 32; ++l)
        y[b].qs[32 * i + l] = static_cast<uint8_t>(codes[64 * i + l] | (codes[64 * i + 32 + l] << 4));
    }
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
  uint8_t codes[kQK];
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    quantize_k_affine(x, 31, &y[b].d, &y[b].dmin, y[b].scales, codes);
    for (int l = 0; l < 32; ++l) y[b].qh[l] = 0;
    for (int i = 0; i < 4; ++i) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo = codes[64 * i + l], hi = codes[64 * i + 32 + l];
        y[b].qs[32 * i + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
        y[b].qh[l] = static_cast<uint8_t>(y[b].qh[l] | ((lo >> 4) << (2 * i)) | ((hi >> 4) << (2 * i + 1)));
      }
    }
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    float scale[16], amax = 0.0f;
    for (int k = 0; k < 16; ++k) {
      scale[k] = q6_group_scale(x + 16 * k);
      amax = std::max(amax, std::fabs(scale[k]));
    }
    y[b].d = f32_to_f16(amax / 127.0f);
    const float d = f16_to_f32(y[b].d);
    uint8_t codes[kQK];
    for (int k = 0; k < 16; ++k) {
      const int sc = d > 0.0f ? std::clamp(round_even(scale[k] / d), -127, 127) : 0;
      y[b].scales[k] = static_cast<int8_t>(sc);
      const float eff = d * static_cast<float>(sc);
      for (int i = 0; i < 16; ++i) {
        const int q = eff != 0.0f ? std::clamp(round_even(x[16 * k + i] / eff), -32, 31) : 0;
        codes[16 * k + i] = static_cast<uint8_t>(q + 32);
      }
    }
    for (int n = 0; n < 2; ++n) {
      const uint8_t* c = codes + 128 * n;
      for (int l = 0; l < 32; ++l) {
        y[b].ql[64 * n + l] = static_cast<uint8_t>((c[l] & 0xF) | ((c[l + 64] & 0xF) << 4));
        y[b].ql[64 * n + l + 32] = static_cast<uint8_t>((c[l + 32] & 0xF) | ((c[l + 96] & 0xF) << 4));
        y[b].qh[32 * n + l] = static_cast<uint8_t>((c[l] >> 4) | ((c[l + 32] >> 4) << 2) | ((c[l + 64] >> 4) << 4) |
                                                   ((c[l + 96] >> 4) << 6));
      }
    }
  }
}

void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    float amax = 0.0f;
    for (int i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = inverse_or_zero(d);
    y[b].d = d;
    for (int i = 0; i < kQK; ++i) y[b].qs[i] = static_cast<int8_t>(std::clamp(round_even(x[i] * id), -127, 127));
    for (int k = 0; k < kQK / 16; ++k) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += y[b].qs[16 * k + i];
      y[b].bsums[k] = static_cast<int16_t>(s);
    }
  }
}

void dequantize_q4_k(const BlockQ4_K* x, float* y, int64_t nb) {
  uint8_t codes[kQK];
  for (int64_t b = 0; b < nb; ++b, y += kQK) {
    q4_k_codes(x[b], codes);
    dequantize_k_affine(x[b].d, x[b].dmin, x[b].scales, codes, y);
  }
}

void dequantize_q5_k(const BlockQ5_K* x, float* y, int64_t nb) {
  uint8_t codes[kQK];
  for (int64_t b = 0; b < nb; ++b, y += kQK) {
    q5_k_codes(x[b], codes);
    dequantize_k_affine(x[b].d, x[b].dmin, x[b].scales, codes, y);
  }
}

void dequantize_q6_k(const BlockQ6_K* x, float* y, int64_t nb) {
  int q[kQK];
  for (int64_t b = 0; b < nb; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    q6_k_values(x[b], q);
    for (int k = 0; k < kQK / 16; ++k) {
      const float scale = d * static_cast<float>(x[b].scales[k]);
      for (int i = 16 * k; i < 16 * k + 16; ++i) y[i] = scale * static_cast<float>(q[i]);
    }
  }
}

void dequantize_q8_k(const BlockQ8_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK) {
    for (int i = 0; i < kQK; ++i) y[i] = x[b].d * static_cast<float>(x[b].qs[i]);
  }
}

float dot_q4_k(const void* w, const void* x, int64_t n) {
  const auto* wb = static_cast<const BlockQ4_K*>(w);
  const auto* xb = static_cast<const BlockQ8_K*>(x);
  uint8_t codes[kQK];
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    q4_k_codes(wb[b], codes);
    sum += dot_k_affine(wb[b].d, wb[b].dmin, wb[b].scales, codes, xb[b]);
  }
  return sum;
}

float dot_q5_k(const void* w, const void* x, int64_t n) {
  const auto* wb = static_cast<const BlockQ5_K*>(w);
  const auto* xb = static_cast<const BlockQ8_K*>(x);
  uint8_t codes[kQK];
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    q5_k_codes(wb[b], codes);
    sum += dot_k_affine(wb[b].d, wb[b].dmin, wb[b].scales, codes, xb[b]);
  }
  return sum;
}

float dot_q6_k(const void* w, const void* x, int64_t n) {
  const auto* wb = static_cast<const BlockQ6_K*>(w);
  const auto* xb = static_cast<const BlockQ8_K*>(x);
  int q[kQK];
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    q6_k_values(wb[b], q);
    int32_t sumi = 0;
    for (int k = 0; k < kQK / 16; ++k) {
      int32_t s = 0;
      for (int i = 0; i < 16; ++i) s += q[16 * k + i] * xb[b].qs[16 * k + i];
      sumi += wb[b].scales[k] * s;
    }
    sum += f16_to_f32(wb[b].d) * xb[b].d * static_cast<float>(sumi);
  }
  return sum;
}

}  // namespace fkv::cpu::ref
