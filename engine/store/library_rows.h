// Internal to the library's sources: reading kv_snapshots rows and checking page-file paths.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "store/library.h"
#include "store/library_sql.h"

namespace fkv::library_rows {

const char* state_name(SnapshotState s);  // "ready" | "stale" (the column's values); "none" is never stored

// "SELECT <every snapshot column> FROM kv_snapshots "; without spans, token_spans reads as NULL (it can be large).
std::string snapshot_select(bool with_spans);
SnapshotRecord read_snapshot(const sql::Stmt& s);  // a row selected by snapshot_select

// Snapshots selected by snapshot_select(with_spans) + tail, with args bound to the tail's parameters.
template <class... Args>
Result<std::vector<SnapshotRecord>> query_snapshots(sql::Db& db, bool with_spans, std::string_view tail,
                                                    const Args&... args) {
  FKV_ASSIGN_OR_RETURN(sql::Stmt s, db.prepare(snapshot_select(with_spans).append(tail)));
  s.bind_all(args...);
  std::vector<SnapshotRecord> out;
  for (;;) {
    FKV_ASSIGN_OR_RETURN(bool has_row, s.step());
    if (!has_row) return out;
    out.push_back(read_snapshot(s));
  }
}

// In one transaction: the page files of the snapshots `paths_sql` selects for `id`, then the row `delete_sql` deletes
// (its snapshots go with it by the cascade). Returns the files for the caller to remove after the commit; no row for
// `id` is an error naming `what`.
Result<std::vector<std::string>> delete_with_files(sql::Db& db, std::string_view paths_sql, std::string_view delete_sql,
                                                   int64_t id, const char* what);

// A page file's path as stored: relative to pages_dir, normalized, inside it, and not a "*.tmp" name (the orphan
// sweep deletes those). Stored paths are checked again before a file is deleted: the database is a file too.
Status check_page_path(const std::string& path);

// True for a file name Library::begin_snapshot gives ("doc<n>-model<n>[-chat<n>]-<hex>-<hex>-<hex>.fkvpages") or that
// name + ".tmp" (a save in progress). Only such files are ever deleted from pages_dir.
bool is_page_file_name(std::string_view name);

}  // namespace fkv::library_rows
