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

class Db {
 public:
  // Opens (creating if missing) the database file; nothing is read yet, so a damaged file shows up at first use.
  static Result<Db> open(const std::string& path, int busy_timeout_ms);
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
  const std::string& path() const { return path_; }
  int busy_timeout_ms() const { return busy_timeout_ms_; }

  // An error Status for SQLite result code `rc` while doing `what`.
  Status error(int rc, std::string_view what) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
  int busy_timeout_ms_ = 0;
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
