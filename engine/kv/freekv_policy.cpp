// FreeKV: speculative retrieval with fine-grained correction; the speculative recall runs on a background thread, or
// inline after each layer's attention where no core is free for one (PolicyContext::speculate_inline).
#include <algorithm>
#include <cmath>

#include "core/clock.h"
#include "kv/policies_impl.h"

namespace fkv {

namespace {

float cosine(const float* a, const float* b, int n) {
  double ab = 0, aa = 0, bb = 0;
  for (int i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return aa > 0 && bb > 0 ? static_cast<float>(ab / std::sqrt(aa * bb)) : 0.f;
}
}  // namespace

Status FreeKvPolicy::init() {
  FKV_TRY(RecallPolicy::init());
  const size_t n_kv = static_cast<size_t>(ctx_.n_kv_heads);
  layers_.resize(static_cast<size_t>(ctx_.n_layers));
  for (LayerState& s : layers_) {
    s.q_sel.resize(static_cast<size_t>(ctx_.n_heads) * ctx_.head_dim);
    s.spec.resize(n_kv);
    s.slots.resize(n_kv);
    s.plans.resize(n_kv);
    s.fresh.resize(n_kv);
    s.stale.resize(n_kv);
    for (auto& v : s.spec) v.reserve(static_cast<size_t>(ctx_.n_pages_cap));
    s.scores.reserve(static_cast<size_t>(n_kv) * (static_cast<size_t>(ctx_.n_pages_cap) + 2 * ctx_.head_dim));
  }
  cosine_.resize(n_kv);
  corrected_.resize(n_kv);
  synced_.resize(n_kv);
  queue_.resize(static_cast<size_t>(ctx_.n_layers));
  pending_.assign(static_cast<size_t>(ctx_.n_layers), 0);
  if (!ctx_.speculate_inline) worker_ = std::thread([this] { worker_loop(); });
  return {};
}

FreeKvPolicy::~FreeKvPolicy() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void FreeKvPolicy::worker_loop() {
  const KvCache::BackgroundReads background;  // what this thread reads from a page file, no step waits for
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_work_.wait(lock, [this] { return stop_ || q_size_ > 0; });
    if (q_size_ == 0) return;  // stopping with nothing queued
    const int l = queue_[q_head_];
    q_head_ = (q_head_ + 1) % queue_.size();
    --q_size_;
    lock.unlock();
    run_job(l);
    lock.lock();
    pending_[static_cast<size_t>(l)] = 0;
    cv_done_.notify_all();
  }
}

// Selects layer l's pages for the next step with the query saved by after_attention and recalls those not resident.
void FreeKvPolicy::run_job(int l) {
  LayerState& s = layers_[static_cast<size_t>(l)];
  const SelectionQuery& in = s.next;
  const PageRanges r = ranges(in.n_pages, in.first_page);
  s.bg = SelectCounters{};
  // Every head is selected and planned before any is copied, so the reads of pages still in a page file are all
  // under way before the first copy waits for one.
  const double t0 = now_seconds();
  for (int h = 0; h < in.n_kv_heads; ++h) {
    s.stale[static_cast<size_t>(h)] = s.fresh[static_cast<size_t>(h)] ? 0 : 1;
    if (s.fresh[static_cast<size_t>(h)]) s.bg.pages_reused += static_cast<int>(s.spec[static_cast<size_t>(h)].size());
  }
  // Inline, the job runs on the decode thread and may use its pool; on the background thread it must not.
  ThreadPool* pool = ctx_.speculate_inline ? ctx_.pool : nullptr;
  if (by_head(l, r, s.stale.data(), pool)) {
    select_recall_by_head(in, s.q_sel.data(), r, s.stale.data(), s.spec, s.slots, s.plans, s.bg, *pool);
    return;
  }
  top_k_heads(in, s.q_sel.data(), r, s.stale.data(), s.spec, s.scores, pool);
  const double t1 = now_seconds();
  for (int h = 0; h < in.n_kv_heads; ++h)
    if (!s.fresh[static_cast<size_t>(h)])
      plan_recall(l, h, s.spec[static_cast<size_t>(h)], s.plans[static_cast<size_t>(h)]);
  apply_recalls(l, s.stale.data(), s.slots, s.plans, &s.bg, pool);
  s.bg.select_s += t1 - t0;
  s.bg.recall_s += now_seconds() - t1;
}

void FreeKvPolicy::wait(int l) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_done_.wait(lock, [&] { return pending_[static_cast<size_t>(l)] == 0; });
}

void FreeKvPolicy::sync(int layer) {
  if (!ctx_.speculate_inline) wait(layer);  // inline, every job is done before the next layer starts
}

void FreeKvPolicy::after_attention(const SelectionQuery& in) {
  // The next step sees one more token: prepare its ranges now, with this step's query.
  const int next_pos = in.pos + 1;
  const int ps = ctx_.budget.page_size;
  if (next_pos >= ctx_.n_pages_cap * ps) return;  // the context is full: there is no next step
  SelectionQuery next = in;
  next.pos = next_pos;
  next.n_pages = next_pos / ps + 1;
  if (fits(next)) return;
  LayerState& s = layers_[static_cast<size_t>(in.layer)];
  wait(in.layer);  // the previous job of this layer is done (select() waited already; this keeps reset() safe)
  std::copy(in.q, in.q + s.q_sel.size(), s.q_sel.begin());
  // Heads selected synchronously this step with this same query need no second selection when the next step's page
  // ranges are this step's (31 of every 32 steps with pages of 32): the selection is identical and already resident.
  const PageRanges r_now = ranges(in.n_pages, in.first_page);
  const PageRanges r_next = ranges(next.n_pages, next.first_page);
  const bool same_ranges = synced_layer_ == in.layer && synced_pos_ == in.pos && r_now.sink_end == r_next.sink_end &&
                           r_now.recent_begin == r_next.recent_begin;
  for (int h = 0; h < in.n_kv_heads; ++h) {
    const bool fresh = same_ranges && synced_[static_cast<size_t>(h)] != 0;
    s.fresh[static_cast<size_t>(h)] = fresh ? 1 : 0;
    if (fresh) {
      s.spec[static_cast<size_t>(h)] = pages_[static_cast<size_t>(h)];
      s.slots[static_cast<size_t>(h)] = slots_[static_cast<size_t>(h)];
    }
  }
  s.next = next;
  s.next.q = nullptr;
  s.has_spec = true;
  if (ctx_.speculate_inline) {
    run_job(in.layer);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_[static_cast<size_t>(in.layer)] = 1;
    queue_[(q_head_ + q_size_) % queue_.size()] = in.layer;
    ++q_size_;
  }
  cv_work_.notify_one();
}

void FreeKvPolicy::retrieve(const SelectionQuery& in, const PageRanges& r, SelectCounters& c) {
  LayerState& s = layers_[static_cast<size_t>(in.layer)];
  if (!ctx_.speculate_inline) {  // inline, the job finished before this step began
    const double t0 = now_seconds();
    wait(in.layer);
    c.wait_s += now_seconds() - t0;
  }
  // Only a speculation made for this very position counts: tokens prefilled since then (even within the same page)
  // mean the query it was chosen with is not this step's predecessor.
  const bool spec_valid =
      s.has_spec && s.next.pos == in.pos && s.next.n_pages == in.n_pages && s.next.first_page == in.first_page;
  if (spec_valid) {  // the speculative recall made for this step
    c.pages_reused += s.bg.pages_reused;
    c.pages_recalled += s.bg.pages_recalled;
    c.bytes_recalled += s.bg.bytes_recalled;
    // Inline, that work was on the decode thread: it is reported with the step it served. In the background it
    // cost the step only what it made it wait (wait_s).
    if (ctx_.speculate_inline) {
      c.select_s += s.bg.select_s;
      c.recall_s += s.bg.recall_s;
    }
  }
  bool any_synced = false;
  for (int h = 0; h < in.n_kv_heads; ++h) {
    bool correct = !spec_valid;  // no usable speculation (first step, or the context moved): select synchronously
    if (spec_valid) {
      float mean = 0.f;
      for (int g = 0; g < in.group; ++g) {
        const size_t off = (static_cast<size_t>(h) * in.group + g) * in.head_dim;
        mean += cosine(in.q + off, s.q_sel.data() + off, in.head_dim);
      }
      cosine_[static_cast<size_t>(h)] = mean / static_cast<float>(in.group);
      ++c.heads_checked;
      if (cosine_[static_cast<size_t>(h)] < ctx_.tau) {
        correct = true;
        ++c.heads_corrected;
      }
      corrected_[static_cast<size_t>(h)] = correct ? 1 : 0;
    }
    synced_[static_cast<size_t>(h)] = correct ? 1 : 0;
    any_synced = any_synced || correct;
  }
  // The heads to correct are selected together (one pass over the layer's summaries), then recalled together.
  if (any_synced && by_head(in.layer, r, synced_.data(), ctx_.pool)) {
    select_recall_by_head(in, in.q, r, synced_.data(), pages_, slots_, plans_, c, *ctx_.pool);
  } else if (any_synced) {
    const double t1 = now_seconds();
    top_k_heads(in, in.q, r, synced_.data(), pages_, scratch_, ctx_.pool);
    const double t2 = now_seconds();
    c.select_s += t2 - t1;
    for (int h = 0; h < in.n_kv_heads; ++h)
      if (synced_[static_cast<size_t>(h)] != 0)
        plan_recall(in.layer, h, pages_[static_cast<size_t>(h)], plans_[static_cast<size_t>(h)]);
    apply_recalls(in.layer, synced_.data(), slots_, plans_, &c, ctx_.pool);
    c.recall_s += now_seconds() - t2;
  }
  for (int h = 0; h < in.n_kv_heads; ++h) {
    if (synced_[static_cast<size_t>(h)] != 0) continue;
    // The speculative pages were recalled ahead of this step and are resident.
    const auto& spec = s.spec[static_cast<size_t>(h)];
    pages_[static_cast<size_t>(h)].assign(spec.begin(), spec.end());
    slots_[static_cast<size_t>(h)].assign(s.slots[static_cast<size_t>(h)].begin(),
                                          s.slots[static_cast<size_t>(h)].end());
  }
  synced_layer_ = in.layer;
  synced_pos_ = in.pos;
  c.cosine = spec_valid ? cosine_.data() : nullptr;
  c.corrected = spec_valid ? corrected_.data() : nullptr;
}

void FreeKvPolicy::reset() {
  for (int l = 0; l < ctx_.n_layers; ++l) {
    wait(l);
    layers_[static_cast<size_t>(l)].has_spec = false;
  }
  synced_layer_ = synced_pos_ = -1;
  RecallPolicy::reset();
}

}  // namespace fkv
