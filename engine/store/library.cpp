// Library: opening (checks, pragmas, migrations), documents and models. Snapshots and page files are in
// library_snapshots.cpp, chats and settings in library_chats.cpp, the schema in library_schema.cpp.
#include "store/library.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <utility>

#include "core/disk_space.h"
#include "store/library_rows.h"
#include "store/library_sql.h"

namespace fkv {

namespace fs = std::filesystem;

namespace {

// The application_id in the database header marks a FreeKV Desk library ("FKVD").
constexpr int64_t k_application_id = 0x464B5644;

// True when `p` is `dir` or lies inside it (both absolute and normalized).
bool is_within(const fs::path& p, const fs::path& dir) {
  auto it = p.begin();
  for (const fs::path& part : dir) {
    if (part.empty()) continue;  // a trailing separator gives an empty last element
    if (it == p.end() || *it != part) return false;
    ++it;
  }
  return true;
}

Result<fs::path> absolute_normal(const std::string& path) {
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  if (ec) return err("cannot resolve the path \"", path, "\": ", ec.message());
  return abs.lexically_normal();
}

// The pages folder names the library its page files belong to, so that a second library whose default folder is the
// same one (another database in the same directory) neither sweeps the first one's files as orphans nor mixes its
// own in: it takes "<database file name>.pages" instead.
constexpr const char* kOwnerFile = ".freekv-library";
constexpr const char* kIdSetting = "library.id";

std::string read_owner(const fs::path& pages) {
  std::ifstream f(pages / kOwnerFile);
  std::string id;
  std::getline(f, id);
  return id;
}

Status write_owner(const fs::path& pages, const std::string& id) {
  const fs::path tmp = pages / (std::string(kOwnerFile) + ".tmp");
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << id << "\n";
    if (!f.flush()) return err("cannot write \"", tmp.string(), "\"");
  }
  std::error_code ec;
  fs::rename(tmp, pages / kOwnerFile, ec);
  if (ec) return err("cannot write \"", (pages / kOwnerFile).string(), "\": ", ec.message());
  return {};
}

// The folder a library takes when another library owns the default "pages" beside its database.
fs::path own_pages_dir(const fs::path& db_file) {
  return db_file.parent_path() / (db_file.filename().string() + ".pages");
}

std::string new_library_id() {
  std::random_device rd;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
}

Status make_dirs(const fs::path& dir, const char* what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec)) {
    return err("expected ", what, " \"", dir.string(),
               "\" to be a directory that can be created, found: ", ec ? ec.message() : "something else in its place");
  }
  return {};
}

// Returns the journal mode in effect afterwards. The statement is finished here: an unfinished one would keep the
// migrations' COMMIT from going through.
Result<std::string> set_wal_mode(sql::Db& db) {
  FKV_ASSIGN_OR_RETURN(sql::Stmt s, db.prepare("PRAGMA journal_mode = WAL"));
  FKV_ASSIGN_OR_RETURN(bool has_row, s.step());
  std::string mode = has_row ? s.text(0) : std::string();
  FKV_TRY(s.run());
  return mode;
}

// The first connection-level reads and settings. Reading the header comes first: a foreign file, a newer schema and
// a lock held elsewhere all show up there, before anything is written.
Status prepare_database(sql::Db& db) {
  FKV_ASSIGN_OR_RETURN(int64_t found, sql::query_int64(db, "PRAGMA user_version"));
  const int known = sql::library_schema_version();
  if (found > known) {
    return err(db.path(), ": expected a library of schema version <= ", known, ", found version ", found,
               " (written by a newer version of FreeKV Desk); it was left untouched");
  }
  FKV_ASSIGN_OR_RETURN(int64_t app_id, sql::query_int64(db, "PRAGMA application_id"));
  FKV_ASSIGN_OR_RETURN(int64_t n_tables, sql::query_int64(db, "SELECT count(*) FROM sqlite_master"));
  if ((app_id != 0 && app_id != k_application_id) || (found == 0 && n_tables > 0)) {
    return err(db.path(),
               ": expected an empty database or a FreeKV Desk library, found another application's "
               "SQLite database (application_id ",
               app_id, ", ", n_tables, " schema objects); it was left untouched");
  }
  FKV_TRY(db.exec("PRAGMA foreign_keys = ON"));
  FKV_ASSIGN_OR_RETURN(std::string mode, set_wal_mode(db));
  // WAL lets the GUI read while the engine thread writes; some file systems (network shares) cannot do it.
  if (mode != "wal") return err(db.path(), ": expected journal mode \"wal\", found \"", mode, "\"");
  FKV_TRY(db.exec("PRAGMA synchronous = NORMAL"));
  FKV_TRY(sql::migrate_library(db, static_cast<int>(found)));
  if (app_id == k_application_id) return {};  // an open that changes nothing writes nothing
  return db.exec("PRAGMA application_id = " + std::to_string(k_application_id));
}

// Read-only, nothing can be migrated or marked: the file must already be a library of this program's schema.
Status check_readable(sql::Db& db) {
  FKV_ASSIGN_OR_RETURN(int64_t found, sql::query_int64(db, "PRAGMA user_version"));
  FKV_ASSIGN_OR_RETURN(int64_t app_id, sql::query_int64(db, "PRAGMA application_id"));
  if (app_id != k_application_id) {
    return err(db.path(), ": expected a FreeKV Desk library, found application_id ", app_id);
  }
  const int known = sql::library_schema_version();
  if (found != known) {
    return err(db.path(), ": expected a library of schema version ", known, " to read without writing, found version ",
               found);
  }
  return sql::query_int64(db, "SELECT count(*) FROM documents").status();
}

// The folder's reason (disk_space.h), else the database file's own write protection.
std::string why_library_unwritable(const fs::path& db_file) {
  std::string why = why_unwritable(db_file.parent_path().string());
  if (why.empty() && ::access(db_file.c_str(), W_OK) != 0 && errno != ENOENT) {
    why = "the library file " + db_file.string() + " is read-only (" + std::strerror(errno) + ")";
  }
  return why;
}

// A missing file is created; anything but a regular file (a device such as /dev/null, a folder) is refused before
// SQLite opens it and creates a -journal or -wal beside it.
Status check_database_file(const fs::path& db_file) {
  std::error_code ec;
  const fs::file_status st = fs::status(db_file, ec);
  if (st.type() == fs::file_type::not_found || st.type() == fs::file_type::regular) return {};
  return err(db_file.string(), ": expected a library database file (or a path to create one at), found ",
             st.type() == fs::file_type::directory ? "a folder" : "a device or other special file");
}

constexpr const char* k_info_cols = "id, path, content_hash, title, format, size_bytes, n_chars, added_at, opened_at";

DocumentInfo read_info(const sql::Stmt& s) {
  DocumentInfo d;
  d.id = s.int64(0);
  d.path = s.text(1);
  d.content_hash = s.text(2);
  d.title = s.text(3);
  d.format = s.text(4);
  d.size_bytes = s.int64(5);
  d.n_chars = s.int64(6);
  d.added_at = s.int64(7);
  d.opened_at = s.int64(8);
  return d;
}

Result<std::optional<DocumentInfo>> find_by_hash(sql::Db& db, const std::string& hash) {
  FKV_ASSIGN_OR_RETURN(sql::Stmt s,
                       db.prepare(std::string("SELECT ") + k_info_cols + " FROM documents WHERE content_hash = ?"));
  s.bind_all(hash);
  FKV_ASSIGN_OR_RETURN(bool has_row, s.step());
  if (!has_row) return std::optional<DocumentInfo>();
  return std::optional<DocumentInfo>(read_info(s));
}

// Sections are checked as they are inserted; a bad one fails the whole import (the caller's transaction).
Status insert_sections(sql::Db& db, int64_t document_id, const Document& doc) {
  FKV_ASSIGN_OR_RETURN(sql::Stmt s, db.prepare("INSERT INTO sections (document_id, idx, kind, level, title, "
                                               "char_offset) VALUES (?, ?, ?, ?, ?, ?)"));
  for (size_t i = 0; i < doc.sections.size(); ++i) {
    const Section& sec = doc.sections[i];
    if (sec.char_offset > doc.info.n_chars) {
      return err("section ", i, " (\"", sec.title, "\"): expected char_offset in [0, ", doc.info.n_chars, "], found ",
                 sec.char_offset);
    }
    const char* kind = sec.kind == SectionKind::page ? "page" : "heading";
    s.reset();
    s.bind_all(document_id, static_cast<int64_t>(i), kind, int64_t{sec.level}, sec.title, sec.char_offset);
    const Status st = s.run();
    if (!st.ok()) return err("section ", i, " (\"", sec.title, "\"): ", st.message());
  }
  return {};
}

Result<int64_t> add_document_txn(sql::Db& db, const Document& doc, int64_t now) {
  const DocumentInfo& d = doc.info;
  FKV_ASSIGN_OR_RETURN(sql::Transaction txn, sql::Transaction::begin(db));
  FKV_ASSIGN_OR_RETURN(std::optional<DocumentInfo> existing, find_by_hash(db, d.content_hash));
  if (existing) {
    // Same content: keep text, sections, snapshots and chats; the file may have moved or been renamed.
    FKV_TRY(sql::run_changes(db, "UPDATE documents SET path = ?, title = ? WHERE id = ?", d.path, d.title, existing->id)
                .status());
    FKV_TRY(txn.commit());
    return existing->id;
  }
  FKV_ASSIGN_OR_RETURN(sql::Stmt ins,
                       db.prepare("INSERT INTO documents (path, content_hash, title, format, "
                                  "size_bytes, n_chars, text, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
  ins.bind_all(d.path, d.content_hash, d.title, d.format, d.size_bytes, d.n_chars, doc.text, now);
  FKV_TRY(ins.run());
  const int64_t id = db.last_insert_id();
  FKV_TRY(insert_sections(db, id, doc));
  FKV_TRY(txn.commit());
  return id;
}

Result<std::vector<Section>> read_sections(sql::Db& db, int64_t document_id) {
  FKV_ASSIGN_OR_RETURN(sql::Stmt s, db.prepare("SELECT kind, level, title, char_offset FROM sections "
                                               "WHERE document_id = ? ORDER BY idx"));
  s.bind_all(document_id);
  std::vector<Section> out;
  for (;;) {
    FKV_ASSIGN_OR_RETURN(bool has_row, s.step());
    if (!has_row) return out;
    Section sec;
    sec.kind = s.text(0) == "page" ? SectionKind::page : SectionKind::heading;
    sec.level = static_cast<int>(s.int64(1));
    sec.title = s.text(2);
    sec.char_offset = s.int64(3);
    out.push_back(std::move(sec));
  }
}

Result<Document> get_document_rows(sql::Db& db, int64_t id) {
  FKV_ASSIGN_OR_RETURN(sql::Stmt s,
                       db.prepare(std::string("SELECT ") + k_info_cols + ", text FROM documents WHERE id = ?"));
  s.bind_all(id);
  FKV_ASSIGN_OR_RETURN(bool has_row, s.step());
  if (!has_row) return err("expected a document with id ", id, ", found none");
  Document doc;
  doc.info = read_info(s);
  doc.text = s.text(9);
  FKV_ASSIGN_OR_RETURN(doc.sections, read_sections(db, id));
  return doc;
}

SnapshotState state_from_rank(int64_t rank) {
  if (rank >= 2) return SnapshotState::ready;
  return rank == 1 ? SnapshotState::stale : SnapshotState::none;
}

Result<std::vector<DocumentSummary>> list_document_rows(sql::Db& db) {
  FKV_ASSIGN_OR_RETURN(
      sql::Stmt s,
      db.prepare("SELECT d.id, d.path, d.content_hash, d.title, d.format, d.size_bytes, d.n_chars, d.added_at, "
                 "d.opened_at, "
                 "IFNULL(MAX(CASE k.state WHEN 'ready' THEN 2 WHEN 'stale' THEN 1 END), 0), d.refusal, "
                 "d.refused_tokens, "
                 "(SELECT MAX(c.n_tokens) FROM prefill_checkpoints c WHERE c.document_id = d.id), "
                 "(SELECT MAX(c.total_tokens) FROM prefill_checkpoints c WHERE c.document_id = d.id) "
                 "FROM documents d LEFT JOIN kv_snapshots k ON k.document_id = d.id "
                 "GROUP BY d.id ORDER BY d.opened_at DESC, d.added_at DESC, d.id DESC"));
  std::vector<DocumentSummary> out;
  for (;;) {
    FKV_ASSIGN_OR_RETURN(bool has_row, s.step());
    if (!has_row) return out;
    DocumentSummary sum;
    sum.info = read_info(s);
    sum.best_state = state_from_rank(s.int64(9));
    sum.refusal = s.text(10);
    sum.refused_tokens = s.int64(11);
    sum.prefill_done = s.opt_int64(12).value_or(-1);
    sum.prefill_total = s.opt_int64(13).value_or(-1);
    out.push_back(std::move(sum));
  }
}

Result<std::vector<std::string>> delete_document_txn(sql::Db& db, int64_t id) {
  return library_rows::delete_with_files(db,
                                         "SELECT path FROM kv_snapshots WHERE document_id = ?1 UNION ALL "
                                         "SELECT path FROM prefill_checkpoints WHERE document_id = ?1",
                                         "DELETE FROM documents WHERE id = ?", id, "document");
}

}  // namespace

// ---- opening ----

Library::Library(std::unique_ptr<sql::Db> db, std::string db_path, std::string pages_dir, LibraryOptions o)
    : db_(std::move(db)), db_path_(std::move(db_path)), pages_dir_(std::move(pages_dir)), opts_(std::move(o)) {}

Library::~Library() = default;

int Library::schema_version() { return sql::library_schema_version(); }

Result<std::unique_ptr<Library>> Library::open(const std::string& db_path, const LibraryOptions& o) {
  if (db_path.empty()) return err("library: expected a database path, found an empty string");
  if (o.busy_timeout_ms < 0) return err("library: expected busy_timeout_ms >= 0, found ", o.busy_timeout_ms);
  FKV_ASSIGN_OR_RETURN(fs::path db_file, absolute_normal(db_path));
  FKV_TRY(check_database_file(db_file));
  FKV_ASSIGN_OR_RETURN(fs::path pages,
                       absolute_normal(o.pages_dir.empty() ? (db_file.parent_path() / "pages").string() : o.pages_dir));
  // The database must not sit among the page files, where a user's hand or a tool would take it for one.
  if (is_within(db_file, pages)) {
    return err("library: expected pages_dir outside the database's directory, found pages_dir \"", pages.string(),
               "\" holding \"", db_file.string(), "\"");
  }
  Result<std::unique_ptr<Library>> lib = open_writable(db_file, pages, o);
  if (lib.ok()) return lib;
  // A full disk or a read-only folder must not lock the user out of what is already saved: read it instead.
  std::error_code ec;
  const std::string why = why_library_unwritable(db_file);
  if (why.empty() || !fs::is_regular_file(db_file, ec)) return lib.status();
  Result<std::unique_ptr<Library>> ro = open_read_only(db_file, pages, o, why);
  if (!ro.ok()) return err(lib.message(), "; reading it read-only failed too: ", ro.message());
  return ro;
}

Result<std::unique_ptr<Library>> Library::open_writable(const fs::path& db_file, const fs::path& pages,
                                                        const LibraryOptions& o) {
  FKV_TRY(make_dirs(db_file.parent_path(), "the library's directory"));
  auto db = std::make_unique<sql::Db>();
  FKV_ASSIGN_OR_RETURN(*db, sql::Db::open(db_file.string(), o.busy_timeout_ms));
  FKV_TRY(prepare_database(*db));
  if (db->read_only()) return err(db_file.string(), ": SQLite could open it only read-only");
  std::unique_ptr<Library> lib(new Library(std::move(db), db_file.string(), pages.string(), o));
  FKV_TRY(lib->claim_pages_dir(db_file, o.pages_dir.empty()));
  FKV_TRY(lib->remove_orphan_files().status());
  return lib;
}

Status Library::claim_pages_dir(const fs::path& db_file, bool default_dir) {
  FKV_ASSIGN_OR_RETURN(std::optional<std::string> stored, get_setting(kIdSetting));
  if (!stored) {
    // Two connections opening a new library at once (the desktop's engine and its library pane) must agree on one
    // id: the first insert wins and both read it back. Only a new library writes here.
    FKV_TRY(sql::run_changes(*db_, "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                             std::string(kIdSetting), new_library_id())
                .status());
    FKV_ASSIGN_OR_RETURN(stored, get_setting(kIdSetting));
  }
  const std::string id = stored.value_or("");
  if (id.empty()) return err("library: no id stored for ", db_file.string());
  fs::path pages = pages_dir_;
  std::string owner = read_owner(pages);
  if (!owner.empty() && owner != id) {
    if (!default_dir) {
      return err("library: pages_dir \"", pages.string(), "\" holds another library's page files (",
                 (pages / kOwnerFile).string(), " names library ", owner, "); give each library a pages_dir of its own");
    }
    pages = own_pages_dir(db_file);
    owner = read_owner(pages);
    if (!owner.empty() && owner != id)
      return err("library: \"", pages.string(), "\" holds another library's page files (library ", owner, ")");
  }
  FKV_TRY(make_dirs(pages, "pages_dir"));
  if (owner.empty()) FKV_TRY(write_owner(pages, id));
  pages_dir_ = pages.string();
  return {};
}

Result<std::unique_ptr<Library>> Library::open_read_only(const fs::path& db_file, const fs::path& pages,
                                                         const LibraryOptions& o, const std::string& why) {
  Status last;
  for (const sql::OpenMode mode : {sql::OpenMode::read_only, sql::OpenMode::immutable}) {
    auto db = std::make_unique<sql::Db>();
    Result<sql::Db> opened = sql::Db::open(db_file.string(), o.busy_timeout_ms, mode);
    if (!opened.ok()) {
      last = opened.status();
      continue;
    }
    *db = std::move(opened).value();
    db->set_read_only_reason(why);
    last = check_readable(*db);
    if (!last.ok()) continue;
    std::unique_ptr<Library> lib(new Library(std::move(db), db_file.string(), pages.string(), o));
    lib->read_only_reason_ = why;
    // Read-only, nothing is claimed: a default folder another library owns means this one's files are beside it.
    Result<std::optional<std::string>> id = lib->get_setting(kIdSetting);
    const std::string owner = read_owner(pages);
    if (o.pages_dir.empty() && id.ok() && id->has_value() && !owner.empty() && owner != **id)
      lib->pages_dir_ = own_pages_dir(db_file).string();
    return lib;
  }
  return last;
}

int64_t Library::now() const {
  if (opts_.clock) return opts_.clock();
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- documents ----

Result<int64_t> Library::add_document(const Document& doc) {
  auto id = add_document_txn(*db_, doc, now());
  if (!id.ok()) return err("add_document \"", doc.info.path, "\": ", id.message());
  return id;
}

Result<std::optional<DocumentInfo>> Library::find_document_by_hash(const std::string& content_hash) {
  auto found = find_by_hash(*db_, content_hash);
  if (!found.ok()) return err("find_document_by_hash: ", found.message());
  return found;
}

Result<Document> Library::get_document(int64_t id) {
  auto doc = get_document_rows(*db_, id);
  if (!doc.ok()) return err("get_document: ", doc.message());
  return doc;
}

Result<std::vector<DocumentSummary>> Library::list_documents() {
  auto docs = list_document_rows(*db_);
  if (!docs.ok()) return err("list_documents: ", docs.message());
  auto bytes = bytes_on_disk_by_document();
  if (!bytes.ok()) return err("list_documents: ", bytes.message());
  for (DocumentSummary& d : *docs) d.snapshot_bytes = (*bytes)[d.info.id];
  return docs;
}

Status Library::touch_opened(int64_t id, const std::string& refusal, int64_t refused_tokens) {
  auto n = sql::run_changes(*db_, "UPDATE documents SET opened_at = ?, refusal = ?, refused_tokens = ? WHERE id = ?",
                            now(), refusal, refusal.empty() ? int64_t{-1} : refused_tokens, id);
  if (!n.ok()) return err("touch_opened: ", n.message());
  if (*n == 0) return err("touch_opened: expected a document with id ", id, ", found none");
  return {};
}

Status Library::delete_document(int64_t id) {
  auto paths = delete_document_txn(*db_, id);
  if (!paths.ok()) return err("delete_document: ", paths.message());
  remove_page_files(*paths);
  return {};
}

// ---- models ----

Result<int64_t> Library::upsert_model(const std::string& fingerprint, const std::string& name, const std::string& path,
                                      int64_t file_size) {
  auto id = sql::query_int64(*db_,
                             "INSERT INTO models (fingerprint, name, path, file_size, added_at) VALUES (?, ?, ?, ?, ?) "
                             "ON CONFLICT (fingerprint) DO UPDATE SET name = excluded.name, path = excluded.path, "
                             "file_size = excluded.file_size RETURNING id",
                             fingerprint, name, path, file_size, now());
  if (!id.ok()) return err("upsert_model \"", name, "\": ", id.message());
  return id;
}

Result<std::optional<int64_t>> Library::find_model(const std::string& fingerprint) {
  auto s = db_->prepare("SELECT id FROM models WHERE fingerprint = ?");
  if (!s.ok()) return err("find_model: ", s.message());
  s->bind_all(fingerprint);
  auto has_row = s->step();
  if (!has_row.ok()) return err("find_model: ", has_row.message());
  return *has_row ? std::optional<int64_t>(s->int64(0)) : std::nullopt;
}

}  // namespace fkv
