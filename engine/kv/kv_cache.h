// The paged KV cache's host tier. Pages of `page_size` tokens; within a layer's page the keys of one KV head form one
// contiguous (page_size, head_dim) block (head-major, "HND"), so a per-head page can be moved or attended as one block.
// Storage for n_ctx tokens is reserved up front but only touched (and so only resident) as tokens are written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "fkv/status.h"

namespace fkv {

struct KvGeometry {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int page_size = 32;
  DType dtype = DType::F16;  // F16, BF16 or F32

  size_t elem_bytes() const { return dtype == DType::F32 ? 4 : 2; }
  size_t head_block_bytes() const { return static_cast<size_t>(page_size) * head_dim * elem_bytes(); }  // (page_size, head_dim)
  size_t page_bytes() const { return 2 * static_cast<size_t>(n_kv_heads) * head_block_bytes(); }      // K and V, all heads
  Status validate() const;
};

class KvCache {
 public:
  static Result<KvCache> create(const KvGeometry& g, int n_ctx);

  const KvGeometry& geometry() const { return g_; }
  int capacity_tokens() const { return n_pages_cap_ * g_.page_size; }
  int n_tokens() const { return n_tokens_; }
  int n_pages() const { return (n_tokens_ + g_.page_size - 1) / g_.page_size; }
  // Tokens held by logical page p (page_size except possibly the last).
  int page_len(int p) const;

  // (page_size, head_dim) block of keys / values of KV head h in logical page p of layer l.
  uint8_t* k_block(int l, int p, int h) { return block(l, p, 0, h); }
  uint8_t* v_block(int l, int p, int h) { return block(l, p, 1, h); }
  const uint8_t* k_block(int l, int p, int h) const { return const_cast<KvCache*>(this)->block(l, p, 0, h); }
  const uint8_t* v_block(int l, int p, int h) const { return const_cast<KvCache*>(this)->block(l, p, 1, h); }

  // Stores the keys and values of `n` tokens at positions pos..pos+n-1 of layer l, converting from f32.
  // k, v: (n, n_kv_heads, head_dim). The caller has checked pos + n <= capacity_tokens().
  void write(int l, int pos, int n, const float* k, const float* v);

  // Tokens become visible to attention only here, once every layer has written them.
  void set_n_tokens(int n) { n_tokens_ = n; }

  size_t reserved_bytes() const { return static_cast<size_t>(n_pages_cap_) * g_.page_bytes() * g_.n_layers; }
  size_t used_bytes() const { return static_cast<size_t>(n_pages()) * g_.page_bytes() * g_.n_layers; }

 private:
  uint8_t* block(int l, int p, int kv, int h);

  KvGeometry g_;
  int n_pages_cap_ = 0;
  int n_tokens_ = 0;
  std::unique_ptr<uint8_t[]> storage_;  // (n_layers, n_pages_cap, 2, n_kv_heads, page_size, head_dim)
  std::vector<int32_t> page_table_;     // (n_pages_cap) logical page -> physical page
};

}  // namespace fkv
