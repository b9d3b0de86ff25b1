#include <algorithm>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"

namespace fkv::cpu {

namespace avx2 {
void page_bounds_heads(const float* q_splits, const float* summaries, size_t stride, int n, int n_heads, int head_dim,
                       float* out);
}

namespace ref {
float page_bound(const float* q, int group, const float* mn, const float* mx, int head_dim) {
  float s = 0.f;
  for (int g = 0; g < group; ++g)
    for (int c = 0; c < head_dim; ++c) {
      const float qc = q[g * head_dim + c];
      s += std::max(qc * mn[c], qc * mx[c]);
    }
  return s;
}

void page_bounds_heads(const float* q_splits, const float* summaries, size_t stride, int n, int n_heads, int head_dim,
                       float* out) {
  const int len = 2 * head_dim;
  for (int i = 0; i < n; ++i) {
    for (int h = 0; h < n_heads; ++h) {
      const float* mn_mx = summaries + static_cast<size_t>(i) * stride + static_cast<size_t>(h) * len;  // (2, head_dim)
      const float* q_split = q_splits + static_cast<size_t>(h) * len;
      float s = 0.f;
      for (int c = 0; c < len; ++c) s += q_split[c] * mn_mx[c];
      out[static_cast<size_t>(h) * n + i] = s;
    }
  }
}

void page_bounds(const float* q_split, const float* summaries, size_t stride, int n, int head_dim, float* out) {
  page_bounds_heads(q_split, summaries, stride, n, 1, head_dim, out);
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

void page_bounds_heads(const float* q_splits, const float* summaries, size_t stride, int n, int n_heads, int head_dim,
                       float* out) {
  if (active_isa() == Isa::Avx2) return avx2::page_bounds_heads(q_splits, summaries, stride, n, n_heads, head_dim, out);
  ref::page_bounds_heads(q_splits, summaries, stride, n, n_heads, head_dim, out);
}

void page_bounds(const float* q_split, const float* summaries, size_t stride, int n, int head_dim, float* out) {
  page_bounds_heads(q_split, summaries, stride, n, 1, head_dim, out);
}

}  // namespace fkv::cpu
