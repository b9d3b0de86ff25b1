// Resumable prefill through the engine facade, on a synthetic model and a generated document: a prefill stopped by a
// cancel, by kill -9 at random moments, or with a damaged checkpoint resumes from its last good checkpoint, never
// evaluates a checkpointed token again, and ends with a snapshot byte-identical to one uninterrupted prefill's.
#include <QtTest>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sqlite3.h>

#include "fkv/engine.h"
#include "fkv/library.h"
#include "model/synthetic.h"
#include "store/library.h"
#include "support/child_process.h"
#include "support/test_models.h"
#include "support/test_paths.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using fkvtest::writeFile;

constexpr int kCtx = 8192;

std::string prose(int n_words, uint32_t seed) {
  static const char* const k_words[] = {"the",  "harbour", "boat",  "river", "north", "light", "keeper", "stone",
                                        "wind", "tide",    "early", "night", "ships", "cargo", "market", "bridge"};
  uint32_t x = seed;
  std::string out;
  for (int i = 0; i < n_words; ++i) {
    x = x * 1664525u + 1013904223u;
    out += k_words[(x >> 16) % 16];
    out += i % 40 == 39 ? ".\n\n" : " ";
  }
  return out;
}

std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

std::set<std::string> tmpFiles(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (it->path().extension() == ".tmp") out.insert(it->path().filename().string());
  return out;
}

std::unique_ptr<fkv::Engine> newEngine(const std::string& lib, const std::string& model) {
  fkv::EngineOptions eo;
  eo.library_path = lib;
  auto e = fkv::Engine::create(eo);
  if (!e.ok()) return nullptr;
  fkv::ModelOptions mo;
  mo.n_ctx = kCtx;
  mo.n_threads = 2;
  if (!(*e)->load_model(model, mo).ok()) return nullptr;
  return std::move(e).value();
}

fkv::DocumentOptions everyChunk() {
  fkv::DocumentOptions o;
  o.checkpoint_bytes = 1;  // a checkpoint after every chunk
  return o;
}

// The child of killedAtRandomPoints: opens the document, writing where its prefill starts to `started` (so the
// parent can check the resume point and time its kill from there). No Qt: a forked child does what a fresh process
// would. Exit 0: the open finished.
[[noreturn]] void openInChild(const std::string& lib, const std::string& model, const std::string& doc,
                              const std::string& started) {
  const std::unique_ptr<fkv::Engine> e = newEngine(lib, model);
  if (!e) _exit(3);
  bool reported = false;
  const fkv::ProgressCallback progress = [&](const fkv::Progress& p) {
    if (p.stage == fkv::Stage::prefill && !reported) {
      reported = true;
      const std::string tmp = started + ".tmp";
      if (FILE* f = std::fopen(tmp.c_str(), "w")) {
        std::fprintf(f, "%lld\n", static_cast<long long>(p.done));
        std::fclose(f);
        std::rename(tmp.c_str(), started.c_str());
      }
    }
    return true;
  };
  const fkv::Result<fkv::OpenedDocument> d = e->open_document(doc, everyChunk(), progress);
  _exit(d.ok() && d->save_error.empty() ? 0 : 4);
}

}  // namespace

class TestResumePrefill : public QObject {
  Q_OBJECT

 private:
  std::string m_model, m_doc;
  std::string m_refSnapshot;  // bytes of the snapshot of one uninterrupted prefill
  int m_tokens = 0;
  double m_prefillS = 0;  // the reference prefill's seconds

  std::string dir(const std::string& name) const { return fkvtest::tempDir().toStdString() + "/" + name; }
  std::string libPath(const std::string& name) const { return dir(name) + "/library.db"; }

  struct LibState {
    int64_t done = -1, total = -1;        // list_documents' view of a stopped prefill
    std::vector<std::string> chainPaths;  // checkpoint files in chain order
    std::string snapshot;                 // the document's ready snapshot's bytes; empty when there is none
  };
  // What the library holds for its one document, read by a connection of the test's own.
  static LibState libState(const std::string& lib) {
    LibState out;
    auto l = fkv::Library::open(lib);
    if (!l.ok()) return out;
    auto docs = (*l)->list_documents();
    if (!docs.ok() || docs->empty()) return out;
    out.done = docs->front().prefill_done;
    out.total = docs->front().prefill_total;
    auto snaps = (*l)->list_snapshots(docs->front().info.id);
    if (snaps.ok()) {
      for (const fkv::SnapshotRecord& r : *snaps)
        if (r.state == fkv::SnapshotState::ready && !r.key.chat_id) out.snapshot = readFile((*l)->page_file_path(r));
    }
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(lib.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT path FROM prefill_checkpoints ORDER BY seq", -1, &st, nullptr) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
          out.chainPaths.push_back((fs::path((*l)->pages_dir()) / (text ? text : "")).string());
        }
      }
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return out;
  }

  // Opens m_doc in `lib` with a checkpoint after every chunk, cancelling once the prefill reaches `stop_at` tokens;
  // returns where the prefill started and the open's error message.
  std::pair<int64_t, std::string> openUntil(const std::string& lib, int64_t stop_at) const {
    const std::unique_ptr<fkv::Engine> e = newEngine(lib, m_model);
    if (!e) return {-2, "no engine"};
    int64_t first = -1;
    auto d = e->open_document(m_doc, everyChunk(), [&](const fkv::Progress& p) {
      if (p.stage != fkv::Stage::prefill) return true;
      if (first < 0) first = p.done;
      return p.done < stop_at;
    });
    return {first, d.ok() ? std::string() : d.message()};
  }

  // Opens m_doc in `lib` to the end; the open's report.
  fkv::Result<fkv::OpenedDocument> openToEnd(const std::string& lib, int64_t* first = nullptr) const {
    const std::unique_ptr<fkv::Engine> e = newEngine(lib, m_model);
    if (!e) return fkv::err("no engine");
    return e->open_document(m_doc, everyChunk(), [&](const fkv::Progress& p) {
      if (first && p.stage == fkv::Stage::prefill && *first < 0) *first = p.done;
      return true;
    });
  }

 private slots:
  void initTestCase() {
    fkv::SyntheticModelSpec spec = fkvtest::llamaSpec(21, kCtx);
    // Many KV bytes per token (8 layers x 4 KV heads x head dim 64) for little compute.
    spec.n_layers = 8;
    spec.n_kv_heads = 4;
    spec.head_dim = 64;
    fs::create_directories(dir("models"));
    m_model = dir("models/wide.gguf");
    QCOMPARE(fkvtest::writeModel(spec, QString::fromStdString(m_model)), QString());
    m_doc = dir("docs/long.txt");
    writeFile(m_doc, "Harbour log\n\n" + prose(2500, 5));

    // The reference: one prefill, no checkpoints.
    const std::unique_ptr<fkv::Engine> e = newEngine(libPath("reference"), m_model);
    QVERIFY(e);
    fkv::DocumentOptions o;
    o.checkpoint_bytes = 0;
    auto d = e->open_document(m_doc, o, {});
    QVERIFY2(d.ok(), d.message().c_str());
    QVERIFY2(d->save_error.empty(), d->save_error.c_str());
    QVERIFY2(d->n_tokens > 3000 && d->n_tokens < kCtx - 512, std::to_string(d->n_tokens).c_str());
    m_tokens = d->n_tokens;
    m_prefillS = d->prefill_s;
    m_refSnapshot = libState(libPath("reference")).snapshot;
    QVERIFY(m_refSnapshot.size() > (size_t{16} << 20));
  }

  // Cancelled twice, it resumes twice where it stopped (the progress bar starts there), and the library lists it as
  // a stopped prefill until it ends; then its snapshot is the reference's and its checkpoints are gone.
  void cancelThenResume() {
    const std::string lib = libPath("cancel");
    const auto [first1, why1] = openUntil(lib, 1024);
    QCOMPARE(first1, int64_t{0});
    QVERIFY2(contains(why1, "cancelled after 1,024 of") && contains(why1, "the next open resumes there"), why1.c_str());
    LibState s1 = libState(lib);
    QCOMPARE(s1.done, int64_t{1024});
    QCOMPARE(s1.total, int64_t{m_tokens});
    QVERIFY(s1.snapshot.empty() && s1.chainPaths.size() >= 2);

    const auto [first2, why2] = openUntil(lib, 2560);
    QCOMPARE(first2, int64_t{1024});
    QVERIFY2(contains(why2, "cancelled after 2,560 of"), why2.c_str());
    QCOMPARE(libState(lib).done, int64_t{2560});

    int64_t first3 = -1;
    auto d = openToEnd(lib, &first3);
    QVERIFY2(d.ok(), d.message().c_str());
    QCOMPARE(first3, int64_t{2560});
    QCOMPARE(d->resumed_tokens, int64_t{2560});
    QVERIFY(d->checkpoints >= 1 && d->checkpoint_s > 0 && d->checkpoint_s < d->prefill_s);
    QCOMPARE(d->kv_source, fkv::KvSource::prefill);
    QVERIFY2(d->recompute_reason.empty(), d->recompute_reason.c_str());
    const LibState end = libState(lib);
    QVERIFY(end.snapshot == m_refSnapshot);
    QCOMPARE(end.done, int64_t{-1});
    QVERIFY(end.chainPaths.empty());
    for (const std::string& p : s1.chainPaths) QVERIFY2(!fs::exists(p), p.c_str());
  }

  // kill -9 at 20+ random moments of a prefill (during a chunk, a checkpoint's write, its rename, its row): every next
  // open resumes at the last checkpoint recorded before the kill, and the end is the reference snapshot.
  void killedAtRandomPoints() {
    std::mt19937 rng(7);
    int kills = 0, rounds = 0, libraries = 0, n_tmp = 0, n_unrecorded = 0;
    // A prefill that ends before 20 kills (a slow build, a lucky draw) counts its kills, and a fresh library goes on.
    while (kills < 20) {
      QVERIFY2(++libraries <= 10, "the kills did not reach 20");
      const std::string name = "killed" + std::to_string(libraries);
      const std::string lib = libPath(name);
      const std::string started = dir(name + "/started");
      const std::string pages = dir(name + "/pages");
      fs::create_directories(dir(name));
      int64_t last_done = 0;
      for (bool finished = false; !finished;) {
        QVERIFY2(++rounds < 300, "the prefill made no progress under the kills");
        const int64_t expect_start = std::max<int64_t>(libState(lib).done, 0);
        QVERIFY(expect_start >= last_done);  // what a checkpoint held is never lost
        last_done = expect_start;
        fs::remove(started);
        const pid_t pid = ::fork();
        QVERIFY(pid >= 0);
        if (pid == 0) openInChild(lib, m_model, m_doc, started);
        int status = 0;
        const Clock::time_point deadline = Clock::now() + std::chrono::seconds(300);
        bool exited = fkvtest::waitForMarkerOrExit(pid, started, &status, deadline, std::chrono::milliseconds(1));
        if (exited && !fs::exists(started)) {
          // Killed after its snapshot was recorded: this open loaded it, with no prefill to run.
          QVERIFY2(WIFEXITED(status) && WEXITSTATUS(status) == 0, std::to_string(status).c_str());
          break;
        }
        QVERIFY2(fs::exists(started), "the child never started its prefill");
        QCOMPARE(std::stoll(readFile(started)), static_cast<long long>(expect_start));
        if (kills >= 20) {
          ::waitpid(pid, &status, 0);  // enough kills: this one runs to the end
          exited = true;
        } else if (kills % 3 == 1) {
          // While a page file is being written: the moment a new .tmp appears.
          const std::set<std::string> before = tmpFiles(pages);
          while (!exited && Clock::now() < deadline) {
            const std::set<std::string> now = tmpFiles(pages);
            if (std::any_of(now.begin(), now.end(), [&](const std::string& f) { return !before.count(f); })) break;
            exited = ::waitpid(pid, &status, WNOHANG) == pid;
          }
        } else {
          // Anywhere in the next chunk or two: mid-chunk, mid-write, between a file and its row.
          const int max_us = std::max(2000, static_cast<int>(m_prefillS * 1e6 / 10));
          std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, max_us)(rng)));
        }
        if (!exited) exited = ::waitpid(pid, &status, WNOHANG) == pid;
        if (!exited) {
          ::kill(pid, SIGKILL);
          ::waitpid(pid, &status, 0);
          QVERIFY(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
          ++kills;
          continue;
        }
        QVERIFY2(WIFEXITED(status) && WEXITSTATUS(status) == 0, std::to_string(status).c_str());
        finished = true;
      }
      const LibState end = libState(lib);
      QVERIFY(end.snapshot == m_refSnapshot);
      QVERIFY(end.chainPaths.empty());
      // Files the kills left for the orphan sweep: half-written ones (.tmp) and written but unrecorded ones.
      for (const fs::directory_entry& f : fs::directory_iterator(pages)) {
        if (f.path().extension() == ".tmp") {
          ++n_tmp;
        } else if (f.path().extension() == ".fkvpages" && readFile(f.path().string()) != end.snapshot) {
          ++n_unrecorded;
        }
      }
    }
    qInfo("%d kills in %d rounds over %d prefills (reference prefill %.2f s), leaving %d half-written and %d "
          "unrecorded files",
          kills, rounds, libraries, m_prefillS, n_tmp, n_unrecorded);
  }

  // A damaged or truncated checkpoint is cut off with the ones after it, the reason is said, and the prefill resumes
  // from the one before; the end is still the reference snapshot.
  void damagedCheckpoint_data() {
    QTest::addColumn<bool>("truncate");
    QTest::newRow("flipped byte") << false;
    QTest::newRow("truncated") << true;
  }
  void damagedCheckpoint() {
    QFETCH(bool, truncate);
    const std::string lib = libPath(truncate ? "truncated" : "flipped");
    const auto [first, why] = openUntil(lib, 2048);
    QVERIFY2(contains(why, "cancelled after 2,048"), why.c_str());
    const LibState s = libState(lib);
    QVERIFY(s.chainPaths.size() >= 3);
    // Damage the third checkpoint: the first two stand.
    const std::string victim = s.chainPaths[2];
    std::string bytes = readFile(victim);
    QVERIFY(bytes.size() > 8192);
    if (truncate) {
      bytes.resize(bytes.size() / 2);
    } else {
      bytes[bytes.size() / 2] ^= 0x5a;  // inside a page record
    }
    writeFile(victim, bytes);
    int64_t resumedAt = -1;
    auto d = openToEnd(lib, &resumedAt);
    QVERIFY2(d.ok(), d.message().c_str());
    QCOMPARE(resumedAt, int64_t{512});  // two checkpoints of one chunk each
    QCOMPARE(d->resumed_tokens, int64_t{512});
    QVERIFY2(contains(d->recompute_reason, "checkpoint 3 of") && contains(d->recompute_reason, "unusable"),
             d->recompute_reason.c_str());
    QVERIFY2(contains(d->recompute_reason, truncate ? "truncated" : "checksum"), d->recompute_reason.c_str());
    const LibState end = libState(lib);
    QVERIFY(end.snapshot == m_refSnapshot);
    QVERIFY(end.chainPaths.empty());
    for (const std::string& p : s.chainPaths) QVERIFY2(!fs::exists(p), p.c_str());
  }

  // The same document opened without its snapshot and checkpoints (use_snapshot off) starts from zero and leaves no
  // chain of two starts behind.
  void freshStartDropsTheChain() {
    const std::string lib = libPath("fresh");
    (void)openUntil(lib, 1024);
    QCOMPARE(libState(lib).done, int64_t{1024});
    const std::unique_ptr<fkv::Engine> e = newEngine(lib, m_model);
    QVERIFY(e);
    fkv::DocumentOptions o = everyChunk();
    o.use_snapshot = false;
    int64_t first = -1;
    auto d = e->open_document(m_doc, o, [&](const fkv::Progress& p) {
      if (p.stage == fkv::Stage::prefill && first < 0) first = p.done;
      return true;
    });
    QVERIFY2(d.ok(), d.message().c_str());
    QCOMPARE(first, int64_t{0});
    QCOMPARE(d->resumed_tokens, int64_t{0});
    QVERIFY(libState(lib).snapshot == m_refSnapshot);
  }
};

QTEST_GUILESS_MAIN(TestResumePrefill)
#include "test_resume_prefill.moc"
