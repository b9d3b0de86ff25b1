// KV page files: one document's or chat's KV cache on disk, so reopening it needs no prefill. The byte format is
// specified in docs/kv-format.md; in short: a self-describing 512-byte header with its own checksum, a table of one
// checksum per (layer, page) record, the records themselves (K then V of all KV heads, exactly the host tier's HND
// page layout) each at a 4096-aligned offset so the file can be mapped and copied block by block, then the page
// summaries and per-layer summary counts under one checksum.
//
// A file may hold only pages [first_page, ...) of a context: a chat that extends a document's KV stores its own pages
// and names the document's snapshot (the base) by that file's header checksum.
//
// This file and its .cpp depend on core/ only: the reader is fuzzed, and the fuzz build holds nothing but parsers.
// The glue to KvCache and PageSummaries is store/kv_snapshot.h.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mmap_file.h"
#include "fkv/status.h"
#include "store/checksum.h"

namespace fkv {

inline constexpr uint32_t kPageFileVersion = 1;      // the newest format this build reads and the one it writes
inline constexpr size_t kPageFileHeaderBytes = 512;  // version 1 header, reserved bytes included
inline constexpr uint64_t kPageFileAlign = 4096;     // records and summaries start at multiples of this
inline constexpr size_t kPageFileMaxString = 64;     // model fingerprint and prompt-format tag, bytes
inline constexpr uint32_t kPageFileLayoutHnd = 1;    // (n_kv_heads, page_size, head_dim) per K and per V

// Progress of a long write: bytes done out of total. Returning false cancels.
using ByteProgress = std::function<bool(uint64_t done, uint64_t total)>;

// What a page file says about itself: who made it, the KV geometry, and which pages it holds.
struct PageFileInfo {
  std::string model_fingerprint;  // <= 64 bytes (store/fingerprint.h)
  uint64_t tokenizer_hash = 0;
  std::string prompt_format;  // <= 64 bytes: the chat-template tag the tokens were laid out with
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int page_size = 0;         // tokens per page
  DType dtype = DType::F16;  // F16, BF16 or F32
  uint32_t layout = kPageFileLayoutHnd;
  int64_t n_tokens = 0;           // tokens of the whole context, base pages included
  int64_t first_page = 0;         // pages [0, first_page) are not in this file: they come from the base snapshot
  uint64_t base_fingerprint = 0;  // header checksum of the base file; 0 exactly when first_page is 0

  // Pages stored in this file: ceil(n_tokens / page_size) - first_page.
  int64_t n_pages() const;
  // Ranges and consistency of every field (what a writer must pass and a reader must find).
  Status validate() const;
};

// Where everything lies, a pure function of the info: a version-1 file has exactly this layout, and the reader
// checks every offset the header states against it.
struct PageFileLayout {
  uint64_t record_bytes = 0;   // one (layer, page) record: K then V, each (n_kv_heads, page_size, head_dim)
  uint64_t record_stride = 0;  // record_bytes rounded up to kPageFileAlign
  uint64_t table_offset = 0;   // (n_layers, n_pages) u64 checksums, one per record
  uint64_t table_bytes = 0;
  uint64_t records_offset = 0;    // (n_layers, n_pages) records, each record_stride apart
  uint64_t summaries_offset = 0;  // (n_layers, n_pages, n_kv_heads, 2, head_dim) f32, then (n_layers) u32 n_built
  uint64_t summary_bytes = 0;     // the f32 part only
  uint64_t section_bytes = 0;     // summaries and n_built: what the summaries checksum covers
  uint64_t file_size = 0;

  // Fails (naming the field) when the sizes do not fit in 64 bits; expects a validated info.
  static Result<PageFileLayout> of(const PageFileInfo& info);
  uint64_t record_offset(int64_t index) const { return records_offset + static_cast<uint64_t>(index) * record_stride; }
};

namespace page_file_detail {
// The version-1 header bytes for `info`, with the table and summaries checksums and the header's own checksum.
std::array<uint8_t, kPageFileHeaderBytes> encode_header(const PageFileInfo& info, const PageFileLayout& layout,
                                                        uint64_t table_checksum, uint64_t summaries_checksum);
}  // namespace page_file_detail

// Writes a page file in one sequential pass: records in file order (layer-major, then page), then each layer's
// summaries, then finish(). Bytes go to "<path>.tmp", which finish() syncs and renames over `path`, so a crash at any
// moment leaves either the old file or the new one. Move-only; an unfinished writer removes its .tmp file.
class PageFileWriter {
 public:
  // A stale "<path>.tmp" left by an interrupted save is replaced: page files of one path have one writer (the
  // engine's I/O thread), and a torn file could not pass the reader's checksums anyway.
  static Result<PageFileWriter> create(const std::string& path, const PageFileInfo& info, ByteProgress progress = {});
  PageFileWriter() = default;
  ~PageFileWriter();
  PageFileWriter(PageFileWriter&& o) noexcept;
  PageFileWriter& operator=(PageFileWriter&& o) noexcept;
  PageFileWriter(const PageFileWriter&) = delete;
  PageFileWriter& operator=(const PageFileWriter&) = delete;

  const PageFileLayout& layout() const { return layout_; }
  // The next record: k and v are (n_kv_heads, page_size, head_dim) blocks of which the first n_rows rows of each
  // head are stored; the rest of the record is written as zeros (a partial last page).
  Status add_page(const uint8_t* k, const uint8_t* v, int n_rows);
  // After every record, once per layer in order: layer_summaries (n_pages, n_kv_heads, 2, head_dim).
  Status add_summaries(const float* layer_summaries);
  // After every layer's summaries: n_built (n_layers) summarised pages per layer, counted from page 0.
  // Writes the table and header, syncs, renames over the target and syncs its directory.
  Status finish(std::span<const int> n_built);

 private:
  Status fail(Status s);
  Status check_open() const;
  Status append(const void* data, size_t n);
  Status append_zeros(size_t n);
  Status append_hashed(const void* data, size_t n, Checksum64& h);
  Status flush();
  Status commit();
  void close_and_remove();

  PageFileInfo info_;
  PageFileLayout layout_;
  std::string path_;
  std::string tmp_path_;
  ByteProgress progress_;
  int fd_ = -1;
  bool failed_ = false;
  std::vector<uint8_t> chunk_;  // (kChunkBytes) bytes waiting for one big write()
  size_t n_chunk_ = 0;
  std::vector<uint8_t> zeros_;   // (max(head block, alignment)) for unused rows and padding
  uint64_t n_written_ = 0;       // bytes handed to write() so far
  std::vector<uint64_t> table_;  // (n_layers, n_pages) record checksums, filled as records arrive
  size_t n_records_ = 0;
  int n_summary_layers_ = 0;
  Checksum64 summaries_hash_;
};

// A mapped page file, validated up front (header, offsets, table and summaries checksums) and treating every byte as
// hostile. Page records are verified lazily, the first time each is asked for, so opening a large file is cheap.
class PageFileReader {
 public:
  // Errors name the file: "<path>: not a KV page file", "<path>: written by a newer version ...", "<path>: truncated
  // ...: expected N bytes, found M".
  static Result<PageFileReader> open(const std::string& path);
  // Parses a buffer the caller keeps alive (fuzzing, tests); `label` names it in errors.
  static Result<PageFileReader> parse(const uint8_t* data, size_t size, std::string label);

  const PageFileInfo& info() const { return info_; }
  const PageFileLayout& layout() const { return layout_; }
  const std::string& label() const { return label_; }
  // True when the bytes are the file's own mapping (open), not a caller's buffer (parse): only then may pages be read
  // in place for as long as the reader lives.
  bool is_mapped() const { return map_.data() != nullptr; }
  // Where the records begin: record i (layer-major) is record_base() + i * layout().record_stride, unverified; page()
  // is the checked way in.
  const uint8_t* record_base() const { return data_ + layout_.records_offset; }
  // The header checksum: what a chat extension stores as its base_fingerprint.
  uint64_t fingerprint() const { return header_checksum_; }

  // Record of layer l, page p (p counted from the start of the context, so first_page <= p < first_page + n_pages):
  // K then V, each (n_kv_heads, page_size, head_dim), record_bytes long. Checked once against its checksum and for
  // NaN or infinite values (a crafted file can carry both with a correct checksum); either is damage, and the error
  // names the layer and page. Safe to call from several threads.
  Result<const uint8_t*> page(int l, int64_t p) const;
  // (n_pages, n_kv_heads, 2, head_dim) f32 min/max summaries of layer l's pages in this file, verified at open.
  // Bytes, not floats: the pointer need not be 4-aligned when the file was parsed from a caller's buffer.
  const uint8_t* summaries(int l) const;
  // Pages [0, n_built(l)) of layer l have summaries (base pages included).
  int n_built(int l) const { return n_built_[static_cast<size_t>(l)]; }

 private:
  Status parse_header();
  Status check_sections();
  Status non_finite_error(int l, int64_t p, const uint8_t* record) const;

  // page_state_ values.
  static constexpr uint8_t kPageUnchecked = 0, kPageVerified = 1, kPageBadChecksum = 2, kPageNonFinite = 3;

  MappedFile map_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string label_;
  PageFileInfo info_;
  PageFileLayout layout_;
  uint64_t header_checksum_ = 0;
  uint64_t table_checksum_ = 0;
  uint64_t summaries_checksum_ = 0;
  std::vector<int> n_built_;  // (n_layers)
  // (n_layers, n_pages) kPage* states; atomics so concurrent readers may verify in parallel.
  std::unique_ptr<std::atomic<uint8_t>[]> page_state_;
};

}  // namespace fkv
