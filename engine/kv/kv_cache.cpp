#include "kv/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "backend/cpu/ops.h"
#include "core/option_ranges.h"

namespace fkv {

Status KvGeometry::validate() const {
  if (n_layers <= 0 || n_kv_heads <= 0 || head_dim <= 0)
    return err("KV geometry: layers, heads and head dim must be positive (", n_layers, ", ", n_kv_heads, ", ", head_dim, ")");
  FKV_TRY(check_page_size(page_size));
  if (dtype != DType::F16 && dtype != DType::BF16 && dtype != DType::F32)
    return err("KV cache type must be F16, BF16 or F32, found ", dtype_name(dtype));
  return {};
}

Result<KvCache> KvCache::create(const KvGeometry& g, int n_ctx) {
  FKV_TRY(g.validate());
  if (n_ctx < 1) return err("context size must be at least 1 token, found ", n_ctx);
  KvCache c;
  c.g_ = g;
  c.n_pages_cap_ = (n_ctx + g.page_size - 1) / g.page_size;
  const size_t bytes = c.reserved_bytes();
  // Left uninitialised on purpose: the kernel maps pages in as tokens are written, so RSS follows the context used.
  c.storage_.reset(new (std::nothrow) uint8_t[bytes]);
  if (!c.storage_) return err("cannot reserve ", bytes / (1 << 20), " MiB for a KV cache of ", n_ctx, " tokens");
  c.page_table_.resize(static_cast<size_t>(c.n_pages_cap_));
  std::iota(c.page_table_.begin(), c.page_table_.end(), 0);
  return c;
}

int KvCache::page_len(int p) const {
  return std::min(g_.page_size, n_tokens_ - p * g_.page_size);
}

uint8_t* KvCache::block(int l, int p, int kv, int h) {
  const size_t phys = static_cast<size_t>(page_table_[static_cast<size_t>(p)]);
  const size_t page = static_cast<size_t>(l) * n_pages_cap_ + phys;
  return storage_.get() + page * g_.page_bytes() + (static_cast<size_t>(kv) * g_.n_kv_heads + h) * g_.head_block_bytes();
}

void KvCache::write(int l, int pos, int n, const float* k, const float* v) {
  const int hd = g_.head_dim;
  const size_t row = static_cast<size_t>(hd) * g_.elem_bytes();
  for (int i = 0; i < n; ++i) {
    const int p = (pos + i) / g_.page_size;
    const int slot = (pos + i) % g_.page_size;
    for (int h = 0; h < g_.n_kv_heads; ++h) {
      const size_t src = (static_cast<size_t>(i) * g_.n_kv_heads + h) * hd;
      cpu::store_kv_row(g_.dtype, k + src, k_block(l, p, h) + slot * row, hd);
      cpu::store_kv_row(g_.dtype, v + src, v_block(l, p, h) + slot * row, hd);
    }
  }
}

}  // namespace fkv
