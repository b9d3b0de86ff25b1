// The document library: one SQLite database that remembers every imported document (text + section map), the models
// seen, the KV snapshots persisted for (document, model, layout) and the chats held about each document.
// Page files themselves live in `pages_dir`; the database only names them (paths relative to pages_dir), so the
// library also owns their lifetime: whatever deletes a snapshot row deletes its file after the commit, and open()
// sweeps files no row names (a crash between writing a file and recording it leaves exactly such a file).
//
// One Library per thread: it holds one SQLite connection, and SQLite connections are not shared between threads
// here (DESIGN.md §5). Several Libraries (threads or processes) may use the same database at once: WAL lets readers
// run beside one writer, and a writer waits up to busy_timeout_ms for another before failing with a "locked" error.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "fkv/library.h"
#include "fkv/status.h"

namespace fkv {

namespace sql {
class Db;
}

struct LibraryOptions {
  int busy_timeout_ms = 2000;  // how long a write waits for another connection's lock before failing
  // Where page files live; empty: <directory of the database>/pages, or "<database file name>.pages" beside it when
  // another library's database in the same directory owns "pages" (each pages folder names its library).
  std::string pages_dir;
  // Files younger than this are left alone by the orphan sweep: another connection may be writing one right now
  // (a save writes <name>.tmp, renames it, then records it with put_snapshot).
  int64_t orphan_min_age_s = 600;
  std::function<int64_t()> clock;  // unix seconds; empty: the system clock (tests pass a fake one)
};

// ---- documents ----

enum class SectionKind { heading, page };

struct Section {
  SectionKind kind = SectionKind::heading;
  int level = 0;            // heading depth (1 = top); 0 for pages
  std::string title;        // heading text, or the page label
  int64_t char_offset = 0;  // where the section starts in the document text, in [0, n_chars]
};

struct Document {
  DocumentInfo info;
  std::string text;
  std::vector<Section> sections;  // (n_sections) in document order
};

// ---- models and snapshots ----

// What a snapshot was computed for; at most one snapshot exists per key.
struct SnapshotKey {
  int64_t document_id = 0;
  int64_t model_id = 0;
  std::string prompt_format;  // the chat template / prompt layout the tokens were made with
  int32_t page_size = 0;
  std::string dtype;               // KV dtype name, e.g. "f16"
  std::optional<int64_t> chat_id;  // set for a chat's snapshot; empty for the document's own
};

struct SnapshotRecord {
  int64_t id = 0;  // assigned by the library
  SnapshotKey key;
  std::string path;  // page file, relative to pages_dir
  int64_t n_tokens = 0;
  int64_t bytes = 0;  // size of the page file
  SnapshotState state = SnapshotState::ready;
  std::string stale_reason;                 // why it is stale; empty when ready
  std::vector<uint8_t> token_spans;         // opaque to the library (token <-> char offset map, encoded by its writer)
  std::optional<int64_t> base_snapshot_id;  // a chat snapshot may extend its document's snapshot
  int64_t created_at = 0;                   // unix seconds, set by the library
  int64_t last_used_at = 0;                 // unix seconds, set by the library
};

// One checkpoint of a prefill in progress: a page file holding the document's KV from the previous checkpoint's end
// (seq 0: from the start) up to n_tokens; loading seq 0, 1, ... in order restores the prefill's first n_tokens.
struct CheckpointRecord {
  int64_t id = 0;  // assigned by the library
  SnapshotKey key;  // a document's own key (no chat)
  int64_t seq = 0;
  std::string path;  // page file, relative to pages_dir
  int64_t n_tokens = 0;      // context tokens up to this file's end
  int64_t total_tokens = 0;  // the prompt the prefill is for
  int64_t bytes = 0;         // size of the page file
  int64_t created_at = 0;    // unix seconds, set by the library
};

class Library {
 public:
  // Opens or creates the database at db_path (creating missing directories), brings its schema up to date and sweeps
  // orphan page files. Where the folder cannot be written (why_unwritable in core/disk_space.h names a reason) an
  // existing library of the current schema is opened read-only instead. Errors, with nothing changed: the file is not
  // a SQLite database, or is a device or folder; it was written by a newer version of this program; another
  // connection holds it locked past busy_timeout_ms.
  static Result<std::unique_ptr<Library>> open(const std::string& db_path, const LibraryOptions& o = {});
  ~Library();
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;

  static int schema_version();  // the newest schema this code knows
  const std::string& db_path() const { return db_path_; }
  const std::string& pages_dir() const { return pages_dir_; }
  // A library that cannot be written (a full disk, a read-only folder or mount) is opened read-only, so what is
  // saved can still be listed and used: every write then fails, saying why (the same words as read_only_reason).
  bool read_only() const { return !read_only_reason_.empty(); }
  const std::string& read_only_reason() const { return read_only_reason_; }

  // Documents. add_document stores the row and its sections in one transaction and returns the id; a document whose
  // content_hash is already stored keeps its row (text, sections, snapshots, chats) and only takes the new path and
  // title. doc.info's id, added_at and opened_at are ignored.
  Result<int64_t> add_document(const Document& doc);
  Result<std::optional<DocumentInfo>> find_document_by_hash(const std::string& content_hash);
  Result<Document> get_document(int64_t id);
  Result<std::vector<DocumentSummary>> list_documents();  // most recently opened (then added) first
  // An open of the document: its time (the list's order), and why it was refused with its token count then; an
  // empty refusal (an open that goes on) clears an earlier one.
  Status touch_opened(int64_t id, const std::string& refusal = {}, int64_t refused_tokens = -1);
  Status delete_document(int64_t id);  // with its sections, snapshots (and their files) and chats

  // Models, known by fingerprint: a second upsert with the same fingerprint updates name, path and size.
  Result<int64_t> upsert_model(const std::string& fingerprint, const std::string& name, const std::string& path,
                               int64_t file_size);
  Result<std::optional<int64_t>> find_model(const std::string& fingerprint);  // its id; empty when never seen

  // Snapshots. Saving one: begin_snapshot gives a record with the key and a fresh file name (nothing is stored
  // yet); the caller writes page_file_path(record), fills n_tokens, bytes and token_spans, then put_snapshot records
  // it. A put with an existing key replaces that row in place (same id): the old file is deleted after the commit,
  // and snapshots based on it become stale. A base must be a document snapshot (no chat, no base of its own) with
  // the same document, model, prompt format, page size and dtype, and only a chat snapshot may have a base.
  SnapshotRecord begin_snapshot(const SnapshotKey& key) const;
  std::string page_file_path(const SnapshotRecord& r) const;  // absolute
  Result<int64_t> put_snapshot(const SnapshotRecord& r);
  Result<std::optional<SnapshotRecord>> find_snapshot(const SnapshotKey& key);
  Result<SnapshotRecord> get_snapshot(int64_t id);
  Result<std::vector<SnapshotRecord>> list_snapshots(int64_t document_id);  // by id; token_spans left empty
  Status mark_stale(int64_t id, const std::string& reason);                 // its dependents become stale too
  Status touch_snapshot(int64_t id);   // marks it (and its base: loading it reads the base) as just used
  Status delete_snapshot(int64_t id);  // with its dependents and all their files

  // Prefill checkpoints, in chain order per key. begin_checkpoint gives the key's next seq and a fresh file name; the
  // caller writes page_file_path(record), fills n_tokens, total_tokens and bytes, and add_checkpoint records it: seq
  // must follow the chain's last, n_tokens grow and total_tokens stay. drop_checkpoints deletes the key's checkpoints
  // from `from_seq` on (a damaged one and those after it, or all once the snapshot is saved), files after the commit.
  // They are not snapshots: evict_to_cap and total_snapshot_bytes leave them out.
  Result<CheckpointRecord> begin_checkpoint(const SnapshotKey& key);
  std::string page_file_path(const CheckpointRecord& r) const;  // absolute
  Result<int64_t> add_checkpoint(const CheckpointRecord& r);
  Result<std::vector<CheckpointRecord>> checkpoints(const SnapshotKey& key);
  Status drop_checkpoints(const SnapshotKey& key, int64_t from_seq = 0);

  // Storage. evict_to_cap deletes snapshots until their bytes total at most cap_bytes: stale ones first, then the
  // least recently used; a snapshot goes together with the snapshots based on it (they are listed before it), and
  // keep_snapshot_id (with its base) is never evicted, so the total may stay above the cap. Returns what it
  // deleted, in order (token_spans left empty); files are deleted after the commit.
  Result<int64_t> total_snapshot_bytes();  // of the page files that exist: a missing one takes no space
  // Why a page file of about `need` bytes is not written to pages_dir's disk: it would leave less than kSpareBytes
  // (or an eighth of the free space, if less) free. Empty when it fits, or when the free space cannot be read (the
  // write itself then says what goes wrong).
  static constexpr uint64_t kSpareBytes = 256ull << 20;
  std::string no_room_for(uint64_t need) const;
  Result<std::vector<SnapshotRecord>> evict_to_cap(int64_t cap_bytes, int64_t keep_snapshot_id = -1);
  // Deletes page files directly in pages_dir (regular files of the names begin_snapshot gives, finished or "*.tmp")
  // that no snapshot names, or that are "*.tmp", once older than orphan_min_age_s; returns their names. Any other file,
  // subfolder or link is left alone: only files the library can prove are its own are deleted.
  Result<std::vector<std::string>> remove_orphan_files();

  // Chats. append_message returns the message's seq; messages() lists them by seq.
  Result<int64_t> create_chat(int64_t document_id, const std::string& title);
  Result<std::vector<ChatRecord>> list_chats(int64_t document_id);  // most recently updated first
  Result<int64_t> append_message(int64_t chat_id, const std::string& role, const std::string& content);
  Result<int64_t> append_message(int64_t chat_id, const MessageRecord& message);  // with stop reason and citations
  Result<std::vector<MessageRecord>> messages(int64_t chat_id);
  Status rename_chat(int64_t id, const std::string& title);
  Status delete_chat(int64_t id);  // with its messages and its snapshots (and their files)

  // Settings: a string per key.
  Result<std::optional<std::string>> get_setting(const std::string& key);
  Status set_setting(const std::string& key, const std::string& value);

 private:
  Library(std::unique_ptr<sql::Db> db, std::string db_path, std::string pages_dir, LibraryOptions o);
  static Result<std::unique_ptr<Library>> open_writable(const std::filesystem::path& db_file,
                                                        const std::filesystem::path& pages, const LibraryOptions& o);
  static Result<std::unique_ptr<Library>> open_read_only(const std::filesystem::path& db_file,
                                                         const std::filesystem::path& pages, const LibraryOptions& o,
                                                         const std::string& why);
  int64_t now() const;
  void remove_page_files(const std::vector<std::string>& rel_paths) const;
  // Makes pages_dir this library's (library.cpp, kOwnerFile): an unclaimed folder is claimed; a default folder that
  // another library claimed is left to it for "<database file name>.pages"; an explicit one is refused.
  Status claim_pages_dir(const std::filesystem::path& db_file, bool default_dir);
  // Bytes of each document's page files that exist (a missing file takes no space).
  Result<std::unordered_map<int64_t, int64_t>> bytes_on_disk_by_document();

  std::unique_ptr<sql::Db> db_;
  std::string db_path_;
  std::string pages_dir_;
  LibraryOptions opts_;
  std::string read_only_reason_;  // empty: writable
};

}  // namespace fkv
