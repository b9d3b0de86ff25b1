// The document library (store/library.h): the database survives a reopen; migrations, newer schemas, foreign files
// and locks held elsewhere; documents (dedupe, all-or-nothing import, cascading delete with page files); snapshots
// (one per key, bases and stale marking, LRU eviction with dependents and a kept id); the orphan sweep; chats and
// settings. A raw sqlite3 connection plays "another process" and inspects rows the API does not show.
#include <QTemporaryDir>
#include <QTest>

#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include "store/library.h"
#include "support/library_fixtures.h"

using fkv::Document;
using fkv::Library;
using fkv::LibraryOptions;
using fkv::Section;
using fkv::SectionKind;
using fkv::SnapshotKey;
using fkv::SnapshotRecord;
using fkv::SnapshotState;
using fkvtest::key;
using fkvtest::make_doc;
using fkvtest::make_old;
using fkvtest::save_fake;
using fkvtest::write_bytes;

namespace fs = std::filesystem;

namespace {

// A second connection, as another process would hold it.
class RawDb {
 public:
  explicit RawDb(const std::string& path) { sqlite3_open(path.c_str(), &db_); }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  bool exec(const std::string& sql) { return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK; }
  int64_t scalar(const std::string& sql) { return std::stoll(text(sql, "-1")); }
  std::string text(const std::string& sql, const char* if_none = "") {
    sqlite3_stmt* s = nullptr;
    std::string v = if_none;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
      v = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return v;
  }

 private:
  sqlite3* db_ = nullptr;
};

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

class TestLibrary : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;
  int64_t clock_ = 1000;
  std::string path(const char* name) const { return (dir_.path() + "/" + name).toStdString(); }
  LibraryOptions options(int busy_timeout_ms = 2000) {
    LibraryOptions o;
    o.busy_timeout_ms = busy_timeout_ms;
    o.clock = [this] { return clock_; };
    return o;
  }
  // A library with one document and one model; ids 1 and 1.
  fkv::Result<std::unique_ptr<Library>> open_with_doc(const char* name) {
    FKV_ASSIGN_OR_RETURN(auto lib, Library::open(path(name), options()));
    FKV_TRY(lib->add_document(make_doc("h1", "/docs/a.md")).status());
    FKV_TRY(lib->upsert_model("fp-gemma", "gemma", "/models/g.gguf", 1234).status());
    return lib;
  }

 private slots:
  void reopen_keeps_data() {
    {
      ASSIGN_OK(lib, Library::open(path("keep/lib.db"), options()));
      ASSIGN_OK(id, lib->add_document(make_doc("h1", "/a.md")));
      QCOMPARE(id, int64_t{1});
      VERIFY_OK(lib->set_setting("theme", "dark"));
      QCOMPARE(lib->pages_dir(), path("keep/pages"));
      QVERIFY(fs::is_directory(lib->pages_dir()));
    }
    ASSIGN_OK(lib, Library::open(path("keep/lib.db"), options()));
    ASSIGN_OK(doc, lib->get_document(1));
    QCOMPARE(doc.info.title, std::string("Title h1"));
    QCOMPARE(doc.text, make_doc("h1", "").text);
    QCOMPARE(doc.sections.size(), size_t{3});
    QCOMPARE(doc.sections[1].char_offset, int64_t{23});
    QVERIFY(doc.sections[2].kind == SectionKind::page);
    QCOMPARE(doc.info.added_at, int64_t{1000});
    ASSIGN_OK(theme, lib->get_setting("theme"));
    QCOMPARE(theme.value_or(""), std::string("dark"));
    RawDb raw(path("keep/lib.db"));
    QCOMPARE(raw.scalar("PRAGMA user_version"), int64_t{Library::schema_version()});
    QCOMPARE(raw.text("PRAGMA journal_mode"), std::string("wal"));
  }

  void pages_dir_must_hold_only_page_files() {
    LibraryOptions o = options();
    o.pages_dir = path("custom/pages-elsewhere");
    ASSIGN_OK(lib, Library::open(path("custom/db/lib.db"), o));
    QCOMPARE(lib->pages_dir(), path("custom/pages-elsewhere"));
    o.pages_dir = path("custom");  // the sweep would take the database for an orphan
    VERIFY_ERROR(Library::open(path("custom/db/lib.db"), o), "outside");
  }

  void migrates_an_empty_v0_database() {
    {
      RawDb raw(path("v0.db"));
      QVERIFY(raw.exec("CREATE TABLE t (x); DROP TABLE t;"));
      QCOMPARE(raw.scalar("PRAGMA user_version"), int64_t{0});
    }
    ASSIGN_OK(lib, Library::open(path("v0.db"), options()));
    RawDb raw(path("v0.db"));
    QCOMPARE(raw.scalar("PRAGMA user_version"), int64_t{Library::schema_version()});
    QCOMPARE(raw.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('documents', "
                        "'sections', 'models', 'kv_snapshots', 'chats', 'messages', 'settings', 'citations', "
                        "'prefill_checkpoints')"),
             int64_t{9});
  }

  // A v1 library (before answers kept their stop reason and citations, and documents their refusal) keeps its
  // messages when migrated.
  void migrates_v1_messages() {
    {
      ASSIGN_OK(lib, open_with_doc("v1/lib.db"));
      ASSIGN_OK(chat, lib->create_chat(1, "old"));
      VERIFY_OK(lib->append_message(chat, "user", "why?").status());
      VERIFY_OK(lib->append_message(chat, "assistant", "because").status());
    }
    {
      RawDb raw(path("v1/lib.db"));
      QVERIFY(raw.exec("DROP TABLE prefill_checkpoints; DROP TABLE citations; "
                       "ALTER TABLE messages DROP COLUMN stop_reason; "
                       "ALTER TABLE documents DROP COLUMN refusal; ALTER TABLE documents DROP COLUMN refused_tokens; "
                       "PRAGMA user_version = 1;"));
    }
    ASSIGN_OK(lib, Library::open(path("v1/lib.db"), options()));
    ASSIGN_OK(msgs, lib->messages(1));
    QCOMPARE(msgs.size(), size_t{2});
    QCOMPARE(msgs[1].content, std::string("because"));
    QVERIFY(msgs[1].stop_reason.empty() && msgs[1].citations.empty());
    ASSIGN_OK(docs, lib->list_documents());
    QVERIFY(docs.front().refusal.empty());
    QCOMPARE(docs.front().refused_tokens, int64_t{-1});
    QCOMPARE(docs.front().prefill_done, int64_t{-1});
    RawDb raw(path("v1/lib.db"));
    QCOMPARE(raw.scalar("PRAGMA user_version"), int64_t{Library::schema_version()});
  }

  void refuses_newer_schema_untouched() {
    {
      RawDb raw(path("v99.db"));
      QVERIFY(raw.exec("CREATE TABLE future (x); PRAGMA user_version = 99;"));
    }
    const std::string before = read_bytes(path("v99.db"));
    auto lib = Library::open(path("v99.db"), options());
    VERIFY_ERROR(lib, "newer version");
    VERIFY_ERROR(lib, "found version 99");
    QCOMPARE(read_bytes(path("v99.db")), before);
    QVERIFY(!fs::exists(path("v99.db-wal")));
  }

  void refuses_files_that_are_not_libraries() {
    std::ofstream(path("notes.db")) << std::string(4096, 'x');
    const std::string before = read_bytes(path("notes.db"));
    auto lib = Library::open(path("notes.db"), options());
    VERIFY_ERROR(lib, "not");
    VERIFY_ERROR(lib, path("notes.db").c_str());
    QCOMPARE(read_bytes(path("notes.db")), before);
    {
      RawDb raw(path("other.db"));
      QVERIFY(raw.exec("CREATE TABLE contacts (name TEXT);"));
    }
    VERIFY_ERROR(Library::open(path("other.db"), options()), "another application");
  }

  void locked_database_fails_cleanly() {
    // A database in rollback-journal mode, held exclusively: even reading its version has to wait.
    {
      RawDb raw(path("locked.db"));
      QVERIFY(raw.exec("CREATE TABLE t (x); DROP TABLE t;"));
    }
    const std::string before = read_bytes(path("locked.db"));
    {
      RawDb holder(path("locked.db"));
      QVERIFY(holder.exec("BEGIN EXCLUSIVE"));
      VERIFY_ERROR(Library::open(path("locked.db"), options(100)), "locked");
      QCOMPARE(read_bytes(path("locked.db")), before);
    }
    ASSIGN_OK(lib, Library::open(path("locked.db"), options(100)));
    // In WAL mode readers go on beside the lock holder; the write is what has to wait, and fails cleanly.
    RawDb holder(path("locked.db"));
    QVERIFY(holder.exec("BEGIN EXCLUSIVE"));
    ASSIGN_OK(second, Library::open(path("locked.db"), options(100)));
    VERIFY_ERROR(second->add_document(make_doc("h1", "/a.md")), "locked");
    VERIFY_ERROR(lib->set_setting("k", "v"), "locked");
    QVERIFY(holder.exec("COMMIT"));
    VERIFY_OK(second->add_document(make_doc("h1", "/a.md")));
    ASSIGN_OK(docs, lib->list_documents());
    QCOMPARE(docs.size(), size_t{1});
  }

  void adds_and_dedupes_documents() {
    ASSIGN_OK(lib, Library::open(path("docs/lib.db"), options()));
    ASSIGN_OK(a, lib->add_document(make_doc("h1", "/docs/a.md")));
    ASSIGN_OK(b, lib->add_document(make_doc("h2", "/docs/b.md")));
    QVERIFY(a != b);
    Document moved = make_doc("h1", "/moved/a.md");
    moved.info.title = "Renamed";
    moved.sections.clear();
    ASSIGN_OK(again, lib->add_document(moved));
    QCOMPARE(again, a);
    ASSIGN_OK(doc, lib->get_document(a));
    QCOMPARE(doc.info.path, std::string("/moved/a.md"));
    QCOMPARE(doc.info.title, std::string("Renamed"));
    QCOMPARE(doc.sections.size(), size_t{3});  // the stored content stays
    ASSIGN_OK(found, lib->find_document_by_hash("h2"));
    QVERIFY(found.has_value());
    QCOMPARE(found->id, b);
    ASSIGN_OK(missing, lib->find_document_by_hash("nope"));
    QVERIFY(!missing.has_value());
    clock_ = 2000;
    VERIFY_OK(lib->touch_opened(a));
    ASSIGN_OK(docs, lib->list_documents());
    QCOMPARE(docs.size(), size_t{2});
    QCOMPARE(docs[0].info.id, a);  // most recently opened first
    QCOMPARE(docs[0].info.opened_at, int64_t{2000});
    QVERIFY(docs[0].best_state == SnapshotState::none);
    VERIFY_ERROR(lib->touch_opened(99), "found none");
    VERIFY_ERROR(lib->get_document(99), "found none");
  }

  void import_is_all_or_nothing() {
    ASSIGN_OK(lib, Library::open(path("atomic/lib.db"), options()));
    Document beyond = make_doc("h1", "/a.md");
    beyond.sections[2].char_offset = beyond.info.n_chars + 1;  // fails after the row and two sections went in
    VERIFY_ERROR(lib->add_document(beyond), "section 2");
    Document bad_level = make_doc("h1", "/a.md");
    bad_level.sections[1].level = -1;  // refused by the table's CHECK
    VERIFY_ERROR(lib->add_document(bad_level), "CHECK");
    ASSIGN_OK(found, lib->find_document_by_hash("h1"));
    QVERIFY(!found.has_value());
    RawDb raw(path("atomic/lib.db"));
    QCOMPARE(raw.scalar("SELECT count(*) FROM documents"), int64_t{0});
    QCOMPARE(raw.scalar("SELECT count(*) FROM sections"), int64_t{0});
    VERIFY_OK(lib->add_document(make_doc("h1", "/a.md")));
  }

  void delete_document_cascades() {
    ASSIGN_OK(lib, open_with_doc("cascade/lib.db"));
    ASSIGN_OK(other, lib->add_document(make_doc("h2", "/b.md")));
    ASSIGN_OK(chat, lib->create_chat(1, "questions"));
    VERIFY_OK(lib->append_message(chat, "user", "hi").status());
    ASSIGN_OK(base, save_fake(*lib, key(1, 1), 100));
    ASSIGN_OK(extended, save_fake(*lib, key(1, 1, chat), 50, base));
    ASSIGN_OK(kept, save_fake(*lib, key(other, 1), 70));
    ASSIGN_OK(snaps, lib->list_snapshots(1));
    QCOMPARE(snaps.size(), size_t{2});
    QCOMPARE(snaps[0].id, base);
    QCOMPARE(snaps[1].id, extended);
    const std::string base_file = lib->page_file_path(snaps[0]);
    const std::string chat_file = lib->page_file_path(snaps[1]);
    QVERIFY(fs::exists(base_file) && fs::exists(chat_file));
    VERIFY_OK(lib->delete_document(1));
    VERIFY_ERROR(lib->get_document(1), "found none");
    QVERIFY(!fs::exists(base_file) && !fs::exists(chat_file));
    RawDb raw(path("cascade/lib.db"));
    QCOMPARE(raw.scalar("SELECT count(*) FROM sections WHERE document_id = 1"), int64_t{0});
    QCOMPARE(raw.scalar("SELECT count(*) FROM chats"), int64_t{0});
    QCOMPARE(raw.scalar("SELECT count(*) FROM messages"), int64_t{0});
    QCOMPARE(raw.scalar("SELECT count(*) FROM kv_snapshots"), int64_t{1});
    ASSIGN_OK(survivor, lib->get_snapshot(kept));
    QVERIFY(fs::exists(lib->page_file_path(survivor)));
    VERIFY_ERROR(lib->delete_document(1), "found none");
  }

  void one_snapshot_per_key() {
    ASSIGN_OK(lib, open_with_doc("keys/lib.db"));
    ASSIGN_OK(chat, lib->create_chat(1, "c"));
    ASSIGN_OK(a, save_fake(*lib, key(1, 1), 100));
    ASSIGN_OK(first, lib->get_snapshot(a));
    QCOMPARE(first.token_spans, (std::vector<uint8_t>{1, 2, 3, 4}));
    ASSIGN_OK(again, save_fake(*lib, key(1, 1), 120));  // recomputed: same key, new file
    QCOMPARE(again, a);
    QVERIFY(!fs::exists(lib->page_file_path(first)));
    ASSIGN_OK(bf16, save_fake(*lib, key(1, 1, std::nullopt, "bf16"), 10));
    ASSIGN_OK(chat_snap, save_fake(*lib, key(1, 1, chat), 10));
    QVERIFY(bf16 != a && chat_snap != a && chat_snap != bf16);
    ASSIGN_OK(found, lib->find_snapshot(key(1, 1)));
    QVERIFY(found.has_value());
    QCOMPARE(found->id, a);
    QCOMPARE(found->bytes, int64_t{120});
    QCOMPARE(found->token_spans.size(), size_t{4});
    ASSIGN_OK(none, lib->find_snapshot(key(1, 1, std::nullopt, "f32")));
    QVERIFY(!none.has_value());
    ASSIGN_OK(listed, lib->list_snapshots(1));
    QCOMPARE(listed.size(), size_t{3});
    QVERIFY(listed[0].token_spans.empty());  // lists leave the spans out
    RawDb raw(path("keys/lib.db"));
    QCOMPARE(raw.scalar("SELECT count(*) FROM kv_snapshots"), int64_t{3});
    ASSIGN_OK(total, lib->total_snapshot_bytes());
    QCOMPARE(total, int64_t{140});
  }

  void snapshot_records_are_checked() {
    ASSIGN_OK(lib, open_with_doc("checks/lib.db"));
    ASSIGN_OK(other, lib->add_document(make_doc("h2", "/b.md")));
    ASSIGN_OK(chat, lib->create_chat(1, "c"));
    ASSIGN_OK(base, save_fake(*lib, key(1, 1), 100));
    SnapshotRecord r = lib->begin_snapshot(key(1, 1, chat));
    r.path = "../outside.fkvpages";
    VERIFY_ERROR(lib->put_snapshot(r), "relative to pages_dir");
    r.path = "half.fkvpages.tmp";
    VERIFY_ERROR(lib->put_snapshot(r), "temporary");
    r = lib->begin_snapshot(key(1, 1, std::nullopt, "bf16"));
    r.base_snapshot_id = base;
    VERIFY_ERROR(lib->put_snapshot(r), "chat");
    r = lib->begin_snapshot(key(1, 1, chat, "bf16"));
    r.base_snapshot_id = base;  // the base holds f16 keys and values
    VERIFY_ERROR(lib->put_snapshot(r), "same model");
    VERIFY_ERROR(lib->put_snapshot(lib->begin_snapshot(key(other, 1, chat))), "chat");
    VERIFY_ERROR(lib->put_snapshot(lib->begin_snapshot(key(1, 7))), "model with id 7");
    ASSIGN_OK(total, lib->total_snapshot_bytes());
    QCOMPARE(total, int64_t{100});
  }

  void stale_marking_reaches_dependents() {
    ASSIGN_OK(lib, open_with_doc("stale/lib.db"));
    ASSIGN_OK(chat, lib->create_chat(1, "c"));
    ASSIGN_OK(base, save_fake(*lib, key(1, 1), 100));
    ASSIGN_OK(dep, save_fake(*lib, key(1, 1, chat), 10, base));
    ASSIGN_OK(docs, lib->list_documents());
    QVERIFY(docs[0].best_state == SnapshotState::ready);
    QCOMPARE(docs[0].snapshot_bytes, int64_t{110});
    VERIFY_OK(lib->mark_stale(base, "page 3 checksum mismatch"));
    ASSIGN_OK(b, lib->get_snapshot(base));
    QVERIFY(b.state == SnapshotState::stale);
    QCOMPARE(b.stale_reason, std::string("page 3 checksum mismatch"));
    ASSIGN_OK(d, lib->get_snapshot(dep));
    QVERIFY(d.state == SnapshotState::stale);
    QVERIFY2(d.stale_reason.find("is stale: page 3") != std::string::npos, d.stale_reason.c_str());
    ASSIGN_OK(docs2, lib->list_documents());
    QVERIFY(docs2[0].best_state == SnapshotState::stale);
    // Recomputing the base revives it, and what was built on the old one stays stale.
    VERIFY_OK(lib->put_snapshot(lib->begin_snapshot(key(1, 1))).status());
    ASSIGN_OK(b2, lib->get_snapshot(base));
    QVERIFY(b2.state == SnapshotState::ready);
    ASSIGN_OK(d2, lib->get_snapshot(dep));
    QVERIFY2(d2.stale_reason.find("was replaced") != std::string::npos, d2.stale_reason.c_str());
    VERIFY_ERROR(lib->mark_stale(99, "x"), "found none");
  }

  void evicts_least_recently_used_first() {
    ASSIGN_OK(lib, open_with_doc("lru/lib.db"));
    ASSIGN_OK(d2, lib->add_document(make_doc("h2", "/b.md")));
    ASSIGN_OK(d3, lib->add_document(make_doc("h3", "/c.md")));
    clock_ = 100;
    ASSIGN_OK(a, save_fake(*lib, key(1, 1), 100));
    clock_ = 200;
    ASSIGN_OK(b, save_fake(*lib, key(d2, 1), 200));
    clock_ = 300;
    ASSIGN_OK(c, save_fake(*lib, key(d3, 1), 300));
    clock_ = 400;
    VERIFY_OK(lib->touch_snapshot(a));  // now b is the least recently used, then c
    ASSIGN_OK(none, lib->evict_to_cap(600));
    QVERIFY(none.empty());
    ASSIGN_OK(first, lib->evict_to_cap(350));
    QCOMPARE(first.size(), size_t{2});
    QCOMPARE(first[0].id, b);
    QCOMPARE(first[1].id, c);
    QVERIFY(!fs::exists(lib->page_file_path(first[0])) && !fs::exists(lib->page_file_path(first[1])));
    ASSIGN_OK(left, lib->get_snapshot(a));
    QVERIFY(fs::exists(lib->page_file_path(left)));
    ASSIGN_OK(total, lib->total_snapshot_bytes());
    QCOMPARE(total, int64_t{100});
    ASSIGN_OK(kept, lib->evict_to_cap(0, a));  // over the cap, but the kept one stays
    QVERIFY(kept.empty());
    VERIFY_ERROR(lib->touch_snapshot(b), "found none");
    VERIFY_ERROR(lib->evict_to_cap(-1), "cap_bytes >= 0");
  }

  void evicts_stale_first_and_dependents_with_base() {
    ASSIGN_OK(lib, open_with_doc("deps/lib.db"));
    ASSIGN_OK(d2, lib->add_document(make_doc("h2", "/b.md")));
    ASSIGN_OK(d3, lib->add_document(make_doc("h3", "/c.md")));
    ASSIGN_OK(chat, lib->create_chat(1, "c"));
    clock_ = 100;
    ASSIGN_OK(base, save_fake(*lib, key(1, 1), 100));
    clock_ = 110;
    ASSIGN_OK(dep, save_fake(*lib, key(1, 1, chat), 10, base));  // uses the base: both at 110
    clock_ = 120;
    ASSIGN_OK(other, save_fake(*lib, key(d2, 1), 200));
    clock_ = 130;
    ASSIGN_OK(recent_stale, save_fake(*lib, key(d3, 1), 40));
    VERIFY_OK(lib->mark_stale(recent_stale, "tokenizer changed"));
    // Keeping the chat snapshot keeps its base too.
    ASSIGN_OK(first, lib->evict_to_cap(0, dep));
    QCOMPARE(first.size(), size_t{2});
    QCOMPARE(first[0].id, recent_stale);
    QCOMPARE(first[1].id, other);
    ASSIGN_OK(second, lib->evict_to_cap(0));
    QCOMPARE(second.size(), size_t{2});
    QCOMPARE(second[0].id, dep);  // listed before the base it extends
    QCOMPARE(second[1].id, base);
    QVERIFY(!fs::exists(lib->page_file_path(second[0])) && !fs::exists(lib->page_file_path(second[1])));
    ASSIGN_OK(total, lib->total_snapshot_bytes());
    QCOMPARE(total, int64_t{0});
  }

  void delete_snapshot_takes_dependents_and_files() {
    ASSIGN_OK(lib, open_with_doc("del/lib.db"));
    ASSIGN_OK(chat, lib->create_chat(1, "c"));
    ASSIGN_OK(base, save_fake(*lib, key(1, 1), 100));
    ASSIGN_OK(dep, save_fake(*lib, key(1, 1, chat), 10, base));
    ASSIGN_OK(dep_rec, lib->get_snapshot(dep));
    fs::remove(lib->page_file_path(dep_rec));  // a missing file is fine
    VERIFY_OK(lib->delete_snapshot(base));
    VERIFY_ERROR(lib->get_snapshot(dep), "found none");
    ASSIGN_OK(all, lib->list_snapshots(1));
    QVERIFY(all.empty());
    VERIFY_ERROR(lib->delete_snapshot(base), "found none");
  }

  void sweeps_orphans_and_tmp_files() {
    ASSIGN_OK(lib, open_with_doc("sweep/lib.db"));
    ASSIGN_OK(id, save_fake(*lib, key(1, 1), 100));
    ASSIGN_OK(rec, lib->get_snapshot(id));
    const std::string pages = lib->pages_dir();
    const std::string live = lib->page_file_path(rec);
    const std::string orphan = pages + "/doc7-model2-18a3f-99-0.fkvpages";  // a name begin_snapshot gives
    const std::string tmp = live + ".tmp";                                  // a crash mid-save of a replacement
    const std::string fresh = pages + "/doc7-model2-chat3-18a3f-99-1.fkvpages.tmp";
    for (const std::string& p : {orphan, tmp}) write_bytes(p, 10);
    for (const std::string& p : {live, orphan, tmp}) make_old(p);
    write_bytes(fresh, 10);
    lib.reset();
    LibraryOptions o = options();
    o.orphan_min_age_s = 60;
    ASSIGN_OK(reopened, Library::open(path("sweep/lib.db"), o));
    QVERIFY(fs::exists(live));
    QVERIFY(fs::exists(fresh));  // young enough that another connection may be writing it
    QVERIFY(!fs::exists(orphan) && !fs::exists(tmp));
    ASSIGN_OK(again, reopened->remove_orphan_files());
    QVERIFY(again.empty());
  }

  // A stopped prefill's checkpoints: one chain per key, in order, growing; the document's row shows its progress;
  // dropping from a seq removes those rows and files; deleting the document takes the rest; the sweep keeps them.
  void prefill_checkpoint_chain() {
    ASSIGN_OK(lib, open_with_doc("ckpt/lib.db"));
    std::vector<std::string> files;
    const auto add = [&](int64_t n_tokens, int64_t total) -> fkv::Status {
      FKV_ASSIGN_OR_RETURN(fkv::CheckpointRecord r, lib->begin_checkpoint(key(1, 1)));
      r.n_tokens = n_tokens;
      r.total_tokens = total;
      r.bytes = 10;
      write_bytes(lib->page_file_path(r), 10);
      files.push_back(lib->page_file_path(r));
      return lib->add_checkpoint(r).status();
    };
    VERIFY_OK(add(256, 1000));
    VERIFY_OK(add(512, 1000));
    VERIFY_ERROR(add(512, 1000), "more than 512");  // no progress
    VERIFY_ERROR(add(768, 2000), "of 1000");         // another prompt
    fkv::CheckpointRecord skipped = lib->begin_checkpoint(key(1, 1)).value();
    skipped.seq = 5;
    skipped.n_tokens = 900;
    skipped.total_tokens = 1000;
    VERIFY_ERROR(lib->add_checkpoint(skipped), "expected seq 2");
    VERIFY_OK(add(768, 1000));
    ASSIGN_OK(chain, lib->checkpoints(key(1, 1)));
    QCOMPARE(chain.size(), size_t{3});
    QCOMPARE(chain[2].seq, int64_t{2});
    QCOMPARE(chain[2].n_tokens, int64_t{768});
    ASSIGN_OK(docs, lib->list_documents());
    QCOMPARE(docs.front().prefill_done, int64_t{768});
    QCOMPARE(docs.front().prefill_total, int64_t{1000});

    for (const std::string& f : files) make_old(f);
    ASSIGN_OK(swept, lib->remove_orphan_files());
    QVERIFY(swept.size() == 2);  // the two refused adds' files; the chain's stay
    VERIFY_OK(lib->drop_checkpoints(key(1, 1), 1));
    ASSIGN_OK(left, lib->checkpoints(key(1, 1)));
    QCOMPARE(left.size(), size_t{1});
    QVERIFY(fs::exists(lib->page_file_path(left[0])) && !fs::exists(files.back()));
    VERIFY_OK(lib->delete_document(1));
    QVERIFY(!fs::exists(lib->page_file_path(left[0])));
  }

  void chats_and_messages() {
    ASSIGN_OK(lib, open_with_doc("chats/lib.db"));
    clock_ = 10;
    ASSIGN_OK(c1, lib->create_chat(1, "first"));
    clock_ = 20;
    ASSIGN_OK(c2, lib->create_chat(1, "second"));
    clock_ = 30;
    ASSIGN_OK(s0, lib->append_message(c1, "system", "be brief"));
    ASSIGN_OK(s1, lib->append_message(c1, "user", "what is chapter 2?"));
    ASSIGN_OK(s2, lib->append_message(c1, "assistant", "a farewell"));
    QCOMPARE(s0, int64_t{0});
    QCOMPARE(s1, int64_t{1});
    QCOMPARE(s2, int64_t{2});
    // An answer keeps why it ended and what it cited, in order.
    fkv::MessageRecord answer;
    answer.role = "assistant";
    answer.content = "sixty days";
    answer.stop_reason = "cancelled";
    answer.citations = {{120, 260, 0.75f, "Page 3 · Termination", "within sixty days"}, {10, 40, 0.5f, "", "intro"}};
    ASSIGN_OK(s3, lib->append_message(c2, answer));
    QCOMPARE(s3, int64_t{0});
    ASSIGN_OK(cited, lib->messages(c2));
    QCOMPARE(cited.size(), size_t{1});
    QCOMPARE(cited[0].stop_reason, std::string("cancelled"));
    QCOMPARE(cited[0].citations.size(), size_t{2});
    QCOMPARE(cited[0].citations[0].char_begin, int64_t{120});
    QCOMPARE(cited[0].citations[0].char_end, int64_t{260});
    QCOMPARE(cited[0].citations[0].weight, 0.75f);
    QCOMPARE(cited[0].citations[0].where, std::string("Page 3 · Termination"));
    QCOMPARE(cited[0].citations[1].snippet, std::string("intro"));
    answer.citations = {{50, 40, 1.0f, "", "backwards"}};
    VERIFY_ERROR(lib->append_message(c2, answer), "citation 1");
    ASSIGN_OK(still, lib->messages(c2));
    QCOMPARE(still.size(), size_t{1});  // the refused answer left nothing behind
    VERIFY_ERROR(lib->append_message(c1, "bot", "x"), "expected role");
    VERIFY_ERROR(lib->append_message(99, "user", "x"), "chat with id 99");
    ASSIGN_OK(msgs, lib->messages(c1));
    QCOMPARE(msgs.size(), size_t{3});
    QCOMPARE(msgs[1].role, std::string("user"));
    QCOMPARE(msgs[2].content, std::string("a farewell"));
    ASSIGN_OK(chats, lib->list_chats(1));
    QCOMPARE(chats.size(), size_t{2});
    QCOMPARE(chats[0].id, c2);  // updated last
    QCOMPARE(chats[1].n_messages, int64_t{3});
    VERIFY_OK(lib->rename_chat(c2, "renamed"));
    ASSIGN_OK(chats2, lib->list_chats(1));
    QCOMPARE(chats2[0].title, std::string("renamed"));
    ASSIGN_OK(snap, save_fake(*lib, key(1, 1, c1), 10));
    ASSIGN_OK(snap_rec, lib->get_snapshot(snap));
    VERIFY_OK(lib->delete_chat(c1));
    QVERIFY(!fs::exists(lib->page_file_path(snap_rec)));
    ASSIGN_OK(gone, lib->messages(c1));
    QVERIFY(gone.empty());
    VERIFY_ERROR(lib->delete_chat(c1), "found none");
    VERIFY_ERROR(lib->create_chat(42, "x"), "document with id 42");
  }

  void settings_round_trip() {
    ASSIGN_OK(lib, Library::open(path("settings/lib.db"), options()));
    ASSIGN_OK(missing, lib->get_setting("model"));
    QVERIFY(!missing.has_value());
    VERIFY_OK(lib->set_setting("model", "a.gguf"));
    VERIFY_OK(lib->set_setting("model", "b.gguf"));
    VERIFY_OK(lib->set_setting("empty", ""));
    ASSIGN_OK(model, lib->get_setting("model"));
    QCOMPARE(model.value_or(""), std::string("b.gguf"));
    ASSIGN_OK(empty, lib->get_setting("empty"));
    QVERIFY(empty.has_value() && empty->empty());
    ASSIGN_OK(m2, lib->upsert_model("fp", "one", "/a.gguf", 1));
    ASSIGN_OK(m3, lib->upsert_model("fp", "renamed", "/b.gguf", 2));
    QCOMPARE(m2, m3);
    RawDb raw(path("settings/lib.db"));
    QCOMPARE(raw.scalar("SELECT file_size FROM models WHERE fingerprint = 'fp'"), int64_t{2});
  }

  // A page file the disk cannot hold is not attempted; the reason names both sizes and the folder.
  void no_room_names_the_need_and_the_free_space() {
    ASSIGN_OK(lib, Library::open(path("room/lib.db"), options()));
    std::error_code ec;
    const std::filesystem::space_info space = std::filesystem::space(lib->pages_dir(), ec);
    QVERIFY(!ec);
    if (space.available < (2ull << 30)) QSKIP("the message is checked for sizes in GiB; this disk has less free");
    QCOMPARE(lib->no_room_for(1 << 20), std::string());
    const std::string why = lib->no_room_for(space.available);
    QVERIFY2(why.find("the KV takes about") != std::string::npos && why.find(lib->pages_dir()) != std::string::npos &&
                 why.find(" free") != std::string::npos && why.find("GiB") != std::string::npos,
             why.c_str());
  }
};

QTEST_APPLESS_MAIN(TestLibrary)
#include "test_library.moc"
