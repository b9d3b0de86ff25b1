// Library: checkpoints of a prefill in progress (prefill_checkpoints rows). Like snapshots, their files are deleted
// only after the transaction that dropped their rows commits, and a file written but not yet recorded is an orphan
// the next open sweeps.
#include <filesystem>

#include "store/library.h"
#include "store/library_rows.h"
#include "store/library_sql.h"

namespace fkv {

namespace fs = std::filesystem;

namespace {

// Key columns in the order the statements below bind them (?1 .. ?5).
constexpr const char* k_key_where =
    "document_id = ?1 AND model_id = ?2 AND prompt_format = ?3 AND page_size = ?4 AND dtype = ?5";

template <class... Args>
Result<sql::Stmt> keyed(sql::Db& db, const std::string& sql, const SnapshotKey& k, const Args&... more) {
  FKV_ASSIGN_OR_RETURN(sql::Stmt s, db.prepare(sql));
  s.bind_all(k.document_id, k.model_id, k.prompt_format, int64_t{k.page_size}, k.dtype, more...);
  return s;
}

Result<std::vector<CheckpointRecord>> query_chain(sql::Db& db, const SnapshotKey& k) {
  FKV_ASSIGN_OR_RETURN(sql::Stmt s, keyed(db,
                                          std::string("SELECT id, seq, path, n_tokens, total_tokens, bytes, created_at "
                                                      "FROM prefill_checkpoints WHERE ") +
                                              k_key_where + " ORDER BY seq",
                                          k));
  std::vector<CheckpointRecord> out;
  for (;;) {
    FKV_ASSIGN_OR_RETURN(bool has_row, s.step());
    if (!has_row) return out;
    CheckpointRecord r;
    r.key = k;
    r.id = s.int64(0);
    r.seq = s.int64(1);
    r.path = s.text(2);
    r.n_tokens = s.int64(3);
    r.total_tokens = s.int64(4);
    r.bytes = s.int64(5);
    r.created_at = s.int64(6);
    out.push_back(std::move(r));
  }
}

Status check_checkpoint(const CheckpointRecord& r, const std::vector<CheckpointRecord>& chain) {
  if (r.key.chat_id) return err("expected a document's key, found one of chat ", *r.key.chat_id);
  if (r.key.page_size <= 0) return err("expected page_size > 0, found ", r.key.page_size);
  if (r.n_tokens <= 0 || r.total_tokens < r.n_tokens || r.bytes < 0) {
    return err("expected 0 < n_tokens <= total_tokens and bytes >= 0, found ", r.n_tokens, ", ", r.total_tokens, ", ",
               r.bytes);
  }
  FKV_TRY(library_rows::check_page_path(r.path));
  const int64_t next = static_cast<int64_t>(chain.size());
  if (r.seq != next) return err("expected seq ", next, " (the chain's next), found ", r.seq);
  if (!chain.empty()) {
    const CheckpointRecord& last = chain.back();
    if (r.n_tokens <= last.n_tokens || r.total_tokens != last.total_tokens) {
      return err("expected more than ", last.n_tokens, " tokens of ", last.total_tokens, ", found ", r.n_tokens,
                 " of ", r.total_tokens);
    }
  }
  return {};
}

Result<int64_t> add_txn(sql::Db& db, const CheckpointRecord& r, int64_t now) {
  FKV_ASSIGN_OR_RETURN(sql::Transaction txn, sql::Transaction::begin(db));
  FKV_ASSIGN_OR_RETURN(const std::vector<CheckpointRecord> chain, query_chain(db, r.key));
  FKV_TRY(check_checkpoint(r, chain));
  FKV_ASSIGN_OR_RETURN(sql::Stmt s, keyed(db,
                                          "INSERT INTO prefill_checkpoints (document_id, model_id, prompt_format, "
                                          "page_size, dtype, seq, path, n_tokens, total_tokens, bytes, created_at) "
                                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                                          r.key, r.seq, r.path, r.n_tokens, r.total_tokens, r.bytes, now));
  FKV_TRY(s.run());
  const int64_t id = db.last_insert_id();
  FKV_TRY(txn.commit());
  return id;
}

Result<std::vector<std::string>> drop_txn(sql::Db& db, const SnapshotKey& k, int64_t from_seq) {
  FKV_ASSIGN_OR_RETURN(sql::Transaction txn, sql::Transaction::begin(db));
  std::vector<std::string> paths;
  FKV_ASSIGN_OR_RETURN(const std::vector<CheckpointRecord> chain, query_chain(db, k));
  for (const CheckpointRecord& r : chain)
    if (r.seq >= from_seq) paths.push_back(r.path);
  FKV_ASSIGN_OR_RETURN(sql::Stmt s,
                       keyed(db, std::string("DELETE FROM prefill_checkpoints WHERE ") + k_key_where + " AND seq >= ?6",
                             k, from_seq));
  FKV_TRY(s.run());
  FKV_TRY(txn.commit());
  return paths;
}

}  // namespace

Result<CheckpointRecord> Library::begin_checkpoint(const SnapshotKey& key) {
  auto chain = query_chain(*db_, key);
  if (!chain.ok()) return err("begin_checkpoint: ", chain.message());
  CheckpointRecord r;
  r.key = key;
  r.seq = static_cast<int64_t>(chain->size());
  r.path = begin_snapshot(key).path;  // the orphan sweep knows these names
  return r;
}

std::string Library::page_file_path(const CheckpointRecord& r) const {
  return (fs::path(pages_dir_) / r.path).string();
}

Result<int64_t> Library::add_checkpoint(const CheckpointRecord& r) {
  auto id = add_txn(*db_, r, now());
  if (!id.ok()) return err("add_checkpoint \"", r.path, "\": ", id.message());
  return id;
}

Result<std::vector<CheckpointRecord>> Library::checkpoints(const SnapshotKey& key) {
  auto chain = query_chain(*db_, key);
  if (!chain.ok()) return err("checkpoints: ", chain.message());
  return chain;
}

Status Library::drop_checkpoints(const SnapshotKey& key, int64_t from_seq) {
  auto paths = drop_txn(*db_, key, from_seq);
  if (!paths.ok()) return err("drop_checkpoints: ", paths.message());
  remove_page_files(*paths);
  return {};
}

}  // namespace fkv
