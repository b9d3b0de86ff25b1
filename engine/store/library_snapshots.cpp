// Library: KV snapshot rows (record, find, stale marking, use times, deletion). Their files are deleted only after
// the transaction that dropped the rows commits: a crash in between leaves an orphan file (swept at the next open),
// never a row naming a missing file.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <sstream>
#include <utility>

#include "store/library.h"
#include "store/library_rows.h"
#include "store/library_sql.h"

namespace fkv {

namespace fs = std::filesystem;
using library_rows::query_snapshots;

// ---- row helpers (library_rows.h) ----

namespace library_rows {

const char* state_name(SnapshotState s) { return s == SnapshotState::stale ? "stale" : "ready"; }

std::string snapshot_select(bool with_spans) {
  return std::string(
             "SELECT id, document_id, model_id, prompt_format, page_size, dtype, chat_id, path, n_tokens, bytes, "
             "state, stale_reason, base_snapshot_id, created_at, last_used_at, ") +
         (with_spans ? "token_spans" : "NULL") + " FROM kv_snapshots ";
}

SnapshotRecord read_snapshot(const sql::Stmt& s) {
  SnapshotRecord r;
  r.id = s.int64(0);
  r.key.document_id = s.int64(1);
  r.key.model_id = s.int64(2);
  r.key.prompt_format = s.text(3);
  r.key.page_size = static_cast<int32_t>(s.int64(4));
  r.key.dtype = s.text(5);
  r.key.chat_id = s.opt_int64(6);
  r.path = s.text(7);
  r.n_tokens = s.int64(8);
  r.bytes = s.int64(9);
  r.state = s.text(10) == "stale" ? SnapshotState::stale : SnapshotState::ready;
  r.stale_reason = s.text(11);
  r.base_snapshot_id = s.opt_int64(12);
  r.created_at = s.int64(13);
  r.last_used_at = s.int64(14);
  r.token_spans = s.blob(15);
  return r;
}

Status check_page_path(const std::string& path) {
  const fs::path p(path);
  const bool escapes = !p.empty() && *p.begin() == "..";
  const bool names_file = p.has_filename() && p.filename() != "." && p.filename() != "..";
  if (path.empty() || p.is_absolute() || p.has_root_path() || escapes || !names_file ||
      p.lexically_normal().generic_string() != path) {
    return err("expected a normalized page file path relative to pages_dir, found \"", path, "\"");
  }
  if (p.extension() == ".tmp") return err("expected a finished page file, found the temporary name \"", path, "\"");
  return {};
}

namespace {

bool all_of_set(std::string_view s, std::string_view set) {
  return !s.empty() && s.find_first_not_of(set) == std::string_view::npos;
}

// `part` is `prefix` followed by one or more decimal digits.
bool is_counter(std::string_view part, std::string_view prefix) {
  return part.substr(0, prefix.size()) == prefix && all_of_set(part.substr(prefix.size()), "0123456789");
}

}  // namespace

bool is_page_file_name(std::string_view name) {
  constexpr std::string_view k_tmp = ".tmp", k_ext = ".fkvpages";
  if (name.ends_with(k_tmp)) name.remove_suffix(k_tmp.size());
  if (!name.ends_with(k_ext)) return false;
  name.remove_suffix(k_ext.size());
  std::vector<std::string_view> parts;
  for (size_t begin = 0;;) {
    const size_t dash = name.find('-', begin);
    parts.push_back(name.substr(begin, dash - begin));
    if (dash == std::string_view::npos) break;
    begin = dash + 1;
  }
  const size_t n = parts.size();
  if (n != 5 && n != 6) return false;
  const bool chat_ok = n == 5 || is_counter(parts[2], "chat");
  constexpr std::string_view k_hex = "0123456789abcdef";  // unique_file_tag's three numbers
  return is_counter(parts[0], "doc") && is_counter(parts[1], "model") && chat_ok && all_of_set(parts[n - 3], k_hex) &&
         all_of_set(parts[n - 2], k_hex) && all_of_set(parts[n - 1], k_hex);
}

Result<std::vector<std::string>> delete_with_files(sql::Db& db, std::string_view paths_sql, std::string_view delete_sql,
                                                   int64_t id, const char* what) {
  FKV_ASSIGN_OR_RETURN(sql::Transaction txn, sql::Transaction::begin(db));
  FKV_ASSIGN_OR_RETURN(sql::Stmt s, db.prepare(paths_sql));
  s.bind_all(id);
  std::vector<std::string> paths;
  for (;;) {
    FKV_ASSIGN_OR_RETURN(bool has_row, s.step());
    if (!has_row) break;
    paths.push_back(s.text(0));
  }
  FKV_ASSIGN_OR_RETURN(int64_t n_deleted, sql::run_changes(db, delete_sql, id));
  if (n_deleted == 0) return err("expected a ", what, " with id ", id, ", found none");
  FKV_TRY(txn.commit());
  return paths;
}

}  // namespace library_rows

namespace {

// Key columns in the order bound by key_where.
constexpr const char* k_key_where =
    "WHERE document_id = ? AND model_id = ? AND prompt_format = ? AND page_size = ? AND dtype = ? "
    "AND IFNULL(chat_id, 0) = IFNULL(?, 0)";

Result<std::optional<SnapshotRecord>> find_by_key(sql::Db& db, const SnapshotKey& k, bool with_spans) {
  FKV_ASSIGN_OR_RETURN(std::vector<SnapshotRecord> rows,
                       query_snapshots(db, with_spans, k_key_where, k.document_id, k.model_id, k.prompt_format,
                                       int64_t{k.page_size}, k.dtype, k.chat_id));
  if (rows.empty()) return std::optional<SnapshotRecord>();
  return std::optional<SnapshotRecord>(std::move(rows.front()));
}

Status check_exists(sql::Db& db, const char* table, int64_t id, const char* what) {
  FKV_ASSIGN_OR_RETURN(int64_t n,
                       sql::query_int64(db, std::string("SELECT count(*) FROM ") + table + " WHERE id = ?", id));
  if (n == 0) return err("expected an existing ", what, " with id ", id, ", found none");
  return {};
}

Status check_record(const SnapshotRecord& r) {
  if (r.state == SnapshotState::none) return err("expected state ready or stale, found none");
  if (r.key.page_size <= 0) return err("expected page_size > 0, found ", r.key.page_size);
  if (r.n_tokens < 0 || r.bytes < 0) return err("expected n_tokens, bytes >= 0, found ", r.n_tokens, ", ", r.bytes);
  if (r.base_snapshot_id && !r.key.chat_id) {
    return err("expected a base only on a chat's snapshot, found base ", *r.base_snapshot_id, " without a chat_id");
  }
  return library_rows::check_page_path(r.path);
}

// The rows a snapshot refers to exist, and a base is its document's own snapshot with the same layout.
Status check_references(sql::Db& db, const SnapshotRecord& r) {
  FKV_TRY(check_exists(db, "documents", r.key.document_id, "document"));
  FKV_TRY(check_exists(db, "models", r.key.model_id, "model"));
  if (r.key.chat_id) {
    FKV_ASSIGN_OR_RETURN(int64_t n, sql::query_int64(db, "SELECT count(*) FROM chats WHERE id = ? AND document_id = ?",
                                                     *r.key.chat_id, r.key.document_id));
    if (n == 0) return err("expected chat ", *r.key.chat_id, " of document ", r.key.document_id, ", found none");
  }
  if (!r.base_snapshot_id) return {};
  FKV_ASSIGN_OR_RETURN(std::vector<SnapshotRecord> bases,
                       query_snapshots(db, false, "WHERE id = ?", *r.base_snapshot_id));
  if (bases.empty()) return err("expected base snapshot ", *r.base_snapshot_id, ", found none");
  const SnapshotRecord& b = bases.front();
  SnapshotKey doc_key = r.key;
  doc_key.chat_id.reset();
  const bool same = b.key.document_id == doc_key.document_id && b.key.model_id == doc_key.model_id &&
                    b.key.prompt_format == doc_key.prompt_format && b.key.page_size == doc_key.page_size &&
                    b.key.dtype == doc_key.dtype;
  if (!same || b.key.chat_id || b.base_snapshot_id) {
    return err("expected base snapshot ", b.id, " to be document ", doc_key.document_id,
               "'s own snapshot with the same model, prompt format, page size and dtype, found one for document ",
               b.key.document_id, ", model ", b.key.model_id, ", \"", b.key.prompt_format, "\", page size ",
               b.key.page_size, ", ", b.key.dtype, b.key.chat_id ? ", of a chat" : "");
  }
  return {};
}

Status write_row(sql::Db& db, const SnapshotRecord& r, std::optional<int64_t> replace_id, int64_t now) {
  const char* sql = replace_id
                        ? "UPDATE kv_snapshots SET path = ?, n_tokens = ?, bytes = ?, state = ?, stale_reason = ?, "
                          "token_spans = ?, base_snapshot_id = ?, created_at = ?, last_used_at = ? WHERE id = ?"
                        : "INSERT INTO kv_snapshots (path, n_tokens, bytes, state, stale_reason, token_spans, "
                          "base_snapshot_id, created_at, last_used_at, document_id, model_id, prompt_format, "
                          "page_size, dtype, chat_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
  FKV_ASSIGN_OR_RETURN(sql::Stmt s, db.prepare(sql));
  s.bind_all(r.path, r.n_tokens, r.bytes, library_rows::state_name(r.state), r.stale_reason, r.token_spans,
             r.base_snapshot_id, now, now);
  if (replace_id) {
    s.bind(10, *replace_id);
  } else {
    s.bind(10, r.key.document_id).bind(11, r.key.model_id).bind(12, r.key.prompt_format);
    s.bind(13, int64_t{r.key.page_size}).bind(14, r.key.dtype).bind(15, r.key.chat_id);
  }
  return s.run();
}

struct PutResult {
  int64_t id = 0;
  std::vector<std::string> old_paths;  // files the replaced row named and the new one does not
};

Result<PutResult> put_snapshot_txn(sql::Db& db, const SnapshotRecord& r, int64_t now) {
  FKV_TRY(check_record(r));
  FKV_ASSIGN_OR_RETURN(sql::Transaction txn, sql::Transaction::begin(db));
  FKV_TRY(check_references(db, r));
  FKV_ASSIGN_OR_RETURN(std::optional<SnapshotRecord> old, find_by_key(db, r.key, false));
  PutResult out;
  FKV_TRY(write_row(db, r, old ? std::optional<int64_t>(old->id) : std::nullopt, now));
  out.id = old ? old->id : db.last_insert_id();
  if (old) {
    if (old->path != r.path) out.old_paths.push_back(old->path);
    // Snapshots that extend this one were computed on top of the KV it replaces.
    FKV_TRY(sql::run_changes(db, "UPDATE kv_snapshots SET state = 'stale', stale_reason = ? WHERE base_snapshot_id = ?",
                             "base snapshot " + std::to_string(out.id) + " was replaced", out.id)
                .status());
  }
  // Loading a chat snapshot reads its base, so the base counts as used too.
  if (r.base_snapshot_id) {
    FKV_TRY(sql::run_changes(db, "UPDATE kv_snapshots SET last_used_at = ? WHERE id = ?", now, *r.base_snapshot_id)
                .status());
  }
  FKV_TRY(txn.commit());
  return out;
}

// The snapshot `id` and everything based on it, directly or not.
constexpr const char* k_subtree =
    "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION SELECT k.id FROM kv_snapshots k JOIN sub ON k.base_snapshot_id = "
    "sub.id) ";

Status mark_stale_txn(sql::Db& db, int64_t id, const std::string& reason) {
  if (reason.empty()) return err("expected a reason, found an empty string");
  FKV_ASSIGN_OR_RETURN(sql::Transaction txn, sql::Transaction::begin(db));
  FKV_ASSIGN_OR_RETURN(int64_t n, sql::run_changes(db,
                                                   "UPDATE kv_snapshots SET state = 'stale', stale_reason = ?2 "
                                                   "WHERE id = ?1",
                                                   id, reason));
  if (n == 0) return err("expected a snapshot with id ", id, ", found none");
  const std::string dependents_reason = "base snapshot " + std::to_string(id) + " is stale: " + reason;
  FKV_TRY(sql::run_changes(db,
                           std::string(k_subtree) + "UPDATE kv_snapshots SET state = 'stale', stale_reason = ?2 "
                                                    "WHERE id IN sub AND id <> ?1",
                           id, dependents_reason)
              .status());
  return txn.commit();
}

// The snapshot and its dependents (they go by ON DELETE CASCADE), with all their files.
Result<std::vector<std::string>> delete_snapshot_txn(sql::Db& db, int64_t id) {
  return library_rows::delete_with_files(db, std::string(k_subtree) + "SELECT path FROM kv_snapshots WHERE id IN sub",
                                         "DELETE FROM kv_snapshots WHERE id = ?", id, "snapshot");
}

std::string unique_file_tag() {
  static std::atomic<uint32_t> counter{0};
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::random_device rd;  // separates processes that start in the same nanosecond
  std::ostringstream os;
  os << std::hex << ns << '-' << rd() << '-' << counter.fetch_add(1);
  return os.str();
}

}  // namespace

// ---- Library: snapshots ----

SnapshotRecord Library::begin_snapshot(const SnapshotKey& key) const {
  SnapshotRecord r;
  r.key = key;
  std::ostringstream name;
  name << "doc" << key.document_id << "-model" << key.model_id;
  if (key.chat_id) name << "-chat" << *key.chat_id;
  name << '-' << unique_file_tag() << ".fkvpages";
  r.path = name.str();
  return r;
}

std::string Library::page_file_path(const SnapshotRecord& r) const { return (fs::path(pages_dir_) / r.path).string(); }

Result<int64_t> Library::put_snapshot(const SnapshotRecord& r) {
  auto put = put_snapshot_txn(*db_, r, now());
  if (!put.ok()) return err("put_snapshot \"", r.path, "\": ", put.message());
  remove_page_files(put->old_paths);
  return put->id;
}

Result<std::optional<SnapshotRecord>> Library::find_snapshot(const SnapshotKey& key) {
  auto found = find_by_key(*db_, key, true);
  if (!found.ok()) return err("find_snapshot: ", found.message());
  return found;
}

Result<SnapshotRecord> Library::get_snapshot(int64_t id) {
  auto rows = query_snapshots(*db_, true, "WHERE id = ?", id);
  if (!rows.ok()) return err("get_snapshot: ", rows.message());
  if (rows->empty()) return err("get_snapshot: expected a snapshot with id ", id, ", found none");
  return std::move(rows->front());
}

Result<std::vector<SnapshotRecord>> Library::list_snapshots(int64_t document_id) {
  auto rows = query_snapshots(*db_, false, "WHERE document_id = ? ORDER BY id", document_id);
  if (!rows.ok()) return err("list_snapshots: ", rows.message());
  return rows;
}

Status Library::mark_stale(int64_t id, const std::string& reason) {
  const Status s = mark_stale_txn(*db_, id, reason);
  if (!s.ok()) return err("mark_stale: ", s.message());
  return {};
}

Status Library::touch_snapshot(int64_t id) {
  // The snapshot and its bases: loading it reads them.
  auto n = sql::run_changes(*db_,
                            "WITH RECURSIVE up(id) AS (SELECT ?1 UNION SELECT k.base_snapshot_id FROM kv_snapshots k "
                            "JOIN up ON k.id = up.id WHERE k.base_snapshot_id IS NOT NULL) "
                            "UPDATE kv_snapshots SET last_used_at = ?2 WHERE id IN up",
                            id, now());
  if (!n.ok()) return err("touch_snapshot: ", n.message());
  if (*n == 0) return err("touch_snapshot: expected a snapshot with id ", id, ", found none");
  return {};
}

Status Library::delete_snapshot(int64_t id) {
  auto paths = delete_snapshot_txn(*db_, id);
  if (!paths.ok()) return err("delete_snapshot: ", paths.message());
  remove_page_files(*paths);
  return {};
}

}  // namespace fkv
