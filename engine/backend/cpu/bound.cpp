#include <algorithm>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"

namespace fkv::cpu {

namespace avx2 {
void page_bounds_heads(const float* q_splits, const uint16_t* summaries, size_t stride, int n, int n_heads, int head_dim,
                       float* out, size_t out_stride);
void summary_to_f16(const float* mn_mx, uint16_t* out, int head_dim);
void code_scores(const int8_t* q, const uint8_t* blocks, int cols, int first, int n, float* out);
}
namespace vnni {
void code_scores(const int8_t* q, const uint8_t* blocks, int cols, int first, int n, float* out);
}

uint16_t f16_round_down(float x) {
  const uint16_t h = f32_to_f16(x);
  if (!(f16_to_f32(h) > x)) return h;  // exact, below, or NaN
  // One F16 step toward -infinity: a smaller magnitude for a positive code, a larger one for a negative code.
  if (h == 0x0000) return 0x8001;
  return (h & 0x8000) != 0 ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h - 1);
}

uint16_t f16_round_up(float x) {
  const uint16_t h = f32_to_f16(x);
  if (!(f16_to_f32(h) < x)) return h;
  if (h == 0x8000) return 0x0001;
  return (h & 0x8000) != 0 ? static_cast<uint16_t>(h - 1) : static_cast<uint16_t>(h + 1);
}

void summary_to_f16(const float* mn_mx, uint16_t* out, int head_dim) {
  if (active_isa() == Isa::Avx2) return avx2::summary_to_f16(mn_mx, out, head_dim);
  ref::summary_to_f16(mn_mx, out, head_dim);
}

namespace ref {

void code_scores(const int8_t* q, const uint8_t* blocks, int cols, int first, int n, float* out) {
  const size_t block_bytes = static_cast<size_t>(cols) * kCodeBlockPages;
  for (int i = 0; i < n; ++i) {
    const int p = first + i;
    const uint8_t* b = blocks + static_cast<size_t>(p / kCodeBlockPages) * block_bytes + (p % kCodeBlockPages) * 4;
    int32_t sum = 0;
    for (int c = 0; c < cols; ++c) sum += q[c] * b[(c / 4) * kCodeBlockPages * 4 + c % 4];
    out[i] = static_cast<float>(sum);
  }
}

void summary_to_f16(const float* mn_mx, uint16_t* out, int head_dim) {
  for (int c = 0; c < head_dim; ++c) out[c] = f16_round_down(mn_mx[c]);
  for (int c = head_dim; c < 2 * head_dim; ++c) out[c] = f16_round_up(mn_mx[c]);
}

float page_bound(const float* q, int group, const float* mn, const float* mx, int head_dim) {
  float s = 0.f;
  for (int g = 0; g < group; ++g)
    for (int c = 0; c < head_dim; ++c) {
      const float qc = q[g * head_dim + c];
      s += std::max(qc * mn[c], qc * mx[c]);
    }
  return s;
}

void page_bounds_heads(const float* q_splits, const uint16_t* summaries, size_t stride, int n, int n_heads, int head_dim,
                       float* out, size_t out_stride) {
  const int len = 2 * head_dim;
  for (int i = 0; i < n; ++i) {
    for (int h = 0; h < n_heads; ++h) {
      const uint16_t* mn_mx = summaries + static_cast<size_t>(i) * stride + static_cast<size_t>(h) * len;  // (2, head_dim)
      const float* q_split = q_splits + static_cast<size_t>(h) * len;
      float s = 0.f;
      for (int c = 0; c < len; ++c) s += q_split[c] * f16_to_f32(mn_mx[c]);
      out[static_cast<size_t>(h) * out_stride + i] = s;
    }
  }
}

void page_bounds(const float* q_split, const uint16_t* summaries, size_t stride, int n, int head_dim, float* out) {
  page_bounds_heads(q_split, summaries, stride, n, 1, head_dim, out, static_cast<size_t>(n));
}
}  // namespace ref

void split_group_query(const float* q, int group, int head_dim, float* out) {
  float* neg = out;
  float* pos = out + head_dim;
  std::fill(out, out + 2 * head_dim, 0.f);
  for (int g = 0; g < group; ++g)
    for (int c = 0; c < head_dim; ++c) {
      const float qc = q[g * head_dim + c];
      neg[c] += std::min(qc, 0.f);
      pos[c] += std::max(qc, 0.f);
    }
}

void page_bounds_heads(const float* q_splits, const uint16_t* summaries, size_t stride, int n, int n_heads, int head_dim,
                       float* out, size_t out_stride) {
  if (active_isa() == Isa::Avx2)
    return avx2::page_bounds_heads(q_splits, summaries, stride, n, n_heads, head_dim, out, out_stride);
  ref::page_bounds_heads(q_splits, summaries, stride, n, n_heads, head_dim, out, out_stride);
}

void page_bounds(const float* q_split, const uint16_t* summaries, size_t stride, int n, int head_dim, float* out) {
  page_bounds_heads(q_split, summaries, stride, n, 1, head_dim, out, static_cast<size_t>(n));
}

void code_scores(const int8_t* q, const uint8_t* blocks, int cols, int first, int n, float* out) {
  if (vnni_active()) return vnni::code_scores(q, blocks, cols, first, n, out);
  if (active_isa() == Isa::Avx2) return avx2::code_scores(q, blocks, cols, first, n, out);
  ref::code_scores(q, blocks, cols, first, n, out);
}

}  // namespace fkv::cpu
