// Library: chats about a document, their messages, and settings.
#include <unordered_map>
#include <utility>

#include "store/library.h"
#include "store/library_rows.h"
#include "store/library_sql.h"

namespace fkv {

namespace {

Status check_role(const std::string& role) {
  if (role == "system" || role == "user" || role == "assistant") return {};
  return err("expected role \"system\", \"user\" or \"assistant\", found \"", role, "\"");
}

Result<int64_t> create_chat_txn(sql::Db& db, int64_t document_id, const std::string& title, int64_t now) {
  FKV_ASSIGN_OR_RETURN(sql::Transaction txn, sql::Transaction::begin(db));
  FKV_ASSIGN_OR_RETURN(int64_t n, sql::query_int64(db, "SELECT count(*) FROM documents WHERE id = ?", document_id));
  if (n == 0) return err("expected a document with id ", document_id, ", found none");
  FKV_TRY(sql::run_changes(db, "INSERT INTO chats (document_id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                           document_id, title, now, now)
              .status());
  const int64_t id = db.last_insert_id();
  FKV_TRY(txn.commit());
  return id;
}

Result<int64_t> append_message_txn(sql::Db& db, int64_t chat_id, const MessageRecord& m, int64_t now) {
  FKV_TRY(check_role(m.role));
  FKV_ASSIGN_OR_RETURN(sql::Transaction txn, sql::Transaction::begin(db));
  FKV_ASSIGN_OR_RETURN(int64_t n, sql::run_changes(db, "UPDATE chats SET updated_at = ? WHERE id = ?", now, chat_id));
  if (n == 0) return err("expected a chat with id ", chat_id, ", found none");
  FKV_ASSIGN_OR_RETURN(int64_t seq,
                       sql::query_int64(db, "SELECT IFNULL(MAX(seq) + 1, 0) FROM messages WHERE chat_id = ?", chat_id));
  FKV_TRY(sql::run_changes(db,
                           "INSERT INTO messages (chat_id, seq, role, content, created_at, stop_reason) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           chat_id, seq, m.role, m.content, now, m.stop_reason)
              .status());
  const int64_t id = db.last_insert_id();
  for (size_t i = 0; i < m.citations.size(); ++i) {
    const Citation& c = m.citations[i];
    if (c.char_begin < 0 || c.char_end < c.char_begin)
      return err("citation ", i + 1, ": expected 0 <= begin <= end, found ", c.char_begin, "..", c.char_end);
    FKV_TRY(sql::run_changes(db,
                             "INSERT INTO citations (message_id, rank, char_begin, char_end, weight, place, snippet) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             id, static_cast<int64_t>(i), c.char_begin, c.char_end, static_cast<double>(c.weight),
                             c.where, c.snippet)
                .status());
  }
  FKV_TRY(txn.commit());
  return seq;
}

// The citations of a chat's messages (read in one query, not one per message), onto `messages` by id.
Status attach_citations(sql::Db& db, int64_t chat_id, std::vector<MessageRecord>& messages) {
  FKV_ASSIGN_OR_RETURN(sql::Stmt s, db.prepare("SELECT c.message_id, c.char_begin, c.char_end, c.weight, c.place, "
                                               "c.snippet FROM citations c JOIN messages m ON m.id = c.message_id "
                                               "WHERE m.chat_id = ? ORDER BY c.message_id, c.rank"));
  s.bind_all(chat_id);
  std::unordered_map<int64_t, MessageRecord*> by_id;
  for (MessageRecord& m : messages) by_id[m.id] = &m;
  for (;;) {
    FKV_ASSIGN_OR_RETURN(bool has_row, s.step());
    if (!has_row) return {};
    const auto it = by_id.find(s.int64(0));
    if (it == by_id.end()) continue;
    it->second->citations.push_back({s.int64(1), s.int64(2), static_cast<float>(s.real(3)), s.text(4), s.text(5)});
  }
}

// A chat's snapshots have no dependents (only document snapshots can be a base), so these are all the files.
Result<std::vector<std::string>> delete_chat_txn(sql::Db& db, int64_t id) {
  return library_rows::delete_with_files(db, "SELECT path FROM kv_snapshots WHERE chat_id = ?",
                                         "DELETE FROM chats WHERE id = ?", id, "chat");
}

}  // namespace

Result<int64_t> Library::create_chat(int64_t document_id, const std::string& title) {
  auto id = create_chat_txn(*db_, document_id, title, now());
  if (!id.ok()) return err("create_chat: ", id.message());
  return id;
}

Result<std::vector<ChatRecord>> Library::list_chats(int64_t document_id) {
  auto stmt = db_->prepare(
      "SELECT c.id, c.document_id, c.title, c.created_at, c.updated_at, "
      "(SELECT count(*) FROM messages m WHERE m.chat_id = c.id) "
      "FROM chats c WHERE c.document_id = ? ORDER BY c.updated_at DESC, c.id DESC");
  if (!stmt.ok()) return err("list_chats: ", stmt.message());
  sql::Stmt& s = *stmt;
  s.bind_all(document_id);
  std::vector<ChatRecord> out;
  for (;;) {
    auto has_row = s.step();
    if (!has_row.ok()) return err("list_chats: ", has_row.message());
    if (!*has_row) return out;
    ChatRecord c;
    c.id = s.int64(0);
    c.document_id = s.int64(1);
    c.title = s.text(2);
    c.created_at = s.int64(3);
    c.updated_at = s.int64(4);
    c.n_messages = s.int64(5);
    out.push_back(std::move(c));
  }
}

Result<int64_t> Library::append_message(int64_t chat_id, const std::string& role, const std::string& content) {
  MessageRecord m;
  m.role = role;
  m.content = content;
  return append_message(chat_id, m);
}

Result<int64_t> Library::append_message(int64_t chat_id, const MessageRecord& message) {
  auto seq = append_message_txn(*db_, chat_id, message, now());
  if (!seq.ok()) return err("append_message: ", seq.message());
  return seq;
}

Result<std::vector<MessageRecord>> Library::messages(int64_t chat_id) {
  auto stmt = db_->prepare(
      "SELECT id, seq, role, content, created_at, stop_reason FROM messages WHERE chat_id = ? ORDER BY seq");
  if (!stmt.ok()) return err("messages: ", stmt.message());
  sql::Stmt& s = *stmt;
  s.bind_all(chat_id);
  std::vector<MessageRecord> out;
  for (;;) {
    auto has_row = s.step();
    if (!has_row.ok()) return err("messages: ", has_row.message());
    if (!*has_row) break;
    MessageRecord m;
    m.id = s.int64(0);
    m.seq = s.int64(1);
    m.role = s.text(2);
    m.content = s.text(3);
    m.created_at = s.int64(4);
    m.stop_reason = s.text(5);
    out.push_back(std::move(m));
  }
  if (Status c = attach_citations(*db_, chat_id, out); !c.ok()) return err("messages: ", c.message());
  return out;
}

Status Library::rename_chat(int64_t id, const std::string& title) {
  auto n = sql::run_changes(*db_, "UPDATE chats SET title = ?, updated_at = ? WHERE id = ?", title, now(), id);
  if (!n.ok()) return err("rename_chat: ", n.message());
  if (*n == 0) return err("rename_chat: expected a chat with id ", id, ", found none");
  return {};
}

Status Library::delete_chat(int64_t id) {
  auto paths = delete_chat_txn(*db_, id);
  if (!paths.ok()) return err("delete_chat: ", paths.message());
  remove_page_files(*paths);
  return {};
}

// ---- settings ----

Result<std::optional<std::string>> Library::get_setting(const std::string& key) {
  auto stmt = db_->prepare("SELECT value FROM settings WHERE key = ?");
  if (!stmt.ok()) return err("get_setting \"", key, "\": ", stmt.message());
  stmt->bind_all(key);
  auto has_row = stmt->step();
  if (!has_row.ok()) return err("get_setting \"", key, "\": ", has_row.message());
  if (!*has_row) return std::optional<std::string>();
  return std::optional<std::string>(stmt->text(0));
}

Status Library::set_setting(const std::string& key, const std::string& value) {
  auto n = sql::run_changes(*db_,
                            "INSERT INTO settings (key, value) VALUES (?, ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            key, value);
  if (!n.ok()) return err("set_setting \"", key, "\": ", n.message());
  return {};
}

}  // namespace fkv
