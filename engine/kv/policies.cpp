#include <algorithm>
#include <cmath>

#include "core/clock.h"
#include "core/thread_pool.h"
#include "kv/policies_impl.h"

namespace fkv {

SelectionWriter::SelectionWriter(PageSelection& out, const KvCache& cache, int n_kv_heads) : out_(out), cache_(cache) {
  out_.indptr.resize(static_cast<size_t>(n_kv_heads) + 1);
  out_.indptr[0] = 0;
  out_.indices.clear();
  out_.k_blocks.clear();
  out_.v_blocks.clear();
}

void SelectionWriter::host(int l, int p, int h) {
  out_.indices.push_back(p);
  out_.k_blocks.push_back(cache_.k_block(l, p, h));
  out_.v_blocks.push_back(cache_.v_block(l, p, h));
}

void SelectionWriter::slot(const WorkingSet& ws, int l, int h, int slot, int page) {
  out_.indices.push_back(page);
  out_.k_blocks.push_back(ws.k_slot(l, h, slot));
  out_.v_blocks.push_back(ws.v_slot(l, h, slot));
}

void SelectionWriter::end_head(int h) {
  out_.indptr[static_cast<size_t>(h) + 1] = static_cast<int32_t>(out_.indices.size());
}

// --- full ----------------------------------------------------------------------------------------------------------

void FullPolicy::select(const SelectionQuery& in, PageSelection& out, SelectCounters& c) {
  (void)c;
  SelectionWriter w(out, *ctx_.cache, in.n_kv_heads);
  for (int h = 0; h < in.n_kv_heads; ++h) {
    for (int p = in.first_page; p < in.n_pages; ++p) w.host(in.layer, p, h);
    w.end_head(h);
  }
}

// --- sink + retrieved + recent ---------------------------------------------------------------------------------------

SparsePolicy::SparsePolicy(const PolicyContext& ctx) : FullPolicy(ctx) {
  pages_.resize(static_cast<size_t>(ctx.n_kv_heads));
  slots_.resize(static_cast<size_t>(ctx.n_kv_heads));
  for (auto& p : pages_) p.reserve(static_cast<size_t>(ctx.n_pages_cap));
  for (auto& s : slots_) s.reserve(static_cast<size_t>(ctx.budget.retrieved_pages()));
  // select_top_k_heads' scores and split queries, for every KV head at once: sized here, so decode never grows it.
  scratch_.reserve(static_cast<size_t>(ctx.n_kv_heads) * (static_cast<size_t>(ctx.n_pages_cap) + 2 * ctx.head_dim));
}

bool SparsePolicy::fits(const SelectionQuery& in) const {
  return in.dense || (in.n_pages - in.first_page) * ctx_.budget.page_size <= ctx_.budget.total_tokens();
}

PageRanges SparsePolicy::ranges(int n_pages, int first_page) const {
  PageRanges r;
  r.sink_end = std::min(n_pages, first_page + ctx_.budget.sink_pages());
  r.recent_begin = std::max(r.sink_end, n_pages - ctx_.budget.recent_pages());
  return r;
}

void SparsePolicy::top_k_heads(const SelectionQuery& in, const float* q, const PageRanges& r, const uint8_t* want,
                               std::vector<std::vector<int32_t>>& outs, std::vector<float>& scores,
                               ThreadPool* pool) const {
  select_top_k_heads(*ctx_.summaries, in.layer, q, in.group, r.sink_end, r.recent_begin, ctx_.budget.retrieved_pages(),
                     want, outs, scores, pool);
}

void SparsePolicy::select(const SelectionQuery& in, PageSelection& out, SelectCounters& c) {
  if (fits(in)) {  // the whole visible context is within the budget: exactly `full`
    FullPolicy::select(in, out, c);
    return;
  }
  const PageRanges r = ranges(in.n_pages, in.first_page);
  retrieve(in, r, c);
  SelectionWriter w(out, *ctx_.cache, in.n_kv_heads);
  for (int h = 0; h < in.n_kv_heads; ++h) {
    for (int p = in.first_page; p < r.sink_end; ++p) w.host(in.layer, p, h);
    const auto& pages = pages_[static_cast<size_t>(h)];
    const auto& slots = slots_[static_cast<size_t>(h)];
    for (size_t i = 0; i < pages.size(); ++i) {
      if (slots.empty()) {
        w.host(in.layer, pages[i], h);
      } else {
        w.slot(*ws_, in.layer, h, slots[i], pages[i]);
      }
    }
    for (int p = r.recent_begin; p < in.n_pages; ++p) w.host(in.layer, p, h);
    w.end_head(h);
  }
}

void StreamingPolicy::retrieve(const SelectionQuery& in, const PageRanges&, SelectCounters&) {
  for (int h = 0; h < in.n_kv_heads; ++h) {
    pages_[static_cast<size_t>(h)].clear();
    slots_[static_cast<size_t>(h)].clear();
  }
}

void QuestPolicy::retrieve(const SelectionQuery& in, const PageRanges& r, SelectCounters& c) {
  const double t0 = now_seconds();
  top_k_heads(in, in.q, r, nullptr, pages_, scratch_, ctx_.pool);
  for (auto& slots : slots_) slots.clear();
  // Attention reads the retrieved pages in place: a reopened document's may still be on disk, read all at once here.
  for (int h = 0; h < in.n_kv_heads; ++h) {
    const auto& pages = pages_[static_cast<size_t>(h)];
    ctx_.cache->prefetch(in.layer, pages.data(), static_cast<int>(pages.size()));
  }
  c.select_s += now_seconds() - t0;
}

// --- recall into the working set -----------------------------------------------------------------------------------

Status RecallPolicy::init() {
  KvGeometry g{ctx_.n_layers, ctx_.n_kv_heads, ctx_.head_dim, ctx_.budget.page_size, DType::F16};
  g.dtype = ctx_.cache->geometry().dtype;
  FKV_TRY(ws_owned_.init(g, ctx_.budget.retrieved_pages()));
  ws_ = &ws_owned_;
  const size_t n_kv = static_cast<size_t>(ctx_.n_kv_heads);
  plans_.resize(n_kv);
  if (ctx_.pool != nullptr && ctx_.pool->size() > 1 && ctx_.n_kv_heads > 1) {
    head_scores_.resize(n_kv);
    for (auto& v : head_scores_)  // as scratch_: sized here, so decode never grows it
      v.reserve(n_kv * (static_cast<size_t>(ctx_.n_pages_cap) + 2 * ctx_.head_dim));
    one_head_.assign(n_kv * n_kv, 0);
    for (size_t h = 0; h < n_kv; ++h) one_head_[h * n_kv + h] = 1;
    head_select_s_.resize(n_kv);
    head_recall_s_.resize(n_kv);
    head_list_.reserve(n_kv);
  }
  return {};
}

bool RecallPolicy::by_head(int l, const PageRanges& r, const uint8_t* which, const ThreadPool* pool) const {
  if (pool == nullptr || pool->size() < 2 || one_head_.empty() ||
      !scored_from_codes(*ctx_.summaries, l, r.sink_end, r.recent_begin, ctx_.budget.retrieved_pages()))
    return false;
  return n_selected(which) >= pool->size();
}

void RecallPolicy::select_recall_by_head(const SelectionQuery& in, const float* q, const PageRanges& r,
                                         const uint8_t* which, std::vector<std::vector<int32_t>>& pages,
                                         std::vector<std::vector<int32_t>>& slots, std::vector<RecallPlan>& plans,
                                         SelectCounters& c, ThreadPool& pool) {
  const size_t n_kv = static_cast<size_t>(in.n_kv_heads);
  std::vector<int>& heads = head_list_;
  heads.clear();
  for (int h = 0; h < in.n_kv_heads; ++h)
    if (which == nullptr || which[h] != 0) heads.push_back(h);
  const int n = static_cast<int>(heads.size());
  const double t0 = now_seconds();
  pool.parallel_for(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int h = heads[static_cast<size_t>(i)];
      const size_t hh = static_cast<size_t>(h);
      const double s0 = now_seconds();
      top_k_heads(in, q, r, one_head_.data() + hh * n_kv, pages, head_scores_[hh], nullptr);
      const double s1 = now_seconds();
      plan_recall(in.layer, h, pages[hh], plans[hh]);
      apply_recall(in.layer, h, slots[hh], plans[hh]);
      head_select_s_[hh] = s1 - s0;
      head_recall_s_[hh] = now_seconds() - s1;
    }
  });
  const double wall = now_seconds() - t0;
  double sel = 0, rec = 0;
  for (const int h : heads) {
    sel += head_select_s_[static_cast<size_t>(h)];
    rec += head_recall_s_[static_cast<size_t>(h)];
  }
  count_recalls(which, plans, c);
  const double f = sel + rec > 0 ? sel / (sel + rec) : 1.0;
  c.select_s += wall * f;
  c.recall_s += wall * (1.0 - f);
}

void RecallPolicy::plan_recall(int l, int h, const std::vector<int32_t>& pages, RecallPlan& plan) {
  ws_owned_.plan(l, h, pages.data(), static_cast<int>(pages.size()), plan);
  // Pages of a reopened document that are still on disk are read together, not one fault after another.
  for (const RecallItem& it : plan.items) ctx_.cache->prefetch(l, &it.page, 1);
}

void RecallPolicy::apply_recall(int l, int h, std::vector<int32_t>& slots, const RecallPlan& plan) {
  ws_owned_.apply(l, h, plan, *ctx_.cache);
  slots.assign(plan.page_slots.begin(), plan.page_slots.end());
}

int RecallPolicy::n_selected(const uint8_t* which) const {
  int n = 0;
  for (int h = 0; h < ctx_.n_kv_heads; ++h) n += which == nullptr || which[h] != 0 ? 1 : 0;
  return n;
}

void RecallPolicy::count_recalls(const uint8_t* which, const std::vector<RecallPlan>& plans, SelectCounters& c) const {
  const uint64_t pair = 2 * ctx_.cache->geometry().head_block_bytes();  // a page's K and V blocks of one head
  for (int h = 0; h < ctx_.n_kv_heads; ++h) {
    if (which != nullptr && which[h] == 0) continue;
    const RecallPlan& plan = plans[static_cast<size_t>(h)];
    c.pages_reused += plan.reused;
    c.pages_recalled += static_cast<int>(plan.items.size());
    c.bytes_recalled += plan.items.size() * pair;
  }
}

void RecallPolicy::apply_recalls(int l, const uint8_t* which, std::vector<std::vector<int32_t>>& slots,
                                 const std::vector<RecallPlan>& plans, SelectCounters* c, ThreadPool* pool) {
  const auto apply_heads = [&](int64_t b, int64_t e) {
    for (int64_t h = b; h < e; ++h)
      if (which == nullptr || which[h] != 0)
        apply_recall(l, static_cast<int>(h), slots[static_cast<size_t>(h)], plans[static_cast<size_t>(h)]);
  };
  if (pool != nullptr && pool->size() > 1 && n_selected(which) > 1) {  // one head: no round where the others wait
    pool->parallel_for(ctx_.n_kv_heads, 1, apply_heads);
  } else {
    apply_heads(0, ctx_.n_kv_heads);
  }
  if (c != nullptr) count_recalls(which, plans, *c);
}

void ArkvalePolicy::retrieve(const SelectionQuery& in, const PageRanges& r, SelectCounters& c) {
  if (by_head(in.layer, r, nullptr, ctx_.pool)) {
    select_recall_by_head(in, in.q, r, nullptr, pages_, slots_, plans_, c, *ctx_.pool);
    return;
  }
  const double t0 = now_seconds();
  top_k_heads(in, in.q, r, nullptr, pages_, scratch_, ctx_.pool);
  const double t1 = now_seconds();
  for (int h = 0; h < in.n_kv_heads; ++h)
    plan_recall(in.layer, h, pages_[static_cast<size_t>(h)], plans_[static_cast<size_t>(h)]);
  apply_recalls(in.layer, nullptr, slots_, plans_, &c, ctx_.pool);
  c.select_s += t1 - t0;
  c.recall_s += now_seconds() - t1;
}

}  // namespace fkv
