// Page summaries ("digests"): per layer, page and KV head, the channel-wise minimum and maximum of the page's keys.
// For a query q the bound sum_c max(q_c * min_c, q_c * max_c) is an upper bound of q.k over every key of the page; the
// query heads of a GQA group add their bounds so the group selects one set of pages.
//
// Minima and maxima are kept as F16, the minimum rounded down and the maximum up, so the bound still holds for every
// key; over a book, selection is bound by reading them. Keys from an F16 cache are F16 already: for them the stored
// extremes are exact. A channel past F16's range is stored as an infinity, as an F16 cache would store the key.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "fkv/status.h"
#include "kv/kv_cache.h"

namespace fkv {

class ThreadPool;

class PageSummaries {
 public:
  Status init(const KvGeometry& g, int n_pages_cap);

  // Summarises sealed (full) page p of layer l from the keys stored in `cache`. With `cos_sin` ((head_dim / 2, 2), as
  // cpu::rope_head takes it), each key is first rotated by it: context memory keeps its pages' keys rotated back to
  // their page's start (runtime/context_memory.h).
  void build(int l, int p, const KvCache& cache, const float* cos_sin = nullptr, bool neox = false);
  // Pages [0, n) of layer l have summaries; pages are sealed in order, so one count per layer suffices.
  int n_built(int l) const { return n_built_[static_cast<size_t>(l)]; }
  void set_n_built(int l, int n) { n_built_[static_cast<size_t>(l)] = n; }
  void reset();

  const uint16_t* kmin(int l, int p, int h) const { return at(l, p, h); }                // (head_dim) F16
  const uint16_t* kmax(int l, int p, int h) const { return at(l, p, h) + g_.head_dim; }  // (head_dim) F16
  // Page p's (min, max) block for KV head h as floats: mn_mx (2, head_dim).
  void load(int l, int p, int h, float* mn_mx) const;
  // Stores a (min, max) block given as floats (2, head_dim), rounded outward to F16.
  void store(int l, int p, int h, const float* mn_mx);

  // Group bound: q_group (group, head_dim), the query heads that share KV head h. One page; selection scores a
  // whole range at once through cpu::page_bounds.
  float score(int l, int p, int h, const float* q_group, int group) const;
  // Elements from one page's (min, max) block to the next page's for the same layer and KV head.
  size_t page_stride() const { return static_cast<size_t>(g_.n_kv_heads) * 2 * g_.head_dim; }
  int head_dim() const { return g_.head_dim; }
  // The geometry and page capacity the summaries were sized for (a snapshot load checks them against the cache).
  const KvGeometry& geometry() const { return g_; }
  int n_pages_cap() const { return n_pages_cap_; }
  // Mutable (2, head_dim) F16 min/max block of KV head h in page p of layer l. Within a layer, page p + 1 follows
  // page p page_stride() elements later.
  uint16_t* minmax(int l, int p, int h) { return const_cast<uint16_t*>(at(l, p, h)); }

  size_t bytes() const { return size_ * sizeof(uint16_t); }

 private:
  const uint16_t* at(int l, int p, int h) const {
    return data_.get() + ((static_cast<size_t>(l) * n_pages_cap_ + p) * g_.n_kv_heads + h) * 2 * g_.head_dim;
  }
  KvGeometry g_;
  int n_pages_cap_ = 0;
  // (n_layers, n_pages_cap, n_kv_heads, 2 (min, max), head_dim). Left uninitialised, like the KV cache: only built
  // pages are read, so a context sized for a book touches the summaries of the pages it holds.
  std::unique_ptr<uint16_t[]> data_;
  size_t size_ = 0;
  std::vector<int> n_built_;    // (n_layers)
};

// Writes to `out` the `k` pages of [lo, hi) with the highest group bound for KV head h of layer l, in ascending page
// order; ties go to the lower page id. k >= hi - lo returns the whole range. `scores` is caller scratch (no allocation
// once it has grown to the largest range plus 2 * head_dim).
void select_top_k(const PageSummaries& s, int l, int h, const float* q_group, int group, int lo, int hi, int k,
                  std::vector<int32_t>& out, std::vector<float>& scores);
// The same for every KV head of layer l at once (q: (n_kv_heads, group, head_dim)), in one pass over the layer's
// summaries: outs[h] gets head h's pages, exactly as select_top_k would choose them, for each head with want[h] != 0
// (want null: all); the others' are left as they were. On a long document this reads the summaries once instead of
// once per head.
// With `pool` (the calling thread's own), a long range's pages are scored on all of its threads.
void select_top_k_heads(const PageSummaries& s, int l, const float* q, int group, int lo, int hi, int k,
                        const uint8_t* want, std::vector<std::vector<int32_t>>& outs, std::vector<float>& scores,
                        ThreadPool* pool = nullptr);

}  // namespace fkv
