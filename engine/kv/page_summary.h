// Page summaries ("digests"): per layer, page and KV head, the channel-wise minimum and maximum of the page's keys.
// For a query q the bound sum_c max(q_c * min_c, q_c * max_c) is an upper bound of q.k over every key of the page; the
// query heads of a GQA group add their bounds so the group selects one set of pages.
//
// Minima and maxima are kept as F16, the minimum rounded down and the maximum up, so the bound still holds for every
// key; over a book, selection is bound by reading them. Keys from an F16 cache are F16 already: for them the stored
// extremes are exact. A channel past F16's range is stored as an infinity, as an F16 cache would store the key.
//
// Over a book, selection is bound by reading the summaries (115 MB a decode step for 300k tokens of a 24-layer model),
// so a context-memory context also keeps 8-bit codes of them, half the bytes, and scores a long range from those
// first: per layer and KV head each channel c gets a range [lo_c, lo_c + 255 * step_c] covering its summaries, and a
// page's minimum is coded as floor((min - lo) / step), its maximum as ceil((max - lo) / step), in 0..255. The bound
// sum_c max(q_c * min_c, q_c * max_c) then becomes the split query times the channels' steps (quantized to int8)
// against the codes, plus a term the same for every page of the head, which ranking drops. The codes' best 2k pages
// are then ranked by their F16 bounds: the codes' rounding only reorders pages whose bounds lie close together, so
// the F16 bound's k best are among them unless many pages crowd the k-th bound (a page the codes rank past 2k is never
// looked at; docs/benchmarks.md has how often that changed a choice).
// Codes are laid out head-major in blocks of cpu::kCodeBlockPages pages (cpu::code_scores), so a correction reads
// only its head's.
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
  void set_n_built(int l, int n);
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

  size_t bytes() const { return size_ * sizeof(uint16_t) + codes_size_; }

  // 8-bit codes (see top): on for a context-memory context. Off (the default, and for an odd head size or one past
  // 256, where enable_codes leaves them off), every range is scored from the F16 values.
  Status enable_codes();
  bool codes_enabled() const { return codes_ != nullptr; }
  // Codes pages [n_coded(l), n_built(l)) of layer l, once their summaries are stored. A page whose extremes fall
  // outside a channel's range first widens the range and codes the layer's pages anew.
  void update_codes(int l);
  int n_coded(int l) const { return codes_ ? n_coded_[static_cast<size_t>(l)] : 0; }
  // Block 0 of layer l, KV head h ((2 * head_dim) / 4, kCodeBlockPages, 4 codes a block), and the channels' steps.
  const uint8_t* code_blocks(int l, int h) const { return codes_.get() + code_index(l, h); }
  const float* code_step(int l, int h) const { return code_lo_.data() + range_index(l, h) + g_.head_dim; }
  const float* code_lo(int l, int h) const { return code_lo_.data() + range_index(l, h); }

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

  size_t code_index(int l, int h) const {
    return (static_cast<size_t>(l) * g_.n_kv_heads + h) * n_code_blocks_ * code_block_bytes();
  }
  size_t code_block_bytes() const;
  size_t range_index(int l, int h) const { return (static_cast<size_t>(l) * g_.n_kv_heads + h) * 2 * g_.head_dim; }
  bool in_range(int l, int p) const;
  void code_page(int l, int p);
  // (n_layers, n_kv_heads, n_code_blocks_, block), left uninitialised like data_.
  std::unique_ptr<uint8_t[]> codes_;
  size_t codes_size_ = 0;
  int n_code_blocks_ = 0;
  std::vector<float> code_lo_;  // (n_layers, n_kv_heads, 2 (lo, step), head_dim)
  std::vector<int> n_coded_;    // (n_layers)
};

// Writes to `out` the `k` pages of [lo, hi) with the highest group bound for KV head h of layer l, in ascending page
// order; ties go to the lower page id. k >= hi - lo returns the whole range. `scores` is caller scratch (no allocation
// once it has grown to the largest range plus 2 * head_dim).
void select_top_k(const PageSummaries& s, int l, int h, const float* q_group, int group, int lo, int hi, int k,
                  std::vector<int32_t>& out, std::vector<float>& scores);
// Writes to `out` the k pages of [lo, lo + n) with the highest of `scores` (n, one per page), in ascending page order;
// ties go to the lower page and NaN ranks last. 0 < k < n.
void top_k_of(const float* scores, int lo, int n, int k, std::vector<int32_t>& out);
// Pages from which select_top_k_heads scores a range from the 8-bit codes, where the summaries have them: below it the
// F16 pass is short anyway. The codes then choose kCodedCandidates * k pages, and the F16 bounds of those the k.
inline constexpr int kCodedRangePages = 1024;
// Pages from which select_top_k_heads, given a pool, scores a range on all of its threads: below it splitting the
// range would cost more than it saves.
inline constexpr int kParallelSelectPages = 1024;
inline constexpr int kCodedCandidates = 2;

// Whether select_top_k_heads scores [lo, hi) of layer l from the 8-bit codes (then the k best of kCodedCandidates * k
// from F16): a range of kCodedRangePages or more that the codes cover, and a k well short of it.
bool scored_from_codes(const PageSummaries& s, int l, int lo, int hi, int k);

// The same for every KV head of layer l at once (q: (n_kv_heads, group, head_dim)), in one pass over the layer's
// summaries: outs[h] gets head h's pages, exactly as select_top_k would choose them, for each head with want[h] != 0
// (want null: all); the others' are left as they were. On a long document this reads the summaries once instead of
// once per head.
// With `pool` (the calling thread's own), a long range's pages are scored on all of its threads. A range of at least
// kCodedRangePages pages that the codes cover is scored from them first (see top), so it may choose other pages than
// select_top_k.
void select_top_k_heads(const PageSummaries& s, int l, const float* q, int group, int lo, int hi, int k,
                        const uint8_t* want, std::vector<std::vector<int32_t>>& outs, std::vector<float>& scores,
                        ThreadPool* pool = nullptr);

}  // namespace fkv
