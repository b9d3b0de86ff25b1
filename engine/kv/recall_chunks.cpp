#include "kv/recall_chunks.h"

#include <algorithm>
#include <cstring>

namespace fkv {

Status plan_recall_chunks(int n_items, int chunk_items, std::vector<RecallChunk>& out) {
  out.clear();
  if (n_items < 0) return err("recall chunks: item count must be >= 0, found ", n_items);
  if (chunk_items < 1) return err("recall chunks: chunk size must be >= 1 block, found ", chunk_items);
  int buffer = 0;
  for (int first = 0; first < n_items; first += chunk_items) {
    out.push_back({first, std::min(chunk_items, n_items - first), buffer});
    buffer = (buffer + 1) % kRecallBuffers;
  }
  return {};
}

void append_recall_blocks(int h, const RecallPlan& plan, std::vector<RecallBlock>& out) {
  for (const RecallItem& it : plan.items) out.push_back({it.page, h, it.slot});
}

Status check_recall_blocks(const KvCache& cache, const RecallBlock* blocks, int n, int n_slots) {
  const int n_pages = cache.n_pages();
  const int n_kv_heads = cache.geometry().n_kv_heads;
  for (int i = 0; i < n; ++i) {
    const RecallBlock& b = blocks[i];
    if (b.page < 0 || b.page >= n_pages)
      return err("recall block ", i, ": page must be in [0, ", n_pages, "), found ", b.page);
    if (b.head < 0 || b.head >= n_kv_heads)
      return err("recall block ", i, ": KV head must be in [0, ", n_kv_heads, "), found ", b.head);
    if (b.slot < 0 || b.slot >= n_slots)
      return err("recall block ", i, ": slot must be in [0, ", n_slots, "), found ", b.slot);
  }
  return {};
}

size_t recall_meta_offset(const KvGeometry& g, int chunk_items) {
  const size_t data = static_cast<size_t>(chunk_items) * 2 * g.head_block_bytes();
  return (data + 15) / 16 * 16;  // the meta part is read as int32 on the device: keep it aligned
}

size_t recall_staging_bytes(const KvGeometry& g, int chunk_items) {
  return recall_meta_offset(g, chunk_items) + static_cast<size_t>(chunk_items) * 2 * sizeof(int32_t);
}

uint64_t gather_recall_chunk(const KvCache& cache, int l, const RecallBlock* blocks, const RecallChunk& chunk,
                             int chunk_items, uint8_t* staging) {
  const KvGeometry& g = cache.geometry();
  const size_t blk = g.head_block_bytes();
  auto* meta = reinterpret_cast<int32_t*>(staging + recall_meta_offset(g, chunk_items));  // (n, 2 (head, slot))
  for (int i = 0; i < chunk.n; ++i) {
    const RecallBlock& b = blocks[chunk.first + i];
    uint8_t* dst = staging + static_cast<size_t>(i) * 2 * blk;  // (2, page_size, head_dim)
    // The HND host layout makes one head's page a contiguous block: two copies per block, K then V.
    std::memcpy(dst, cache.k_block(l, b.page, b.head), blk);
    std::memcpy(dst + blk, cache.v_block(l, b.page, b.head), blk);
    meta[2 * i] = b.head;
    meta[2 * i + 1] = b.slot;
  }
  return static_cast<uint64_t>(chunk.n) * 2 * blk;
}

void scatter_staged_nhd(const KvGeometry& g, const uint8_t* staging, int n, int chunk_items, uint8_t* k_pool,
                        uint8_t* v_pool) {
  const size_t row = static_cast<size_t>(g.head_dim) * g.elem_bytes();  // one token of one head
  const size_t blk = g.head_block_bytes();
  const auto* meta = reinterpret_cast<const int32_t*>(staging + recall_meta_offset(g, chunk_items));
  for (int i = 0; i < n; ++i) {
    const size_t head = static_cast<size_t>(meta[2 * i]);
    const size_t slot = static_cast<size_t>(meta[2 * i + 1]);
    for (int kv = 0; kv < 2; ++kv) {
      const uint8_t* src = staging + (static_cast<size_t>(i) * 2 + kv) * blk;  // (page_size, head_dim)
      uint8_t* pool = kv == 0 ? k_pool : v_pool;  // (n_slots, page_size, n_kv_heads, head_dim)
      for (int t = 0; t < g.page_size; ++t) {
        const size_t dst_row = (slot * g.page_size + t) * g.n_kv_heads + head;
        std::memcpy(pool + dst_row * row, src + t * row, row);
      }
    }
  }
}

}  // namespace fkv
