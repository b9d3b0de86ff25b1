#include "kv/device_tier.h"

#include <algorithm>

namespace fkv {

TierRanges tier_ranges(const Budget& b, int n_tokens) {
  TierRanges r;
  r.n_pages = (n_tokens + b.page_size - 1) / b.page_size;
  r.sink_end = std::min(r.n_pages, b.sink_pages());
  r.recent_begin = std::max(r.sink_end, r.n_pages - b.recent_pages());
  r.last_page_len = n_tokens - std::max(0, r.n_pages - 1) * b.page_size;
  return r;
}

Status DeviceTier::init(const Budget& b, int n_kv_heads) {
  FKV_TRY(b.validate());
  if (n_kv_heads < 1) return err("device tier: KV head count must be >= 1, found ", n_kv_heads);
  b_ = b;
  n_kv_heads_ = n_kv_heads;
  slot_page_.assign(static_cast<size_t>(first_retrieved_slot()), -1);
  return reset(0);
}

int32_t DeviceTier::home_slot(int page) const {
  const int n_sink = n_sink_slots();
  if (page < n_sink) return page;
  return n_sink + (page - n_sink) % n_recent_slots();
}

int32_t DeviceTier::slot_of(int page) const {
  const TierRanges r = ranges();
  if (page < 0 || page >= r.n_pages) return -1;
  if (page < r.sink_end || page >= r.recent_begin) return home_slot(page);
  return -1;
}

int32_t DeviceTier::page_in_slot(int slot) const {
  if (slot < 0 || slot >= first_retrieved_slot()) return -1;
  return slot_page_[static_cast<size_t>(slot)];
}

Status DeviceTier::reset(int n_tokens) {
  if (n_tokens < 0) return err("device tier: token count must be >= 0, found ", n_tokens);
  n_tokens_ = n_tokens;
  // Prefill writes every sealed page to the host; only a partial last page is on the device alone.
  n_backed_up_ = n_tokens / b_.page_size;
  std::fill(slot_page_.begin(), slot_page_.end(), -1);
  const TierRanges r = ranges();
  for (int p = 0; p < r.sink_end; ++p) slot_page_[static_cast<size_t>(p)] = p;
  for (int p = r.recent_begin; p < r.n_pages; ++p) slot_page_[static_cast<size_t>(home_slot(p))] = p;
  return {};
}

void DeviceTier::plan_append(AppendPlan& out) const {
  const int ps = b_.page_size;
  out.pos = n_tokens_;
  out.page = n_tokens_ / ps;
  out.slot = home_slot(out.page);
  out.leaving_page = -1;
  out.sealed_page = -1;
  // A new page past the sinks pushes the window's oldest page (R pages back) into the middle, unless that is a sink.
  const int older = out.page - n_recent_slots();
  if (out.pos % ps == 0 && out.page >= n_sink_slots() && older >= n_sink_slots()) out.leaving_page = older;
  if ((out.pos + 1) % ps == 0) out.sealed_page = out.page;
}

Status DeviceTier::apply_append(const AppendPlan& plan) {
  AppendPlan fresh;
  plan_append(fresh);
  if (plan.pos != fresh.pos)
    return err("device tier: append plan for position ", plan.pos, " applied at position ", fresh.pos);
  if (plan.page != fresh.page || plan.slot != fresh.slot || plan.leaving_page != fresh.leaving_page ||
      plan.sealed_page != fresh.sealed_page)
    return err("device tier: append plan for position ", plan.pos, " expected page ", fresh.page, " slot ", fresh.slot,
               " leaving ", fresh.leaving_page, " sealed ", fresh.sealed_page, ", found page ", plan.page, " slot ",
               plan.slot, " leaving ", plan.leaving_page, " sealed ", plan.sealed_page);
  if (plan.pos % b_.page_size == 0) slot_page_[static_cast<size_t>(plan.slot)] = plan.page;
  ++n_tokens_;
  if (plan.sealed_page >= 0) n_backed_up_ = plan.sealed_page + 1;
  return {};
}

Status DeviceTier::check_retrieved(const RetrievedSlots& retrieved, int n_middle) const {
  if (!retrieved.indptr) return {};
  if (retrieved.indptr[0] != 0) return err("device tier: retrieved indptr[0] must be 0, found ", retrieved.indptr[0]);
  const int n_max = std::min(n_retrieved_slots(), n_middle);
  const int n_ws = n_retrieved_slots();
  for (int h = 0; h < n_kv_heads_; ++h) {
    const int32_t begin = retrieved.indptr[h];
    const int32_t end = retrieved.indptr[h + 1];
    if (end - begin < 0 || end - begin > n_max)
      return err("device tier: KV head ", h, " expected 0..", n_max, " retrieved pages (", n_middle, " middle pages, ",
                 n_ws, " retrieved slots), found ", end - begin);
    for (int32_t i = begin; i < end; ++i) {
      const int32_t s = retrieved.ws_slots[i];
      if (s < 0 || s >= n_ws)
        return err("device tier: KV head ", h, " retrieved slot expected 0..", n_ws - 1, ", found ", s);
    }
  }
  return {};
}

Status DeviceTier::build_page_table(const RetrievedSlots& retrieved, DevicePageTable& out) const {
  if (n_tokens_ < 1) return err("device tier: a page table needs at least one token, found an empty context");
  const TierRanges r = ranges();
  FKV_TRY(check_retrieved(retrieved, r.recent_begin - r.sink_end));
  out.indptr.resize(static_cast<size_t>(n_kv_heads_) + 1);
  out.indptr[0] = 0;
  out.indices.clear();
  // The newest page is always listed last (recent window, or the sinks when the context has no other page).
  out.last_page_len.assign(static_cast<size_t>(n_kv_heads_), r.last_page_len);
  const int32_t first_ws = first_retrieved_slot();
  for (int h = 0; h < n_kv_heads_; ++h) {
    for (int p = 0; p < r.sink_end; ++p) out.indices.push_back(p);
    if (retrieved.indptr) {
      for (int32_t i = retrieved.indptr[h]; i < retrieved.indptr[h + 1]; ++i)
        out.indices.push_back(first_ws + retrieved.ws_slots[i]);
    }
    for (int p = r.recent_begin; p < r.n_pages; ++p) out.indices.push_back(home_slot(p));
    out.indptr[static_cast<size_t>(h) + 1] = static_cast<int32_t>(out.indices.size());
  }
  return {};
}

}  // namespace fkv
