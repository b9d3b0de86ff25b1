// Retrieval telemetry: plain structs handed to an observer per decode step and layer. Nothing is built when no observer
// is set. Pointers inside an event are valid only during the callback; observers copy what they keep.
#pragma once

#include <algorithm>
#include <cstdint>

#include "fkv/options.h"

namespace fkv {

// What retrieval did, in one shape: per layer and decode step in a LayerStepEvent, summed over a context's decode
// steps in RetrievalStats, and per step in the desktop's recall timeline.
struct RetrievalCounters {
  int64_t pages_selected = 0;   // pages attended (sinks, recent window and retrieved)
  int64_t pages_reused = 0;     // retrieved pages already in the working set
  int64_t pages_recalled = 0;   // retrieved pages copied into the working set
  uint64_t bytes_recalled = 0;
  int64_t heads_checked = 0;    // KV heads whose query cosine was tested (freekv)
  int64_t heads_corrected = 0;  // of those, re-selected and recalled synchronously
  double select_s = 0;          // time spent selecting on the critical path
  double recall_s = 0;          // time spent copying on the critical path
  double wait_s = 0;            // time attention waited for a speculative recall to finish
  uint64_t bytes_from_file = 0;  // a saved KV read in from its page file (the disk tier) during the step
  double file_wait_s = 0;        // time decode threads waited for those reads (summed over threads)

  RetrievalCounters& operator+=(const RetrievalCounters& o) {
    pages_selected += o.pages_selected;
    pages_reused += o.pages_reused;
    pages_recalled += o.pages_recalled;
    bytes_recalled += o.bytes_recalled;
    heads_checked += o.heads_checked;
    heads_corrected += o.heads_corrected;
    select_s += o.select_s;
    recall_s += o.recall_s;
    wait_s += o.wait_s;
    bytes_from_file += o.bytes_from_file;
    file_wait_s += o.file_wait_s;
    return *this;
  }
};

struct LayerStepEvent : RetrievalCounters {
  int64_t step = 0;  // decode step since the context was created
  int layer = 0;
  Policy policy = Policy::full;
  int n_kv_heads = 0;
  const int32_t* sel_indptr = nullptr;  // (n_kv_heads + 1) CSR over KV heads of the pages attended
  const int32_t* sel_pages = nullptr;   // (sel_indptr[n_kv_heads]) page ids
  const float* cosine = nullptr;        // (n_kv_heads) group-mean cos(q_t, q_selection); null unless checked
  const uint8_t* corrected = nullptr;   // (n_kv_heads) 1 where that head was corrected; null unless checked
};

// Which pages of an event count as retrieved, for every reader (the desktop's panels, answer citations): those after
// the sink and before the recent window. The window ends at the last page any head selected (it always holds the
// newest token), so the retrievable pages are [sink_pages, retrievable_end(e, recent_pages)).
inline int retrievable_end(const LayerStepEvent& e, int recent_pages) {
  if (e.sel_indptr == nullptr || e.sel_pages == nullptr) return 0;
  int n_pages = 0;
  for (int h = 0; h < e.n_kv_heads; ++h) {
    if (e.sel_indptr[h + 1] > e.sel_indptr[h]) n_pages = std::max(n_pages, e.sel_pages[e.sel_indptr[h + 1] - 1] + 1);
  }
  return n_pages - recent_pages;
}

// Calls f(page) for each page in [begin, end) that a head selected, once per head that selected it.
template <class F>
void for_each_selected_page(const LayerStepEvent& e, int begin, int end, F&& f) {
  for (int h = 0; h < e.n_kv_heads; ++h) {
    for (int32_t i = e.sel_indptr[h]; i < e.sel_indptr[h + 1]; ++i) {
      if (e.sel_pages[i] >= begin && e.sel_pages[i] < end) f(e.sel_pages[i]);
    }
  }
}

class TelemetryObserver {
 public:
  virtual ~TelemetryObserver() = default;
  virtual void on_layer_step(const LayerStepEvent& e) = 0;
};

// Running totals over a context's decode steps (always kept; a few adds per layer).
struct RetrievalStats : RetrievalCounters {
  int64_t layer_steps = 0;
};

}  // namespace fkv
