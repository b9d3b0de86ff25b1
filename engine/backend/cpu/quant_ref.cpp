// Scalar reference encodings: f16/bf16 conversions, the 32-element block types (Q4_0, Q5_0, Q8_0) and the per-type
// dispatch of the reference path. The K-quants live in quant_ref_k.cpp. Integer dots are exact so the AVX2 kernels
// can be compared tightly; rounding is round-to-nearest-even everywhere so the AVX2 encoders can match bytes.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/quant.h"
#include "backend/cpu/quant_impl.h"

namespace fkv::cpu {

namespace {

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t em = h & 0x7FFF;
  if (em >= 0x7C00) {  // inf or NaN; NaNs come back quiet with their payload, as F16C does
    const uint32_t mant = (em & 0x3FF) << 13;
    return bits_float(sign | 0x7F800000 | mant | (mant != 0 ? 0x400000 : 0));
  }
  if (em >= 0x0400) return bits_float(sign | ((em << 13) + (112u << 23)));
  // zero or subnormal: em * 2^-24 is exact in f32
  return bits_float(sign | float_bits(static_cast<float>(em) * 0x1p-24f));
}

uint16_t f32_to_f16(float f) {
  const uint32_t b = float_bits(f);
  const auto sign = static_cast<uint16_t>((b >> 16) & 0x8000);
  const uint32_t a = b & 0x7FFFFFFF;
  if (a > 0x7F800000) return static_cast<uint16_t>(sign | 0x7E00 | ((a >> 13) & 0x3FF));  // quiet NaN, top payload kept
  if (a >= 0x477FF000) return static_cast<uint16_t>(sign | 0x7C00);                       // >= 65520 rounds to infinity
  if (a < 0x38800000) {  // below 2^-14: subnormal half, the value in units of 2^-24 rounded to even
    const float units = bits_float(a) * 0x1p24f;
    return static_cast<uint16_t>(sign | round_even(units));
  }
  const uint32_t r = a - (112u << 23);  // rebias the exponent; a mantissa carry correctly bumps the exponent
  return static_cast<uint16_t>(sign | ((r + 0xFFF + ((r >> 13) & 1)) >> 13));
}

float bf16_to_f32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  const uint32_t b = float_bits(f);
  if ((b & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((b >> 16) | 0x40);  // keep NaN a (quiet) NaN
  return static_cast<uint16_t>((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
}

namespace ref {

void f16_to_f32_row(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(x[i]);
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(x[i]);
}

namespace {

// ---- Q8_0 ----

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQ32) {
    float amax = 0.0f;
    for (int j = 0; j < kQ32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = inverse_or_zero(d);
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQ32; ++j) y[b].qs[j] = static_cast<int8_t>(std::clamp(round_even(x[j] * id), -127, 127));
  }
}

void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQ32) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQ32; ++j) y[j] = d * static_cast<float>(x[b].qs[j]);
  }
}

float dot_q8_0(const void* w, const void* x, int64_t n) {
  const auto* wb = static_cast<const BlockQ8_0*>(w);
  const auto* xb = static_cast<const BlockQ8_0*>(x);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQ32; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQ32; ++j) isum += wb[b].qs[j] * xb[b].qs[j];
    sum += static_cast<float>(isum) * (f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d));
  }
  return sum;
}

// ---- Q4_0 / Q5_0: d = max / -levels so the element of largest magnitude lands exactly on the extreme code ----

// The signed value with the largest magnitude in x (32).
float signed_absmax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQ32; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQ32) {
    const float d = signed_absmax(x) / -8.0f;
    const float id = inverse_or_zero(d);
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQ32 / 2; ++j) {
      const int lo = std::clamp(to_int_sat(x[j] * id + 8.5f), 0, 15);
      const int hi = std::clamp(to_int_sat(x[j + 16] * id + 8.5f), 0, 15);
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void dequantize_q4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQ32) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQ32 / 2; ++j) {
      y[j] = d * static_cast<float>((x[b].qs[j] & 0xF) - 8);
      y[j + 16] = d * static_cast<float>((x[b].qs[j] >> 4) - 8);
    }
  }
}

float dot_q4_0(const void* w, const void* x, int64_t n) {
  const auto* wb = static_cast<const BlockQ4_0*>(w);
  const auto* xb = static_cast<const BlockQ8_0*>(x);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQ32; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQ32 / 2; ++j) {
      isum += ((wb[b].qs[j] & 0xF) - 8) * xb[b].qs[j];
      isum += ((wb[b].qs[j] >> 4) - 8) * xb[b].qs[j + 16];
    }
    sum += static_cast<float>(isum) * (f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d));
  }
  return sum;
}

uint32_t load_u32_le(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

void quantize_q5_0(const float* x, BlockQ5_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQ32) {
    const float d = signed_absmax(x) / -16.0f;
    const float id = inverse_or_zero(d);
    y[b].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQ32 / 2; ++j) {
      const int lo = std::clamp(to_int_sat(x[j] * id + 16.5f), 0, 31);
      const int hi = std::clamp(to_int_sat(x[j + 16] * id + 16.5f), 0, 31);
      y[b].qs[j] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
      qh |= static_cast<uint32_t>(lo >> 4) << j;
      qh |= static_cast<uint32_t>(hi >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; ++k) y[b].qh[k] = static_cast<uint8_t>(qh >> (8 * k));
  }
}

// The 32 codes (0..31) of a Q5_0 block in element order.
void q5_0_codes(const BlockQ5_0& blk, int* q) {  // q (32)
  const uint32_t qh = load_u32_le(blk.qh);
  for (int j = 0; j < kQ32 / 2; ++j) {
    q[j] = (blk.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
    q[j + 16] = (blk.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
  }
}

void dequantize_q5_0(const BlockQ5_0* x, float* y, int64_t nb) {
  int q[kQ32];
  for (int64_t b = 0; b < nb; ++b, y += kQ32) {
    const float d = f16_to_f32(x[b].d);
    q5_0_codes(x[b], q);
    for (int j = 0; j < kQ32; ++j) y[j] = d * static_cast<float>(q[j] - 16);
  }
}

float dot_q5_0(const void* w, const void* x, int64_t n) {
  const auto* wb = static_cast<const BlockQ5_0*>(w);
  const auto* xb = static_cast<const BlockQ8_0*>(x);
  int q[kQ32];
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQ32; ++b) {
    q5_0_codes(wb[b], q);
    int32_t isum = 0;
    for (int j = 0; j < kQ32; ++j) isum += (q[j] - 16) * xb[b].qs[j];
    sum += static_cast<float>(isum) * (f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d));
  }
  return sum;
}

// ---- F32 / F16 / BF16 weights against an f32 vector; summed in double so the reference is the accurate side ----

float dot_f32(const void* w, const void* x, int64_t n) {
  const auto* a = static_cast<const float*>(w);
  const auto* b = static_cast<const float*>(x);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(sum);
}

float dot_f16(const void* w, const void* x, int64_t n) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const float*>(x);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(f16_to_f32(a[i])) * b[i];
  return static_cast<float>(sum);
}

float dot_bf16(const void* w, const void* x, int64_t n) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const float*>(x);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(bf16_to_f32(a[i])) * b[i];
  return static_cast<float>(sum);
}

}  // namespace

void quantize_row(DType t, const float* x, void* y, int64_t n) {
  const int64_t nb = n / dtype_info(t).block_size;
  switch (t) {
    case DType::F32:
      std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
      break;
    case DType::F16:
      f32_to_f16_row(x, static_cast<uint16_t*>(y), n);
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(y)[i] = f32_to_bf16(x[i]);
      break;
    case DType::Q4_0:
      quantize_q4_0(x, static_cast<BlockQ4_0*>(y), nb);
      break;
    case DType::Q5_0:
      quantize_q5_0(x, static_cast<BlockQ5_0*>(y), nb);
      break;
    case DType::Q8_0:
      quantize_q8_0(x, static_cast<BlockQ8_0*>(y), nb);
      break;
    case DType::Q4_K:
      quantize_q4_k(x, static_cast<BlockQ4_K*>(y), nb);
      break;
    case DType::Q5_K:
      quantize_q5_k(x, static_cast<BlockQ5_K*>(y), nb);
      break;
    case DType::Q6_K:
      quantize_q6_k(x, static_cast<BlockQ6_K*>(y), nb);
      break;
    case DType::Q8_K:
      quantize_q8_k(x, static_cast<BlockQ8_K*>(y), nb);
      break;
  }
}

void dequantize_row(DType t, const void* x, float* y, int64_t n) {
  const int64_t nb = n / dtype_info(t).block_size;
  switch (t) {
    case DType::F32:
      std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
      break;
    case DType::F16:
      f16_to_f32_row(static_cast<const uint16_t*>(x), y, n);
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(static_cast<const uint16_t*>(x)[i]);
      break;
    case DType::Q4_0:
      dequantize_q4_0(static_cast<const BlockQ4_0*>(x), y, nb);
      break;
    case DType::Q5_0:
      dequantize_q5_0(static_cast<const BlockQ5_0*>(x), y, nb);
      break;
    case DType::Q8_0:
      dequantize_q8_0(static_cast<const BlockQ8_0*>(x), y, nb);
      break;
    case DType::Q4_K:
      dequantize_q4_k(static_cast<const BlockQ4_K*>(x), y, nb);
      break;
    case DType::Q5_K:
      dequantize_q5_k(static_cast<const BlockQ5_K*>(x), y, nb);
      break;
    case DType::Q6_K:
      dequantize_q6_k(static_cast<const BlockQ6_K*>(x), y, nb);
      break;
    case DType::Q8_K:
      dequantize_q8_k(static_cast<const BlockQ8_K*>(x), y, nb);
      break;
  }
}

VecDotFn vec_dot_fn(DType t) {
  switch (t) {
    case DType::F32:
      return dot_f32;
    case DType::F16:
      return dot_f16;
    case DType::BF16:
      return dot_bf16;
    case DType::Q4_0:
      return dot_q4_0;
    case DType::Q5_0:
      return dot_q5_0;
    case DType::Q8_0:
      return dot_q8_0;
    case DType::Q4_K:
      return dot_q4_k;
    case DType::Q5_K:
      return dot_q5_k;
    case DType::Q6_K:
      return dot_q6_k;
    case DType::Q8_K:
      return nullptr;
  }
  return nullptr;
}

float vec_dot(DType t, const void* w, const void* x, int64_t n) {
  const VecDotFn fn = vec_dot_fn(t);
  return fn != nullptr ? fn(w, x, n) : 0.0f;
}

}  // namespace ref
}  // namespace fkv::cpu
