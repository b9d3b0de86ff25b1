#include "kv/page_summary.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"

namespace fkv {

Status PageSummaries::init(const KvGeometry& g, int n_pages_cap) {
  FKV_TRY(g.validate());
  g_ = g;
  n_pages_cap_ = n_pages_cap;
  size_ = static_cast<size_t>(g.n_layers) * n_pages_cap * g.n_kv_heads * 2 * g.head_dim;
  data_.reset(new (std::nothrow) float[size_]);
  if (!data_) {
    const size_t mib = size_ * sizeof(float) / (1 << 20);
    size_ = 0;
    return err("cannot reserve ", mib, " MiB for the page summaries of ", n_pages_cap, " pages");
  }
  n_built_.assign(static_cast<size_t>(g.n_layers), 0);
  return {};
}

void PageSummaries::reset() { std::fill(n_built_.begin(), n_built_.end(), 0); }


void PageSummaries::build(int l, int p, const KvCache& cache, const float* cos_sin, bool neox) {
  const int hd = g_.head_dim;
  const int len = g_.page_size;  // only sealed (full) pages are summarised
  const size_t row = static_cast<size_t>(hd) * g_.elem_bytes();
  for (int h = 0; h < g_.n_kv_heads; ++h) {
    float* mn = const_cast<float*>(at(l, p, h));
    float* mx = mn + hd;
    std::fill(mn, mn + hd, std::numeric_limits<float>::infinity());
    std::fill(mx, mx + hd, -std::numeric_limits<float>::infinity());
    const uint8_t* k = cache.k_block(l, p, h);
    float key[cpu::kMaxHeadDim];
    for (int j = 0; j < len; ++j) {
      // The stored (rounded) key, so the bound holds exactly for what attention reads.
      cpu::load_kv_row(g_.dtype, k + j * row, key, hd);
      if (cos_sin != nullptr) cpu::rope_head(key, cos_sin, hd, neox);
      for (int c = 0; c < hd; ++c) {
        mn[c] = std::min(mn[c], key[c]);
        mx[c] = std::max(mx[c], key[c]);
      }
    }
  }
}

float PageSummaries::score(int l, int p, int h, const float* q_group, int group) const {
  std::vector<float> q_split(2 * static_cast<size_t>(g_.head_dim));  // (2, head_dim); tests and tools only
  cpu::split_group_query(q_group, group, g_.head_dim, q_split.data());
  float out = 0.f;
  cpu::page_bounds(q_split.data(), at(l, p, h), page_stride(), 1, g_.head_dim, &out);
  return out;
}

void select_top_k(const PageSummaries& s, int l, int h, const float* q_group, int group, int lo, int hi, int k,
                  std::vector<int32_t>& out, std::vector<float>& scores) {
  out.clear();
  const int n = hi - lo;
  if (n <= 0 || k <= 0) return;
  if (k >= n) {
    for (int p = lo; p < hi; ++p) out.push_back(p);
    return;
  }
  const int hd = s.head_dim();
  scores.resize(static_cast<size_t>(n) + 2 * static_cast<size_t>(hd));  // (n) scores, then the (2, head_dim) split query
  float* q_split = scores.data() + n;
  cpu::split_group_query(q_group, group, hd, q_split);
  cpu::page_bounds(q_split, s.kmin(l, lo, h), s.page_stride(), n, hd, scores.data());
  for (int i = 0; i < n; ++i)
    if (scores[static_cast<size_t>(i)] != scores[static_cast<size_t>(i)])
      scores[static_cast<size_t>(i)] = -std::numeric_limits<float>::infinity();  // NaN ranks last
  out.resize(static_cast<size_t>(n));
  std::iota(out.begin(), out.end(), lo);
  const auto better = [&](int32_t a, int32_t b) {
    const float sa = scores[static_cast<size_t>(a - lo)];
    const float sb = scores[static_cast<size_t>(b - lo)];
    return sa > sb || (sa == sb && a < b);
  };
  std::nth_element(out.begin(), out.begin() + k, out.end(), better);
  out.resize(static_cast<size_t>(k));
  std::sort(out.begin(), out.end());
}

}  // namespace fkv
