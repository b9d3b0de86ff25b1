// Documents end to end through the engine facade, on synthetic models and documents the test writes: a document's KV
// is prefilled once, saved, loaded by a fresh engine and gives exactly the answers a prefill gives; damaged, foreign
// or half-written snapshots are recomputed (saying why), never trusted; cancellation, the storage cap, a locked
// library and bad input end the way the engine promises.
#include <QtTest>

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fkv/engine.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/context.h"
#include "store/checksum.h"
#include "store/kv_snapshot.h"
#include "store/library.h"
#include "store/page_file.h"
#include "support/cancel_from_thread.h"
#include "support/child_process.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"

namespace {

using fkvtest::writeFile;

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kQuestion = "What is this document about?";

// Seeded prose of common words: with the Llama vocabulary about 1.3 tokens a word.
std::string prose(int n_words, uint32_t seed) {
  static const char* const k_words[] = {"the",  "harbour", "boat",  "river", "north", "light", "keeper",  "stone",
                                        "wind", "tide",    "early", "night", "ships", "cargo", "market",  "bridge",
                                        "old",  "quiet",   "rain",  "salt",  "rope",  "town",  "lantern", "winter",
                                        "crew", "map",     "coast", "sails", "bell",  "storm", "morning", "pier"};
  const uint32_t n = sizeof(k_words) / sizeof(k_words[0]);
  uint32_t x = seed;
  std::string out;
  for (int i = 0; i < n_words; ++i) {
    x = x * 1664525u + 1013904223u;
    out += k_words[(x >> 16) % n];
    out += i % 60 == 59 ? ".\n\n" : i % 12 == 11 ? ". " : " ";
  }
  return out;
}

std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

fkv::GenerationOptions greedy() {
  fkv::GenerationOptions o;
  o.max_tokens = 8;
  o.temperature = 0.f;
  return o;
}

// The child of crashDuringSave: opens the document and, once the page file's first bytes are written, says so and
// waits to be killed. No Qt here: the child of a fork may only do what a fresh process would.
[[noreturn]] void saveUntilKilled(const std::string& lib, const std::string& model, const std::string& doc,
                                  const std::string& marker) {
  fkv::EngineOptions eo;
  eo.library_path = lib;
  fkv::Result<std::unique_ptr<fkv::Engine>> e = fkv::Engine::create(eo);
  fkv::ModelOptions mo;
  mo.n_ctx = 2048;
  mo.n_threads = 2;
  if (!e.ok() || !(*e)->load_model(model, mo).ok()) _exit(3);
  const fkv::ProgressCallback progress = [&](const fkv::Progress& p) {
    if (p.stage == fkv::Stage::save && p.done > 0) {
      const int fd = ::open(marker.c_str(), O_CREAT | O_WRONLY, 0644);
      if (fd >= 0) ::close(fd);
      for (;;) ::pause();
    }
    return true;
  };
  (void)(*e)->open_document(doc, fkv::DocumentOptions{}, progress);
  _exit(4);  // the save ended without the callback seeing it under way
}

struct Asked {
  fkv::OpenedDocument doc;
  std::string answer;
  std::string kv_recomputed;
};

}  // namespace

class TestDocuments : public QObject {
  Q_OBJECT

 private:
  std::string m_model, m_model2, m_wideModel;
  std::string m_txt, m_md, m_empty;
  std::string m_answer;  // kQuestion about m_txt, from an engine that never saw a library

  std::string dir(const std::string& name) const { return fkvtest::tempDir().toStdString() + "/" + name; }
  std::string libPath(const std::string& name) const { return dir(name) + "/library.db"; }

  std::unique_ptr<fkv::Engine> newEngine(const std::string& lib, const std::string& model, int n_ctx = 2048) const {
    fkv::EngineOptions eo;
    eo.library_path = lib;
    auto e = fkv::Engine::create(eo);
    if (!e.ok()) qFatal("Engine::create: %s", e.message().c_str());
    fkv::ModelOptions mo;
    mo.n_ctx = n_ctx;
    mo.n_threads = 2;
    const fkv::Status s = (*e)->load_model(model, mo);
    if (!s.ok()) qFatal("load_model: %s", s.message().c_str());
    return std::move(e).value();
  }

  // A fresh engine on `lib` opens `path` and answers kQuestion, evaluating only the question's turn.
  fkv::Result<Asked> openAndAsk(const std::string& lib, const std::string& path, const std::string& model = {}) const {
    const std::unique_ptr<fkv::Engine> e = newEngine(lib, model.empty() ? m_model : model);
    Asked a;
    FKV_ASSIGN_OR_RETURN(a.doc, e->open_document(path, fkv::DocumentOptions{}, {}));
    FKV_ASSIGN_OR_RETURN(const fkv::GenerateResult r, e->ask({{"user", kQuestion}}, greedy(), {}));
    if (r.n_cached_tokens < a.doc.n_tokens)
      return fkv::err("ask evaluated the document again: ", r.n_cached_tokens, " of ", a.doc.n_tokens, " cached");
    a.answer = r.text;
    a.kv_recomputed = r.kv_recomputed;
    return a;
  }

  // The page files of a document's ready snapshots, as the library names them.
  static std::vector<std::string> snapshotFiles(const std::string& lib, int64_t doc_id) {
    std::vector<std::string> out;
    auto l = fkv::Library::open(lib);
    if (!l.ok()) return out;
    auto snaps = (*l)->list_snapshots(doc_id);
    if (!snaps.ok()) return out;
    for (const fkv::SnapshotRecord& r : *snaps)
      if (r.state == fkv::SnapshotState::ready) out.push_back((*l)->page_file_path(r));
    return out;
  }

 private slots:
  void initTestCase() {
    fkv::SyntheticModelSpec spec;
    spec.vocab_path = fkvtest::llamaVocabPath().toStdString();
    spec.n_ctx = 2048;
    fs::create_directories(dir("models"));
    for (auto [path, seed] : {std::pair{&m_model, 11}, std::pair{&m_model2, 12}, std::pair{&m_wideModel, 13}}) {
      if (path == &m_wideModel) {
        // Many KV bytes per token (8 layers x 4 KV heads x head dim 64) for little compute: a page file of several
        // MiB, written in more than one chunk.
        spec.n_layers = 8;
        spec.n_kv_heads = 4;
        spec.head_dim = 64;
      }
      spec.seed = static_cast<uint64_t>(seed);
      *path = dir("models/" + std::to_string(seed) + ".gguf");
      const fkv::Status s = fkv::write_synthetic_model(spec, *path);
      QVERIFY2(s.ok(), s.message().c_str());
    }

    m_txt = dir("docs/harbour.txt");
    writeFile(m_txt, "Harbour log\n\n" + prose(640, 1));
    m_md = dir("docs/notes.md");
    writeFile(m_md, "# Harbour notes\n\n## Tides\n\n" + prose(220, 2) + "\n\n## Boats\n\n" + prose(220, 3));
    m_empty = dir("docs/empty.txt");
    writeFile(m_empty, "");

    auto ref = openAndAsk("", m_txt);
    QVERIFY2(ref.ok(), ref.message().c_str());
    QVERIFY2(ref->doc.n_tokens > 600 && ref->doc.n_tokens < 1500, std::to_string(ref->doc.n_tokens).c_str());
    QVERIFY(!ref->answer.empty());
    m_answer = ref->answer;
  }

  void roundTrip() {
    const std::string lib = libPath("roundtrip");
    std::vector<fkv::Stage> stages;
    const fkv::ProgressCallback record = [&](const fkv::Progress& p) {
      if (stages.empty() || stages.back() != p.stage) stages.push_back(p.stage);
      return true;
    };
    const std::unique_ptr<fkv::Engine> a = newEngine(lib, m_model);
    auto da = a->open_document(m_txt, fkv::DocumentOptions{}, record);
    QVERIFY2(da.ok(), da.message().c_str());
    QCOMPARE(da->kv_source, fkv::KvSource::prefill);
    QVERIFY(da->snapshot_bytes > 0 && da->save_error.empty() && da->recompute_reason.empty() && da->prefill_s > 0);
    QVERIFY((stages == std::vector<fkv::Stage>{fkv::Stage::ingest, fkv::Stage::tokenize, fkv::Stage::prefill,
                                               fkv::Stage::save}));
    auto ra = a->ask({{"user", kQuestion}}, greedy(), {});
    QVERIFY2(ra.ok(), ra.message().c_str());
    QCOMPARE(ra->text, m_answer);  // the never-saved engine of initTestCase

    stages.clear();
    const std::unique_ptr<fkv::Engine> b = newEngine(lib, m_model);
    auto db = b->open_document(m_txt, fkv::DocumentOptions{}, record);
    QVERIFY2(db.ok(), db.message().c_str());
    QCOMPARE(db->kv_source, fkv::KvSource::snapshot);
    QCOMPARE(db->prefill_s, 0.0);
    QVERIFY(db->load_s > 0);
    QVERIFY(db->id == da->id && db->n_tokens == da->n_tokens && db->snapshot_bytes == da->snapshot_bytes);
    QVERIFY((stages == std::vector<fkv::Stage>{fkv::Stage::ingest, fkv::Stage::tokenize, fkv::Stage::load}));
    auto rb = b->ask({{"user", kQuestion}}, greedy(), {});
    QVERIFY2(rb.ok(), rb.message().c_str());
    QCOMPARE(rb->text, m_answer);
    QVERIFY(rb->n_cached_tokens >= db->n_tokens && ra->n_cached_tokens >= da->n_tokens);
  }

  // Below the facade: a context that loads a saved cache continues bit for bit like the one that computed it.
  void contextSaveLoadIsExact() {
    auto model = fkv::Model::load(m_model);
    QVERIFY2(model.ok(), model.message().c_str());
    fkv::ContextParams cp;
    cp.n_ctx = 512;
    cp.n_threads = 2;
    auto c1 = fkv::Context::create(**model, cp), c2 = fkv::Context::create(**model, cp),
         c3 = fkv::Context::create(**model, cp);
    QVERIFY(c1.ok() && c2.ok() && c3.ok());
    auto ids = (*model)->tokenizer().encode(prose(300, 9), true, false);
    QVERIFY(ids.ok() && ids->size() >= 240);
    const std::span<const int32_t> prefix(ids->data(), 200);  // 6 full pages of 32 and a partial one of 8
    const std::span<const int32_t> more(ids->data() + 200, 40);
    const size_t n_vocab = static_cast<size_t>((*model)->config().n_vocab);
    std::vector<float> l1(more.size() * n_vocab), l2(l1.size()), l3(l1.size());  // (n_more, n_vocab) each
    QVERIFY((*c1)->eval(prefix, fkv::LogitsMode::Last, l1).ok());
    const fkv::SnapshotMeta meta{.model_fingerprint = "test-model", .tokenizer_hash = 7, .prompt_format = "raw"};
    const std::string path = dir("context.fkvpages");
    fkv::Status s = (*c1)->save_kv(path, meta, 0);
    QVERIFY2(s.ok(), s.message().c_str());
    auto file = fkv::PageFileReader::open(path);
    QVERIFY2(file.ok(), file.message().c_str());
    QCOMPARE(file->info().n_tokens, int64_t{200});
    s = (*c2)->load_kv(*file, meta);
    QVERIFY2(s.ok(), s.message().c_str());
    QCOMPARE((*c2)->n_past(), 200);
    QVERIFY((*c1)->eval(more, fkv::LogitsMode::All, l1).ok());
    QVERIFY((*c2)->eval(more, fkv::LogitsMode::All, l2).ok());
    QVERIFY(std::memcmp(l1.data(), l2.data(), l1.size() * sizeof(float)) == 0);
    QVERIFY((*c3)->eval(more, fkv::LogitsMode::All, l3).ok());  // without the prefix: other logits
    QVERIFY(std::memcmp(l1.data(), l3.data(), l1.size() * sizeof(float)) != 0);
  }

  void reopenById() {
    const std::string lib = libPath("byid");
    auto first = openAndAsk(lib, m_md);
    QVERIFY2(first.ok(), first.message().c_str());
    QCOMPARE(first->doc.kv_source, fkv::KvSource::prefill);
    QCOMPARE(first->doc.title, std::string("Harbour notes"));
    const std::unique_ptr<fkv::Engine> e = newEngine(lib, m_model);
    auto d = e->open_document(first->doc.id, fkv::DocumentOptions{}, {});
    QVERIFY2(d.ok(), d.message().c_str());
    QCOMPARE(d->kv_source, fkv::KvSource::snapshot);
    QVERIFY(d->title == first->doc.title && d->n_tokens == first->doc.n_tokens);
    auto r = e->ask({{"user", kQuestion}}, greedy(), {});
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->text, first->answer);
    QVERIFY(!e->open_document(first->doc.id + 100, fkv::DocumentOptions{}, {}).ok());
  }

  void followUpQuestions() {
    const std::unique_ptr<fkv::Engine> e = newEngine("", m_model);
    auto d = e->open_document(m_txt, fkv::DocumentOptions{}, {});
    QVERIFY2(d.ok(), d.message().c_str());
    const std::vector<std::vector<fkv::Message>> asks = {
        {{"user", kQuestion}},
        {{"user", "Which boats are named?"}},
        {{"user", "Is there a storm?"}},
        {{"user", kQuestion}, {"assistant", m_answer}, {"user", "And what happens in the morning?"}},
        {{"user", kQuestion}},  // the first question again, after others: the same answer
    };
    for (const std::vector<fkv::Message>& turns : asks) {
      auto r = e->ask(turns, greedy(), {});
      QVERIFY2(r.ok(), r.message().c_str());
      QVERIFY2(r->n_cached_tokens >= d->n_tokens, std::to_string(r->n_cached_tokens).c_str());
      QVERIFY(r->n_prompt_tokens - r->n_cached_tokens < 64 && r->n_generated > 0);  // only the turns were evaluated
      if (turns.size() == 1 && turns[0].content == kQuestion) QCOMPARE(r->text, m_answer);
    }
  }

  void damagedSnapshot_data() {
    QTest::addColumn<int>("kind");
    QTest::addColumn<QString>("reason");
    QTest::newRow("page byte flipped") << 0 << QString("page 1 of layer 1 is damaged");
    QTest::newRow("truncated") << 1 << QString("truncated");
    QTest::newRow("deleted") << 2 << QString("cannot open");
    QTest::newRow("bad magic") << 3 << QString("not a KV page file");
    QTest::newRow("newer version") << 4 << QString("newer version");
  }

  void damagedSnapshot() {
    QFETCH(int, kind);
    QFETCH(QString, reason);
    const std::string lib = libPath(std::string("damage-") + QTest::currentDataTag());
    auto first = openAndAsk(lib, m_txt);
    QVERIFY2(first.ok(), first.message().c_str());
    const std::vector<std::string> files = snapshotFiles(lib, first->doc.id);
    QCOMPARE(files.size(), size_t{1});
    const std::string& path = files[0];
    std::string bytes = readFile(path);
    if (kind == 0) {
      auto file = fkv::PageFileReader::open(path);
      QVERIFY2(file.ok(), file.message().c_str());
      const int64_t n_pages = file->info().n_pages();
      bytes[file->layout().record_offset(n_pages + 1) + 100] ^= 0x10;  // layer 1, page 1
    } else if (kind == 1) {
      bytes.resize(bytes.size() / 2);
    } else if (kind == 3) {
      std::memcpy(bytes.data(), "NOTPAGES", 8);
    } else if (kind == 4) {
      bytes[8] = 2;  // version 2, and a header checksum that fits it, as a newer writer would make
      std::memset(bytes.data() + 16, 0, 8);
      const uint64_t c = fkv::checksum64(bytes.data(), fkv::kPageFileHeaderBytes);
      for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(16 + i)] = static_cast<char>(c >> (8 * i));
    }
    if (kind == 2) {
      fs::remove(path);
    } else {
      writeFile(path, bytes);
    }

    auto second = openAndAsk(lib, m_txt);
    QVERIFY2(second.ok(), second.message().c_str());
    if (kind == 0) {
      // Pages are read in place and checked when first read: the open takes the file, the question finds the damage,
      // and the KV is recomputed and saved before the answer.
      QCOMPARE(second->doc.kv_source, fkv::KvSource::snapshot);
      QVERIFY2(contains(second->kv_recomputed, reason.toUtf8().constData()), second->kv_recomputed.c_str());
    } else {
      QCOMPARE(second->doc.kv_source, fkv::KvSource::prefill);
      QVERIFY2(contains(second->doc.recompute_reason, reason.toUtf8().constData()),
               second->doc.recompute_reason.c_str());
      QVERIFY(second->doc.save_error.empty() && second->doc.snapshot_bytes > 0);
    }
    QCOMPARE(second->answer, m_answer);
    auto third = openAndAsk(lib, m_txt);
    QVERIFY2(third.ok(), third.message().c_str());
    QCOMPARE(third->doc.kv_source, fkv::KvSource::snapshot);
    QVERIFY(third->doc.recompute_reason.empty() && third->answer == m_answer);
  }

  void otherModel() {
    const std::string lib = libPath("twomodels");
    auto a = openAndAsk(lib, m_txt, m_model);
    auto b = openAndAsk(lib, m_txt, m_model2);
    QVERIFY(a.ok() && b.ok() && a->doc.id == b->doc.id);
    QCOMPARE(a->doc.kv_source, fkv::KvSource::prefill);
    QCOMPARE(b->doc.kv_source, fkv::KvSource::prefill);  // model a's snapshot is not model b's
    QVERIFY(b->doc.recompute_reason.empty());
    auto a2 = openAndAsk(lib, m_txt, m_model);
    auto b2 = openAndAsk(lib, m_txt, m_model2);
    QVERIFY(a2.ok() && b2.ok());
    QVERIFY(a2->doc.kv_source == fkv::KvSource::snapshot && b2->doc.kv_source == fkv::KvSource::snapshot);
    QVERIFY(a2->answer == a->answer && b2->answer == b->answer);
    QCOMPARE(snapshotFiles(lib, a->doc.id).size(), size_t{2});
  }

  void cancelFromCallback() {
    const std::string lib = libPath("cancel-callback");
    const std::unique_ptr<fkv::Engine> e = newEngine(lib, m_model);
    int64_t last_done = -1;
    auto d = e->open_document(m_txt, fkv::DocumentOptions{}, [&](const fkv::Progress& p) {
      if (p.stage == fkv::Stage::prefill) last_done = p.done;
      return !(p.stage == fkv::Stage::prefill && p.done > 0);
    });
    QVERIFY2(!d.ok() && contains(d.message(), "cancelled"), d.message().c_str());
    QVERIFY(last_done > 0);
    auto l = fkv::Library::open(lib);
    QVERIFY2(l.ok(), l.message().c_str());
    auto docs = (*l)->list_documents();
    QVERIFY(docs.ok() && docs->size() == 1);
    QCOMPARE(docs->front().best_state, fkv::SnapshotState::none);
    auto snaps = (*l)->list_snapshots(docs->front().info.id);
    QVERIFY(snaps.ok() && snaps->empty());
    auto again = e->open_document(m_txt, fkv::DocumentOptions{}, {});
    QVERIFY2(again.ok(), again.message().c_str());
    QCOMPARE(again->kv_source, fkv::KvSource::prefill);
  }

  void cancelFromAnotherThread() {
    const std::unique_ptr<fkv::Engine> e = newEngine(libPath("cancel-thread"), m_model);
    const fkv::Result<fkv::OpenedDocument> d = [&] {
      fkvtest::CancelFromThread canceller([&] { e->cancel(); });
      return e->open_document(m_txt, fkv::DocumentOptions{}, [&](const fkv::Progress& p) {
        if (p.stage == fkv::Stage::prefill) canceller.reached();
        return true;
      });
    }();
    QVERIFY2(!d.ok() && contains(d.message(), "cancelled"), d.message().c_str());
    auto again = e->open_document(m_txt, fkv::DocumentOptions{}, {});
    QVERIFY2(again.ok(), again.message().c_str());
    QCOMPARE(again->kv_source, fkv::KvSource::prefill);
  }

  void errors() {
    const std::unique_ptr<fkv::Engine> small = newEngine("", m_model, 256);
    auto tooLong = small->open_document(m_txt, fkv::DocumentOptions{}, {});
    QVERIFY2(!tooLong.ok() && contains(tooLong.message(), "tokens") && contains(tooLong.message(), "context holds 256"),
             tooLong.message().c_str());

    // With a library, the refusal and the count stay on the document's row until an open succeeds.
    const std::string lib = libPath("refused");
    fs::create_directories(dir("refused"));
    {
      const std::unique_ptr<fkv::Engine> bounded = newEngine(lib, m_model, 256);
      QVERIFY(!bounded->open_document(m_txt, fkv::DocumentOptions{}, {}).ok());
    }
    const auto entry = [&]() -> fkv::LibraryEntry {
      auto l = fkv::DocumentLibrary::open(lib);
      if (!l.ok()) qFatal("DocumentLibrary::open: %s", l.message().c_str());
      auto docs = (*l)->list_documents();
      if (!docs.ok() || docs->size() != 1) qFatal("expected one document in the library");
      return docs->front();
    };
    const fkv::LibraryEntry refused = entry();
    QVERIFY2(contains(refused.summary.refusal, "too long for this model") &&
                 contains(refused.summary.refusal, "context holds 256"),
             refused.summary.refusal.c_str());
    QVERIFY(refused.n_tokens > 256);
    QCOMPARE(refused.summary.refused_tokens, refused.n_tokens);
    {
      const std::unique_ptr<fkv::Engine> roomy = newEngine(lib, m_model);
      auto opened = roomy->open_document(m_txt, fkv::DocumentOptions{}, {});
      QVERIFY2(opened.ok(), opened.message().c_str());
      QCOMPARE(int64_t(opened->n_tokens), refused.n_tokens);
    }
    const fkv::LibraryEntry ready = entry();
    QVERIFY(ready.summary.refusal.empty());
    QCOMPARE(ready.summary.refused_tokens, int64_t{-1});
    QCOMPARE(ready.summary.best_state, fkv::SnapshotState::ready);

    const std::unique_ptr<fkv::Engine> e = newEngine("", m_model);
    const std::string missing = dir("docs/missing.txt");
    auto m = e->open_document(missing, fkv::DocumentOptions{}, {});
    QVERIFY(!m.ok() && contains(m.message(), missing.c_str()) && contains(m.message(), "not found"));
    auto empty = e->open_document(m_empty, fkv::DocumentOptions{}, {});
    QVERIFY(!empty.ok() && contains(empty.message(), "empty"));
    auto ask = e->ask({{"user", kQuestion}}, greedy(), {});
    QVERIFY(!ask.ok() && contains(ask.message(), "no document is open"));
    auto byId = e->open_document(int64_t{1}, fkv::DocumentOptions{}, {});
    QVERIFY(!byId.ok() && contains(byId.message(), "no library"));

    auto bare = fkv::Engine::create(fkv::EngineOptions{});
    QVERIFY(bare.ok());
    auto noModel = (*bare)->open_document(m_txt, fkv::DocumentOptions{}, {});
    QVERIFY(!noModel.ok() && contains(noModel.message(), "no model"));
  }

  void lockedLibrary() {
    const std::string lib = libPath("locked");
    const std::unique_ptr<fkv::Engine> e = newEngine(lib, m_model);
    auto first = e->open_document(m_txt, fkv::DocumentOptions{}, {});
    QVERIFY2(first.ok(), first.message().c_str());
    sqlite3* raw = nullptr;
    QCOMPARE(sqlite3_open(lib.c_str(), &raw), SQLITE_OK);
    QCOMPARE(sqlite3_exec(raw, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
    auto locked = e->open_document(m_md, fkv::DocumentOptions{}, {});  // waits out the busy timeout, then fails
    const int rc = sqlite3_exec(raw, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close(raw);
    QCOMPARE(rc, SQLITE_OK);
    QVERIFY2(!locked.ok() && contains(locked.message(), "locked"), locked.message().c_str());
    auto after = e->open_document(m_md, fkv::DocumentOptions{}, {});
    QVERIFY2(after.ok(), after.message().c_str());
    QCOMPARE(after->kv_source, fkv::KvSource::prefill);
    QVERIFY(after->save_error.empty());
  }

  void storageCap() {
    const std::string lib = libPath("cap");
    const std::unique_ptr<fkv::Engine> e = newEngine(lib, m_model);
    auto txt = e->open_document(m_txt, fkv::DocumentOptions{}, {});
    QVERIFY2(txt.ok(), txt.message().c_str());
    const std::vector<std::string> txtFiles = snapshotFiles(lib, txt->id);
    QCOMPARE(txtFiles.size(), size_t{1});
    fkv::DocumentOptions capped;
    capped.storage_cap_bytes = static_cast<int64_t>(txt->snapshot_bytes);  // room for one of the two
    auto md = e->open_document(m_md, capped, {});
    QVERIFY2(md.ok(), md.message().c_str());
    QVERIFY(md->snapshot_bytes > 0);
    QVERIFY(snapshotFiles(lib, txt->id).empty());
    QCOMPARE(snapshotFiles(lib, md->id).size(), size_t{1});
    QVERIFY(!fs::exists(txtFiles[0]));
    auto mdAgain = openAndAsk(lib, m_md);
    auto txtAgain = openAndAsk(lib, m_txt);
    QVERIFY(mdAgain.ok() && txtAgain.ok());
    QCOMPARE(mdAgain->doc.kv_source, fkv::KvSource::snapshot);
    QCOMPARE(txtAgain->doc.kv_source, fkv::KvSource::prefill);
    QCOMPARE(txtAgain->answer, m_answer);
  }

  void crashDuringSave() {
    const std::string lib = libPath("crash");
    const std::string marker = dir("crash/saving");
    fs::create_directories(dir("crash"));
    const pid_t pid = ::fork();
    QVERIFY(pid >= 0);
    if (pid == 0) saveUntilKilled(lib, m_wideModel, m_txt, marker);
    int status = 0;
    const bool exited = fkvtest::waitForMarkerOrExit(pid, marker, &status, Clock::now() + std::chrono::seconds(120),
                                                     std::chrono::milliseconds(5));
    std::error_code ec;
    const auto n_tmp = std::count_if(fs::directory_iterator(dir("crash/pages"), ec), fs::directory_iterator(),
                                     [](const fs::directory_entry& f) { return f.path().extension() == ".tmp"; });
    if (!exited) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    QVERIFY2(!exited, "the child ended before its save was under way");
    QVERIFY(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    QCOMPARE(n_tmp, 1L);  // killed with its page file half written

    {
      auto l = fkv::Library::open(lib);
      QVERIFY2(l.ok(), l.message().c_str());
      auto docs = (*l)->list_documents();
      QVERIFY(docs.ok() && docs->size() == 1);
      QCOMPARE(docs->front().best_state, fkv::SnapshotState::none);  // nothing half-saved counts as a snapshot
    }
    const std::unique_ptr<fkv::Engine> e = newEngine(lib, m_wideModel);
    auto d = e->open_document(m_txt, fkv::DocumentOptions{}, {});
    QVERIFY2(d.ok(), d.message().c_str());
    QCOMPARE(d->kv_source, fkv::KvSource::prefill);
    QVERIFY2(d->save_error.empty(), d->save_error.c_str());
    QVERIFY(d->snapshot_bytes > (uint64_t{4} << 20));
    auto d2 = openAndAsk(lib, m_txt, m_wideModel);
    QVERIFY2(d2.ok(), d2.message().c_str());
    QCOMPARE(d2->doc.kv_source, fkv::KvSource::snapshot);
  }
};

QTEST_GUILESS_MAIN(TestDocuments)
#include "test_documents.moc"
