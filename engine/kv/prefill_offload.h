// Layer-wise prefill of a document longer than the device tier holds: the schedule that keeps a layer's device KV
// bounded by (sink + recent + chunk) pages whatever the document length. Plain host code; the CUDA backend follows it
// and the CPU tests check it against a brute-force simulation.
//
// Tokens are prefilled in chunks of C tokens, each chunk layer by layer. In every layer a chunk writes its tokens'
// pages to the device (the first one continued when the chunk starts mid-page); once the chunk's pass over a layer is
// done, that layer's pages which are now neither sinks nor in the recent window leave the device: copied device ->
// host (the summary is built from the host copy) and freed. Only sealed pages ever leave, because the recent window
// always includes the newest, possibly partial, page. After the last chunk the sealed pages that stay resident (sinks
// and the recent window) are copied to the host too, so the host tier holds every sealed page and the device is
// exactly in the state DeviceTier::reset(n_tokens) describes.
//
// A prefill may continue a context (a chat turn after a document): it starts from the state DeviceTier keeps at
// first_token, where every sealed page already has its host copy, so pages sealed before first_token are freed
// without a copy.
#pragma once

#include <cstdint>
#include <vector>

#include "fkv/status.h"
#include "kv/budget.h"

namespace fkv {

// One chunk of the schedule; every layer runs it the same way.
struct PrefillChunk {
  int32_t first_token = 0;  // the chunk prefills tokens [first_token, end_token)
  int32_t end_token = 0;
  int32_t first_page = 0;  // pages [first_page, end_page) receive keys and values in each layer
  int32_t end_page = 0;
  int32_t first_new_page = 0;  // pages [first_new_page, end_page) are new on the device; a lower first_page continues
  int32_t offload_begin = 0;   // after the chunk's pass over a layer, its pages [offload_begin, offload_end) leave
  int32_t offload_end = 0;
  int32_t copy_begin = 0;  // of those, pages >= copy_begin are copied to the host first (the others are saved)
  int32_t peak_pages = 0;  // device pages per layer while the chunk runs, before its offload
};

struct PrefillSchedule {
  int32_t first_token = 0;
  int32_t n_tokens = 0;     // context length after the prefill
  int32_t bound_pages = 0;  // prefill_peak_bound: no chunk's peak_pages exceeds it
  std::vector<PrefillChunk> chunks;
  std::vector<int32_t> backup_pages;  // (ascending) resident sealed pages copied to the host after the last chunk
};

// Device pages per layer a prefill in chunks of chunk_tokens never exceeds: sink + recent + ceil(C / page_size).
// The budget must be valid and chunk_tokens >= 1.
int prefill_peak_bound(const Budget& b, int chunk_tokens);

// Plans prefilling tokens [first_token, n_tokens) in chunks of chunk_tokens. `out` keeps its capacity.
// Errors: an invalid budget, first_token outside 0..n_tokens, chunk_tokens < 1.
Status plan_prefill_offload(const Budget& b, int first_token, int n_tokens, int chunk_tokens, PrefillSchedule& out);

}  // namespace fkv
