// Context memory (ContextParams::context_memory, kv/virtual_layout.h): past the model's trained window, a query attends
// its sinks, retrieved pages and local window laid side by side. On a one-layer model, whose keys and values depend
// only on the token and its position, that is checked exactly: the logits equal those of a dense context that holds
// just the attended pages' tokens, one after the other. The engine grows an automatic context for a document past
// the window, answers about it, and reopens it from its snapshot with the same answer.
#include <QtTest>

#include <cmath>
#include <memory>
#include <vector>

#include "fkv/engine.h"
#include "kv/virtual_layout.h"
#include "model/model.h"
#include "runtime/context.h"
#include "support/test_models.h"
#include "support/test_paths.h"

namespace {

using fkv::ContextParams;
using fkv::LogitsMode;

constexpr int kPage = 16;
constexpr int kTrain = 256;  // the one-layer model's trained window: every test context reaches far past it

std::vector<int32_t> promptTokens(int n, int n_vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = 3 + (i * 7919 + (i / 13) * 31) % (n_vocab - 3);
  return t;
}

double maxAbsDiff(const float* a, const float* b, size_t n) {
  double d = 0;
  for (size_t i = 0; i < n; ++i) d = std::max(d, std::fabs(double(a[i]) - double(b[i])));
  return d;
}

// Keeps the pages the last decode step's layer 0 attended (one KV head).
struct LastSelection : fkv::TelemetryObserver {
  std::vector<int32_t> pages;
  void on_layer_step(const fkv::LayerStepEvent& e) override {
    if (e.layer != 0) return;
    pages.assign(e.sel_pages + e.sel_indptr[0], e.sel_pages + e.sel_indptr[1]);
  }
};

ContextParams memoryParams() {
  ContextParams p;
  p.n_ctx = 4096;
  p.page_size = kPage;
  p.n_batch = 32;
  p.n_threads = 2;
  p.kv_type = fkv::DType::F32;  // moved keys are rotated copies: F32 keeps them as exact as the dense reference
  p.context_memory = true;
  p.policy = fkv::Policy::quest;
  p.budget.page_size = kPage;
  p.budget.sink_tokens = 16;
  p.budget.recent_tokens = 32;
  p.budget.retrieved_tokens = 48;
  p.prefill_budget.sink_tokens = 16;
  p.prefill_budget.recent_tokens = 64;
  p.prefill_budget.retrieved_tokens = 64;
  return p;
}

ContextParams denseParams() {
  ContextParams p = memoryParams();
  p.context_memory = false;
  p.policy = fkv::Policy::full;
  return p;
}

std::unique_ptr<fkv::Context> makeContext(const fkv::Model& m, const ContextParams& p) {
  auto ctx = fkv::Context::create(m, p);
  if (!ctx.ok()) qFatal("Context::create: %s", ctx.message().c_str());
  return std::move(ctx).value();
}

void evalOrDie(fkv::Context& c, std::span<const int32_t> tokens, LogitsMode mode, std::vector<float>& logits) {
  const fkv::Status s = c.eval(tokens, mode, logits);
  if (!s.ok()) qFatal("eval: %s", s.message().c_str());
}

// The tokens of `pages` (ascending), each page whole or up to the end of `tokens`.
std::vector<int32_t> tokensOfPages(const std::vector<int32_t>& tokens, const std::vector<int32_t>& pages) {
  std::vector<int32_t> out;
  for (int32_t p : pages) {
    const size_t b = static_cast<size_t>(p) * kPage;
    const size_t e = std::min(tokens.size(), b + kPage);
    out.insert(out.end(), tokens.begin() + static_cast<std::ptrdiff_t>(b), tokens.begin() + static_cast<std::ptrdiff_t>(e));
  }
  return out;
}

}  // namespace

class TestContextMemory : public QObject {
  Q_OBJECT
  std::unique_ptr<fkv::Model> m_one;  // one layer, one KV head
  QString m_docModel;                 // one narrow layer, for the engine

 private slots:
  void initTestCase() {
    fkv::SyntheticModelSpec one = fkvtest::llamaSpec(71, kTrain);
    one.n_layers = 1;
    one.n_kv_heads = 1;
    const QString path = fkvtest::tempDir() + QStringLiteral("/memory-one.gguf");
    QString err = fkvtest::writeModel(one, path);
    QVERIFY2(err.isEmpty(), qPrintable(err));
    auto m = fkv::Model::load(path.toStdString());
    QVERIFY2(m.ok(), m.message().c_str());
    m_one = std::move(m).value();
    // The engine test prefills 100k+ tokens: one narrow layer keeps that within seconds, under ASan too.
    fkv::SyntheticModelSpec doc = fkvtest::llamaSpec(72, 2048);
    doc.n_layers = 1;
    doc.n_embd = 32;
    doc.n_heads = 2;
    doc.n_kv_heads = 1;
    doc.n_ff = 64;
    m_docModel = fkvtest::tempDir() + QStringLiteral("/memory-doc.gguf");
    err = fkvtest::writeModel(doc, m_docModel);
    QVERIFY2(err.isEmpty(), qPrintable(err));
  }

  void layout() {
    QCOMPARE(fkv::local_window_begin(20, 2, 3), 17);
    QCOMPARE(fkv::local_window_begin(4, 2, 3), 2);  // the sinks come first
    std::vector<int> shift;
    const std::vector<int32_t> sel{0, 1, 5, 9, 10, 11, 12};
    QCOMPARE(fkv::virtual_shifts(sel, 10, shift), 4);
    QCOMPARE(shift, (std::vector<int>{6, 6, 3, 0}));  // to pages 6, 7, 8, 9: right before the window at 10
    const std::vector<int32_t> all{0, 1, 2, 3, 4, 5};
    QCOMPARE(fkv::virtual_shifts(all, 4, shift), 4);
    QCOMPARE(shift, (std::vector<int>{0, 0, 0, 0}));
  }

  // Angles of far positions come from double precision: a rotation by a + b equals the rotation by a, then by b.
  void rotationsComposeFarOut() {
    const std::vector<float> inv_freq{1.f, 0.1f, 0.01f, 1e-4f};
    std::vector<float> a(8), b(8), ab(8);
    fkv::rotation_by(inv_freq, 1'000'000, a.data());
    fkv::rotation_by(inv_freq, 12'345, b.data());
    fkv::rotation_by(inv_freq, 1'012'345, ab.data());
    for (size_t i = 0; i < inv_freq.size(); ++i) {
      const double c = double(a[2 * i]) * b[2 * i] - double(a[2 * i + 1]) * b[2 * i + 1];
      const double s = double(a[2 * i]) * b[2 * i + 1] + double(a[2 * i + 1]) * b[2 * i];
      QVERIFY(std::fabs(c - ab[2 * i]) < 1e-6 && std::fabs(s - ab[2 * i + 1]) < 1e-6);
    }
  }

  // A prefill chunk far past the window: with no retrieved pages it attends the sink page, moved to just before its
  // local window. Its logits are those of a dense prompt holding only the sink page, the window and the chunk.
  void aPrefillChunkSeesItsSinkBesideItsWindow() {
    ContextParams p = memoryParams();
    p.prefill_budget.retrieved_tokens = 0;
    const int n_vocab = m_one->config().n_vocab;
    const auto tokens = promptTokens(1200, n_vocab);
    const std::span<const int32_t> all(tokens);
    auto mem = makeContext(*m_one, p);
    std::vector<float> logits(static_cast<size_t>(n_vocab) * 32);
    evalOrDie(*mem, all.first(1168), LogitsMode::Last, logits);
    evalOrDie(*mem, all.subspan(1168), LogitsMode::All, logits);

    const fkv::Budget& b = mem->params().prefill_budget;  // as the context rounded it
    const int local_begin = fkv::local_window_begin(1200 / kPage, b.sink_pages(), b.recent_pages());
    QVERIFY(local_begin * kPage - kPage > kTrain);  // the sink really moves, and farther than the trained window
    std::vector<int32_t> kept(tokens.begin(), tokens.begin() + kPage);
    kept.insert(kept.end(), tokens.begin() + local_begin * kPage, tokens.end());
    auto dense = makeContext(*m_one, denseParams());
    std::vector<float> ref(logits.size());
    evalOrDie(*dense, std::span<const int32_t>(kept).first(kept.size() - 32), LogitsMode::Last, ref);
    evalOrDie(*dense, std::span<const int32_t>(kept).last(32), LogitsMode::All, ref);
    const double d = maxAbsDiff(logits.data(), ref.data(), logits.size());
    QVERIFY2(d < 1e-3, qPrintable(QString::number(d)));

    // Left at their true positions (no context memory), the same chunk gives other logits.
    auto plain = makeContext(*m_one, [] {
      ContextParams q = memoryParams();
      q.context_memory = false;
      q.prefill = fkv::Prefill::retrieval;
      q.prefill_budget.retrieved_tokens = 0;
      return q;
    }());
    std::vector<float> far(logits.size());
    evalOrDie(*plain, all.first(1168), LogitsMode::Last, far);
    evalOrDie(*plain, all.subspan(1168), LogitsMode::All, far);
    QVERIFY(maxAbsDiff(logits.data(), far.data(), logits.size()) > 1e-3);
  }

  // A decode step far past the window attends its sink, its retrieved pages (scored at a fixed distance) and its
  // local window side by side: the logits of a dense context holding only those pages' tokens.
  void aDecodeStepSeesItsPagesSideBySide() {
    const int n_vocab = m_one->config().n_vocab;
    const auto tokens = promptTokens(1500, n_vocab);
    const std::span<const int32_t> all(tokens);
    auto mem = makeContext(*m_one, memoryParams());
    LastSelection sel;
    mem->set_observer(&sel);
    std::vector<float> logits(static_cast<size_t>(n_vocab));
    evalOrDie(*mem, all.first(1499), LogitsMode::Last, logits);
    evalOrDie(*mem, all.last(1), LogitsMode::Last, logits);
    QCOMPARE(mem->stats().layer_steps, int64_t{1});

    // 1 sink page, 3 retrieved and the window's 2 pages (the last one being filled).
    QCOMPARE(sel.pages.size(), size_t{6});
    QCOMPARE(sel.pages.front(), 0);
    QCOMPARE(sel.pages.back(), 1499 / kPage);
    std::vector<int> shift;
    const int local_begin = fkv::local_window_begin(1499 / kPage + 1, 1, 2);
    QCOMPARE(fkv::virtual_shifts(sel.pages, local_begin, shift), 4);
    QVERIFY2(shift[1] > 0 && shift[0] * kPage > kTrain, "retrieved pages moved, the sink farther than the window");

    auto dense = makeContext(*m_one, denseParams());
    const std::vector<int32_t> kept = tokensOfPages(tokens, sel.pages);
    std::vector<float> ref(logits.size());
    evalOrDie(*dense, kept, LogitsMode::Last, ref);
    const double d = maxAbsDiff(logits.data(), ref.data(), logits.size());
    QVERIFY2(d < 1e-3, qPrintable(QString::number(d)));
  }

  // Nothing moves while the whole context fits the budget: memory mode then matches the dense context (its angles
  // are computed in double precision, hence a tolerance).
  void insideTheBudgetNothingMoves() {
    const int n_vocab = m_one->config().n_vocab;
    const auto tokens = promptTokens(100, n_vocab);
    std::vector<float> a(static_cast<size_t>(n_vocab)), b(a.size());
    evalOrDie(*makeContext(*m_one, memoryParams()), tokens, LogitsMode::Last, a);
    evalOrDie(*makeContext(*m_one, denseParams()), tokens, LogitsMode::Last, b);
    QVERIFY(maxAbsDiff(a.data(), b.data(), a.size()) < 1e-4);
  }

  void fullAttentionIsRefused() {
    ContextParams p = memoryParams();
    p.policy = fkv::Policy::full;
    auto c = fkv::Context::create(*m_one, p);
    QVERIFY(!c.ok() && c.message().find("policy full") != std::string::npos);
    auto mem = makeContext(*m_one, memoryParams());
    const fkv::Status s = mem->set_policy(fkv::Policy::full, memoryParams().budget, 0.9f);
    QVERIFY(!s.ok() && s.message().find("policy full") != std::string::npos);
    QCOMPARE(mem->params().policy, fkv::Policy::quest);
  }

  // Through the public API: a document of 100k+ tokens, forty-nine times the model's window of 2,048, opens in a
  // grown automatic context, is asked about, and reopens from its snapshot (frame summaries rebuilt) with the same
  // answer. A smaller document afterwards gets the loaded context back.
  void aDocumentPastTheWindowOpensAndReopens() {
    const QString lib = fkvtest::tempDir() + QStringLiteral("/memory-lib");
    fkv::EngineOptions eo;
    eo.library_path = lib.toStdString();
    auto e = fkv::Engine::create(eo);
    QVERIFY2(e.ok(), e.message().c_str());
    fkv::ModelOptions mo;
    mo.n_ctx = 0;
    mo.n_threads = 2;
    QVERIFY((*e)->load_model(m_docModel.toStdString(), mo).ok());
    QCOMPARE((*e)->model_info().n_ctx, 2048);

    const QString doc = fkvtest::tempDir() + QStringLiteral("/memory-book.txt");
    QByteArray text;
    for (int i = 0; text.size() < 215'000; ++i)
      text += "Chapter " + QByteArray::number(i / 40) + ", line " + QByteArray::number(i) + ": the tide was " +
              QByteArray::number((i * 37) % 101) + " feet at the " + QByteArray::number(i % 24) + "th hour.\n";
    fkvtest::writeFile(doc, text);
    const auto ask = [&]() -> std::string {
      fkv::GenerationOptions g;
      g.temperature = 0;
      g.max_tokens = 6;
      auto r = (*e)->ask({{"user", "How high was the tide on line 12?"}}, g, {});
      if (!r.ok()) qFatal("ask: %s", r.message().c_str());
      return r->text;
    };
    auto opened = (*e)->open_document(doc.toStdString(), {}, {});
    QVERIFY2(opened.ok(), opened.message().c_str());
    QVERIFY2(opened->n_tokens > 100'000, qPrintable(QString::number(opened->n_tokens)));
    qInfo("%d tokens, context %d, prefill %.1f s", opened->n_tokens, (*e)->model_info().n_ctx, opened->prefill_s);
    QCOMPARE(opened->kv_source, fkv::KvSource::prefill);
    QVERIFY((*e)->model_info().n_ctx > opened->n_tokens);
    const std::string first = ask();
    QVERIFY(!first.empty());

    auto again = (*e)->open_document(doc.toStdString(), {}, {});
    QVERIFY2(again.ok(), again.message().c_str());
    QCOMPARE(again->kv_source, fkv::KvSource::snapshot);
    QCOMPARE(ask(), first);

    const QString small = fkvtest::tempDir() + QStringLiteral("/memory-note.txt");
    fkvtest::writeFile(small, "A short note about the harbour.");
    QVERIFY((*e)->open_document(small.toStdString(), {}, {}).ok());
    QCOMPARE((*e)->model_info().n_ctx, 2048);

    // Full attention cannot read past the window: the refusal says so.
    fkv::RetrievalOptions full;
    full.policy = fkv::Policy::full;
    QVERIFY((*e)->set_retrieval(full).ok());
    auto refused = (*e)->open_document(doc.toStdString(), {}, {});
    QVERIFY(!refused.ok());
    QVERIFY2(refused.message().find("policy full") != std::string::npos, refused.message().c_str());
    // The library row keeps that reason, not a context size the policy does not need.
    QVERIFY2(refusalOf(**e, "memory-book.txt").find("policy full") != std::string::npos,
             refusalOf(**e, "memory-book.txt").c_str());

    // Past the cap on a document's length: refused before any prefill, the cap named, here and on the row.
    QVERIFY((*e)->set_retrieval({}).ok());
    const QString huge = fkvtest::tempDir() + QStringLiteral("/memory-huge.txt");
    // Digits take a token each in this vocabulary, so 1.3 million of them are past the cap.
    const QByteArray line = "31415926535897932384626433832795028841971693993751058209749445\n";
    QByteArray big;
    while (big.size() < 1'300'000) big += line;
    fkvtest::writeFile(huge, big);
    auto capped = (*e)->open_document(huge.toStdString(), {}, {});
    QVERIFY(!capped.ok());
    QVERIFY2(capped.message().find("documents open up to 1,048,576 tokens") != std::string::npos,
             capped.message().c_str());
    QVERIFY2(refusalOf(**e, "memory-huge.txt").find("1,048,576") != std::string::npos,
             refusalOf(**e, "memory-huge.txt").c_str());
  }

 private:
  // The refusal the library row of the document whose file is named `name` keeps.
  static std::string refusalOf(fkv::Engine& e, const std::string& name) {
    auto lib = e.library();
    if (!lib.ok() || *lib == nullptr) qFatal("no library");
    auto docs = (*lib)->list_documents();
    if (!docs.ok()) qFatal("list_documents: %s", docs.message().c_str());
    for (const fkv::LibraryEntry& d : *docs)
      if (d.summary.info.path.find(name) != std::string::npos) return d.summary.refusal;
    qFatal("no document from a file named %s", name.c_str());
  }
};

QTEST_APPLESS_MAIN(TestContextMemory)
#include "test_context_memory.moc"
