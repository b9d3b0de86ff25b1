// The document library as the desktop app and the CLI see it: the documents imported, the KV saved for them, the
// chats held about them. One SQLite database (page files in a "pages" folder beside it); see DESIGN.md §5.
//
// One DocumentLibrary per thread: it holds one SQLite connection, and connections are not shared between threads.
// The Engine has its own (Engine::library(), on the engine's thread); a reader on another thread (the desktop's
// library pane) opens one with DocumentLibrary::open. WAL lets readers run beside one writer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fkv/status.h"
#include "fkv/types.h"

namespace fkv {

class Library;

// A `documents` row without its text.
struct DocumentInfo {
  int64_t id = 0;  // assigned by the library
  std::string path;
  std::string content_hash;  // identity of the content: importing the same bytes again finds this row
  std::string title;
  std::string format;  // as ingest names it: "text", "markdown", "html", "pdf"
  int64_t size_bytes = 0;
  int64_t n_chars = 0;
  int64_t added_at = 0;   // unix seconds, set by the library
  int64_t opened_at = 0;  // unix seconds; 0 = never opened
};

enum class SnapshotState { none, stale, ready };  // ordered: a better state compares greater

struct DocumentSummary {
  DocumentInfo info;
  SnapshotState best_state = SnapshotState::none;  // best state among the document's snapshots
  int64_t snapshot_bytes = 0;                      // bytes of its snapshots' page files that exist on disk
  // Why its last open was refused ("too long for this model: ..."), and its tokens then; empty and -1 otherwise (an
  // open that succeeds clears them).
  std::string refusal;
  int64_t refused_tokens = -1;
  // A prefill that stopped part way (cancelled, the app closed, a crash) and resumes at the next open: the tokens
  // its checkpoints hold, of its prompt's; -1 and -1 when there is none.
  int64_t prefill_done = -1;
  int64_t prefill_total = -1;
};

// A document as a list of the library shows it: its row and what its saved KV says.
struct LibraryEntry {
  DocumentSummary summary;
  // Tokens of its most recently used document snapshot (a stale one's if none is ready), else of the open that was
  // refused (summary.refused_tokens); -1: never counted.
  int64_t n_tokens = -1;
  std::string stale_reason;  // why its snapshot cannot be used; empty unless best_state is stale
};

struct ChatRecord {
  int64_t id = 0;
  int64_t document_id = 0;
  std::string title;
  int64_t n_messages = 0;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

struct MessageRecord {
  int64_t id = 0;
  int64_t seq = 0;   // 0, 1, 2, ... within its chat
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
  int64_t created_at = 0;
  // An answer's: why it ended (stop_reason_name: "eos", "cancelled", "max_tokens", ...; empty when not recorded) and
  // the passages it cited (GenerateResult::citations), in order.
  std::string stop_reason;
  std::vector<Citation> citations;
};

struct ImportOptions {
  int64_t max_file_bytes = int64_t{256} << 20;  // larger files are refused before they are read
  ProgressCallback progress;                    // stage "ingest" (PDF pages); returning false cancels
};

class DocumentLibrary {
 public:
  // Opens or creates the library at db_path (creating missing folders). A library whose folder cannot be written
  // (a full disk, a read-only mount) is opened read-only: it lists and reads, and every write says why it failed.
  // Errors: not a SQLite database, a device or folder, written by a newer version, locked by another connection.
  static Result<std::unique_ptr<DocumentLibrary>> open(const std::string& db_path);
  // A view of a library opened inside the engine (Engine::library()); `lib` must outlive it.
  explicit DocumentLibrary(Library& lib);
  ~DocumentLibrary();
  DocumentLibrary(const DocumentLibrary&) = delete;
  DocumentLibrary& operator=(const DocumentLibrary&) = delete;

  const std::string& db_path() const;
  bool read_only() const;
  const std::string& read_only_reason() const;  // empty when writable

  // Most recently opened (then added) first.
  Result<std::vector<LibraryEntry>> list_documents();
  // Reads the file (txt, md, html, pdf, or text without an extension) and records it; the same content imported
  // again finds its row. Returns the document's id. Errors name the file and the reason.
  Result<int64_t> import_file(const std::string& path, const ImportOptions& options);
  Status delete_document(int64_t id);      // with its saved KV (and page files) and chats
  Result<int64_t> total_snapshot_bytes();  // of the page files that exist

  Result<std::vector<ChatRecord>> list_chats(int64_t document_id);  // most recently updated first
  Result<std::vector<MessageRecord>> messages(int64_t chat_id);     // by seq
  Result<int64_t> create_chat(int64_t document_id, const std::string& title);
  Result<int64_t> append_message(int64_t chat_id, const std::string& role, const std::string& content);  // its seq
  // The same with an answer's stop reason and citations (id, seq and created_at are assigned).
  Result<int64_t> append_message(int64_t chat_id, const MessageRecord& message);
  Status rename_chat(int64_t id, const std::string& title);
  Status delete_chat(int64_t id);  // with its messages and saved KV

 private:
  DocumentLibrary(std::unique_ptr<Library> owned);
  std::unique_ptr<Library> owned_;  // set by open(); empty for a view
  Library* lib_;
};

}  // namespace fkv
