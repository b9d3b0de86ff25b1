#include "kv/page_summary.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"
#include "core/thread_pool.h"

namespace fkv {

Status PageSummaries::init(const KvGeometry& g, int n_pages_cap) {
  FKV_TRY(g.validate());
  g_ = g;
  n_pages_cap_ = n_pages_cap;
  size_ = static_cast<size_t>(g.n_layers) * n_pages_cap * g.n_kv_heads * 2 * g.head_dim;
  data_.reset(new (std::nothrow) uint16_t[size_]);
  if (!data_) {
    const size_t mib = size_ * sizeof(uint16_t) / (1 << 20);
    size_ = 0;
    return err("cannot reserve ", mib, " MiB for the page summaries of ", n_pages_cap, " pages");
  }
  n_built_.assign(static_cast<size_t>(g.n_layers), 0);
  return {};
}

void PageSummaries::reset() {
  std::fill(n_built_.begin(), n_built_.end(), 0);
  std::fill(n_coded_.begin(), n_coded_.end(), 0);
  std::fill(code_lo_.begin(), code_lo_.end(), 0.f);  // a step of 0: no range yet
}

void PageSummaries::set_n_built(int l, int n) {
  n_built_[static_cast<size_t>(l)] = n;
  if (codes_) n_coded_[static_cast<size_t>(l)] = std::min(n_coded_[static_cast<size_t>(l)], n);
}

size_t PageSummaries::code_block_bytes() const { return 2 * static_cast<size_t>(g_.head_dim) * cpu::kCodeBlockPages; }

Status PageSummaries::enable_codes() {
  // Codes go four to a lane, and the integer sums stay exact as floats up to 512 of them; other head sizes keep the
  // F16 pass.
  if (g_.head_dim % 2 != 0 || 2 * g_.head_dim > 512) return {};
  n_code_blocks_ = (n_pages_cap_ + cpu::kCodeBlockPages - 1) / cpu::kCodeBlockPages;
  codes_size_ = static_cast<size_t>(g_.n_layers) * g_.n_kv_heads * n_code_blocks_ * code_block_bytes();
  codes_.reset(new (std::nothrow) uint8_t[codes_size_]);
  if (!codes_) {
    const size_t mib = codes_size_ / (1 << 20);
    codes_size_ = 0;
    return err("cannot reserve ", mib, " MiB for the 8-bit page codes of ", n_pages_cap_, " pages");
  }
  code_lo_.assign(static_cast<size_t>(g_.n_layers) * g_.n_kv_heads * 2 * g_.head_dim, 0.f);
  n_coded_.assign(static_cast<size_t>(g_.n_layers), 0);
  return {};
}

// Whether page p's finite extremes lie inside layer l's channel ranges, for every KV head.
bool PageSummaries::in_range(int l, int p) const {
  const int hd = g_.head_dim;
  float mn_mx[2 * cpu::kMaxHeadDim];
  for (int h = 0; h < g_.n_kv_heads; ++h) {
    const float* lo = code_lo(l, h);
    const float* step = code_step(l, h);
    load(l, p, h, mn_mx);
    for (int c = 0; c < hd; ++c) {
      if (!(step[c] > 0.f)) return false;
      const float hi = lo[c] + 255.f * step[c];
      for (const float x : {mn_mx[c], mn_mx[hd + c]})
        if (std::isfinite(x) && (x < lo[c] || x > hi)) return false;
    }
  }
  return true;
}

void PageSummaries::code_page(int l, int p) {
  const int hd = g_.head_dim;
  float mn_mx[2 * cpu::kMaxHeadDim];
  uint8_t codes[2 * cpu::kMaxHeadDim];
  constexpr int kB = cpu::kCodeBlockPages;
  for (int h = 0; h < g_.n_kv_heads; ++h) {
    const float* lo = code_lo(l, h);
    const float* step = code_step(l, h);
    load(l, p, h, mn_mx);
    // Rounded outward (up to float rounding of the scaled offset); a NaN or an infinity takes the loosest code its
    // side has. Truncation is the floor here, as t >= 0 once clamped; the loops are kept simple for the vectoriser,
    // since a book's open codes every page.
    for (int c = 0; c < hd; ++c) {
      const float t = (mn_mx[c] - lo[c]) / step[c];
      codes[c] = static_cast<uint8_t>(t >= 0.f ? (t <= 255.f ? static_cast<int>(t) : 255) : 0);
    }
    for (int c = 0; c < hd; ++c) {
      const float t = (mn_mx[hd + c] - lo[c]) / step[c];
      const float u = t >= 0.f ? (t <= 255.f ? t : 255.f) : (t < 0.f ? 0.f : 255.f);  // NaN fails both tests
      const int i = static_cast<int>(u);
      codes[hd + c] = static_cast<uint8_t>(static_cast<float>(i) < u ? i + 1 : i);
    }
    uint8_t* blk = codes_.get() + code_index(l, h) + static_cast<size_t>(p / kB) * code_block_bytes() + (p % kB) * 4;
    for (int q = 0; q < 2 * hd / 4; ++q) std::memcpy(blk + static_cast<size_t>(q) * kB * 4, codes + 4 * q, 4);
  }
}

void PageSummaries::update_codes(int l) {
  if (!codes_) return;
  const int nb = n_built(l);
  int& nc = n_coded_[static_cast<size_t>(l)];
  int p = nc;
  while (p < nb && in_range(l, p)) ++p;
  if (p < nb) {
    // Ranges over every built page of the layer; when they grow rather than start, with an eighth of the span to
    // spare on each side, so a document coded as it is read recodes its layers a few times, not at every page.
    const int hd = g_.head_dim;
    float mn_mx[2 * cpu::kMaxHeadDim];
    for (int h = 0; h < g_.n_kv_heads; ++h) {
      float* lo = code_lo_.data() + range_index(l, h);
      float* step = lo + hd;
      const bool grow = step[0] > 0.f;
      std::vector<float> gmn(static_cast<size_t>(hd), std::numeric_limits<float>::infinity());
      std::vector<float> gmx(static_cast<size_t>(hd), -std::numeric_limits<float>::infinity());
      for (int q = 0; q < nb; ++q) {
        load(l, q, h, mn_mx);
        // Both extremes widen both ends: a page's minimum may be its only finite value on a channel, or its maximum.
        for (int c = 0; c < hd; ++c)
          for (const float x : {mn_mx[c], mn_mx[hd + c]})
            if (std::isfinite(x)) {
              gmn[c] = std::min(gmn[c], x);
              gmx[c] = std::max(gmx[c], x);
            }
      }
      for (int c = 0; c < hd; ++c) {
        float a = gmn[c], b = gmx[c];
        if (!(a <= b)) a = b = 0.f;  // no finite value: any range
        const float spare = grow ? (b - a) / 8 : 0.f;
        a -= spare;
        b += spare;
        // A span of zero still needs a positive step; the smallest that keeps a + 255 * step > a will do.
        const float s = std::max((b - a) / 255.f * 1.0001f, std::max(std::fabs(a), 1.f) * 1e-6f);  // a + 255 * s >= b
        lo[c] = a;
        step[c] = s;
      }
    }
    nc = 0;
  }
  for (int q = nc; q < nb; ++q) code_page(l, q);
  nc = nb;
}

void PageSummaries::load(int l, int p, int h, float* mn_mx) const {
  cpu::f16_to_f32_row(at(l, p, h), mn_mx, 2 * g_.head_dim);
}

void PageSummaries::store(int l, int p, int h, const float* mn_mx) {
  cpu::summary_to_f16(mn_mx, minmax(l, p, h), g_.head_dim);
}

void PageSummaries::build(int l, int p, const KvCache& cache, const float* cos_sin, bool neox) {
  const int hd = g_.head_dim;
  const int len = g_.page_size;  // only sealed (full) pages are summarised
  const size_t row = static_cast<size_t>(hd) * g_.elem_bytes();
  float mn_mx[2 * cpu::kMaxHeadDim];
  for (int h = 0; h < g_.n_kv_heads; ++h) {
    float* mn = mn_mx;
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
    store(l, p, h, mn_mx);
  }
}

float PageSummaries::score(int l, int p, int h, const float* q_group, int group) const {
  std::vector<float> q_split(2 * static_cast<size_t>(g_.head_dim));  // (2, head_dim); tests and tools only
  cpu::split_group_query(q_group, group, g_.head_dim, q_split.data());
  float out = 0.f;
  cpu::page_bounds(q_split.data(), at(l, p, h), page_stride(), 1, g_.head_dim, &out);
  return out;
}

namespace {

// Whether any of s[0..16) is greater than t (a NaN never is).
bool any_above(const float* s, float t) {
#if defined(__SSE2__)
  const __m128 tv = _mm_set1_ps(t);
  __m128 m = _mm_cmpgt_ps(_mm_loadu_ps(s), tv);
  m = _mm_or_ps(m, _mm_cmpgt_ps(_mm_loadu_ps(s + 4), tv));
  m = _mm_or_ps(m, _mm_cmpgt_ps(_mm_loadu_ps(s + 8), tv));
  m = _mm_or_ps(m, _mm_cmpgt_ps(_mm_loadu_ps(s + 12), tv));
  return _mm_movemask_ps(m) != 0;
#else
  bool any = false;
  for (int j = 0; j < 16; ++j) any |= s[j] > t;
  return any;
#endif
}

// The largest of s[0..16), NaNs left out (-infinity when all are NaN).
float run_max(const float* s) {
#if defined(__SSE2__)
  // maxps returns its second operand when either is a NaN, so a NaN in s never replaces m.
  __m128 m = _mm_set1_ps(-std::numeric_limits<float>::infinity());
  for (int j = 0; j < 16; j += 4) m = _mm_max_ps(_mm_loadu_ps(s + j), m);
  m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
  m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm_cvtss_f32(m);
#else
  float m = -std::numeric_limits<float>::infinity();
  for (int j = 0; j < 16; ++j)
    if (s[j] > m) m = s[j];
  return m;
#endif
}

constexpr int kRun = 16;  // any_above's and run_max's width

// top_k_of for a range of many runs: the k-th largest of the runs' maxima is a score that at least k pages reach, so
// every page of the k best scores at least that much, and only the few pages that do are ranked. False (out
// untouched) when that score is -infinity (runs of NaN), for the heap scan to handle.
bool top_k_by_threshold(const float* scores, int lo, int n, int k, std::vector<int32_t>& out) {
  thread_local std::vector<float> maxima, kth;
  thread_local std::vector<std::pair<float, int32_t>> cand;
  const int runs = n / kRun;
  maxima.resize(static_cast<size_t>(runs));
  for (int r = 0; r < runs; ++r) maxima[static_cast<size_t>(r)] = run_max(scores + static_cast<size_t>(r) * kRun);
  kth.assign(maxima.begin(), maxima.end());  // nth_element reorders; the scan below reads the maxima in run order
  std::nth_element(kth.begin(), kth.begin() + (k - 1), kth.end(), std::greater<float>());
  const float t = kth[static_cast<size_t>(k - 1)];
  if (!(t > -std::numeric_limits<float>::infinity())) return false;
  cand.clear();
  for (int i = 0; i < n; i += kRun) {
    const int e = std::min(n, i + kRun);
    if (e - i == kRun && maxima[static_cast<size_t>(i / kRun)] < t) continue;  // a run at once
    for (int j = i; j < e; ++j)
      if (scores[j] >= t) cand.emplace_back(scores[j], lo + j);
  }
  // The pages are distinct, so (score desc, page asc) orders them totally: the first k after nth_element are the k.
  std::nth_element(cand.begin(), cand.begin() + (k - 1), cand.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  out.resize(static_cast<size_t>(k));
  for (int i = 0; i < k; ++i) out[static_cast<size_t>(i)] = cand[static_cast<size_t>(i)].second;
  std::sort(out.begin(), out.end());
  return true;
}

}  // namespace

// One pass keeps the best k so far in a heap whose top is the worst of them: over a book's thousands of pages nearly
// every page is turned away by one comparison with it. A range of many runs of pages first finds a score the k best
// reach (top_k_by_threshold), so the heap's early, low tops do not let thousands of pages in one after another.
void top_k_of(const float* scores, int lo, int n, int k, std::vector<int32_t>& out) {
  if (n / kRun >= 4 * k && top_k_by_threshold(scores, lo, n, k, out)) return;
  const auto rank = [&](int32_t p) {
    const float v = scores[p - lo];
    return v != v ? -std::numeric_limits<float>::infinity() : v;
  };
  const auto better = [&](int32_t a, int32_t b) {
    const float sa = rank(a);
    const float sb = rank(b);
    return sa > sb || (sa == sb && a < b);
  };
  out.resize(static_cast<size_t>(k));
  std::iota(out.begin(), out.end(), lo);
  std::make_heap(out.begin(), out.end(), better);
  float worst = rank(out.front());
  for (int i = k; i < n;) {
    // Most pages lose to the worst kept one: a run of them is turned away by one test of all at once before any is
    // looked at alone.
    if (i + kRun <= n && !any_above(scores + i, worst)) {
      i += kRun;
      continue;
    }
    for (const int e = std::min(n, i + kRun); i < e; ++i) {
      // Pages come in ascending order, so one that only ties the worst kept loses to it on page id.
      if (!(scores[i] > worst)) continue;
      std::pop_heap(out.begin(), out.end(), better);
      out.back() = lo + i;
      std::push_heap(out.begin(), out.end(), better);
      worst = rank(out.front());
    }
  }
  std::sort(out.begin(), out.end());
}

namespace {

// The split query (2, head_dim) times each channel's code step, as int8 scaled to use the whole range: the part of
// the bound that differs between pages, up to a positive factor (cpu::code_scores then sums it against the codes).
// A query with no finite non-zero part scores every page 0 (ties go to the lower pages).
void quantize_code_query(const float* q_split, const float* step, int hd, int8_t* q8) {
  float scaled[2 * cpu::kMaxHeadDim];
  float m = 0.f;
  for (int col = 0; col < 2 * hd; ++col) {
    scaled[col] = q_split[col] * step[col % hd];
    m = std::max(m, std::fabs(scaled[col]));
  }
  const float k = m > 0.f && std::isfinite(m) ? 127.f / m : 0.f;
  for (int col = 0; col < 2 * hd; ++col) q8[col] = static_cast<int8_t>(std::lrint(scaled[col] * k));
}

// The answer when no scoring is needed (an empty range, k == 0 or k covering the range); false otherwise.
bool trivial_top_k(int lo, int hi, int k, std::vector<int32_t>& out) {
  out.clear();
  if (hi - lo <= 0 || k <= 0) return true;
  if (k < hi - lo) return false;
  for (int p = lo; p < hi; ++p) out.push_back(p);
  return true;
}

}  // namespace

void select_top_k(const PageSummaries& s, int l, int h, const float* q_group, int group, int lo, int hi, int k,
                  std::vector<int32_t>& out, std::vector<float>& scores) {
  if (trivial_top_k(lo, hi, k, out)) return;
  const int n = hi - lo;
  const int hd = s.head_dim();
  // (n) scores, then the (2, head_dim) split query
  scores.resize(static_cast<size_t>(n) + 2 * static_cast<size_t>(hd));
  float* q_split = scores.data() + n;
  cpu::split_group_query(q_group, group, hd, q_split);
  cpu::page_bounds(q_split, s.kmin(l, lo, h), s.page_stride(), n, hd, scores.data());
  top_k_of(scores.data(), lo, n, k, out);
}

bool scored_from_codes(const PageSummaries& s, int l, int lo, int hi, int k) {
  const int n = hi - lo;
  return n >= kCodedRangePages && kCodedCandidates * k < n && s.n_coded(l) >= hi;
}

void select_top_k_heads(const PageSummaries& s, int l, const float* q, int group, int lo, int hi, int k,
                        const uint8_t* want, std::vector<std::vector<int32_t>>& outs, std::vector<float>& scores,
                        ThreadPool* pool) {
  const int n_heads = s.geometry().n_kv_heads;
  bool any = false;
  for (int h = 0; h < n_heads; ++h)
    if (want == nullptr || want[h] != 0) any = !trivial_top_k(lo, hi, k, outs[static_cast<size_t>(h)]) || any;
  if (!any) return;
  const int n = hi - lo;
  const int hd = s.head_dim();
  const size_t len = 2 * static_cast<size_t>(hd);
  // (n_heads, n) scores, then the (n_heads, 2, head_dim) split queries
  scores.resize(static_cast<size_t>(n_heads) * (static_cast<size_t>(n) + len));
  float* q_splits = scores.data() + static_cast<size_t>(n_heads) * n;
  for (int h = 0; h < n_heads; ++h)
    cpu::split_group_query(q + static_cast<size_t>(h) * group * hd, group, hd, q_splits + static_cast<size_t>(h) * len);
  float* out = scores.data();
  const bool parallel = pool != nullptr && pool->size() > 1 && n >= kParallelSelectPages;
  // Runs run(b, e) over the range's pages [b, e) (offsets from lo): a run of pages per thread when parallel.
  const auto over_pages = [&](const auto& run) {
    if (parallel)
      pool->parallel_for(n, kParallelSelectPages / 4, run);
    else
      run(0, n);
  };
  // Scores heads [h0, h0 + nh) into their rows from the F16 values.
  const auto score = [&](int h0, int nh) {
    const float* qs = q_splits + static_cast<size_t>(h0) * len;
    float* o = out + static_cast<size_t>(h0) * n;
    over_pages([&](int64_t b, int64_t e) {
      cpu::page_bounds_heads(qs, s.kmin(l, lo + static_cast<int>(b), h0), s.page_stride(), static_cast<int>(e - b), nh,
                             hd, o + b, static_cast<size_t>(n));
    });
  };
  int n_want = 0;
  for (int h = 0; h < n_heads; ++h) n_want += want == nullptr || want[h] != 0 ? 1 : 0;
  const bool coded = scored_from_codes(s, l, lo, hi, k);
  if (coded) {
    // From the 8-bit codes, head by head (their blocks are apart).
    for (int h = 0; h < n_heads; ++h) {
      if (want != nullptr && want[h] == 0) continue;
      int8_t q8[2 * cpu::kMaxHeadDim];
      quantize_code_query(q_splits + static_cast<size_t>(h) * len, s.code_step(l, h), hd, q8);
      const uint8_t* blocks = s.code_blocks(l, h);
      float* o = out + static_cast<size_t>(h) * n;
      over_pages([&](int64_t b, int64_t e) {
        cpu::code_scores(q8, blocks, 2 * hd, lo + static_cast<int>(b), static_cast<int>(e - b), o + b);
      });
    }
  } else if (n_want == n_heads) {
    score(0, n_heads);  // one pass over the layer's summaries for every head
  } else {
    // A correction re-selects some heads only: each page's blocks for the other heads are not read at all.
    for (int h = 0; h < n_heads; ++h)
      if (want[h] != 0) score(h, 1);
  }
  const auto pick = [&](int h) {
    if (want != nullptr && want[h] == 0) return;
    std::vector<int32_t>& o = outs[static_cast<size_t>(h)];
    if (!coded) return top_k_of(scores.data() + static_cast<size_t>(h) * n, lo, n, k, o);
    // The codes' best kCodedCandidates * k pages, ranked again by their F16 bounds.
    thread_local std::vector<int32_t> cand;
    thread_local std::vector<float> exact;
    top_k_of(scores.data() + static_cast<size_t>(h) * n, lo, n, kCodedCandidates * k, cand);
    const float* qs = q_splits + static_cast<size_t>(h) * len;
    const size_t block_bytes = len * sizeof(uint16_t);
    for (const int32_t p : cand)  // scattered blocks: ask for all of them before the first is needed
      for (size_t b = 0; b < block_bytes; b += 64)
        __builtin_prefetch(reinterpret_cast<const char*>(s.kmin(l, p, h)) + b);
    exact.resize(cand.size());
    for (size_t i = 0; i < cand.size(); ++i)
      cpu::page_bounds(qs, s.kmin(l, cand[i], h), s.page_stride(), 1, hd, &exact[i]);
    // Candidates ascend, so ties still go to the lower page.
    top_k_of(exact.data(), 0, static_cast<int>(cand.size()), k, o);
    for (int32_t& i : o) i = cand[static_cast<size_t>(i)];
  };
  if (parallel && n_want > 1) {
    // The heads' top k are independent: one head per thread rather than one thread doing them all while the others wait.
    pool->parallel_for(n_heads, 1, [&](int64_t b, int64_t e) {
      for (int64_t h = b; h < e; ++h) pick(static_cast<int>(h));
    });
  } else {
    for (int h = 0; h < n_heads; ++h) pick(h);
  }
}

}  // namespace fkv
