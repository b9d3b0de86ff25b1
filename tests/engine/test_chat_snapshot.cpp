// A chat about a document keeps its KV: after each answer the chat's pages are saved as an extension of the
// document's snapshot, a fresh engine continuing the chat loads them instead of evaluating the earlier turns, and
// the answers are exactly those of an engine that evaluates everything; a damaged or diverging chat snapshot is
// never used.
#include <QtTest>

#include <filesystem>
#include <fstream>

#include "fkv/engine.h"
#include "model/synthetic.h"
#include "store/library.h"
#include "support/test_models.h"
#include "support/test_paths.h"

namespace {

namespace fs = std::filesystem;

std::string prose(int n_words) {
  static const char* const k_words[] = {"the", "mill", "river", "wheel", "stone", "grain", "miller", "water",
                                        "north", "bank", "old", "bridge", "spring", "flour", "cart", "market"};
  std::string out;
  uint32_t x = 7;
  for (int i = 0; i < n_words; ++i) {
    x = x * 1664525u + 1013904223u;
    out += k_words[(x >> 16) % 16];
    out += i % 50 == 49 ? ".\n\n" : " ";
  }
  return out;
}

fkv::GenerationOptions greedy(int64_t chat_id) {
  fkv::GenerationOptions o;
  o.chat_id = chat_id;
  o.max_tokens = 6;
  o.temperature = 0.f;
  return o;
}

}  // namespace

class TestChatSnapshot : public QObject {
  Q_OBJECT

 private:
  std::string m_model, m_doc, m_lib;
  int64_t m_chat = 0;

  std::unique_ptr<fkv::Engine> engine(bool with_library) {
    fkv::EngineOptions eo;
    if (with_library) eo.library_path = m_lib;
    auto e = fkv::Engine::create(eo);
    if (!e.ok()) qFatal("Engine::create: %s", e.message().c_str());
    fkv::ModelOptions mo;
    mo.n_ctx = 2048;
    mo.n_threads = 2;
    if (const fkv::Status s = (*e)->load_model(m_model, mo); !s.ok()) qFatal("load_model: %s", s.message().c_str());
    auto d = (*e)->open_document(m_doc, fkv::DocumentOptions{}, nullptr);
    if (!d.ok()) qFatal("open_document: %s", d.message().c_str());
    return std::move(*e);
  }

  std::vector<fkv::SnapshotRecord> chatSnapshots() {
    auto lib = fkv::Library::open(m_lib);
    if (!lib.ok()) qFatal("Library::open: %s", lib.message().c_str());
    auto all = (*lib)->list_snapshots(1);
    std::vector<fkv::SnapshotRecord> out;
    for (const auto& r : *all)
      if (r.key.chat_id) out.push_back(r);
    return out;
  }

 private slots:
  void initTestCase() {
    const std::string dir = fkvtest::tempDir().toStdString() + "/chat-snapshot";
    fs::create_directories(dir);
    m_model = dir + "/model.gguf";
    const QString written = fkvtest::writeModel(fkvtest::llamaSpec(11, 2048), QString::fromStdString(m_model));
    QVERIFY2(written.isEmpty(), qPrintable(written));
    m_doc = dir + "/mill.txt";
    std::ofstream(m_doc) << prose(300);
    m_lib = dir + "/lib/library.db";
    auto lib = fkv::Library::open(m_lib);
    QVERIFY2(lib.ok(), lib.message().c_str());
    auto e = engine(true);  // records the document (id 1) and its snapshot
    auto chat = (*lib)->create_chat(1, "about the mill");
    QVERIFY2(chat.ok(), chat.message().c_str());
    m_chat = *chat;
  }

  void continuedChatLoadsItsKv() {
    const std::vector<fkv::Message> first = {{"user", "Where is the mill?"}};
    auto a = engine(true);
    auto r1 = a->ask(first, greedy(m_chat), nullptr);
    QVERIFY2(r1.ok(), r1.message().c_str());
    QCOMPARE(chatSnapshots().size(), size_t{1});
    QCOMPARE(*chatSnapshots()[0].base_snapshot_id > 0, true);

    const std::vector<fkv::Message> second = {
        {"user", "Where is the mill?"}, {"assistant", r1->text}, {"user", "Who works there?"}};
    auto reference = engine(false)->ask(second, greedy(0), nullptr);
    QVERIFY2(reference.ok(), reference.message().c_str());

    auto b = engine(true);  // a reopened chat: the document from its snapshot, the first turn from the chat's
    auto r2 = b->ask(second, greedy(m_chat), nullptr);
    QVERIFY2(r2.ok(), r2.message().c_str());
    QCOMPARE(r2->text, reference->text);
    // Only the new turn was evaluated: the cached part covers the document and the whole first exchange.
    QVERIFY2(r2->n_prompt_tokens - r2->n_cached_tokens < reference->n_prompt_tokens - reference->n_cached_tokens,
             qPrintable(QString("%1 of %2 cached").arg(r2->n_cached_tokens).arg(r2->n_prompt_tokens)));
    auto c = engine(true);
    auto r2_without = c->ask(second, greedy(0), nullptr);  // the same engine path without the chat's snapshot
    QVERIFY(r2_without.ok());
    QVERIFY(r2->n_cached_tokens > r2_without->n_cached_tokens);
  }

  // A conversation that does not continue the saved tokens (an edited first question) ignores the chat snapshot.
  void divergingChatIgnoresIt() {
    const std::vector<fkv::Message> edited = {
        {"user", "Where is the old mill?"}, {"assistant", "By the river."}, {"user", "Who works there?"}};
    auto reference = engine(false)->ask(edited, greedy(0), nullptr);
    auto r = engine(true)->ask(edited, greedy(m_chat), nullptr);
    QVERIFY(reference.ok() && r.ok());
    QCOMPARE(r->text, reference->text);
  }

  // A damaged chat snapshot is refused, marked stale and replaced; the answer is still exact.
  void damagedChatSnapshotIsRecomputed() {
    const std::vector<fkv::Message> first = {{"user", "Where is the mill?"}};
    auto r1 = engine(true)->ask(first, greedy(m_chat), nullptr);
    QVERIFY(r1.ok());
    auto snaps = chatSnapshots();
    QCOMPARE(snaps.size(), size_t{1});
    auto lib = fkv::Library::open(m_lib);
    QVERIFY(lib.ok());
    const std::string path = (*lib)->page_file_path(snaps[0]);
    {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(fs::file_size(path) / 2));
      const char junk = 0x5a;
      f.write(&junk, 1);  // inside a page record (records fill the middle of the file)
    }
    const std::vector<fkv::Message> second = {
        {"user", "Where is the mill?"}, {"assistant", r1->text}, {"user", "Who works there?"}};
    auto reference = engine(false)->ask(second, greedy(0), nullptr);
    auto r2 = engine(true)->ask(second, greedy(m_chat), nullptr);
    QVERIFY2(r2.ok(), r2.message().c_str());
    QCOMPARE(r2->text, reference->text);
    snaps = chatSnapshots();
    QCOMPARE(snaps.size(), size_t{1});
    QCOMPARE(snaps[0].state, fkv::SnapshotState::ready);  // saved again after the answer
  }
};

QTEST_GUILESS_MAIN(TestChatSnapshot)
#include "test_chat_snapshot.moc"
