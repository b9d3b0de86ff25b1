// Library: the disk space snapshots take. Eviction follows "prepare, then apply": a plan over the snapshot rows
// (no side effects), then one transaction that deletes exactly the planned rows, then the files.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/format.h"
#include "store/library.h"
#include "store/library_rows.h"
#include "store/library_sql.h"

namespace fkv {

namespace fs = std::filesystem;

namespace {

// Which snapshots (indices into rows) to delete, in order, so that the bytes left total at most cap_bytes.
// Stale snapshots go first (nothing can use them), then the least recently used. A snapshot goes with everything
// based on it, dependents listed first. keep_id and the bases it needs are never planned.
class EvictionPlanner {
 public:
  explicit EvictionPlanner(const std::vector<SnapshotRecord>& rows) : rows_(rows), deleted_(rows.size(), false) {
    for (size_t i = 0; i < rows.size(); ++i) index_of_[rows[i].id] = i;
    children_.resize(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].base_snapshot_id && index_of_.count(*rows[i].base_snapshot_id)) {
        children_[index_of_[*rows[i].base_snapshot_id]].push_back(i);
      }
    }
  }

  std::vector<size_t> plan(int64_t cap_bytes, int64_t keep_id) {
    std::vector<bool> kept = protected_set(keep_id);
    int64_t total = 0;
    for (const SnapshotRecord& r : rows_) total += r.bytes;
    std::vector<size_t> out;
    for (size_t i : eviction_order()) {
      if (total <= cap_bytes) break;
      if (deleted_[i] || kept[i]) continue;
      const size_t first = out.size();
      take_subtree(i, out);
      for (size_t j = first; j < out.size(); ++j) total -= rows_[out[j]].bytes;
    }
    return out;
  }

 private:
  // keep_id and its chain of bases: deleting any of them would delete keep_id by cascade.
  std::vector<bool> protected_set(int64_t keep_id) const {
    std::vector<bool> kept(rows_.size(), false);
    auto it = index_of_.find(keep_id);
    // The chain is bounded by the row count, so a cycle written by hand into the database cannot hang this.
    for (size_t n = 0; it != index_of_.end() && n < rows_.size() && !kept[it->second]; ++n) {
      kept[it->second] = true;
      const auto& base = rows_[it->second].base_snapshot_id;
      it = base ? index_of_.find(*base) : index_of_.end();
    }
    return kept;
  }

  std::vector<size_t> eviction_order() const {
    std::vector<size_t> order(rows_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const SnapshotRecord& x = rows_[a];
      const SnapshotRecord& y = rows_[b];
      const bool x_stale = x.state == SnapshotState::stale;
      const bool y_stale = y.state == SnapshotState::stale;
      if (x_stale != y_stale) return x_stale;
      if (x.last_used_at != y.last_used_at) return x.last_used_at < y.last_used_at;
      return x.id < y.id;
    });
    return order;
  }

  // Appends i's not yet deleted dependents (depth first), then i.
  void take_subtree(size_t i, std::vector<size_t>& out) {
    deleted_[i] = true;
    for (size_t c : children_[i]) {
      if (!deleted_[c]) take_subtree(c, out);
    }
    out.push_back(i);
  }

  const std::vector<SnapshotRecord>& rows_;
  std::unordered_map<int64_t, size_t> index_of_;
  std::vector<std::vector<size_t>> children_;  // (n_rows) rows based on each row
  std::vector<bool> deleted_;                  // (n_rows) already planned
};

// The bytes a snapshot's file takes now: r.bytes, or 0 when the file is missing (deleting that row frees nothing).
int64_t bytes_on_disk(const std::string& pages_dir, const SnapshotRecord& r) {
  std::error_code ec;
  return fs::symlink_status(fs::path(pages_dir) / r.path, ec).type() == fs::file_type::regular ? r.bytes : 0;
}

Result<std::vector<SnapshotRecord>> evict_txn(sql::Db& db, int64_t cap_bytes, int64_t keep_id,
                                              const std::string& pages_dir) {
  FKV_ASSIGN_OR_RETURN(sql::Transaction txn, sql::Transaction::begin(db));
  FKV_ASSIGN_OR_RETURN(std::vector<SnapshotRecord> rows, library_rows::query_snapshots(db, false, "ORDER BY id"));
  for (SnapshotRecord& r : rows) r.bytes = bytes_on_disk(pages_dir, r);
  const std::vector<size_t> plan = EvictionPlanner(rows).plan(cap_bytes, keep_id);
  std::vector<SnapshotRecord> evicted;
  FKV_ASSIGN_OR_RETURN(sql::Stmt del, db.prepare("DELETE FROM kv_snapshots WHERE id = ?"));
  for (size_t i : plan) {
    del.reset();
    del.bind_all(rows[i].id);
    FKV_TRY(del.run());
    evicted.push_back(std::move(rows[i]));
  }
  FKV_TRY(txn.commit());
  return evicted;
}

Result<std::unordered_set<std::string>> referenced_paths(sql::Db& db) {
  FKV_ASSIGN_OR_RETURN(sql::Stmt s,
                       db.prepare("SELECT path FROM kv_snapshots UNION ALL SELECT path FROM prefill_checkpoints"));
  std::unordered_set<std::string> paths;
  for (;;) {
    FKV_ASSIGN_OR_RETURN(bool has_row, s.step());
    if (!has_row) return paths;
    paths.insert(s.text(0));
  }
}

// The page files directly in dir (regular files named as begin_snapshot names them, finished or ".tmp"), relative
// to it. Nothing else is ours to delete: a user may keep notes in the folder, or point a symlinked pages folder at a
// disk that holds other files, so subfolders, links and foreign names are never listed.
Result<std::vector<std::string>> list_page_files(const fs::path& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  std::vector<std::string> out;
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (it->symlink_status(type_ec).type() != fs::file_type::regular) continue;
    const std::string name = it->path().filename().string();
    if (library_rows::is_page_file_name(name)) out.push_back(name);
  }
  if (ec) return err("listing pages_dir \"", dir.string(), "\": ", ec.message());
  return out;
}

bool older_than(const fs::path& p, int64_t min_age_s) {
  std::error_code ec;
  const auto written = fs::last_write_time(p, ec);
  if (ec) return false;  // gone or unreadable: nothing to delete
  return fs::file_time_type::clock::now() - written >= std::chrono::seconds(min_age_s);
}

}  // namespace

Result<std::unordered_map<int64_t, int64_t>> Library::bytes_on_disk_by_document() {
  FKV_ASSIGN_OR_RETURN(std::vector<SnapshotRecord> rows, library_rows::query_snapshots(*db_, false, "ORDER BY id"));
  std::unordered_map<int64_t, int64_t> bytes;
  for (const SnapshotRecord& r : rows) bytes[r.key.document_id] += bytes_on_disk(pages_dir_, r);
  return bytes;
}

Result<int64_t> Library::total_snapshot_bytes() {
  auto by_document = bytes_on_disk_by_document();
  if (!by_document.ok()) return err("total_snapshot_bytes: ", by_document.message());
  int64_t total = 0;
  for (const auto& [id, bytes] : *by_document) total += bytes;
  return total;
}

Result<std::vector<SnapshotRecord>> Library::evict_to_cap(int64_t cap_bytes, int64_t keep_snapshot_id) {
  if (cap_bytes < 0) return err("evict_to_cap: expected cap_bytes >= 0, found ", cap_bytes);
  auto evicted = evict_txn(*db_, cap_bytes, keep_snapshot_id, pages_dir_);
  if (!evicted.ok()) return err("evict_to_cap: ", evicted.message());
  std::vector<std::string> paths;
  for (const SnapshotRecord& r : *evicted) paths.push_back(r.path);
  remove_page_files(paths);
  return evicted;
}

Result<std::vector<std::string>> Library::remove_orphan_files() {
  if (read_only()) return err("remove_orphan_files: ", db_path_, " is open read-only: ", read_only_reason_);
  auto referenced = referenced_paths(*db_);
  if (!referenced.ok()) return err("remove_orphan_files: ", referenced.message());
  FKV_ASSIGN_OR_RETURN(std::vector<std::string> files, list_page_files(pages_dir_));
  std::vector<std::string> removed;
  for (const std::string& rel : files) {
    const fs::path p = fs::path(pages_dir_) / rel;
    const bool unfinished = p.extension() == ".tmp";
    if (!unfinished && referenced->count(rel)) continue;
    if (!older_than(p, opts_.orphan_min_age_s)) continue;
    std::error_code ec;
    // A file that cannot be removed now stays an orphan until a later sweep.
    if (fs::remove(p, ec)) removed.push_back(rel);
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

std::string Library::no_room_for(uint64_t need) const {
  std::error_code ec;
  const fs::space_info s = fs::space(pages_dir_, ec);
  // A small disk (a USB stick, a test's scratch mount) keeps an eighth of its free space instead.
  const uint64_t spare = std::min<uint64_t>(kSpareBytes, s.available / 8);
  if (ec || need + spare <= s.available) return {};
  return "the KV takes about " + size_text(need) + " on disk, and the disk holding the library (" +
         pages_dir_ + ") has " + size_text(s.available) + " free; free some space (or remove other documents' saved "
         "KV from the library) and open it again to save it";
}

void Library::remove_page_files(const std::vector<std::string>& rel_paths) const {
  for (const std::string& rel : rel_paths) {
    // Never follow a path the checks would not have stored, nor delete a file of a name begin_snapshot does not
    // give: the database file can be edited by hand.
    if (!library_rows::check_page_path(rel).ok() || !library_rows::is_page_file_name(rel)) continue;
    const fs::path p = fs::path(pages_dir_) / rel;
    std::error_code ec;
    if (fs::symlink_status(p, ec).type() != fs::file_type::regular) continue;  // missing is fine
    // The rows are already gone; a file that cannot be removed now is an orphan the next open() sweeps.
    fs::remove(p, ec);
  }
}

}  // namespace fkv
