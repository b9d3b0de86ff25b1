#include "store/library_sql.h"

#include <sqlite3.h>

#include <cctype>
#include <filesystem>
#include <utility>

#include "core/disk_space.h"

namespace fkv::sql {

namespace {

// Statement text in messages is cut short: the error should fit on one line of a dialog.
std::string_view short_sql(std::string_view sql) {
  constexpr size_t k_max_chars = 80;
  while (!sql.empty() && (sql.front() == ' ' || sql.front() == '\n')) sql.remove_prefix(1);
  return sql.substr(0, k_max_chars);
}

// A "file:" URI for an absolute path: every byte outside the unreserved set is percent-encoded, so '?', '#' and '%'
// in a folder name stay part of the path.
std::string file_uri(const std::string& path, const char* query) {
  static const char* const k_hex = "0123456789ABCDEF";
  std::string uri = "file:";
  for (const unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '.' || c == '_' || c == '-' || c == '~') {
      uri += static_cast<char>(c);
    } else {
      uri += '%';
      uri += k_hex[c >> 4];
      uri += k_hex[c & 15];
    }
  }
  return uri + "?" + query;
}

}  // namespace

// ---- Db ----

Result<Db> Db::open(const std::string& path, int busy_timeout_ms, OpenMode mode) {
  Db db;
  db.path_ = path;
  db.busy_timeout_ms_ = busy_timeout_ms;
  // NOMUTEX: a connection is only ever used by the thread that opened it, so SQLite's per-connection mutex is waste.
  int flags = SQLITE_OPEN_NOMUTEX;
  std::string name = path;
  if (mode == OpenMode::read_write) {
    flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  } else {
    flags |= SQLITE_OPEN_READONLY | SQLITE_OPEN_URI;
    name = file_uri(path, mode == OpenMode::immutable ? "immutable=1" : "mode=ro");
  }
  const int rc = sqlite3_open_v2(name.c_str(), &db.db_, flags, nullptr);
  if (rc != SQLITE_OK) return db.error(rc, "opening the database");
  sqlite3_extended_result_codes(db.db_, 1);
  sqlite3_busy_timeout(db.db_, busy_timeout_ms);
  return db;
}

Db::~Db() {
  // sqlite3_close_v2 defers the close until every statement is finalized; Stmt finalizes in its destructor.
  if (db_) sqlite3_close_v2(db_);
}

Db::Db(Db&& o) noexcept
    : db_(std::exchange(o.db_, nullptr)),
      path_(std::move(o.path_)),
      busy_timeout_ms_(o.busy_timeout_ms_),
      read_only_reason_(std::move(o.read_only_reason_)) {}

Db& Db::operator=(Db&& o) noexcept {
  if (this != &o) {
    if (db_) sqlite3_close_v2(db_);
    db_ = std::exchange(o.db_, nullptr);
    path_ = std::move(o.path_);
    busy_timeout_ms_ = o.busy_timeout_ms_;
    read_only_reason_ = std::move(o.read_only_reason_);
  }
  return *this;
}

Status Db::error(int rc, std::string_view what) const {
  const int primary = rc & 0xff;
  const char* detail = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    return err(path_, ": database is locked by another connection (waited ", busy_timeout_ms_, " ms) while ", what,
               ": ", detail);
  }
  if (primary == SQLITE_NOTADB) {
    return err(path_, ": expected a SQLite database, found a file that is not one (", detail, ")");
  }
  if (primary == SQLITE_READONLY && !read_only_reason_.empty()) {
    return err(path_, ": the library is open read-only, so nothing can be saved: ", read_only_reason_);
  }
  if (primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN) {
    const std::string folder = std::filesystem::path(path_).parent_path().string();
    if (std::string why = why_unwritable(folder); !why.empty()) return err(path_, ": ", what, ": ", why);
  }
  return err(path_, ": ", what, ": ", detail);
}

Status Db::exec(std::string_view sql) {
  const std::string owned(sql);  // sqlite3_exec needs a NUL-terminated string
  const int rc = sqlite3_exec(db_, owned.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return error(rc, std::string("running \"").append(short_sql(sql)).append("\""));
  return {};
}

Result<Stmt> Db::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return error(rc, std::string("preparing \"").append(short_sql(sql)).append("\""));
  }
  return Stmt(this, stmt);
}

int64_t Db::last_insert_id() const { return sqlite3_last_insert_rowid(db_); }

int64_t Db::changes() const { return sqlite3_changes64(db_); }

bool Db::read_only() const { return sqlite3_db_readonly(db_, "main") == 1; }

// ---- Stmt ----

Stmt::~Stmt() {
  if (stmt_) sqlite3_finalize(stmt_);
}

Stmt::Stmt(Stmt&& o) noexcept
    : db_(o.db_), stmt_(std::exchange(o.stmt_, nullptr)), bind_status_(std::move(o.bind_status_)) {}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    if (stmt_) sqlite3_finalize(stmt_);
    db_ = o.db_;
    stmt_ = std::exchange(o.stmt_, nullptr);
    bind_status_ = std::move(o.bind_status_);
  }
  return *this;
}

void Stmt::note_bind(int rc, int i) {
  if (rc == SQLITE_OK || !bind_status_.ok()) return;
  bind_status_ = db_->error(
      rc, "binding parameter " + std::to_string(i) + " of \"" + std::string(short_sql(sqlite3_sql(stmt_))) + "\"");
}

Stmt& Stmt::bind(int i, int64_t v) {
  note_bind(sqlite3_bind_int64(stmt_, i, v), i);
  return *this;
}

Stmt& Stmt::bind(int i, double v) {
  note_bind(sqlite3_bind_double(stmt_, i, v), i);
  return *this;
}

Stmt& Stmt::bind(int i, std::string_view v) {
  // A null data pointer would bind NULL; an empty string must stay an empty string.
  const char* data = v.data() ? v.data() : "";
  note_bind(sqlite3_bind_text64(stmt_, i, data, v.size(), SQLITE_TRANSIENT, SQLITE_UTF8), i);
  return *this;
}

Stmt& Stmt::bind(int i, const std::vector<uint8_t>& v) {
  const int rc = v.empty() ? sqlite3_bind_zeroblob(stmt_, i, 0)
                           : sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT);
  note_bind(rc, i);
  return *this;
}

Stmt& Stmt::bind(int i, const std::optional<int64_t>& v) {
  note_bind(v ? sqlite3_bind_int64(stmt_, i, *v) : sqlite3_bind_null(stmt_, i), i);
  return *this;
}

Result<bool> Stmt::step() {
  if (!bind_status_.ok()) return bind_status_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->error(rc, std::string("running \"").append(short_sql(sqlite3_sql(stmt_))).append("\""));
}

Status Stmt::run() {
  for (;;) {
    FKV_ASSIGN_OR_RETURN(bool has_row, step());
    if (!has_row) return {};
  }
}

void Stmt::reset() {
  sqlite3_reset(stmt_);  // its return code repeats the last step's error, already reported
  sqlite3_clear_bindings(stmt_);
  bind_status_ = Status();
}

bool Stmt::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

int64_t Stmt::int64(int col) const { return sqlite3_column_int64(stmt_, col); }
double Stmt::real(int col) const { return sqlite3_column_double(stmt_, col); }

std::optional<int64_t> Stmt::opt_int64(int col) const {
  if (is_null(col)) return std::nullopt;
  return int64(col);
}

std::string Stmt::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  const int n = sqlite3_column_bytes(stmt_, col);  // after column_text: the size of the text form
  return p ? std::string(p, static_cast<size_t>(n)) : std::string();
}

std::vector<uint8_t> Stmt::blob(int col) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, col));
  const int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::vector<uint8_t>(p, p + n) : std::vector<uint8_t>();
}

// ---- Transaction ----

Result<Transaction> Transaction::begin(Db& db) {
  FKV_TRY(db.exec("BEGIN IMMEDIATE"));
  return Transaction(&db);
}

Transaction::~Transaction() {
  // A failed ROLLBACK leaves nothing to do: SQLite rolls back an open transaction when the connection closes.
  if (db_) (void)db_->exec("ROLLBACK");
}

Transaction::Transaction(Transaction&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}

Status Transaction::commit() {
  Db* db = std::exchange(db_, nullptr);
  Status s = db->exec("COMMIT");
  // A COMMIT that failed (busy) leaves the transaction open; end it so the connection stays usable.
  if (!s.ok()) (void)db->exec("ROLLBACK");
  return s;
}

}  // namespace fkv::sql
