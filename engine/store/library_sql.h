// Small RAII wrappers over the sqlite3 C API for the document library: a connection, a prepared statement with
// bind / step / column helpers, and a write transaction that rolls back unless committed.
// Errors carry SQLite's own message plus what was being done; a lock held elsewhere always says "locked".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fkv/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace fkv::sql {

class Stmt;

// read_write creates a missing file. read_only reads through SQLite's locks and the WAL, which needs the -shm file;
// immutable reads the database file alone (no locks, no -shm, and what sits uncheckpointed in the -wal is not seen),
// the one way left to read a WAL database on a disk too full to create its -shm.
enum class OpenMode { read_write, read_only, immutable };

class Db {
 public:
  // Opens the database file; nothing is read yet, so a damaged file shows up at first use.
  static Result<Db> open(const std::string& path, int busy_timeout_ms, OpenMode mode = OpenMode::read_write);
  Db() = default;
  ~Db();
  Db(Db&& o) noexcept;
  Db& operator=(Db&& o) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  Status exec(std::string_view sql);  // one or more statements that return no rows
  Result<Stmt> prepare(std::string_view sql);
  int64_t last_insert_id() const;
  int64_t changes() const;  // rows changed by the last statement
  bool read_only() const;   // SQLite opens a write-protected file read-only even when asked for read_write
  const std::string& path() const { return path_; }
  int busy_timeout_ms() const { return busy_timeout_ms_; }

  // An error Status for SQLite result code `rc` while doing `what`. A write refused by a read-only connection, a full
  // disk or a read-only folder says so in words (disk_space.h), not as "disk I/O error".
  Status error(int rc, std::string_view what) const;
  // Why this connection was opened read-only; every refused write repeats it.
  void set_read_only_reason(std::string why) { read_only_reason_ = std::move(why); }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
  int busy_timeout_ms_ = 0;
  std::string read_only_reason_;
};

class Stmt {
 public:
  Stmt() = default;
  ~Stmt();
  Stmt(Stmt&& o) noexcept;
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Binds parameter i (1-based). A failed bind is remembered and reported by the next step().
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, double v);
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const std::vector<uint8_t>& v);
  Stmt& bind(int i, const std::optional<int64_t>& v);  // empty binds NULL
  // Binds every argument in order, starting at parameter 1.
  template <class... Args>
  Stmt& bind_all(const Args&... args) {
    int i = 0;
    (bind(++i, args), ...);
    return *this;
  }

  Result<bool> step();  // true: a row is ready; false: done
  Status run();         // steps to the end, for statements that return no rows
  void reset();         // ready to run again with new bindings

  bool is_null(int col) const;
  int64_t int64(int col) const;
  double real(int col) const;
  std::optional<int64_t> opt_int64(int col) const;  // NULL -> empty
  std::string text(int col) const;                  // NULL -> ""
  std::vector<uint8_t> blob(int col) const;         // NULL -> empty

 private:
  friend class Db;
  Stmt(Db* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  void note_bind(int rc, int i);

  Db* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  Status bind_status_;  // first failed bind, reported by step()
};

// BEGIN IMMEDIATE ... COMMIT. Taking the write lock at the start means a busy database fails here, before anything
// is written, instead of midway when a read lock would have to be upgraded (which SQLite cannot wait for).
class Transaction {
 public:
  static Result<Transaction> begin(Db& db);
  Transaction() = default;
  ~Transaction();  // rolls back unless committed
  Transaction(Transaction&& o) noexcept;
  Transaction& operator=(Transaction&& o) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status commit();

 private:
  explicit Transaction(Db* db) : db_(db) {}
  Db* db_ = nullptr;  // null once committed or rolled back
};

// Runs `sql` (bound with args) to completion and returns the first column of its first row as an integer.
// Running to the end matters for INSERT ... RETURNING: outside a transaction, the commit happens at the last step.
template <class... Args>
Result<int64_t> query_int64(Db& db, std::string_view sql, const Args&... args) {
  FKV_ASSIGN_OR_RETURN(Stmt s, db.prepare(sql));
  s.bind_all(args...);
  FKV_ASSIGN_OR_RETURN(bool has_row, s.step());
  if (!has_row) return err("expected a row from \"", sql.substr(0, 60), "\", found none");
  const int64_t v = s.int64(0);
  FKV_TRY(s.run());
  return v;
}

// Runs `sql` (bound with args) to completion and returns the number of rows it changed.
template <class... Args>
Result<int64_t> run_changes(Db& db, std::string_view sql, const Args&... args) {
  FKV_ASSIGN_OR_RETURN(Stmt s, db.prepare(sql));
  s.bind_all(args...);
  FKV_TRY(s.run());
  return db.changes();
}

// The library's schema: PRAGMA user_version, migrated one version per transaction (library_schema.cpp).
int library_schema_version();
// Brings a database at user_version `found` (<= library_schema_version()) up to date.
Status migrate_library(Db& db, int found);

}  // namespace fkv::sql
