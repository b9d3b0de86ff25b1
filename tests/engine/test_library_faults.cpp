// The library under faults a user's machine produces: files of the user's own in the pages folder (and a pages
// folder that is a link to another disk), a page file deleted by hand, a device given as the database, a full disk
// and a read-only mount. The last two mount a small tmpfs (root only: the tests skip with the reason elsewhere) and
// check both the library (open read-only, reads work, writes say why) and the `freekv` commands a user runs there.
#include <QJsonArray>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>

#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "core/disk_space.h"
#include "model/synthetic.h"
#include "store/library.h"
#include "store/library_rows.h"
#include "support/cli_runner.h"
#include "support/library_fixtures.h"
#include "support/test_models.h"
#include "support/test_paths.h"

using fkv::Library;
using fkv::LibraryOptions;
using fkvtest::key;
using fkvtest::make_doc;
using fkvtest::make_old;
using fkvtest::save_fake;
using fkvtest::write_bytes;

namespace fs = std::filesystem;

namespace {

// A tmpfs of n_bytes at `dir` for the test's lifetime. Mounting needs root with CAP_SYS_ADMIN: where it is refused,
// error() says why and the test skips.
class ScratchMount {
 public:
  ScratchMount(const std::string& dir, int64_t n_bytes) : dir_(dir) {
    fs::create_directories(dir);
    const std::string opts = "size=" + std::to_string(n_bytes);
    if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) != 0) error_ = std::strerror(errno);
  }
  ~ScratchMount() {
    if (error_.empty()) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  ScratchMount(const ScratchMount&) = delete;
  ScratchMount& operator=(const ScratchMount&) = delete;

  const std::string& error() const { return error_; }
  bool set_read_only(bool ro) {
    const unsigned long flags = MS_REMOUNT | (ro ? MS_RDONLY : 0);
    return ::mount(nullptr, dir_.c_str(), nullptr, flags, nullptr) == 0;
  }
  // Takes every free byte with one file; free() gives them back.
  void fill() {
    std::ofstream f(filler(), std::ios::binary);
    const std::string block(64 << 10, 'x');
    while (f.write(block.data(), static_cast<std::streamsize>(block.size()))) {
    }
    f.close();
    std::ofstream tail(filler() + "-tail", std::ios::binary);
    while (tail.put('x')) {
    }
  }
  void free() {
    fs::remove(filler());
    fs::remove(filler() + "-tail");
  }

 private:
  std::string filler() const { return dir_ + "/filler"; }
  std::string dir_;
  std::string error_;
};

#define MOUNT_OR_SKIP(m)                                                                                  \
  if (!(m).error().empty())                                                                               \
  QSKIP(("mounting a tmpfs is not allowed here (" + (m).error() + "); run as root to test full disks").c_str())

}  // namespace

class TestLibraryFaults : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;
  QString m_model, m_doc, m_otherDoc;
  std::string path(const std::string& name) const { return dir_.path().toStdString() + "/" + name; }

  // A library with one document and model 1, for snapshots of key(document, 1).
  static fkv::Result<int64_t> addDocAndModel(Library& lib, const std::string& hash) {
    if (fkv::Status s = lib.upsert_model("fp-1", "model", "/m.gguf", 1).status(); !s.ok()) return s;
    return lib.add_document(make_doc(hash, "/" + hash + ".md"));
  }

  static LibraryOptions sweepAfter(int64_t seconds) {
    LibraryOptions o;
    o.orphan_min_age_s = seconds;
    return o;
  }

  QStringList askArgs(const QString& lib, const QStringList& doc) const {
    return QStringList{"ask", "-m", m_model, "--library", lib, "--temp", "0", "-n", "4", "--ctx", "1024", "--json"} +
           doc + QStringList{"What is kept in the shed?"};
  }

 private slots:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    m_model = dir_.path() + "/faults.gguf";
    const QString written = fkvtest::writeModel(fkvtest::llamaSpec(33, 1024), m_model);
    QVERIFY2(written.isEmpty(), qPrintable(written));
    m_doc = dir_.path() + "/shed.txt";
    m_otherDoc = dir_.path() + "/barn.txt";
    QByteArray text = "The shed\n\n", other = "The barn\n\n";
    for (int i = 0; i < 40; ++i) {
      text += "Row " + QByteArray::number(i) + " of the shed holds rakes, twine and seed trays.\n";
      other += "Stall " + QByteArray::number(i) + " of the barn holds hay.\n";
    }
    std::ofstream(m_doc.toStdString()) << text.toStdString();
    std::ofstream(m_otherDoc.toStdString()) << other.toStdString();
  }

  void pageFileNames() {
    using fkv::library_rows::is_page_file_name;
    QVERIFY(is_page_file_name("doc1-model2-18a3f-99-0.fkvpages"));
    QVERIFY(is_page_file_name("doc1-model2-chat7-18a3f-99-0.fkvpages"));
    QVERIFY(is_page_file_name("doc1-model2-18a3f-99-0.fkvpages.tmp"));
    for (const char* foreign : {"notes.md", "index.html", "old-orphan.fkvpages", "doc1-model2.fkvpages",
                                "doc1-model2-18a3f-99-0.fkvpages.bak", "docx-model2-18a3f-99-0.fkvpages",
                                "doc1-model2-chat-18a3f-99-0.fkvpages", "doc1-model2-18A3F-99-0.fkvpages", "doc1-model2-18a3f-9x-0.fkvpages",
                                "doc1-model2-18a3f-99-0-1-2.fkvpages", "sub/doc1-model2-18a3f-99-0.fkvpages", ""}) {
      QVERIFY2(!is_page_file_name(foreign), foreign);
    }
    // Every name the library gives passes its own check.
    ASSIGN_OK(lib, Library::open(path("names/lib.db")));
    QVERIFY(is_page_file_name(lib->begin_snapshot(key(3, 4)).path));
    QVERIFY(is_page_file_name(lib->begin_snapshot(key(3, 4, 5)).path));
  }

  // The reproduction from the issue: a plain open of a fresh library kept the user's old files.
  void sweepKeepsForeignFiles() {
    const std::string pages = path("foreign/pages");
    const std::string notes = pages + "/notes.md", nested = pages + "/sub/index.html";
    const std::string nested_page = pages + "/sub/doc1-model1-18a3f-99-0.fkvpages";
    const std::string orphan = pages + "/doc1-model1-18a3f-99-1.fkvpages";
    for (const std::string& p : {notes, nested, nested_page, orphan}) {
      write_bytes(p, 10);
      make_old(p);
    }
    fs::create_symlink(notes, pages + "/doc1-model1-18a3f-99-2.fkvpages");  // a link is not a file of ours
    ASSIGN_OK(lib, Library::open(path("foreign/library.db"), sweepAfter(60)));
    QVERIFY(fs::exists(notes) && fs::exists(nested) && fs::exists(nested_page));
    QVERIFY(fs::is_symlink(pages + "/doc1-model1-18a3f-99-2.fkvpages"));
    QVERIFY(!fs::exists(orphan));  // named as ours and no row names it
  }

  // Two databases in one directory: the first claims "pages", the second takes "<its file name>.pages", and
  // neither sweeps the other's page files as orphans, however old they are.
  void twoLibrariesInOneDirectory() {
    ASSIGN_OK(a, Library::open(path("pair/a.db"), sweepAfter(0)));
    QCOMPARE(fs::path(a->pages_dir()), fs::path(path("pair/pages")));
    ASSIGN_OK(doc, addDocAndModel(*a, "h3"));
    ASSIGN_OK(snap, save_fake(*a, key(doc, 1), 64));
    ASSIGN_OK(rec, a->get_snapshot(snap));
    const std::string a_file = a->page_file_path(rec);
    make_old(a_file);

    ASSIGN_OK(b, Library::open(path("pair/b.db"), sweepAfter(0)));
    QCOMPARE(fs::path(b->pages_dir()), fs::path(path("pair/b.db.pages")));
    QVERIFY(fs::exists(a_file));
    ASSIGN_OK(b_doc, addDocAndModel(*b, "h4"));
    ASSIGN_OK(b_snap, save_fake(*b, key(b_doc, 1), 64));
    ASSIGN_OK(b_rec, b->get_snapshot(b_snap));
    make_old(b->page_file_path(b_rec));

    // Reopened in either order, each finds its folder again and keeps the other's files.
    b.reset();
    a.reset();
    ASSIGN_OK(b2, Library::open(path("pair/b.db"), sweepAfter(0)));
    ASSIGN_OK(a2, Library::open(path("pair/a.db"), sweepAfter(0)));
    QCOMPARE(fs::path(b2->pages_dir()), fs::path(path("pair/b.db.pages")));
    QCOMPARE(fs::path(a2->pages_dir()), fs::path(path("pair/pages")));
    QVERIFY(fs::exists(a_file) && fs::exists(b2->page_file_path(b_rec)));

    // A pages_dir named explicitly that another library owns is refused, naming both.
    LibraryOptions shared = sweepAfter(0);
    shared.pages_dir = path("pair/pages");
    VERIFY_ERROR(Library::open(path("pair/c.db"), shared), "another library's page files");
    QVERIFY(fs::exists(a_file));
  }

  // A pages folder moved to another disk and linked back: read and written through, swept by the same rule.
  void symlinkedPagesFolder() {
    const std::string elsewhere = path("other-disk/cache");
    const std::string keep = elsewhere + "/holiday.jpg", keep_dir = elsewhere + "/photos/a.jpg";
    const std::string orphan = elsewhere + "/doc2-model1-18a3f-99-3.fkvpages";
    for (const std::string& p : {keep, keep_dir, orphan}) {
      write_bytes(p, 10);
      make_old(p);
    }
    fs::create_directories(path("linked"));
    fs::create_directory_symlink(elsewhere, path("linked/pages"));
    ASSIGN_OK(lib, Library::open(path("linked/library.db"), sweepAfter(60)));
    QVERIFY(fs::exists(keep) && fs::exists(keep_dir));
    QVERIFY(!fs::exists(orphan));
    ASSIGN_OK(doc, addDocAndModel(*lib, "h1"));
    ASSIGN_OK(snap, save_fake(*lib, key(doc, 1), 64));
    ASSIGN_OK(rec, lib->get_snapshot(snap));
    QVERIFY(fs::exists(elsewhere + "/" + rec.path));  // written through the link
    make_old(elsewhere + "/" + rec.path);
    ASSIGN_OK(swept, lib->remove_orphan_files());
    QVERIFY(swept.empty());
    VERIFY_OK(lib->delete_document(doc));
    QVERIFY(!fs::exists(elsewhere + "/" + rec.path));
    QVERIFY(fs::exists(keep) && fs::exists(keep_dir) && fs::is_symlink(path("linked/pages")));
  }

  // A row naming a foreign file (a database edited by hand) does not make the file the library's to delete.
  void rowNamingForeignFile() {
    ASSIGN_OK(lib, Library::open(path("edited/library.db")));
    ASSIGN_OK(doc, addDocAndModel(*lib, "h2"));
    fkv::SnapshotRecord r = lib->begin_snapshot(key(doc, 1));
    r.path = "thesis.tex";
    write_bytes(lib->page_file_path(r), 5);
    r.bytes = 5;
    ASSIGN_OK(id, lib->put_snapshot(r));
    VERIFY_OK(lib->delete_snapshot(id));
    QVERIFY(fs::exists(lib->page_file_path(r)));
  }

  void missingPageFileTakesNoSpace() {
    ASSIGN_OK(lib, Library::open(path("missing/library.db")));
    ASSIGN_OK(doc, addDocAndModel(*lib, "h3"));
    ASSIGN_OK(kept, save_fake(*lib, key(doc, 1), 300));
    ASSIGN_OK(model2, lib->upsert_model("fp-2", "other", "/o.gguf", 2));
    ASSIGN_OK(gone, save_fake(*lib, key(doc, model2), 700));
    ASSIGN_OK(gone_rec, lib->get_snapshot(gone));
    VERIFY_OK(lib->mark_stale(gone, "its page file is missing"));
    fs::remove(lib->page_file_path(gone_rec));
    ASSIGN_OK(total, lib->total_snapshot_bytes());
    QCOMPARE(total, int64_t{300});
    ASSIGN_OK(docs, lib->list_documents());
    QCOMPARE(docs.size(), size_t{1});
    QCOMPARE(docs[0].snapshot_bytes, int64_t{300});
    // Evicting the missing one frees nothing, so a cap below 300 still takes the real file.
    ASSIGN_OK(evicted, lib->evict_to_cap(100));
    QCOMPARE(evicted.size(), size_t{2});
    QCOMPARE(evicted[1].id, kept);
  }

  void deviceAsDatabase() {
    const bool had_journal = fs::exists("/dev/null-journal"), had_wal = fs::exists("/dev/null-wal");
    VERIFY_ERROR(Library::open("/dev/null"), "a device or other special file");
    QVERIFY(had_journal || !fs::exists("/dev/null-journal"));
    QVERIFY(had_wal || !fs::exists("/dev/null-wal"));
    fs::create_directories(path("a-folder"));
    VERIFY_ERROR(Library::open(path("a-folder")), "found a folder");
  }

  void fullDiskOpensReadOnly() {
    ScratchMount m(path("full"), 2 << 20);
    MOUNT_OR_SKIP(m);
    const std::string db = path("full/library.db");
    {
      ASSIGN_OK(lib, Library::open(db));
      ASSIGN_OK(doc, addDocAndModel(*lib, "h4"));
      VERIFY_OK(save_fake(*lib, key(doc, 1), 4096).status());
    }
    m.fill();
    {
      ASSIGN_OK(lib, Library::open(db));
      QVERIFY(lib->read_only());
      const std::string reason = "no space left on device on " + path("full");
      QVERIFY2(lib->read_only_reason().find(reason) != std::string::npos, lib->read_only_reason().c_str());
      ASSIGN_OK(docs, lib->list_documents());
      QCOMPARE(docs.size(), size_t{1});
      QCOMPARE(docs[0].best_state, fkv::SnapshotState::ready);
      ASSIGN_OK(snap, lib->find_snapshot(key(docs[0].info.id, 1)));
      QVERIFY(snap.has_value());
      VERIFY_ERROR(lib->add_document(make_doc("h5", "/e.md")), reason);
      VERIFY_ERROR(lib->delete_document(docs[0].info.id), "read-only");
      // A page file that cannot be written says the same of its folder.
      const std::string detail = fkv::write_error_detail(ENOSPC, path("full/pages/x.fkvpages"));
      QVERIFY2(detail.find("no space left on device on " + path("full/pages")) != std::string::npos, detail.c_str());
    }
    m.free();
    ASSIGN_OK(lib, Library::open(db));
    QVERIFY(!lib->read_only());
    VERIFY_OK(lib->add_document(make_doc("h5", "/e.md")).status());
  }

  void readOnlyMount() {
    ScratchMount m(path("ro"), 2 << 20);
    MOUNT_OR_SKIP(m);
    const std::string db = path("ro/library.db");
    {
      ASSIGN_OK(lib, Library::open(db));
      VERIFY_OK(lib->add_document(make_doc("h6", "/d.md")).status());
    }
    QVERIFY(m.set_read_only(true));
    {
      ASSIGN_OK(lib, Library::open(db));
      QVERIFY(lib->read_only());
      QVERIFY2(lib->read_only_reason().find("is read-only") != std::string::npos, lib->read_only_reason().c_str());
      ASSIGN_OK(docs, lib->list_documents());
      QCOMPARE(docs.size(), size_t{1});
      VERIFY_ERROR(lib->set_setting("k", "v"), "the library folder " + path("ro") + " is read-only");
    }
    // A library that was never created there cannot be, and says so.
    VERIFY_ERROR(Library::open(path("ro/new/library.db")), "Read-only file system");
    QVERIFY(m.set_read_only(false));
  }

  // The acceptance run: a full disk still lists and answers from a saved KV; ingest says what is wrong; freeing
  // space brings everything back.
  void cliOnFullDisk() {
    ScratchMount m(path("cli"), 4 << 20);
    MOUNT_OR_SKIP(m);
    const QString lib = QString::fromStdString(path("cli/library.db"));
    const fkvtest::CliRun first = fkvtest::runCli(askArgs(lib, {"--doc", m_doc}));
    QVERIFY2(first.exitCode == 0, first.err.constData());
    const qint64 id = fkvtest::parseObject(first.out).value("document").toObject().value("id").toInteger();
    QVERIFY(id > 0);
    m.fill();

    const fkvtest::CliRun list = fkvtest::runCli({"library", "--library", lib, "--json"});
    QVERIFY2(list.exitCode == 0, list.err.constData());
    const QJsonArray docs = fkvtest::parseObject(list.out).value("documents").toArray();
    QCOMPARE(docs.size(), 1);
    QCOMPARE(docs[0].toObject().value("kv_state").toString(), QStringLiteral("ready"));

    const fkvtest::CliRun ask = fkvtest::runCli(askArgs(lib, {"--doc-id", QString::number(id)}));
    QVERIFY2(ask.exitCode == 0, ask.err.constData());
    const QJsonObject answer = fkvtest::parseObject(ask.out);
    QCOMPARE(answer.value("document").toObject().value("kv_source").toString(), QStringLiteral("snapshot"));
    QCOMPARE(answer.value("answer").toString(),
             fkvtest::parseObject(first.out).value("answer").toString());  // greedy: the same answer

    const fkvtest::CliRun ingest = fkvtest::runCli({"ingest", "--library", lib, m_otherDoc});
    QCOMPARE(ingest.exitCode, 1);
    const QByteArray expected = "no space left on device on " + QByteArray::fromStdString(path("cli"));
    QVERIFY2(ingest.err.contains(expected), ingest.err.constData());

    m.free();
    const fkvtest::CliRun again = fkvtest::runCli({"ingest", "--library", lib, m_otherDoc});
    QVERIFY2(again.exitCode == 0, again.err.constData());
    const fkvtest::CliRun list2 = fkvtest::runCli({"library", "--library", lib, "--json"});
    QCOMPARE(fkvtest::parseObject(list2.out).value("documents").toArray().size(), 2);
  }
};

QTEST_APPLESS_MAIN(TestLibraryFaults)
#include "test_library_faults.moc"
