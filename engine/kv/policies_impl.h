// The attention policies behind make_policy (see policy.h for what each does). Internal to the engine.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "kv/kv_cache.h"
#include "kv/page_summary.h"
#include "kv/policy.h"
#include "kv/working_set.h"

namespace fkv {

// Appends one head's pages to a PageSelection, from the host tier or from working-set slots.
class SelectionWriter {
 public:
  SelectionWriter(PageSelection& out, const KvCache& cache, int n_kv_heads);
  void host(int l, int p, int h);
  void slot(const WorkingSet& ws, int l, int h, int slot, int page);
  void end_head(int h);

 private:
  PageSelection& out_;
  const KvCache& cache_;
};

class FullPolicy : public AttentionPolicy {
 public:
  explicit FullPolicy(const PolicyContext& ctx) : ctx_(ctx) {}
  Policy kind() const override { return Policy::full; }
  void select(const SelectionQuery& in, PageSelection& out, SelectCounters& c) override;

 protected:
  PolicyContext ctx_;
};

// Sink + [retrieved] + recent. The page ranges of one step.
struct PageRanges {
  int sink_end = 0;      // sink pages are [first, sink_end)
  int recent_begin = 0;  // middle (retrievable) pages are [sink_end, recent_begin), recent pages [recent_begin, n_pages)
};

class SparsePolicy : public FullPolicy {
 public:
  explicit SparsePolicy(const PolicyContext& ctx);
  void select(const SelectionQuery& in, PageSelection& out, SelectCounters& c) override;

 protected:
  bool fits(const SelectionQuery& in) const;
  PageRanges ranges(int n_pages, int first_page) const;
  // Chooses head h's retrieved pages into `pages` and says where attention reads them (slots null: host tier).
  virtual void retrieve(const SelectionQuery& in, const PageRanges& r, SelectCounters& c) = 0;
  // The retrieved pages of every KV head with want[h] != 0 (want null: all) into outs (n_kv_heads), chosen in one pass
  // over the layer's summaries; `pool`: the calling thread's, or null.
  void top_k_heads(const SelectionQuery& in, const float* q, const PageRanges& r, const uint8_t* want,
                   std::vector<std::vector<int32_t>>& outs, std::vector<float>& scores, ThreadPool* pool) const;

  std::vector<std::vector<int32_t>> pages_;  // (n_kv_heads) retrieved pages of this step, ascending
  std::vector<std::vector<int32_t>> slots_;  // (n_kv_heads) their working-set slots, or empty for host reads
  const WorkingSet* ws_ = nullptr;
  std::vector<float> scratch_;
};

class StreamingPolicy final : public SparsePolicy {
 public:
  using SparsePolicy::SparsePolicy;
  Policy kind() const override { return Policy::streaming; }

 protected:
  void retrieve(const SelectionQuery&, const PageRanges&, SelectCounters&) override;
};

class QuestPolicy final : public SparsePolicy {
 public:
  using SparsePolicy::SparsePolicy;
  Policy kind() const override { return Policy::quest; }

 protected:
  void retrieve(const SelectionQuery& in, const PageRanges& r, SelectCounters& c) override;
};

// Shared by arkvale and freekv: the working set and synchronous recall of one head.
class RecallPolicy : public SparsePolicy {
 public:
  using SparsePolicy::SparsePolicy;
  Status init();
  void reset() override { ws_owned_.reset(); }

 protected:
  // Recall in two halves: the plan (which also starts reading what it copies from a page file), then the copy.
  void plan_recall(int l, int h, const std::vector<int32_t>& pages, RecallPlan& plan);
  void apply_recall(int l, int h, std::vector<int32_t>& slots, const RecallPlan& plan);
  // How many KV heads have which[h] != 0 (which null: all).
  int n_selected(const uint8_t* which) const;
  // Adds the pages reused and recalled, and the bytes copied, by the plans of the heads with which[h] != 0.
  void count_recalls(const uint8_t* which, const std::vector<RecallPlan>& plans, SelectCounters& c) const;
  // apply_recall for every head with which[h] != 0 (which null: all), one head per thread of `pool` when one is given
  // (the decode thread's: each head's slots are its own, and page-file reads are safe from any thread).
  void apply_recalls(int l, const uint8_t* which, std::vector<std::vector<int32_t>>& slots,
                     const std::vector<RecallPlan>& plans, SelectCounters* c, ThreadPool* pool);
  // Whether select_recall_by_head suits layer l's heads with which[h] != 0 (null: all): a range scored from the
  // codes, whose blocks are apart for each head (the F16 summaries of a page hold every head's side by side, so
  // a thread per head would read each page twice), and at least one such head for each thread of the pool.
  bool by_head(int l, const PageRanges& r, const uint8_t* which, const ThreadPool* pool) const;
  // Chooses, plans and recalls each head with which[h] != 0 (null: all) on a pool thread of its own: one fork-join
  // round for the layer where scoring, the top k and the copies take a round each otherwise (a decode step over a
  // book runs a hundred such rounds). The same pages as top_k_heads. The round's time goes to c.select_s and
  // c.recall_s in proportion to what the threads spent on each.
  void select_recall_by_head(const SelectionQuery& in, const float* q, const PageRanges& r, const uint8_t* which,
                             std::vector<std::vector<int32_t>>& pages, std::vector<std::vector<int32_t>>& slots,
                             std::vector<RecallPlan>& plans, SelectCounters& c, ThreadPool& pool);
  WorkingSet ws_owned_;
  std::vector<RecallPlan> plans_;  // (n_kv_heads) scratch for the critical path

 private:
  std::vector<std::vector<float>> head_scores_;        // (n_kv_heads) select_recall_by_head's scratch, one per head
  std::vector<uint8_t> one_head_;                      // (n_kv_heads, n_kv_heads) row h: only head h wanted
  std::vector<double> head_select_s_, head_recall_s_;  // (n_kv_heads)
  std::vector<int> head_list_;                         // the heads of one select_recall_by_head
};

class ArkvalePolicy final : public RecallPolicy {
 public:
  using RecallPolicy::RecallPolicy;
  Policy kind() const override { return Policy::arkvale; }

 protected:
  void retrieve(const SelectionQuery& in, const PageRanges& r, SelectCounters& c) override;
};

class FreeKvPolicy final : public RecallPolicy {
 public:
  explicit FreeKvPolicy(const PolicyContext& ctx) : RecallPolicy(ctx) {}
  ~FreeKvPolicy() override;
  Policy kind() const override { return Policy::freekv; }
  Status init();
  void after_attention(const SelectionQuery& in) override;
  void sync(int layer) override;
  void reset() override;

 protected:
  void retrieve(const SelectionQuery& in, const PageRanges& r, SelectCounters& c) override;

 private:
  struct LayerState {
    bool has_spec = false;
    std::vector<float> q_sel;                  // (n_heads, head_dim) query the speculative pages were chosen with
    std::vector<std::vector<int32_t>> spec;    // (n_kv_heads) pages chosen for the next step, ascending
    std::vector<std::vector<int32_t>> slots;   // (n_kv_heads) their slots
    std::vector<RecallPlan> plans;             // (n_kv_heads) scratch of the background job
    // (n_kv_heads) 1: this step selected the head synchronously with the query the job would use, over the same page
    // ranges, so its speculation is that selection, already resident; the job skips it.
    std::vector<uint8_t> fresh;
    std::vector<uint8_t> stale;                // (n_kv_heads) scratch of the job: the heads it selects (not fresh)
    std::vector<float> scores;                 // scratch of the background job
    SelectionQuery next;                       // the query geometry of the step the job prepares
    SelectCounters bg;                         // what the background job recalled, reported with the step it serves
  };
  void worker_loop();
  void run_job(int l);
  void wait(int l);

  std::vector<LayerState> layers_;  // (n_layers)
  std::vector<float> cosine_;       // (n_kv_heads)
  std::vector<uint8_t> corrected_;  // (n_kv_heads)
  std::vector<uint8_t> synced_;     // (n_kv_heads) selected synchronously this step (corrected, or no speculation)
  int synced_layer_ = -1, synced_pos_ = -1;  // the (layer, position) synced_ and pages_ describe
  // The recall worker: one background thread, at most one pending job per layer, processed in order.
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  std::vector<int> queue_;          // ring of layer ids (n_layers)
  size_t q_head_ = 0, q_size_ = 0;
  std::vector<uint8_t> pending_;    // (n_layers)
  bool stop_ = false;
};

}  // namespace fkv
