#include "store/kv_snapshot.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"

namespace fkv {

// Records and summaries are copied as raw bytes between memory and file, and the format is little-endian.
static_assert(std::endian::native == std::endian::little, "KV snapshots copy little-endian bytes as they are");

namespace {

std::string hex64(uint64_t v) {
  char buf[19];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, v);
  return buf;
}

// Summaries depend on the layer, head and channel counts only (they are f32 whatever the cache type).
bool same_shape(const KvGeometry& a, const KvGeometry& b) {
  return a.n_layers == b.n_layers && a.n_kv_heads == b.n_kv_heads && a.head_dim == b.head_dim;
}

// The summaries must describe this cache and have room for `n_pages` pages.
Status check_summaries(const PageSummaries& s, const KvCache& cache, int64_t n_pages) {
  const KvGeometry& g = s.geometry();
  if (!same_shape(g, cache.geometry())) {
    return err("page summaries are sized for ", g.n_layers, " layers x ", g.n_kv_heads, " KV heads x head dim ",
               g.head_dim, ", the cache has ", cache.geometry().n_layers, " x ", cache.geometry().n_kv_heads, " x ",
               cache.geometry().head_dim);
  }
  if (s.n_pages_cap() < n_pages)
    return err("page summaries have room for ", s.n_pages_cap(), " pages, expected at least ", n_pages);
  return {};
}

// The page-file fields a cache of geometry g holding n_tokens fixes; the header's strings have room of their own, so
// the layout (and the file's size) depends on these alone.
PageFileInfo geometry_info(const KvGeometry& g, int64_t n_tokens) {
  PageFileInfo info;
  info.n_layers = g.n_layers;
  info.n_kv_heads = g.n_kv_heads;
  info.head_dim = g.head_dim;
  info.page_size = g.page_size;
  info.dtype = g.dtype;
  info.n_tokens = n_tokens;
  return info;
}

PageFileInfo info_for(const SnapshotMeta& meta, const KvCache& cache, int first_page) {
  PageFileInfo info = geometry_info(cache.geometry(), cache.n_tokens());
  info.model_fingerprint = meta.model_fingerprint;
  info.tokenizer_hash = meta.tokenizer_hash;
  info.prompt_format = meta.prompt_format;
  info.first_page = first_page;
  info.base_fingerprint = first_page > 0 ? meta.base_fingerprint : 0;
  return info;
}

}  // namespace

uint64_t kv_snapshot_bytes(const KvGeometry& g, int64_t n_tokens) {
  const Result<PageFileLayout> layout = PageFileLayout::of(geometry_info(g, n_tokens));
  return layout.ok() ? layout->file_size : 0;
}

namespace {

Status write_pages(PageFileWriter& w, const KvCache& cache, const PageSummaries& summaries, int first_page) {
  const KvGeometry& g = cache.geometry();
  const int n_pages = cache.n_pages();
  for (int l = 0; l < g.n_layers; ++l)
    for (int p = first_page; p < n_pages; ++p)  // HND: a page's K heads are one block, its V heads another
      FKV_TRY(w.add_page(cache.k_block(l, p, 0), cache.v_block(l, p, 0), cache.page_len(p)));
  std::vector<int> n_built(static_cast<size_t>(g.n_layers));  // (n_layers)
  // A count past the cache's pages (tokens were rolled back) would not survive the reader's checks; the pages it
  // names no longer exist, so it is cut to them.
  for (int l = 0; l < g.n_layers; ++l) n_built[static_cast<size_t>(l)] = std::min(summaries.n_built(l), n_pages);
  // Pages not yet summarised (a partial last page) have no summary in memory, only whatever the buffer held: they are
  // written as zeros, so a file's bytes depend on its KV alone and no stray memory reaches the disk.
  // The file holds them as f32 (the F16 values widen exactly).
  std::vector<float> layer;  // (n_pages - first_page, n_kv_heads, 2, head_dim)
  const size_t stride = summaries.page_stride();
  const size_t block = 2 * static_cast<size_t>(g.head_dim);
  for (int l = 0; l < g.n_layers; ++l) {
    if (n_pages <= first_page) {
      FKV_TRY(w.add_summaries(nullptr));
      continue;
    }
    const int built = std::max(n_built[static_cast<size_t>(l)], first_page);
    layer.assign(static_cast<size_t>(n_pages - first_page) * stride, 0.f);
    for (int p = first_page; p < built; ++p)
      for (int h = 0; h < g.n_kv_heads; ++h)
        summaries.load(l, p, h, layer.data() + static_cast<size_t>(p - first_page) * stride + h * block);
    FKV_TRY(w.add_summaries(layer.data()));
  }
  return w.finish(n_built);
}

}  // namespace

Status save_kv_snapshot(const std::string& path, const SnapshotMeta& meta, const KvCache& cache,
                        const PageSummaries& summaries, int first_page, const ByteProgress& progress) {
  const int page_size = cache.geometry().page_size;
  if (first_page < 0 || static_cast<int64_t>(first_page) * page_size > cache.n_tokens()) {
    return err(path, ": first page ", first_page, " must be a full page of the ", cache.n_tokens(),
               "-token context (at most ", cache.n_tokens() / page_size, ")");
  }
  if (Status s = check_summaries(summaries, cache, cache.n_pages()); !s.ok()) return err(path, ": ", s.message());
  FKV_ASSIGN_OR_RETURN(PageFileWriter w, PageFileWriter::create(path, info_for(meta, cache, first_page), progress));
  return write_pages(w, cache, summaries, first_page);
}

Status check_kv_snapshot(const PageFileReader& file, const SnapshotMeta& expected, const KvGeometry& g) {
  const PageFileInfo& f = file.info();
  const std::string& n = file.label();
  if (f.model_fingerprint != expected.model_fingerprint) {
    return err(n, ": snapshot was made with model ", f.model_fingerprint, ", this is model ",
               expected.model_fingerprint);
  }
  if (f.tokenizer_hash != expected.tokenizer_hash) {
    return err(n, ": snapshot was made with tokenizer ", hex64(f.tokenizer_hash), ", this model's tokenizer is ",
               hex64(expected.tokenizer_hash));
  }
  if (f.prompt_format != expected.prompt_format)
    return err(n, ": snapshot uses prompt format '", f.prompt_format, "', expected '", expected.prompt_format, "'");
  if (f.n_layers != g.n_layers) return err(n, ": snapshot has ", f.n_layers, " layers, expected ", g.n_layers);
  if (f.n_kv_heads != g.n_kv_heads)
    return err(n, ": snapshot has ", f.n_kv_heads, " KV heads, expected ", g.n_kv_heads);
  if (f.head_dim != g.head_dim) return err(n, ": snapshot has head dim ", f.head_dim, ", expected ", g.head_dim);
  if (f.page_size != g.page_size) return err(n, ": page size ", f.page_size, ", expected ", g.page_size);
  if (f.dtype != g.dtype) {
    return err(n, ": snapshot stores ", dtype_name(f.dtype), " keys and values, expected ", dtype_name(g.dtype));
  }
  return {};
}

namespace {

// What must hold before the first byte is copied; nothing is changed here.
Status check_target(const PageFileReader& file, const SnapshotMeta& expected, const KvCache& cache,
                    const PageSummaries& summaries) {
  const PageFileInfo& f = file.info();
  const std::string& n = file.label();
  FKV_TRY(check_kv_snapshot(file, expected, cache.geometry()));
  if (f.n_tokens > cache.capacity_tokens())
    return err(n, ": snapshot holds ", f.n_tokens, " tokens, the cache has room for ", cache.capacity_tokens());
  const int64_t n_total = f.first_page + f.n_pages();
  if (Status s = check_summaries(summaries, cache, n_total); !s.ok()) return err(n, ": ", s.message());
  if (f.first_page == 0) return {};
  if (f.base_fingerprint != expected.base_fingerprint) {
    return err(n, ": snapshot extends base snapshot ", hex64(f.base_fingerprint), ", the loaded base is ",
               hex64(expected.base_fingerprint));
  }
  if (cache.n_tokens() < f.first_page * f.page_size) {
    return err(n, ": snapshot extends a base of ", f.first_page, " pages (", f.first_page * f.page_size,
               " tokens), the cache holds ", cache.n_tokens(), " tokens: load the base first");
  }
  for (int l = 0; l < f.n_layers; ++l) {
    const int64_t needed = std::min<int64_t>(f.first_page, file.n_built(l));
    if (summaries.n_built(l) < needed)
      return err(n, ": layer ", l, " of the base has ", summaries.n_built(l), " page summaries, expected ", needed);
  }
  return {};
}

// The file's f32 summaries into the F16 ones, rounded outward (exact for those an F16 build wrote), then their 8-bit
// codes where the summaries keep them. Layers are independent: one worker each.
void copy_summaries(const PageFileReader& file, PageSummaries& summaries, ThreadPool* pool) {
  const PageFileInfo& f = file.info();
  const size_t stride = summaries.page_stride();
  const size_t block = 2 * static_cast<size_t>(f.head_dim);
  const int first = static_cast<int>(f.first_page);
  const auto copy_layers = [&](int64_t l0, int64_t l1) {
    std::vector<float> mn_mx(block);
    for (int l = static_cast<int>(l0); l < l1; ++l) {
      const uint8_t* src = file.summaries(l);  // (n_pages, n_kv_heads, 2, head_dim) f32
      const int end = static_cast<int>(std::min<int64_t>(file.n_built(l), f.first_page + f.n_pages()));
      // Pages from `first` on are written anew: their codes, if any, are stale from here.
      summaries.set_n_built(l, std::min(summaries.n_built(l), first));
      for (int p = first; p < end; ++p) {
        for (int h = 0; h < f.n_kv_heads; ++h) {
          std::memcpy(mn_mx.data(), src + (static_cast<size_t>(p - first) * stride + h * block) * sizeof(float),
                      block * sizeof(float));
          summaries.store(l, p, h, mn_mx.data());
        }
      }
      summaries.set_n_built(l, file.n_built(l));
      summaries.update_codes(l);
    }
  };
  if (pool != nullptr)
    pool->parallel_for(f.n_layers, 1, copy_layers);
  else
    copy_layers(0, f.n_layers);
}

Status copy_in(const PageFileReader& file, KvCache& cache, PageSummaries& summaries, ThreadPool* pool) {
  const PageFileInfo& f = file.info();
  const int first = static_cast<int>(f.first_page);
  const int end = static_cast<int>(f.first_page + f.n_pages());
  const size_t half = static_cast<size_t>(file.layout().record_bytes) / 2;  // K of all heads, then V
  // Layers are independent: each one's pages are verified and copied by one worker; the first damaged layer's error
  // (in layer order, so the message does not depend on the thread count) is the one reported.
  std::vector<Status> layer_status(static_cast<size_t>(f.n_layers));
  const auto copy_layers = [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; ++l) {
      for (int p = first; p < end; ++p) {
        Result<const uint8_t*> record = file.page(static_cast<int>(l), p);
        if (!record.ok()) {
          layer_status[static_cast<size_t>(l)] = record.status();
          break;
        }
        std::memcpy(cache.k_block(static_cast<int>(l), p, 0), *record, half);
        std::memcpy(cache.v_block(static_cast<int>(l), p, 0), *record + half, half);
      }
    }
  };
  if (pool != nullptr) {
    pool->parallel_for(f.n_layers, 1, copy_layers);
  } else {
    copy_layers(0, f.n_layers);
  }
  for (const Status& s : layer_status) FKV_TRY(s);
  copy_summaries(file, summaries, pool);
  cache.set_n_tokens(static_cast<int>(f.n_tokens));
  return {};
}

}  // namespace

Status load_kv_snapshot(const PageFileReader& file, const SnapshotMeta& expected, KvCache& cache,
                        PageSummaries& summaries, ThreadPool* pool) {
  Status s = check_target(file, expected, cache, summaries);
  if (s.ok()) s = copy_in(file, cache, summaries, pool);
  if (!s.ok()) {
    cache.set_n_tokens(0);
    summaries.reset();
  }
  return s;
}

Status map_kv_snapshot(std::shared_ptr<const PageFileReader> file, const SnapshotMeta& expected, KvCache& cache,
                       PageSummaries& summaries, ThreadPool* pool) {
  const long os_page = ::sysconf(_SC_PAGESIZE);
  // A parsed buffer, or records not aligned to the OS page (where trimming could not return them), are copied.
  if (!file->is_mapped() || os_page <= 0 || file->layout().record_stride % static_cast<uint64_t>(os_page) != 0)
    return load_kv_snapshot(*file, expected, cache, summaries, pool);
  Status s = check_target(*file, expected, cache, summaries);
  if (s.ok()) {
    const PageFileInfo& f = file->info();
    KvCache::PageFileView view;
    view.records = file->record_base();
    view.first_page = f.first_page;
    view.n_pages = f.n_pages();
    view.record_stride = static_cast<size_t>(file->layout().record_stride);
    const PageFileReader* reader = file.get();
    view.verify = [reader](int l, int64_t p) { return reader->page(l, p).status(); };
    view.owner = std::move(file);
    // Steps read scattered records: a fault reads what it touches, without readahead. (The kernel still maps
    // neighbours the page cache holds on a fault; KvCache::trim drops those.)
    const uint64_t records_bytes = static_cast<uint64_t>(view.n_pages) * f.n_layers * view.record_stride;
    ::madvise(const_cast<uint8_t*>(view.records), static_cast<size_t>(records_bytes), MADV_RANDOM);
    // Nor as huge pages: a recently written file sits in the page cache in large folios, which the kernel may map
    // 2 MiB at a time; returning one record of such a mapping unmaps all of it, and the next read of any record
    // in it maps the whole 2 MiB again, unseen by the marks.
    ::madvise(const_cast<uint8_t*>(view.records), static_cast<size_t>(records_bytes), MADV_NOHUGEPAGE);
    copy_summaries(*reader, summaries, pool);
    // The copy is what selection reads: the file's summaries (a book's are hundreds of MB, read once at open for
    // their checksum) need not stay resident.
    const uintptr_t page = static_cast<uintptr_t>(os_page);
    const uintptr_t from = reinterpret_cast<uintptr_t>(reader->summaries(0));
    const uintptr_t aligned = (from + page - 1) & ~(page - 1);
    const uintptr_t to = from + reader->layout().section_bytes;
    if (to > aligned) ::madvise(reinterpret_cast<void*>(aligned), to - aligned, MADV_DONTNEED);
    cache.map_pages(std::move(view));
    cache.set_n_tokens(static_cast<int>(f.n_tokens));
  } else {
    cache.set_n_tokens(0);
    summaries.reset();
  }
  return s;
}

}  // namespace fkv
