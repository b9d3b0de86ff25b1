// Retrieval prefill (ContextParams::prefill, LONGDOCS.md): each prompt chunk of a global layer attends the prefill
// budget's sink, its local window and the pages its mean query scores highest. A prompt inside the budget, or a
// budget whose retrieved part holds every middle page, gives exactly the dense logits; a longer prompt gives other,
// deterministic logits (the chunks no longer see everything); the engine and the option names carry the mode.
#include <QtTest>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "fkv/engine.h"
#include "model/model.h"
#include "runtime/context.h"
#include "support/test_models.h"
#include "support/test_paths.h"

namespace {

using fkv::ContextParams;
using fkv::LogitsMode;

std::vector<int32_t> promptTokens(int n, int n_vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = 3 + (i * 7919 + (i / 13) * 31) % (n_vocab - 3);
  return t;
}

ContextParams contextParams(fkv::Prefill prefill, int retrieved_tokens) {
  ContextParams p;
  p.n_ctx = 2048;
  p.page_size = 16;
  p.n_batch = 32;
  p.n_threads = 2;
  p.kv_type = fkv::DType::F32;
  p.prefill = prefill;
  p.prefill_budget.sink_tokens = 32;
  p.prefill_budget.recent_tokens = 64;
  p.prefill_budget.retrieved_tokens = retrieved_tokens;
  return p;
}

// The logits after prefilling `tokens` in n_batch chunks: the last position's, or every position's.
std::vector<float> logitsOf(const fkv::Model& model, const ContextParams& p, const std::vector<int32_t>& tokens,
                            LogitsMode mode) {
  auto ctx = fkv::Context::create(model, p);
  if (!ctx.ok()) qFatal("Context::create: %s", ctx.message().c_str());
  const size_t rows = mode == LogitsMode::All ? tokens.size() : 1;
  std::vector<float> logits(rows * static_cast<size_t>(model.config().n_vocab));
  const fkv::Status s = (*ctx)->eval(tokens, mode, logits);
  if (!s.ok()) qFatal("eval: %s", s.message().c_str());
  return logits;
}
std::vector<float> lastLogits(const fkv::Model& model, const ContextParams& p, const std::vector<int32_t>& tokens) {
  return logitsOf(model, p, tokens, LogitsMode::Last);
}

int64_t exactTokens(const fkv::Model& model, const ContextParams& p) {
  auto ctx = fkv::Context::create(model, p);
  if (!ctx.ok()) qFatal("Context::create: %s", ctx.message().c_str());
  return (*ctx)->exact_prefill_tokens();
}

double maxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - double(b[i])));
  return d;
}

}  // namespace

class TestRetrievalPrefill : public QObject {
  Q_OBJECT
  std::unique_ptr<fkv::Model> m_model;
  QString m_path;

 private slots:
  void initTestCase() {
    m_path = fkvtest::tempDir() + QStringLiteral("/prefill.gguf");
    const QString err = fkvtest::writeModel(fkvtest::llamaSpec(31, 2048), m_path);
    QVERIFY2(err.isEmpty(), qPrintable(err));
    auto m = fkv::Model::load(m_path.toStdString());
    QVERIFY2(m.ok(), m.message().c_str());
    m_model = std::move(m).value();
  }

  void namesRoundTrip() {
    for (fkv::Prefill p : {fkv::Prefill::dense, fkv::Prefill::retrieval, fkv::Prefill::automatic}) {
      auto back = fkv::parse_prefill(fkv::prefill_name(p));
      QVERIFY(back.ok() && *back == p);
    }
    auto bad = fkv::parse_prefill("sparse");
    QVERIFY(!bad.ok() && bad.message().find("dense, retrieval or auto") != std::string::npos);
  }

  // Inside the budget (32 sink + 64 local + 32 chunk + 16 slack + 64 retrieved tokens), nothing is left out.
  void aPromptInsideTheBudgetIsExact() {
    const auto tokens = promptTokens(200, m_model->config().n_vocab);
    QCOMPARE(lastLogits(*m_model, contextParams(fkv::Prefill::retrieval, 64), tokens),
             lastLogits(*m_model, contextParams(fkv::Prefill::dense, 64), tokens));
  }

  // Past it, each chunk sees only its budget: the logits move away from dense, the same way every run. A retrieved
  // budget that holds every middle page brings back exactly the dense logits, so the difference is the selection.
  void aLongPromptAttendsItsBudget() {
    const auto tokens = promptTokens(1200, m_model->config().n_vocab);
    const auto dense = lastLogits(*m_model, contextParams(fkv::Prefill::dense, 64), tokens);
    const auto sparse = lastLogits(*m_model, contextParams(fkv::Prefill::retrieval, 64), tokens);
    for (float v : sparse) QVERIFY(std::isfinite(v));
    const double moved = maxAbsDiff(dense, sparse);
    QVERIFY2(moved > 1e-4, qPrintable(QString::number(moved)));
    QCOMPARE(lastLogits(*m_model, contextParams(fkv::Prefill::retrieval, 64), tokens), sparse);
    QCOMPARE(lastLogits(*m_model, contextParams(fkv::Prefill::retrieval, 2048), tokens), dense);
  }

  // auto: chunks ending within auto_dense_tokens attend densely, later ones their budget. A prompt within it is
  // exactly dense; a longer one has dense's logits at every position up to it and its own past it, which are not
  // retrieval's either (retrieval left pages out from its budget's end on).
  void autoIsDenseUpToItsLengthThenRetrieval() {
    const auto tokens = promptTokens(1200, m_model->config().n_vocab);
    const size_t nv = static_cast<size_t>(m_model->config().n_vocab);
    ContextParams whole = contextParams(fkv::Prefill::automatic, 64);
    whole.auto_dense_tokens = 1200;
    const auto dense = logitsOf(*m_model, contextParams(fkv::Prefill::dense, 64), tokens, LogitsMode::All);
    QCOMPARE(logitsOf(*m_model, whole, tokens, LogitsMode::All), dense);

    ContextParams part = contextParams(fkv::Prefill::automatic, 64);
    part.auto_dense_tokens = 640;  // 20 chunks of 32
    const auto mixed = logitsOf(*m_model, part, tokens, LogitsMode::All);
    const auto retrieval = logitsOf(*m_model, contextParams(fkv::Prefill::retrieval, 64), tokens, LogitsMode::All);
    const auto rows = [&](const std::vector<float>& v, size_t from, size_t to) {
      return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(from * nv),
                                v.begin() + static_cast<std::ptrdiff_t>(to * nv));
    };
    QCOMPARE(rows(mixed, 0, 640), rows(dense, 0, 640));
    const double from_dense = maxAbsDiff(rows(mixed, 640, 1200), rows(dense, 640, 1200));
    const double from_retrieval = maxAbsDiff(rows(mixed, 640, 1200), rows(retrieval, 640, 1200));
    QVERIFY2(from_dense > 1e-4 && from_retrieval > 1e-4,
             qPrintable(QStringLiteral("%1 %2").arg(from_dense).arg(from_retrieval)));

    // What the engine keys a snapshot's exactness on.
    QCOMPARE(exactTokens(*m_model, part), int64_t{640});
    QCOMPARE(exactTokens(*m_model, contextParams(fkv::Prefill::dense, 64)), std::numeric_limits<int64_t>::max());
    QCOMPARE(exactTokens(*m_model, contextParams(fkv::Prefill::retrieval, 64)), int64_t{32 + 64 + 32 + 16 + 64});
  }

  // Through the public API: a document opens and is asked about with retrieval prefill.
  void theEngineTakesTheMode() {
    auto e = fkv::Engine::create({});
    QVERIFY2(e.ok(), e.message().c_str());
    fkv::ModelOptions mo;
    mo.n_ctx = 2048;
    mo.n_threads = 2;
    mo.prefill = fkv::Prefill::retrieval;
    QVERIFY((*e)->load_model(m_path.toStdString(), mo).ok());
    const QString doc = fkvtest::tempDir() + QStringLiteral("/prefill-doc.txt");
    QByteArray text;
    for (int i = 0; i < 120; ++i) text += "Line " + QByteArray::number(i) + " of the log records the tide. ";
    fkvtest::writeFile(doc, text);
    auto opened = (*e)->open_document(doc.toStdString(), {}, {});
    QVERIFY2(opened.ok(), opened.message().c_str());
    QVERIFY(opened->n_tokens > 1000);
    fkv::GenerationOptions g;
    g.temperature = 0;
    g.max_tokens = 4;
    auto r = (*e)->ask({{"user", "What does line 7 record?"}}, g, {});
    QVERIFY2(r.ok(), r.message().c_str());
    QVERIFY(r->n_generated >= 1);
  }

  // A snapshot made by a prefill that left pages out is not taken by a dense open of the same document, and the
  // reverse: each mode keeps its own saved KV, and reopens from it.
  void eachPrefillKeepsItsOwnSnapshot() {
    fkv::EngineOptions eo;
    eo.library_path = (fkvtest::tempDir() + QStringLiteral("/prefill-lib")).toStdString();
    const QString doc = fkvtest::tempDir() + QStringLiteral("/prefill-snap.txt");
    QByteArray text;
    for (int i = 0; i < 500; ++i) text += "Entry " + QByteArray::number(i) + " of the register names a ship. ";
    fkvtest::writeFile(doc, text);
    const auto openWith = [&](fkv::Prefill mode) {
      auto e = fkv::Engine::create(eo);
      if (!e.ok()) qFatal("Engine::create: %s", e.message().c_str());
      fkv::ModelOptions mo;
      mo.n_ctx = 16384;
      mo.n_threads = 2;
      mo.prefill = mode;
      if (!(*e)->load_model(m_path.toStdString(), mo).ok()) qFatal("load_model");
      auto opened = (*e)->open_document(doc.toStdString(), {}, {});
      if (!opened.ok()) qFatal("open_document: %s", opened.message().c_str());
      return std::move(opened).value();
    };
    const fkv::OpenedDocument first = openWith(fkv::Prefill::retrieval);
    // Past the default retrieval budget (4,384 tokens with pages of 32), within auto's dense part.
    QVERIFY2(first.n_tokens > 4600 && first.n_tokens < fkv::kAutoDenseTokens,
             qPrintable(QString::number(first.n_tokens)));
    QCOMPARE(first.kv_source, fkv::KvSource::prefill);
    QCOMPARE(openWith(fkv::Prefill::dense).kv_source, fkv::KvSource::prefill);
    QCOMPARE(openWith(fkv::Prefill::retrieval).kv_source, fkv::KvSource::snapshot);
    QCOMPARE(openWith(fkv::Prefill::dense).kv_source, fkv::KvSource::snapshot);
    // Within auto's dense part the document's KV is dense's, saved once.
    QCOMPARE(openWith(fkv::Prefill::automatic).kv_source, fkv::KvSource::snapshot);
  }
};

QTEST_APPLESS_MAIN(TestRetrievalPrefill)
#include "test_retrieval_prefill.moc"
