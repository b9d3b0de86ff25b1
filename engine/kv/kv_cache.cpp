#include "kv/kv_cache.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
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

struct KvCache::DiskTier {
  std::vector<PageFileView> files;
  // (n_pages_cap) index into files; -1: host storage. Atomic: a write moves a page to host storage while a background
  // selection may read it (both copies hold the same bytes, and the file stays mapped).
  std::unique_ptr<std::atomic<int16_t>[]> page_file;
  int file_of(int p) const { return page_file[static_cast<size_t>(p)].load(std::memory_order_relaxed); }
  // (n_layers, n_pages_cap) kResident | kReferenced
  std::unique_ptr<std::atomic<uint8_t>[]> state;
  std::atomic<uint64_t> resident_bytes{0};
  std::atomic<uint64_t> paged_in_bytes{0};
  std::atomic<uint64_t> wait_ns{0}, background_ns{0};
  size_t hand = 0;                 // CLOCK position, over (layer, page) of the mapped pages
  int mapped_end = 0;              // pages [0, mapped_end) may be mapped
  std::unique_ptr<uint8_t[]> zeros;  // (page_bytes) what a damaged record reads as
  std::atomic<bool> damaged{false};
  mutable std::mutex mu;           // guards damage and touched
  std::string damage;
  std::vector<std::pair<int, int>> touched;  // (layer, page) of records brought in since the last sweep

  static constexpr uint8_t kResident = 1, kReferenced = 2;
  const uint8_t* record(const PageFileView& f, int l, int p) const {
    return f.records + (static_cast<size_t>(l) * f.n_pages + (p - f.first_page)) * f.record_stride;
  }
};

namespace {
thread_local bool tl_background_reads = false;

// Touches each OS page of a record, so that its fault (and any wait for the disk) happens here, where it is timed.
void touch(const uint8_t* record, size_t bytes) {
  static const size_t os_page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  for (size_t off = 0; off < bytes; off += os_page) {
    const volatile uint8_t* b = record + off;
    (void)*b;
  }
}
}  // namespace

KvCache::BackgroundReads::BackgroundReads() : was_(tl_background_reads) { tl_background_reads = true; }
KvCache::BackgroundReads::~BackgroundReads() { tl_background_reads = was_; }

KvCache::KvCache() = default;
KvCache::~KvCache() = default;
KvCache::KvCache(KvCache&&) noexcept = default;
KvCache& KvCache::operator=(KvCache&&) noexcept = default;

size_t KvCache::block_offset(int kv, int h) const {
  return (static_cast<size_t>(kv) * g_.n_kv_heads + h) * g_.head_block_bytes();
}

uint8_t* KvCache::host_block(int l, int p, int kv, int h) const {
  const size_t phys = static_cast<size_t>(page_table_[static_cast<size_t>(p)]);
  const size_t page = static_cast<size_t>(l) * n_pages_cap_ + phys;
  return storage_.get() + page * g_.page_bytes() + block_offset(kv, h);
}

uint8_t* KvCache::block(int l, int p, int kv, int h) {
  if (disk_ && disk_->file_of(p) >= 0) materialize(p);
  return host_block(l, p, kv, h);
}

const uint8_t* KvCache::read_block(int l, int p, int kv, int h) const {
  if (!disk_) return host_block(l, p, kv, h);
  const int f = disk_->file_of(p);
  if (f < 0) return host_block(l, p, kv, h);
  DiskTier& d = *disk_;
  const PageFileView& file = d.files[static_cast<size_t>(f)];
  std::atomic<uint8_t>& st = d.state[static_cast<size_t>(l) * n_pages_cap_ + p];
  constexpr uint8_t kBoth = DiskTier::kResident | DiskTier::kReferenced;
  if (st.load(std::memory_order_relaxed) != kBoth) {
    const uint8_t was = st.fetch_or(kBoth, std::memory_order_relaxed);
    if ((was & DiskTier::kResident) == 0) {
      d.resident_bytes.fetch_add(file.record_stride, std::memory_order_relaxed);
      d.paged_in_bytes.fetch_add(file.record_stride, std::memory_order_relaxed);
      const auto t0 = std::chrono::steady_clock::now();
      touch(d.record(file, l, p), file.record_stride);
      const auto ns = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
      (tl_background_reads ? d.background_ns : d.wait_ns).fetch_add(ns, std::memory_order_relaxed);
      std::lock_guard<std::mutex> lock(d.mu);
      d.touched.emplace_back(l, p);
    }
  }
  if (const Status s = file.verify(l, p); !s.ok()) {
    if (!d.damaged.exchange(true)) {
      std::lock_guard<std::mutex> lock(d.mu);
      d.damage = s.message();
    }
    return d.zeros.get() + block_offset(kv, h);
  }
  return d.record(file, l, p) + block_offset(kv, h);
}

void KvCache::map_pages(PageFileView file) {
  if (!disk_) {
    disk_ = std::make_unique<DiskTier>();
    disk_->page_file.reset(new std::atomic<int16_t>[static_cast<size_t>(n_pages_cap_)]);
    for (int p = 0; p < n_pages_cap_; ++p) disk_->page_file[static_cast<size_t>(p)].store(-1);
    const size_t n = static_cast<size_t>(g_.n_layers) * n_pages_cap_;
    disk_->state.reset(new std::atomic<uint8_t>[n]);
    for (size_t i = 0; i < n; ++i) disk_->state[i].store(0, std::memory_order_relaxed);
    disk_->zeros.reset(new uint8_t[g_.page_bytes()]());
  }
  DiskTier& d = *disk_;
  const int16_t index = static_cast<int16_t>(d.files.size());
  const int end = static_cast<int>(std::min<int64_t>(file.first_page + file.n_pages, n_pages_cap_));
  d.files.push_back(std::move(file));
  const int first = static_cast<int>(d.files.back().first_page);
  for (int p = first; p < end; ++p) {
    d.page_file[static_cast<size_t>(p)].store(index);
    for (int l = 0; l < g_.n_layers; ++l) {
      // A page mapped over a resident one (a reload) starts untouched.
      const uint8_t was = d.state[static_cast<size_t>(l) * n_pages_cap_ + p].exchange(0);
      if (was & DiskTier::kResident) d.resident_bytes.fetch_sub(d.files.back().record_stride);
    }
  }
  d.mapped_end = std::max(d.mapped_end, end);
}

void KvCache::unmap_all() { disk_.reset(); }

void KvCache::materialize(int p) {
  DiskTier& d = *disk_;
  const PageFileView& file = d.files[static_cast<size_t>(d.file_of(p))];
  const size_t half = static_cast<size_t>(g_.n_kv_heads) * g_.head_block_bytes();
  for (int l = 0; l < g_.n_layers; ++l) {
    std::memcpy(host_block(l, p, 0, 0), read_block(l, p, 0, 0), half);
    std::memcpy(host_block(l, p, 1, 0), read_block(l, p, 1, 0), half);
    const uint8_t was = d.state[static_cast<size_t>(l) * n_pages_cap_ + p].exchange(0);
    if (was & DiskTier::kResident) d.resident_bytes.fetch_sub(file.record_stride);
  }
  d.page_file[static_cast<size_t>(p)].store(-1);
}

void KvCache::trim(uint64_t cap_bytes) {
  if (!disk_) return;
  sweep_touched();
  if (disk_->resident_bytes.load(std::memory_order_relaxed) <= cap_bytes) return;
  DiskTier& d = *disk_;
  const size_t n = static_cast<size_t>(g_.n_layers) * static_cast<size_t>(d.mapped_end);
  if (n == 0) return;
  // Two passes at most: the first may only clear referenced marks.
  for (size_t steps = 0; steps < 2 * n && d.resident_bytes.load(std::memory_order_relaxed) > cap_bytes; ++steps) {
    const size_t i = d.hand % n;
    d.hand = (i + 1) % n;
    const int l = static_cast<int>(i / d.mapped_end);
    const int p = static_cast<int>(i % d.mapped_end);
    const int f = d.file_of(p);
    if (f < 0) continue;
    std::atomic<uint8_t>& st = d.state[static_cast<size_t>(l) * n_pages_cap_ + p];
    uint8_t expected = DiskTier::kResident;
    if (st.load(std::memory_order_relaxed) & DiskTier::kReferenced) {
      st.fetch_and(static_cast<uint8_t>(~DiskTier::kReferenced), std::memory_order_relaxed);
      continue;
    }
    if (!st.compare_exchange_strong(expected, 0, std::memory_order_relaxed)) continue;
    const PageFileView& file = d.files[static_cast<size_t>(f)];
    // The mapping is read-only and the file unchanged: dropped pages are read again from it when touched.
    ::madvise(const_cast<uint8_t*>(d.record(file, l, p)), file.record_stride, MADV_DONTNEED);
    d.resident_bytes.fetch_sub(file.record_stride, std::memory_order_relaxed);
  }
}

// A fault on one record maps more of the file than the record: the neighbours within the kernel's fault-around
// window, or the whole large folio the page cache holds it in (files written recently sit in folios of up to 2 MiB),
// unseen by the marks. After each layer, the unmarked records of the 2 MiB-aligned region around every record
// brought in since the last sweep are returned to the file, so what stays mapped is what the marks count. (A
// record read meanwhile by another thread comes back from the page cache unchanged.)
void KvCache::sweep_touched() {
  DiskTier& d = *disk_;
  std::vector<std::pair<int, int>> touched;
  {
    std::lock_guard<std::mutex> lock(d.mu);
    touched.swap(d.touched);
  }
  if (touched.empty()) return;
  constexpr uintptr_t kRegion = 2 << 20;
  std::vector<uintptr_t> done;  // regions swept in this pass
  for (const auto& [l, p] : touched) {
    const int f = d.file_of(p);
    if (f < 0) continue;
    const PageFileView& file = d.files[static_cast<size_t>(f)];
    const uintptr_t base = reinterpret_cast<uintptr_t>(file.records);
    const size_t stride = file.record_stride;
    const int64_t n_records = file.n_pages * g_.n_layers;
    const uintptr_t at = reinterpret_cast<uintptr_t>(d.record(file, l, p));
    const uintptr_t r0 = std::max(base, at & ~(kRegion - 1));
    if (std::find(done.begin(), done.end(), r0) != done.end()) continue;
    done.push_back(r0);
    const uintptr_t r1 = std::min(base + n_records * stride, ((at + stride + kRegion - 1) & ~(kRegion - 1)));
    const int64_t i0 = static_cast<int64_t>((r0 - base) / stride);
    const int64_t i1 = std::min<int64_t>(n_records, static_cast<int64_t>((r1 - base + stride - 1) / stride));
    int64_t run = -1;  // first record of the current run of unmarked ones
    for (int64_t i = i0; i <= i1; ++i) {
      bool unmarked = false;
      if (i < i1) {
        const int nl = static_cast<int>(i / file.n_pages);
        const int np = static_cast<int>(file.first_page + i % file.n_pages);
        unmarked = d.file_of(np) == f &&
                   (d.state[static_cast<size_t>(nl) * n_pages_cap_ + np].load(std::memory_order_relaxed) &
                    DiskTier::kResident) == 0;
      }
      if (unmarked && run < 0) run = i;
      if (!unmarked && run >= 0) {
        ::madvise(reinterpret_cast<void*>(base + run * stride), static_cast<size_t>(i - run) * stride, MADV_DONTNEED);
        run = -1;
      }
    }
  }
}

uint64_t KvCache::mapped_resident_bytes() const { return disk_ ? disk_->resident_bytes.load() : 0; }
uint64_t KvCache::paged_in_bytes() const { return disk_ ? disk_->paged_in_bytes.load() : 0; }
double KvCache::file_wait_s() const { return disk_ ? 1e-9 * static_cast<double>(disk_->wait_ns.load()) : 0; }
double KvCache::file_background_s() const { return disk_ ? 1e-9 * static_cast<double>(disk_->background_ns.load()) : 0; }

void KvCache::prefetch(int l, const int32_t* pages, int n) const {
  if (!disk_) return;
  const DiskTier& d = *disk_;
  for (int i = 0; i < n; ++i) {
    const int p = pages[i];
    const int f = d.file_of(p);
    if (f < 0 || (d.state[static_cast<size_t>(l) * n_pages_cap_ + p].load(std::memory_order_relaxed) & DiskTier::kResident))
      continue;
    const PageFileView& file = d.files[static_cast<size_t>(f)];
    ::madvise(const_cast<uint8_t*>(d.record(file, l, p)), file.record_stride, MADV_WILLNEED);
  }
}

uint64_t KvCache::mapped_bytes() const {
  if (!disk_) return 0;
  uint64_t total = 0;
  for (int p = 0; p < std::min(disk_->mapped_end, n_pages()); ++p) {
    const int f = disk_->file_of(p);
    if (f >= 0) total += static_cast<uint64_t>(g_.n_layers) * disk_->files[static_cast<size_t>(f)].record_stride;
  }
  return total;
}

std::string KvCache::damage() const {
  if (!disk_ || !disk_->damaged.load()) return {};
  std::lock_guard<std::mutex> lock(disk_->mu);
  return disk_->damage;
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
