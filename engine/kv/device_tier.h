// The device tier's bookkeeping: where each page of one layer lives in a budget-sized device pool, and what moves when
// a decode token is appended. Plain host code: the CUDA backend drives it and the CPU tests check it (no GPU needed).
//
// Pool of one layer, n_slots = S + R + K slots of page_size tokens (NHD, see backend/cuda/kv_kernels.h DevicePages):
//   [0, S)          sink slots: sink page p lives in slot p for the whole sequence
//   [S, S + R)      the recent ring: page p >= S lives in slot S + (p - S) % R while it is in the recent window
//   [S + R, n)      retrieved slots: the working set's K slots (WorkingSet slot i is pool slot S + R + i)
// S, R, K are the budget's sink, recent and retrieved pages. The split of a context into sink, middle (retrievable)
// and recent pages is the policies' one (kv/policies_impl.h PageRanges), so the pages a policy selects from are
// exactly the pages this tier leaves to the host.
//
// Appending follows "prepare, then apply": plan_append() says what the next token causes without side effects,
// apply_append() records it. A token that opens a page past the sinks takes the ring slot of the oldest recent page,
// which at that moment leaves the window and enters the middle range (its host copy was made when it was sealed). A
// token that fills its page seals it: the driver copies the page device -> host and builds its summary. Eviction
// happens on opening, not on sealing, so the window always holds R pages including the newest (possibly partial) one,
// as the policies assume.
#pragma once

#include <cstdint>
#include <vector>

#include "fkv/status.h"
#include "kv/budget.h"

namespace fkv {

// The split of a context of n tokens into sink, middle and recent pages.
struct TierRanges {
  int n_pages = 0;
  int sink_end = 0;       // sink pages [0, sink_end)
  int recent_begin = 0;   // middle pages [sink_end, recent_begin), recent pages [recent_begin, n_pages)
  int last_page_len = 0;  // tokens in page n_pages - 1 (0 for an empty context)
};
// The budget must be valid (Budget::validate) and n_tokens >= 0.
TierRanges tier_ranges(const Budget& b, int n_tokens);

// Retrieved pages of one step per KV head, in CSR form, where the working set placed them.
struct RetrievedSlots {
  const int32_t* indptr = nullptr;    // (n_kv_heads + 1); null: no head has retrieved pages
  const int32_t* ws_slots = nullptr;  // (indptr[n_kv_heads]) working-set slots 0..K-1, in ascending page order per head
};

// The view paged attention takes (backend/cuda/kv_kernels.h PageTable), host side: head h reads pool slots
// indices[indptr[h] .. indptr[h + 1]) in position order, all full except the last.
struct DevicePageTable {
  std::vector<int32_t> indptr;         // (n_kv_heads + 1)
  std::vector<int32_t> indices;        // (indptr[n_kv_heads]) pool slots 0..n_slots-1
  std::vector<int32_t> last_page_len;  // (n_kv_heads) tokens in each head's last listed page, 1..page_size
};

// What appending the token at position `pos` causes.
struct AppendPlan {
  int32_t pos = 0;            // position of the new token (the tier's n_tokens when planned)
  int32_t page = 0;           // its page
  int32_t slot = 0;           // pool slot its K and V go to, at row pos % page_size
  int32_t leaving_page = -1;  // opening a page reuses this page's ring slot; it enters the middle range. -1: none
  int32_t sealed_page = -1;   // the token fills this page: copy it device -> host and build its summary. -1: none
};

class DeviceTier {
 public:
  // Validates the budget; the tier starts with an empty context.
  Status init(const Budget& b, int n_kv_heads);

  const Budget& budget() const { return b_; }
  int n_kv_heads() const { return n_kv_heads_; }
  int n_sink_slots() const { return b_.sink_pages(); }
  int n_recent_slots() const { return b_.recent_pages(); }
  int n_retrieved_slots() const { return b_.retrieved_pages(); }
  int first_ring_slot() const { return n_sink_slots(); }
  int first_retrieved_slot() const { return n_sink_slots() + n_recent_slots(); }
  int n_slots() const { return first_retrieved_slot() + n_retrieved_slots(); }

  int n_tokens() const { return n_tokens_; }
  // Pages [0, n_backed_up_pages()) have a host copy; the others exist on the device only.
  int n_backed_up_pages() const { return n_backed_up_; }
  TierRanges ranges() const { return tier_ranges(b_, n_tokens_); }
  // The whole context fits the budget: its middle pages fit the retrieved slots, so everything can be on the device.
  bool fits() const { return n_tokens_ <= b_.total_tokens(); }

  // The slot page p occupies while it is a sink or recent page (page >= 0).
  int32_t home_slot(int page) const;
  // The slot holding page p now if it is a sink or recent page, else -1 (middle pages are the working set's).
  int32_t slot_of(int page) const;
  // The page a sink or ring slot holds, or -1 (free, or a retrieved slot).
  int32_t page_in_slot(int slot) const;

  // The state a layer-wise prefill of n tokens leaves (kv/prefill_offload.h): sinks and the recent window resident,
  // every sealed page on the host.
  Status reset(int n_tokens);

  // The plan for appending the token at position n_tokens(). Side-effect free.
  void plan_append(AppendPlan& out) const;
  // Records a plan made at the current n_tokens(); a stale plan is an error and changes nothing.
  Status apply_append(const AppendPlan& plan);

  // The attention view of the current context: per head sink slots, the retrieved slots, then the recent ring slots,
  // all in position order. Errors: an empty context, a head with more retrieved pages than the middle range or the
  // retrieved slots hold, a slot outside 0..K-1. `out` keeps its capacity, so a decode loop does not allocate.
  Status build_page_table(const RetrievedSlots& retrieved, DevicePageTable& out) const;

 private:
  Status check_retrieved(const RetrievedSlots& retrieved, int n_middle) const;

  Budget b_;
  int n_kv_heads_ = 0;
  int n_tokens_ = 0;
  int n_backed_up_ = 0;
  std::vector<int32_t> slot_page_;  // (S + R) page held by each sink and ring slot, or -1
};

}  // namespace fkv
