// The working set: a budget-sized pool of page slots per (layer, KV head) that holds copies of the retrieved pages a
// decode step attends to (the device tier of FreeKV; on the CPU backend it is host memory, and the CUDA backend drives
// the same planning code). Recall follows "prepare, then apply": plan() decides which pages move into which slots,
// reusing pages already resident, without side effects; apply() copies them and records residency.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "fkv/status.h"
#include "kv/kv_cache.h"

namespace fkv {

struct RecallItem {
  int32_t page = 0;
  int32_t slot = 0;
};

struct RecallPlan {
  std::vector<RecallItem> items;  // pages to copy, in ascending page order
  std::vector<int32_t> page_slots;  // (n wanted pages) the slot each wanted page will occupy
  int reused = 0;                 // wanted pages already resident
  std::vector<uint8_t> keep;      // scratch (n_slots)
};

class WorkingSet {
 public:
  Status init(const KvGeometry& g, int n_slots);
  int n_slots() const { return n_slots_; }

  // Slots for `pages` (ascending, at most n_slots) of layer l, KV head h.
  void plan(int l, int h, const int32_t* pages, int n, RecallPlan& plan) const;
  // Copies the planned pages' key and value blocks from the host cache; returns the bytes moved.
  uint64_t apply(int l, int h, const RecallPlan& plan, const KvCache& cache);

  const uint8_t* k_slot(int l, int h, int slot) const { return block(l, h, slot, 0); }
  const uint8_t* v_slot(int l, int h, int slot) const { return block(l, h, slot, 1); }
  int32_t page_in_slot(int l, int h, int slot) const { return slot_page_[index(l, h) + slot]; }
  void reset();  // forget every resident page
  size_t bytes() const { return bytes_; }

 private:
  size_t index(int l, int h) const { return (static_cast<size_t>(l) * g_.n_kv_heads + h) * n_slots_; }
  const uint8_t* block(int l, int h, int slot, int kv) const {
    return storage_.get() + ((index(l, h) + slot) * 2 + kv) * g_.head_block_bytes();
  }
  KvGeometry g_;
  int n_slots_ = 0;
  size_t bytes_ = 0;
  std::unique_ptr<uint8_t[]> storage_;  // (n_layers, n_kv_heads, n_slots, K|V, page_size, head_dim)
  std::vector<int32_t> slot_page_;      // (n_layers, n_kv_heads, n_slots) resident page or -1
};

}  // namespace fkv
