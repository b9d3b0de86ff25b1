// The paged KV cache's host tier. Pages of `page_size` tokens; within a layer's page the keys of one KV head form one
// contiguous (page_size, head_dim) block (head-major, "HND"), so a per-head page can be moved or attended as one block.
// Storage for n_ctx tokens is reserved up front but only touched (and so only resident) as tokens are written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
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

  // (page_size, head_dim) block of keys / values of KV head h in logical page p of layer l. The mutable ones are for
  // writing: a page that lives in a file (the disk tier below) is first copied into host storage.
  uint8_t* k_block(int l, int p, int h) { return block(l, p, 0, h); }
  uint8_t* v_block(int l, int p, int h) { return block(l, p, 1, h); }
  const uint8_t* k_block(int l, int p, int h) const { return read_block(l, p, 0, h); }
  const uint8_t* v_block(int l, int p, int h) const { return read_block(l, p, 1, h); }

  // Stores the keys and values of `n` tokens at positions pos..pos+n-1 of layer l, converting from f32.
  // k, v: (n, n_kv_heads, head_dim). The caller has checked pos + n <= capacity_tokens().
  void write(int l, int pos, int n, const float* k, const float* v);

  // Tokens become visible to attention only here, once every layer has written them.
  void set_n_tokens(int n) { n_tokens_ = n; }

  size_t reserved_bytes() const { return static_cast<size_t>(n_pages_cap_) * g_.page_bytes() * g_.n_layers; }
  size_t used_bytes() const { return static_cast<size_t>(n_pages()) * g_.page_bytes() * g_.n_layers; }

  // ---- The disk tier: pages that stay in a KV page file (store/page_file.h) ----
  // Reading pages in place means a reopened document costs no copy, and only the pages a step touches become
  // resident; trim() returns the least recently touched ones to the file, so host memory stays under a cap.
  //
  // A file's records are laid out as this cache's pages (K of every head, then V), record_stride apart, layer-major:
  // record (l, p) sits at records + (l * n_pages + p - first_page) * record_stride. `verify` returns the record once
  // its checksum holds (store/page_file.h checks each record once); `owner` keeps the mapping alive while mapped.
  using RecordCheck = std::function<Status(int l, int64_t p)>;
  struct PageFileView {
    const uint8_t* records = nullptr;
    int64_t first_page = 0;
    int64_t n_pages = 0;
    size_t record_stride = 0;  // a multiple of the OS page size
    RecordCheck verify;
    std::shared_ptr<const void> owner;
  };
  // Pages [first_page, first_page + n_pages) of every layer are read from `file` from now on.
  void map_pages(PageFileView file);
  // Forgets every mapped page (reset): what was read from files is dropped, host pages stay.
  void unmap_all();
  // Returns least recently touched mapped records to their file until at most cap_bytes of them stay resident
  // (CLOCK: a record touched since the last pass is spared once). Safe while other threads read: a record read again
  // comes back from the file unchanged.
  void trim(uint64_t cap_bytes);
  bool has_mapped_pages() const { return disk_ != nullptr; }
  uint64_t mapped_resident_bytes() const;  // mapped records touched and not trimmed since
  uint64_t paged_in_bytes() const;         // mapped records brought in, in total (a re-read after trim counts again)
  uint64_t mapped_bytes() const;           // records of the mapped pages within n_tokens, resident or not
  // Seconds threads spent bringing mapped records in when first touched (a fault that waits for the disk, or only
  // maps a page the page cache holds), summed over threads: on decode threads (the step waited) and on threads
  // inside a BackgroundReads scope (the speculative recall, off the critical path).
  double file_wait_s() const;
  double file_background_s() const;
  // Reads on this thread, while the scope lives, are counted as background reads.
  class BackgroundReads {
   public:
    BackgroundReads();
    ~BackgroundReads();
    BackgroundReads(const BackgroundReads&) = delete;
    BackgroundReads& operator=(const BackgroundReads&) = delete;

   private:
    bool was_;
  };
  // Starts reading the records of layer l's pages that are mapped and not resident (asynchronously, into the page
  // cache), so that a recall that copies them next finds them there instead of faulting each in turn.
  void prefetch(int l, const int32_t* pages, int n) const;
  // The first mapped record that failed its check (its bytes read as zeros meanwhile); empty while all held.
  std::string damage() const;

  KvCache();
  ~KvCache();
  KvCache(KvCache&&) noexcept;
  KvCache& operator=(KvCache&&) noexcept;

 private:
  struct DiskTier;
  uint8_t* block(int l, int p, int kv, int h);
  const uint8_t* read_block(int l, int p, int kv, int h) const;
  uint8_t* host_block(int l, int p, int kv, int h) const;
  size_t block_offset(int kv, int h) const;  // of head h's K (kv 0) or V (kv 1) block within a page's bytes
  void materialize(int p);  // copies mapped page p (every layer) into host storage
  void sweep_touched();  // trim's first part: returns what faults mapped beside the records they brought in

  KvGeometry g_;
  int n_pages_cap_ = 0;
  int n_tokens_ = 0;
  std::unique_ptr<uint8_t[]> storage_;  // (n_layers, n_pages_cap, 2, n_kv_heads, page_size, head_dim)
  std::vector<int32_t> page_table_;     // (n_pages_cap) logical page -> physical page
  std::unique_ptr<DiskTier> disk_;      // set while pages are mapped
};

}  // namespace fkv
