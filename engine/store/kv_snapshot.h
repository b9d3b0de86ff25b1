// Snapshots of the in-memory KV (the host tier's KvCache and its PageSummaries) as page files (store/page_file.h),
// so a reopened document, or a chat on one, needs no prefill. A snapshot is a cache, not a format: anything that does
// not match what the caller is about to run (model, tokenizer, prompt format, geometry) or fails a checksum is
// refused with a message saying which, and the caller recomputes.
//
// Chats extend a document's KV copy-on-write at page granularity: the document's snapshot (the base) holds pages
// [0, first_page), the chat's snapshot holds the rest and names the base by its fingerprint. To restore a chat, load
// the base, then the extension.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "fkv/status.h"
#include "kv/kv_cache.h"
#include "kv/page_summary.h"
#include "store/page_file.h"

namespace fkv {

class ThreadPool;

// Who made a snapshot: written by save_kv_snapshot, required by load_kv_snapshot. The KV geometry is not here: it is
// the cache's own.
struct SnapshotMeta {
  std::string model_fingerprint;  // model_fingerprint() of the model that computed the keys and values (<= 64 bytes)
  uint64_t tokenizer_hash = 0;    // tokenizer_hash() of its tokenizer
  std::string prompt_format;      // tag of the chat template the tokens were laid out with (<= 64 bytes)
  // Extensions only (first_page > 0): the base snapshot's PageFileReader::fingerprint(). Saving records it; loading
  // an extension requires it to be the base the file names.
  uint64_t base_fingerprint = 0;
};

// Saves pages [first_page, cache.n_pages()) of every layer with their summaries, and each layer's summary count, to
// `path` (atomically: a crash leaves the old file or the new one). first_page > 0 makes an extension of the base
// snapshot meta.base_fingerprint, which must hold pages [0, first_page), all of them full. `progress` sees bytes
// written of the file's size; returning false cancels, leaving the old file and no temporary behind.
Status save_kv_snapshot(const std::string& path, const SnapshotMeta& meta, const KvCache& cache,
                        const PageSummaries& summaries, int first_page, const ByteProgress& progress = {});

// The size of the page file save_kv_snapshot writes for a whole cache of geometry g holding n_tokens (0 when the sizes
// do not fit in 64 bits), so a caller can tell before a long prefill whether the disk has room for its snapshot.
uint64_t kv_snapshot_bytes(const KvGeometry& g, int64_t n_tokens);

// Checks that `file` was made by this model, tokenizer and prompt format for a cache of geometry g. Each mismatch has
// its own message: "<file>: snapshot was made with model X, this is model Y", "<file>: page size 16, expected 32".
Status check_kv_snapshot(const PageFileReader& file, const SnapshotMeta& expected, const KvGeometry& g);

// Checks the file (check_kv_snapshot), copies its pages into `cache` (each verified against its checksum), restores
// their summaries and every layer's summary count, and sets the cache's token count. For an extension the base must
// already be loaded: the cache holds at least first_page full pages and expected.base_fingerprint names that base.
// On any error the cache and summaries are left empty (0 tokens, nothing summarised), never half-loaded. With a
// pool the layers are verified and copied in parallel (a book's KV is gigabytes; reopening it is a wait users feel).
Status load_kv_snapshot(const PageFileReader& file, const SnapshotMeta& expected, KvCache& cache,
                        PageSummaries& summaries, ThreadPool* pool = nullptr);

// As load_kv_snapshot, but the pages stay in the file: the cache reads them in place (KvCache's disk tier), each
// verified the first time it is read, so a reopen copies nothing and only touched pages become resident. The
// summaries are copied (they are small and verified at open). `file` must be an opened (mapped) file; the cache keeps
// it alive while its pages are mapped. With `pool`, the summaries' layers are copied (and coded) on all its threads.
Status map_kv_snapshot(std::shared_ptr<const PageFileReader> file, const SnapshotMeta& expected, KvCache& cache,
                       PageSummaries& summaries, ThreadPool* pool = nullptr);

}  // namespace fkv
