#include "kv/working_set.h"

#include <algorithm>
#include <cstring>

namespace fkv {

Status WorkingSet::init(const KvGeometry& g, int n_slots) {
  FKV_TRY(g.validate());
  if (n_slots < 0) return err("working set: slot count must be >= 0, found ", n_slots);
  g_ = g;
  n_slots_ = n_slots;
  const size_t n = static_cast<size_t>(g.n_layers) * g.n_kv_heads * n_slots;
  bytes_ = n * 2 * g.head_block_bytes();
  storage_.reset(new (std::nothrow) uint8_t[std::max<size_t>(bytes_, 1)]);
  if (!storage_) return err("cannot reserve ", bytes_ >> 20, " MiB for the working set");
  slot_page_.assign(n, -1);
  return {};
}

void WorkingSet::reset() { std::fill(slot_page_.begin(), slot_page_.end(), -1); }

void WorkingSet::plan(int l, int h, const int32_t* pages, int n, RecallPlan& plan) const {
  const int32_t* resident = slot_page_.data() + index(l, h);
  plan.items.clear();
  plan.page_slots.assign(static_cast<size_t>(n), -1);
  plan.reused = 0;
  plan.keep.assign(static_cast<size_t>(n_slots_), 0);
  // Pages already resident keep their slot.
  for (int s = 0; s < n_slots_; ++s) {
    if (resident[s] < 0) continue;
    const int32_t* it = std::lower_bound(pages, pages + n, resident[s]);
    if (it != pages + n && *it == resident[s]) {
      plan.keep[static_cast<size_t>(s)] = 1;
      plan.page_slots[static_cast<size_t>(it - pages)] = s;
      ++plan.reused;
    }
  }
  // The others take the slots nobody keeps, in order.
  int free_slot = 0;
  for (int i = 0; i < n; ++i) {
    if (plan.page_slots[static_cast<size_t>(i)] >= 0) continue;
    while (free_slot < n_slots_ && plan.keep[static_cast<size_t>(free_slot)]) ++free_slot;
    if (free_slot >= n_slots_) break;  // more pages than slots: the caller bounds n, so this never happens
    plan.page_slots[static_cast<size_t>(i)] = free_slot;
    plan.items.push_back({pages[i], free_slot});
    ++free_slot;
  }
}

uint64_t WorkingSet::apply(int l, int h, const RecallPlan& plan, const KvCache& cache) {
  const size_t blk = g_.head_block_bytes();
  int32_t* resident = slot_page_.data() + index(l, h);
  for (const RecallItem& it : plan.items) {
    // One contiguous (page_size, head_dim) block each for K and V: the HND host layout makes a per-head page one copy.
    std::memcpy(const_cast<uint8_t*>(k_slot(l, h, it.slot)), cache.k_block(l, it.page, h), blk);
    std::memcpy(const_cast<uint8_t*>(v_slot(l, h, it.slot)), cache.v_block(l, it.page, h), blk);
    resident[it.slot] = it.page;
  }
  return plan.items.size() * 2 * blk;
}

}  // namespace fkv
