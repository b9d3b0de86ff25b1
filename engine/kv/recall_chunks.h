// Recall in chunks through two staging buffers: the host-side half of moving planned pages into the device tier.
// A recall list (one entry per KV head's page block, from WorkingSet::plan) is cut into chunks of at most `chunk_items`
// blocks; chunk j uses staging buffer j % 2, so gathering chunk j + 1 on the host overlaps the copy and scatter of
// chunk j on the device, and a buffer is only refilled once the scatter that read it has finished. Everything here is
// plain C++ so the schedule, the staging layout and a reference of the device scatter are tested without a GPU; the
// CUDA executor (backend/cuda/recall_pipeline.h) follows this schedule and layout exactly.
//
// Staging layout of one chunk of n blocks (a byte buffer of recall_staging_bytes(g, chunk_items)):
//   data: (n, 2 (K, V), page_size, head_dim) elements of the cache's dtype, block i = K then V of one head's page
//   meta: (n, 2 (head, slot)) int32, at recall_meta_offset(g, chunk_items)
// Device pool of one layer (NHD): K and V each (n_slots, page_size, n_kv_heads, head_dim); block (page, head, slot)
// lands in rows [slot, :, head, :], the layout paged attention reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fkv/status.h"
#include "kv/kv_cache.h"
#include "kv/working_set.h"

namespace fkv {

constexpr int kRecallBuffers = 2;  // double buffering: one buffer fills while the other drains

// One KV head's page block to recall: host page `page` of KV head `head` goes to device slot `slot`.
struct RecallBlock {
  int32_t page = 0;
  int32_t head = 0;
  int32_t slot = 0;
};

// Blocks [first, first + n) of the recall list, staged through buffer `buffer` (0 or 1).
struct RecallChunk {
  int32_t first = 0;
  int32_t n = 0;
  int32_t buffer = 0;
};

// Cuts n_items blocks into chunks of at most chunk_items, alternating buffers 0, 1, 0, ... Zero items give no chunks.
// Reuses `out`'s storage (no allocation once it has grown). Errors: n_items < 0 or chunk_items < 1.
Status plan_recall_chunks(int n_items, int chunk_items, std::vector<RecallChunk>& out);

// Appends KV head h's planned items (WorkingSet::plan) to a layer's recall list.
void append_recall_blocks(int h, const RecallPlan& plan, std::vector<RecallBlock>& out);

// Checks every block against the cache and a pool of n_slots slots: page < cache.n_pages(), head < n_kv_heads,
// slot < n_slots. The executor runs it before touching any memory, so a bad plan is an error, not a stray write.
Status check_recall_blocks(const KvCache& cache, const RecallBlock* blocks, int n, int n_slots);

// Bytes of the data part of one staging buffer and where its meta part starts (16-byte aligned).
size_t recall_meta_offset(const KvGeometry& g, int chunk_items);
// Whole staging buffer: data then meta.
size_t recall_staging_bytes(const KvGeometry& g, int chunk_items);

// Host gather: copies the chunk's blocks of layer l from the cache into `staging` (layout above), data and meta.
// Returns the payload bytes (K and V blocks) gathered. The blocks must have passed check_recall_blocks.
uint64_t gather_recall_chunk(const KvCache& cache, int l, const RecallBlock* blocks, const RecallChunk& chunk,
                             int chunk_items, uint8_t* staging);

// Where the device scatter puts a staged chunk: the host reference of the CUDA kernel, used by tests and usable as a
// host fallback. staging: one gathered chunk of n blocks; k_pool, v_pool: (n_slots, page_size, n_kv_heads, head_dim).
void scatter_staged_nhd(const KvGeometry& g, const uint8_t* staging, int n, int chunk_items, uint8_t* k_pool,
                        uint8_t* v_pool);

}  // namespace fkv
