#include "kv/prefill_offload.h"

#include <algorithm>

#include "kv/device_tier.h"

namespace fkv {

namespace {

int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Pages per layer on the device when a context of n tokens sits in the tier's resting state: sinks + recent window.
int resident_pages(const Budget& b, int n_tokens) {
  const TierRanges r = tier_ranges(b, n_tokens);
  return r.sink_end + (r.n_pages - r.recent_begin);
}

// Pages below this (and past the sinks) are middle pages, on the host only, once n tokens are prefilled.
int offloaded_end(const Budget& b, int n_tokens) {
  return std::max(b.sink_pages(), ceil_div(n_tokens, b.page_size) - b.recent_pages());
}

PrefillChunk plan_chunk(const Budget& b, int begin, int end, int saved_end) {
  const int ps = b.page_size;
  PrefillChunk c;
  c.first_token = begin;
  c.end_token = end;
  c.first_page = begin / ps;
  c.end_page = ceil_div(end, ps);
  c.first_new_page = ceil_div(begin, ps);
  c.offload_begin = offloaded_end(b, begin);
  c.offload_end = offloaded_end(b, end);
  c.copy_begin = std::clamp(saved_end, c.offload_begin, c.offload_end);
  c.peak_pages = resident_pages(b, begin) + (c.end_page - c.first_new_page);
  return c;
}

// Sealed pages in [from, to) that this prefill wrote (>= saved_end) go to the backup list.
void append_backups(int from, int to, int saved_end, int n_sealed, std::vector<int32_t>& out) {
  for (int p = std::max(from, saved_end); p < std::min(to, n_sealed); ++p) out.push_back(p);
}

}  // namespace

int prefill_peak_bound(const Budget& b, int chunk_tokens) {
  return b.sink_pages() + b.recent_pages() + ceil_div(chunk_tokens, b.page_size);
}

Status plan_prefill_offload(const Budget& b, int first_token, int n_tokens, int chunk_tokens, PrefillSchedule& out) {
  FKV_TRY(b.validate());
  if (chunk_tokens < 1) return err("prefill offload: chunk size must be >= 1 token, found ", chunk_tokens);
  // Page arithmetic (n + page_size - 1) must not overflow.
  if (n_tokens > (1 << 30)) return err("prefill offload: context expected <= 2^30 tokens, found ", n_tokens);
  if (first_token < 0 || first_token > n_tokens)
    return err("prefill offload: first token expected in 0..", n_tokens, ", found ", first_token);
  out.first_token = first_token;
  out.n_tokens = n_tokens;
  out.bound_pages = prefill_peak_bound(b, chunk_tokens);
  out.chunks.clear();
  out.backup_pages.clear();
  // Every page sealed before this prefill already has its host copy (DeviceTier's invariant).
  const int saved_end = first_token / b.page_size;
  for (int begin = first_token; begin < n_tokens;) {
    // Subtracting keeps begin + chunk_tokens from overflowing near INT_MAX.
    const int end = n_tokens - begin > chunk_tokens ? begin + chunk_tokens : n_tokens;
    out.chunks.push_back(plan_chunk(b, begin, end, saved_end));
    begin = end;
  }
  if (first_token == n_tokens) return {};
  const TierRanges r = tier_ranges(b, n_tokens);
  const int n_sealed = n_tokens / b.page_size;
  append_backups(0, r.sink_end, saved_end, n_sealed, out.backup_pages);
  append_backups(r.recent_begin, r.n_pages, saved_end, n_sealed, out.backup_pages);
  return {};
}

}  // namespace fkv
