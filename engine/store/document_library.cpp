#include <utility>

#include "fkv/library.h"
#include "ingest/ingest.h"
#include "store/library.h"
#include "store/library_documents.h"

namespace fkv {

namespace {

// The token count of the document's most recently used snapshot (its prompt prefix as the engine holds it) and, for
// a stale document, why its snapshot cannot be used. Chat snapshots extend the document's and are not counted.
Status read_snapshot_facts(Library& lib, LibraryEntry& entry) {
  if (entry.summary.best_state == SnapshotState::none) {
    entry.n_tokens = entry.summary.refused_tokens;
    return {};
  }
  FKV_ASSIGN_OR_RETURN(const std::vector<SnapshotRecord> snaps, lib.list_snapshots(entry.summary.info.id));
  int64_t last_used = -1;
  for (const SnapshotRecord& s : snaps) {
    if (s.key.chat_id.has_value()) continue;
    if (s.state == SnapshotState::ready && s.last_used_at > last_used) {
      last_used = s.last_used_at;
      entry.n_tokens = s.n_tokens;
    }
    if (s.state == SnapshotState::stale && entry.stale_reason.empty()) entry.stale_reason = s.stale_reason;
  }
  if (entry.n_tokens < 0 && !snaps.empty()) entry.n_tokens = snaps.front().n_tokens;  // stale, but the count holds
  return {};
}

}  // namespace

Result<std::unique_ptr<DocumentLibrary>> DocumentLibrary::open(const std::string& db_path) {
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<Library> lib, Library::open(db_path));
  return std::unique_ptr<DocumentLibrary>(new DocumentLibrary(std::move(lib)));
}

DocumentLibrary::DocumentLibrary(Library& lib) : lib_(&lib) {}
DocumentLibrary::DocumentLibrary(std::unique_ptr<Library> owned) : owned_(std::move(owned)), lib_(owned_.get()) {}
DocumentLibrary::~DocumentLibrary() = default;

const std::string& DocumentLibrary::db_path() const { return lib_->db_path(); }
bool DocumentLibrary::read_only() const { return lib_->read_only(); }
const std::string& DocumentLibrary::read_only_reason() const { return lib_->read_only_reason(); }

Result<std::vector<LibraryEntry>> DocumentLibrary::list_documents() {
  FKV_ASSIGN_OR_RETURN(std::vector<DocumentSummary> docs, lib_->list_documents());
  std::vector<LibraryEntry> out;
  out.reserve(docs.size());
  for (DocumentSummary& d : docs) {
    LibraryEntry entry;
    entry.summary = std::move(d);
    FKV_TRY(read_snapshot_facts(*lib_, entry));
    out.push_back(std::move(entry));
  }
  return out;
}

Result<int64_t> DocumentLibrary::import_file(const std::string& path, const ImportOptions& options) {
  IngestOptions io;
  io.max_bytes = options.max_file_bytes;
  io.progress = options.progress;
  FKV_ASSIGN_OR_RETURN(const IngestedDocument doc, ingest_file(path, io));
  const Result<int64_t> row = import_document(*lib_, doc);
  if (!row.ok()) return err(path + ": " + row.message());  // ingest names the file itself; the library does not
  return row;
}

Status DocumentLibrary::delete_document(int64_t id) { return lib_->delete_document(id); }
Result<int64_t> DocumentLibrary::total_snapshot_bytes() { return lib_->total_snapshot_bytes(); }

Result<std::vector<ChatRecord>> DocumentLibrary::list_chats(int64_t document_id) {
  return lib_->list_chats(document_id);
}
Result<std::vector<MessageRecord>> DocumentLibrary::messages(int64_t chat_id) { return lib_->messages(chat_id); }
Result<int64_t> DocumentLibrary::create_chat(int64_t document_id, const std::string& title) {
  return lib_->create_chat(document_id, title);
}
Result<int64_t> DocumentLibrary::append_message(int64_t chat_id, const std::string& role, const std::string& content) {
  return lib_->append_message(chat_id, role, content);
}
Result<int64_t> DocumentLibrary::append_message(int64_t chat_id, const MessageRecord& message) {
  return lib_->append_message(chat_id, message);
}
Status DocumentLibrary::rename_chat(int64_t id, const std::string& title) { return lib_->rename_chat(id, title); }
Status DocumentLibrary::delete_chat(int64_t id) { return lib_->delete_chat(id); }

}  // namespace fkv
