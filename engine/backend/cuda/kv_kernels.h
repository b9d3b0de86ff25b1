// CUDA kernels over the device tier of FreeKV's pages: paged decode attention (split over pages, then merged), page
// bounds and top-k selection, and the scatter that turns staged host blocks (HND) into device slots (NHD).
// Plain C++ header: every pointer named "device" lives in GPU memory, streams are passed as opaque cudaStream_t values
// (void*, nullptr = the legacy default stream), and every function checks its launch and returns a Status naming the
// failed call. The CPU backend is the reference: tests/gpu/test_cuda_kv.cpp compares each kernel with it.
//
#pragma once

#include <cstddef>
#include <cstdint>

#include "fkv/status.h"

namespace fkv::cuda {

// Device pages of one layer in NHD layout, F16 bits: token t of KV head h in slot s is row (s * page_size + t) *
// n_kv_heads + h. The layout the recall scatter writes and paged attention reads.
struct DevicePages {
  const uint16_t* k = nullptr;  // device (n_slots, page_size, n_kv_heads, head_dim)
  const uint16_t* v = nullptr;  // device (n_slots, page_size, n_kv_heads, head_dim)
  int n_slots = 0;
  int page_size = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
};

// Which slots each KV head attends to, in CSR form: head h reads slots indices[indptr[h] .. indptr[h + 1]) in order,
// every one full except the last, which holds last_page_len[h] tokens (1..page_size). An empty list attends to nothing
// and gives zeros, like cpu::attend with no visible key.
struct PageTable {
  const int32_t* indptr = nullptr;         // device (n_kv_heads + 1)
  const int32_t* indices = nullptr;        // device (indptr[n_kv_heads]) slot ids
  const int32_t* last_page_len = nullptr;  // device (n_kv_heads)
};

// One decode step's attention for one layer: each query head attends to its KV head's pages (GQA: query heads
// h * group .. h * group + group - 1 share KV head h). The page list of every head is split into n_splits ranges of
// ceil(max_pages / n_splits) pages, attended in parallel and merged (flash-decoding).
struct PagedAttentionArgs {
  const float* q = nullptr;  // device (n_heads, head_dim)
  DevicePages pages;
  PageTable table;
  int n_heads = 0;    // a multiple of pages.n_kv_heads
  int max_pages = 0;  // no KV head's list is longer (the host knows it from the plan: the budget in pages)
  int n_splits = 1;   // 1..kMaxSplits
  float scale = 1.f;
  float* workspace = nullptr;  // device, paged_attention_workspace_floats(n_heads, head_dim, n_splits) floats
  float* out = nullptr;        // device (n_heads, head_dim)
};

constexpr int kMaxSplits = 256;
// Shared memory one attention block uses is 4 * group * (2 * head_dim + page_size + 3) bytes; larger shapes are
// refused (48 KiB, the limit without an opt-in).
constexpr size_t kMaxAttentionSharedBytes = 48 * 1024;

// Floats of workspace paged_attention needs: partial outputs (n_splits, n_heads, head_dim), then running maxima and
// sums (n_splits, n_heads) each.
size_t paged_attention_workspace_floats(int n_heads, int head_dim, int n_splits);
Status paged_attention(const PagedAttentionArgs& a, void* stream);

// Page bounds of one layer for all KV heads at once (the CUDA twin of cpu::split_group_query + cpu::page_bounds):
// scores[h, i] = sum_c neg_hc * min_ihc + pos_hc * max_ihc for pages i of summaries, neg/pos the split group query.
struct PageBoundsArgs {
  const float* q = nullptr;          // device (n_kv_heads * group, head_dim) this step's queries
  const float* summaries = nullptr;  // device (n_pages, n_kv_heads, 2 (min, max), head_dim)
  int n_pages = 0;
  int n_kv_heads = 0;
  int group = 0;
  int head_dim = 0;
  float* q_split = nullptr;  // device scratch (n_kv_heads, 2 (neg, pos), head_dim)
  float* scores = nullptr;   // device (n_kv_heads, n_pages)
};
Status page_bounds(const PageBoundsArgs& a, void* stream);

// Top-k per KV head over scores (n_kv_heads, n_pages): writes the min(k, n_pages) best page ids of each head, page0 +
// index, in ascending order to out (n_kv_heads, k); ties go to the lower page id and NaN ranks last, like
// fkv::select_top_k. Limits: 1 <= k <= kMaxTopK, n_pages <= kMaxTopKPages (the scores of one head sit in shared
// memory). Rows are k apart even when n_pages < k; the entries past n_pages are left untouched.
constexpr int kMaxTopK = 256;
constexpr int kMaxTopKPages = 8192;
struct TopKArgs {
  const float* scores = nullptr;  // device (n_kv_heads, n_pages)
  int n_kv_heads = 0;
  int n_pages = 0;
  int k = 0;
  int32_t page0 = 0;       // page id of column 0
  int32_t* out = nullptr;  // device (n_kv_heads, k)
};
Status top_k_pages(const TopKArgs& a, void* stream);

// Scatters n staged blocks (kv/recall_chunks.h layout, already on the device) into a layer's NHD pool. elem_bytes is
// 2 (F16, BF16) or 4 (F32). Slots and heads were checked on the host (check_recall_blocks) before staging.
struct ScatterArgs {
  const uint8_t* staged = nullptr;  // device (n, 2 (K, V), page_size, head_dim) elements
  const int32_t* meta = nullptr;    // device (n, 2 (head, slot))
  int n = 0;
  int page_size = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int elem_bytes = 2;
  int n_slots = 0;            // blocks naming a slot or head out of range are skipped, never written out of bounds
  uint8_t* k_pool = nullptr;  // device (n_slots, page_size, n_kv_heads, head_dim)
  uint8_t* v_pool = nullptr;  // device (n_slots, page_size, n_kv_heads, head_dim)
};
Status scatter_staged(const ScatterArgs& a, void* stream);

}  // namespace fkv::cuda
