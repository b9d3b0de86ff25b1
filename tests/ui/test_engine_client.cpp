// EngineClient driving a real engine on its worker thread, with small seeded models the test writes and generated
// text documents: load, open (progress, then prefill), ask (pieces, then the end), retrieval telemetry (<= 30 frames
// a second, sensible grids), stale answers dropped, reopen from the snapshot, import and delete, and a cancel in the
// middle of a long prefill. A watchdog timer on the GUI thread checks after every test that the event loop never
// stopped for more than 50 ms while the worker ran.
#include <QElapsedTimer>
#include <QEventLoop>
#include <QSignalSpy>
#include <QTest>
#include <QTimer>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>

#include "engine_client.h"
#include "model/synthetic.h"
#include "support/test_paths.h"
#include "support/test_pdf.h"
#include "support/watchdog.h"

namespace {

constexpr int kTimeoutMs = 60000;
constexpr qint64 kMaxGapMs = 50;


// Sentences that read like a document, ~17 tokens each with the Llama-2 vocabulary.
void writeDocument(const QString& path, int nSentences) {
  const char* things[] = {"lantern", "harbour", "orchard", "ledger", "bridge", "meadow", "tower", "river"};
  const char* verbs[] = {"keeps", "counts", "guards", "remembers", "lists", "describes"};
  std::ofstream out(path.toStdString());
  for (int i = 0; i < nSentences; ++i) {
    out << "Record " << i << " says the " << things[i % 8] << " " << verbs[i % 6] << " " << (i * 37) % 101 << " old "
        << things[(i * 3 + 1) % 8] << "s.";
    out << ((i % 6 == 5) ? "\n\n" : " ");
  }
}

fkv::GenerationOptions greedy(int maxTokens) {
  fkv::GenerationOptions o;
  o.max_tokens = maxTokens;
  o.temperature = 0.f;
  return o;
}

fkv::ModelOptions modelOptions(int nCtx) {
  fkv::ModelOptions o;
  o.n_ctx = nCtx;
  o.n_threads = 1;  // the other core stays with the GUI thread the watchdog measures
  o.chat_template = "llama2";
  return o;
}

// Runs a real event loop, as the app does, until pred() holds or the time is up. (QTest's qWait sleeps between
// rounds of events, which would blur what the watchdog measures.)
template <class Pred>
bool waitUntil(Pred pred, int timeoutMs = kTimeoutMs) {
  if (pred()) return true;
  QEventLoop loop;
  QTimer poll;
  poll.setInterval(2);
  QObject::connect(&poll, &QTimer::timeout, &loop, [&] {
    if (pred()) loop.quit();
  });
  QTimer::singleShot(timeoutMs, &loop, &QEventLoop::quit);
  poll.start();
  loop.exec();
  return pred();
}

QList<ChatTurn> question(const QString& text) { return {ChatTurn{QStringLiteral("user"), text}}; }

template <class T>
T arg(const QSignalSpy& spy, int call, int index) {
  return spy.at(call).at(index).value<T>();
}

}  // namespace

class TestEngineClient : public QObject {
  Q_OBJECT

 private:
  QString m_smallModel, m_bigModel, m_doc, m_longDoc, m_otherDoc;
  std::unique_ptr<EngineClient> m_client;
  fkvtest::Watchdog m_watchdog{10};  // ms between ticks
  qint64 m_docId = 0;
  int m_docTokens = 0;

  void waitIdle() {
    QVERIFY(waitUntil([&] { return !m_client->isBusy(); }));
  }

  void loadModel(const QString& path, int nCtx) {
    QSignalSpy loaded(m_client.get(), &EngineClient::modelLoaded);
    QSignalSpy failed(m_client.get(), &EngineClient::modelFailed);
    m_client->loadModel(path, modelOptions(nCtx));
    QVERIFY(waitUntil([&] { return loaded.count() + failed.count() > 0; }));
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(arg<QString>(failed, 0, 1)));
    waitIdle();
  }

  // Opens m_doc and expects it to open.
  void openHarbour(const QSignalSpy& opened, const QSignalSpy& failed) {
    const qsizetype nOpened = opened.count(), nFailed = failed.count();
    m_client->openDocument(m_doc);
    QVERIFY(waitUntil([&] { return opened.count() + failed.count() > nOpened + nFailed; }));
    if (failed.count() > nFailed) QFAIL(qPrintable(arg<QString>(failed, int(nFailed), 1)));
    QCOMPARE(arg<OpenedDocumentInfo>(opened, int(nOpened), 1).doc.title, std::string("harbour"));
    waitIdle();
  }

  static fkv::Status writeModel(const QString& path, int nLayers, int nEmbd, int nHeads, int nKvHeads) {
    fkv::SyntheticModelSpec spec;
    spec.vocab_path = fkvtest::llamaVocabPath().toStdString();
    spec.seed = 5;
    spec.n_layers = nLayers;
    spec.n_embd = nEmbd;
    spec.n_heads = nHeads;
    spec.n_kv_heads = nKvHeads;
    spec.n_ff = 2 * nEmbd;
    spec.tied_embeddings = true;
    return fkv::write_synthetic_model(spec, path.toStdString());
  }

 private slots:
  void initTestCase() {
    const QString dir = fkvtest::tempDir();
    m_smallModel = dir + QStringLiteral("/small.gguf");
    m_bigModel = dir + QStringLiteral("/deep.gguf");
    fkv::Status s = writeModel(m_smallModel, 2, 64, 4, 2);
    QVERIFY2(s.ok(), s.message().c_str());
    s = writeModel(m_bigModel, 8, 128, 8, 4);
    QVERIFY2(s.ok(), s.message().c_str());
    m_doc = dir + QStringLiteral("/harbour.txt");
    m_longDoc = dir + QStringLiteral("/long.txt");
    m_otherDoc = dir + QStringLiteral("/other.md");
    writeDocument(m_doc, 36);       // ~600 tokens: well past a 128-token retrieval budget
    writeDocument(m_longDoc, 200);  // ~3400 tokens: many prefill chunks on the deep model
    std::ofstream(m_otherDoc.toStdString()) << "# Other\n\nA second document, imported but not opened.\n";
    m_client = std::make_unique<EngineClient>(dir + QStringLiteral("/library/library.db"));
  }

  void init() { m_watchdog.restart(); }

  void cleanup() {
    m_watchdog.stop();
    QVERIFY2(m_watchdog.maxGap() <= kMaxGapMs,
             qPrintable(QStringLiteral("the GUI thread stalled for %1 ms (%2 ms on the wall clock)")
                            .arg(m_watchdog.maxGap())
                            .arg(m_watchdog.maxWallGap())));
  }

  void cleanupTestCase() { m_client.reset(); }  // cancels, stops and joins the worker thread

  void loadModelReportsTheModel() {
    QSignalSpy busy(m_client.get(), &EngineClient::busyChanged);
    QSignalSpy loaded(m_client.get(), &EngineClient::modelLoaded);
    QSignalSpy memory(m_client.get(), &EngineClient::memoryChanged);
    const quint64 id = m_client->loadModel(m_smallModel, modelOptions(2048));
    QVERIFY(m_client->isBusy());
    QVERIFY(waitUntil([&] { return loaded.count() == 1; }));
    waitIdle();
    QCOMPARE(arg<quint64>(loaded, 0, 0), id);
    const ModelSummary m = arg<ModelSummary>(loaded, 0, 1);
    QCOMPARE(m.name, QStringLiteral("synthetic"));
    QCOMPARE(m.nLayers, 2);
    QCOMPARE(m.nKvHeads, 2);
    QCOMPARE(m.nCtx, 2048);
    QCOMPARE(m.chatTemplate, QStringLiteral("llama2"));
    QVERIFY(m.backend.startsWith(QStringLiteral("CPU")));
    QVERIFY(m.kvBytesPerToken > 0);
    QVERIFY(m_client->hasModel());
    QCOMPARE(busy.count(), 2);
    QCOMPARE(arg<bool>(busy, 0, 0), true);
    QCOMPARE(arg<bool>(busy, 1, 0), false);
    QVERIFY(!memory.isEmpty());
    QCOMPARE(memory.last().at(0).value<MemoryUse>().budgetTokens, quint64(2048));  // 512 + 512 + 1024
  }

  void loadModelFailureKeepsTheModel() {
    QSignalSpy failed(m_client.get(), &EngineClient::modelFailed);
    m_client->loadModel(fkvtest::tempDir() + QStringLiteral("/missing.gguf"), modelOptions(2048));
    QVERIFY(waitUntil([&] { return failed.count() == 1; }));
    QVERIFY2(arg<QString>(failed, 0, 1).contains(QStringLiteral("missing.gguf")),
             qPrintable(arg<QString>(failed, 0, 1)));
    QVERIFY(m_client->hasModel());
    waitIdle();
  }

  void openDocumentPrefills() {
    QSignalSpy progress(m_client.get(), &EngineClient::openProgress);
    QSignalSpy opened(m_client.get(), &EngineClient::documentOpened);
    QSignalSpy failed(m_client.get(), &EngineClient::documentFailed);
    QSignalSpy library(m_client.get(), &EngineClient::libraryChanged);
    QSignalSpy memory(m_client.get(), &EngineClient::memoryChanged);
    qsizetype progressAtOpen = -1;  // progress reports seen when the document arrived
    const QMetaObject::Connection order =
        connect(m_client.get(), &EngineClient::documentOpened, this, [&] { progressAtOpen = progress.count(); });
    const quint64 id = m_client->openDocument(m_doc);
    QVERIFY(waitUntil([&] { return opened.count() + failed.count() > 0; }));
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(arg<QString>(failed, 0, 1)));
    waitIdle();
    QCOMPARE(arg<quint64>(opened, 0, 0), id);
    const OpenedDocumentInfo info = arg<OpenedDocumentInfo>(opened, 0, 1);
    QCOMPARE(info.doc.kv_source, fkv::KvSource::prefill);
    QVERIFY2(info.doc.save_error.empty(), info.doc.save_error.c_str());
    QVERIFY(info.doc.id > 0);
    QVERIFY2(info.doc.n_tokens > 500 && info.doc.n_tokens < 900, qPrintable(QString::number(info.doc.n_tokens)));
    QVERIFY(info.content);
    QVERIFY(info.content->text.find("Record 7 says the river") != std::string::npos);
    QVERIFY(!info.content->spans.empty());
    QCOMPARE(info.content->page_size, 32);
    m_docId = info.doc.id;
    m_docTokens = info.doc.n_tokens;

    // Progress came before the result, carried its id, and ended the prefill at total with a rate.
    QVERIFY(!progress.isEmpty());
    bool prefillDone = false;
    for (int i = 0; i < progress.count(); ++i) {
      QCOMPARE(arg<quint64>(progress, i, 0), id);
      const OpenProgress p = arg<OpenProgress>(progress, i, 1);
      QVERIFY(p.done <= p.total);
      if (p.stage == fkv::Stage::prefill && p.done == p.total) {
        prefillDone = true;
        QVERIFY(p.tokensPerSecond > 0);
        QCOMPARE(p.secondsLeft, 0.0);
      }
    }
    QVERIFY(prefillDone);
    disconnect(order);
    QCOMPARE(progressAtOpen, progress.count());  // none after the document
    QVERIFY(!library.isEmpty());
    const MemoryUse m = memory.last().at(0).value<MemoryUse>();
    QCOMPARE(m.nTokens, m_docTokens);
    QVERIFY(m.hostBytes > 0);
    QVERIFY(m.diskBytes > 0);  // the snapshot was saved
  }

  void askStreamsPiecesThenFinishes() {
    QSignalSpy pieces(m_client.get(), &EngineClient::answerPiece);
    QSignalSpy finished(m_client.get(), &EngineClient::answerFinished);
    QSignalSpy failed(m_client.get(), &EngineClient::answerFailed);
    qsizetype piecesAtEnd = -1;
    const QMetaObject::Connection order =
        connect(m_client.get(), &EngineClient::answerFinished, this, [&] { piecesAtEnd = pieces.count(); });
    const quint64 id = m_client->ask(question(QStringLiteral("What does the harbour keep?")), greedy(24));
    QVERIFY(waitUntil([&] { return finished.count() + failed.count() > 0; }));
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(arg<QString>(failed, 0, 1)));
    const AnswerStats stats = arg<AnswerStats>(finished, 0, 1);
    QCOMPARE(arg<quint64>(finished, 0, 0), id);
    QVERIFY(stats.nGenerated > 0);
    QVERIFY(stats.nCachedTokens >= m_docTokens);  // the document stayed in the context
    QVERIFY(!pieces.isEmpty());
    QString streamed;
    for (int i = 0; i < pieces.count(); ++i) {
      QCOMPARE(arg<quint64>(pieces, i, 0), id);
      streamed += arg<QString>(pieces, i, 1);
    }
    QCOMPARE(streamed, stats.text);
    waitIdle();
    disconnect(order);
    QCOMPARE(piecesAtEnd, pieces.count());  // every piece came before the end
  }

  void telemetryIsThrottledAndSensible() {
    fkv::RetrievalOptions r;
    r.policy = fkv::Policy::freekv;
    r.sink_tokens = 32;
    r.recent_tokens = 32;
    r.retrieved_tokens = 64;
    QSignalSpy applied(m_client.get(), &EngineClient::retrievalApplied);
    m_client->setRetrieval(r);
    QVERIFY(waitUntil([&] { return applied.count() == 1; }));
    QSignalSpy frames(m_client.get(), &EngineClient::telemetry);
    QSignalSpy finished(m_client.get(), &EngineClient::answerFinished);
    // Long enough to span several 1/30 s intervals even on a fast machine (a tiny model decodes thousands of tokens a
    // second); it may end by filling the context.
    m_client->ask(question(QStringLiteral("List every record about the tower.")), greedy(1000));
    QVERIFY(waitUntil([&] { return finished.count() == 1; }));
    waitIdle();
    const AnswerStats stats = arg<AnswerStats>(finished, 0, 1);
    QVERIFY2(stats.nGenerated > 200, qPrintable(stats.stopReason));
    QVERIFY(!frames.isEmpty());

    int nSteps = 0, nChecked = 0;
    qint64 previousStep = -1;
    bool sawRetrieval = false;
    const int nPages = (m_docTokens + stats.nPromptTokens + stats.nGenerated) / 32 + 2;
    for (int i = 0; i < frames.count(); ++i) {
      const TelemetryFrame f = frames.at(i).at(0).value<TelemetryFrame>();
      QCOMPARE(f.answerEnd, i == frames.count() - 1);  // the last frame is the flush, and only it
      if (i > 0 && !f.answerEnd) {                     // <= 30 a second: frames at least 1/30 s apart
        const qint64 gap = f.emittedMs - frames.at(i - 1).at(0).value<TelemetryFrame>().emittedMs;
        QVERIFY2(gap >= 33, qPrintable(QStringLiteral("frames %1 ms apart").arg(gap)));
      }
      QCOMPARE(f.policy, QStringLiteral("freekv"));
      QCOMPARE(f.nLayers, 2);
      QCOMPARE(f.nKvHeads, 2);
      QCOMPARE(f.correctedNow.size(), 4);
      QCOMPARE(f.cosineNow.size(), 4);
      QCOMPARE(f.correctionRate.size(), 4);
      for (int c = 0; c < 4; ++c) {
        QVERIFY(f.correctedNow[c] <= 1);
        QVERIFY(f.correctionRate[c] >= 0.f && f.correctionRate[c] <= 1.f);
        QVERIFY(std::isnan(f.cosineNow[c]) || std::abs(f.cosineNow[c]) <= 1.001f);
      }
      for (const StepRecord& s : f.newSteps) {
        QVERIFY(s.step > previousStep);
        previousStep = s.step;
        QVERIFY(s.pages_selected > 0 && s.pages_selected <= 2 * 2 * 5);  // per (layer, head): 4 budget pages (+1)
        nChecked += s.heads_checked;
        ++nSteps;
      }
      QCOMPARE(f.retrievedPages.size(), f.retrievedWeight.size());
      for (int k = 0; k < f.retrievedPages.size(); ++k) {
        QVERIFY(f.retrievedPages[k] >= 1 && f.retrievedPages[k] < nPages);  // never the sink page
        QVERIFY(f.retrievedWeight[k] > 0.f && f.retrievedWeight[k] <= 1.f);
        if (k > 0) QVERIFY(f.retrievedPages[k] > f.retrievedPages[k - 1]);
      }
      sawRetrieval = sawRetrieval || !f.retrievedPages.isEmpty();
    }
    QVERIFY2(nSteps >= stats.nGenerated - 2 && nSteps <= stats.nGenerated, qPrintable(QString::number(nSteps)));
    QVERIFY(nChecked > 0);  // freekv tested its heads' query cosine
    QVERIFY(sawRetrieval);
    const qint64 span =
        frames.last().at(0).value<TelemetryFrame>().emittedMs - frames.first().at(0).value<TelemetryFrame>().emittedMs;
    QVERIFY(frames.count() <= 2 + span / 33);  // regular frames >= 33 ms apart, plus the flush
    QVERIFY(frames.count() < nSteps);          // many steps to a frame
  }

  void telemetryOffSendsNothingOnResumes() {
    m_client->setTelemetryEnabled(false);
    QVERIFY(!m_client->telemetryEnabled());
    QSignalSpy frames(m_client.get(), &EngineClient::telemetry);
    QSignalSpy finished(m_client.get(), &EngineClient::answerFinished);
    m_client->ask(question(QStringLiteral("And the meadow?")), greedy(24));
    QVERIFY(waitUntil([&] { return finished.count() == 1; }));
    waitIdle();
    QCOMPARE(frames.count(), 0);
    m_client->setTelemetryEnabled(true);
    m_client->ask(question(QStringLiteral("And the orchard?")), greedy(24));
    QVERIFY(waitUntil([&] { return finished.count() == 2; }));
    waitIdle();
    QVERIFY(!frames.isEmpty());
    QVERIFY(frames.last().at(0).value<TelemetryFrame>().answerEnd);
  }

  void staleAnswersAreDropped() {
    QSignalSpy pieces(m_client.get(), &EngineClient::answerPiece);
    QSignalSpy finished(m_client.get(), &EngineClient::answerFinished);
    QSignalSpy failed(m_client.get(), &EngineClient::answerFailed);
    // The second question goes out as soon as the first answer's first piece arrives; pieces of the first already
    // on their way must not reach the GUI after that, nor its end.
    quint64 second = 0;
    const QMetaObject::Connection replacing =
        connect(m_client.get(), &EngineClient::answerPiece, this, [&](quint64, const QString&) {
          if (second == 0) second = m_client->ask(question(QStringLiteral("Just the bridge?")), greedy(8));
        });
    const quint64 first = m_client->ask(question(QStringLiteral("Tell me everything.")), greedy(400));
    QVERIFY(waitUntil([&] { return finished.count() + failed.count() > 0; }));
    waitIdle();
    disconnect(replacing);
    QVERIFY(second > first);
    QCOMPARE(failed.count(), 0);
    QCOMPARE(finished.count(), 1);  // the first answer's end never arrives
    QCOMPARE(arg<quint64>(finished, 0, 0), second);
    QCOMPARE(arg<quint64>(pieces, 0, 0), first);
    QString streamedSecond;
    for (int i = 1; i < pieces.count(); ++i) {
      QCOMPARE(arg<quint64>(pieces, i, 0), second);
      streamedSecond += arg<QString>(pieces, i, 1);
    }
    QCOMPARE(streamedSecond, arg<AnswerStats>(finished, 0, 1).text);
  }

  void reopenLoadsTheSnapshot() {
    QSignalSpy progress(m_client.get(), &EngineClient::openProgress);
    QSignalSpy opened(m_client.get(), &EngineClient::documentOpened);
    QSignalSpy failed(m_client.get(), &EngineClient::documentFailed);
    m_client->openDocument(m_doc);
    QVERIFY(waitUntil([&] { return opened.count() + failed.count() > 0; }));
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(arg<QString>(failed, 0, 1)));
    QCOMPARE(arg<OpenedDocumentInfo>(opened, 0, 1).doc.kv_source, fkv::KvSource::snapshot);
    m_client->openDocumentId(m_docId);
    QVERIFY(waitUntil([&] { return opened.count() + failed.count() > 1; }));
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(arg<QString>(failed, 0, 1)));
    const OpenedDocumentInfo byId = arg<OpenedDocumentInfo>(opened, 1, 1);
    QCOMPARE(byId.doc.kv_source, fkv::KvSource::snapshot);
    QCOMPARE(byId.doc.id, m_docId);
    QCOMPARE(byId.doc.n_tokens, m_docTokens);
    for (int i = 0; i < progress.count(); ++i)
      QVERIFY(arg<OpenProgress>(progress, i, 1).stage != fkv::Stage::prefill);  // no prefill the second time

    // Document options reach the worker: without the snapshot, the same document prefills again.
    fkv::DocumentOptions noSnapshot;
    noSnapshot.use_snapshot = false;
    m_client->setDocumentOptions(noSnapshot);
    m_client->openDocumentId(m_docId);
    QVERIFY(waitUntil([&] { return opened.count() + failed.count() > 2; }));
    QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(arg<QString>(failed, 0, 1)));
    QCOMPARE(arg<OpenedDocumentInfo>(opened, 2, 1).doc.kv_source, fkv::KvSource::prefill);
    m_client->setDocumentOptions(fkv::DocumentOptions{});
    waitIdle();
  }

  // A PDF's import reports its pages; the last report is its last page.
  void importReportsPdfPages() {
    const QString pdf = fkvtest::tempDir() + QStringLiteral("/pages.pdf");
    std::ofstream(pdf.toStdString(), std::ios::binary) << fkvtest::make_pdf({{"One"}, {"Two"}, {"Three"}, {"Four"}});
    QSignalSpy progress(m_client.get(), &EngineClient::importProgress);
    QSignalSpy imported(m_client.get(), &EngineClient::importFinished);
    const quint64 id = m_client->importDocuments({pdf});
    QVERIFY(waitUntil([&] { return imported.count() == 1; }));
    QCOMPARE(arg<QStringList>(imported, 0, 2), QStringList{});
    QVERIFY(!progress.isEmpty());
    const int last = int(progress.count()) - 1;
    QCOMPARE(arg<quint64>(progress, last, 0), id);
    QCOMPARE(arg<QString>(progress, last, 1), pdf);
    const OpenProgress p = arg<OpenProgress>(progress, last, 2);
    QCOMPARE(p.stage, fkv::Stage::ingest);
    QCOMPARE(p.done, qint64{4});
    QCOMPARE(p.total, qint64{4});
    m_client->deleteDocument(arg<QList<qint64>>(imported, 0, 1).front());
    waitIdle();
  }

  void importAndDelete() {
    QSignalSpy imported(m_client.get(), &EngineClient::importFinished);
    QSignalSpy library(m_client.get(), &EngineClient::libraryChanged);
    const QString missing = fkvtest::tempDir() + QStringLiteral("/nowhere.txt");
    const quint64 id = m_client->importDocuments({m_otherDoc, missing});
    QVERIFY(waitUntil([&] { return imported.count() == 1; }));
    QCOMPARE(arg<quint64>(imported, 0, 0), id);
    const QList<qint64> ids = arg<QList<qint64>>(imported, 0, 1);
    const QStringList errors = arg<QStringList>(imported, 0, 2);
    QCOMPARE(ids.size(), 1);
    QCOMPARE(errors.size(), 1);
    QVERIFY2(errors.front().contains(QStringLiteral("nowhere.txt")), qPrintable(errors.front()));
    QVERIFY(waitUntil([&] { return library.count() == 1; }));

    // Deleting the open document closes it.
    QSignalSpy deleted(m_client.get(), &EngineClient::documentDeleted);
    QSignalSpy closed(m_client.get(), &EngineClient::documentClosed);
    m_client->deleteDocument(ids.front());
    QVERIFY(waitUntil([&] { return deleted.count() == 1; }));
    QCOMPARE(closed.count(), 0);
    m_client->deleteDocument(m_docId);
    QVERIFY(waitUntil([&] { return deleted.count() == 2; }));
    QVERIFY(waitUntil([&] { return closed.count() == 1; }));
    QCOMPARE(arg<qint64>(closed, 0, 0), m_docId);
    QVERIFY(library.count() >= 3);
    QSignalSpy failed(m_client.get(), &EngineClient::answerFailed);
    m_client->ask(question(QStringLiteral("Still there?")), greedy(4));
    QVERIFY(waitUntil([&] { return failed.count() == 1; }));
    QVERIFY2(arg<QString>(failed, 0, 1).contains(QStringLiteral("no document is open")),
             qPrintable(arg<QString>(failed, 0, 1)));
    waitIdle();
  }

  void cancelDuringLongPrefill() {
    loadModel(m_bigModel, 4096);
    QSignalSpy opened(m_client.get(), &EngineClient::documentOpened);
    QSignalSpy failed(m_client.get(), &EngineClient::documentFailed);
    QSignalSpy closed(m_client.get(), &EngineClient::documentClosed);
    openHarbour(opened, failed);
    if (QTest::currentTestFailed()) return;
    QCOMPARE(opened.count(), 1);
    const qint64 docId = arg<OpenedDocumentInfo>(opened, 0, 1).doc.id;

    // A file that cannot be read fails. Whether the open document survives that is the engine's call; what the
    // client reports must agree with it: an answer comes exactly when no documentClosed came.
    m_client->openDocument(fkvtest::tempDir() + QStringLiteral("/unreadable.txt"));
    QVERIFY(waitUntil([&] { return failed.count() == 1; }));
    QVERIFY2(arg<QString>(failed, 0, 1).contains(QStringLiteral("unreadable.txt")),
             qPrintable(arg<QString>(failed, 0, 1)));
    waitIdle();
    QVERIFY(closed.count() <= 1);
    QSignalSpy answered(m_client.get(), &EngineClient::answerFinished);
    QSignalSpy refused(m_client.get(), &EngineClient::answerFailed);
    m_client->ask(question(QStringLiteral("Still open?")), greedy(2));
    QVERIFY(waitUntil([&] { return answered.count() + refused.count() == 1; }));
    QCOMPARE(answered.count(), 1 - closed.count());
    if (!closed.isEmpty()) {
      QCOMPARE(arg<qint64>(closed, 0, 0), docId);
      openHarbour(opened, failed);  // the cancel below needs an open document to drop
      if (QTest::currentTestFailed()) return;
    }
    const qsizetype nClosed = closed.count();
    const qsizetype nOpened = opened.count();

    // Cancelled as soon as the prefill reports progress: it stops within a chunk, and the open document is gone.
    int prefillReports = 0;
    const QMetaObject::Connection cancelling =
        connect(m_client.get(), &EngineClient::openProgress, this, [&](quint64, const OpenProgress& p) {
          if (p.stage == fkv::Stage::prefill && p.done > 0 && ++prefillReports == 1) m_client->cancel();
        });
    const quint64 id = m_client->openDocument(m_longDoc);
    QVERIFY(waitUntil([&] { return failed.count() == 2; }));
    waitIdle();
    disconnect(cancelling);
    QCOMPARE(opened.count(), nOpened);
    QCOMPARE(arg<quint64>(failed, 1, 0), id);
    QVERIFY2(arg<QString>(failed, 1, 1).contains(QStringLiteral("cancelled")), qPrintable(arg<QString>(failed, 1, 1)));
    QCOMPARE(prefillReports, 1);
    QCOMPARE(closed.count(), nClosed + 1);
    QCOMPARE(arg<qint64>(closed, int(nClosed), 0), docId);
    QVERIFY(m_watchdog.ticks() > 0);

    // The cancel does not stick: the next open runs to the end (from the snapshot the first open saved).
    openHarbour(opened, failed);
    if (QTest::currentTestFailed()) return;
    QCOMPARE(opened.count(), nOpened + 1);
    QCOMPARE(arg<OpenedDocumentInfo>(opened, opened.count() - 1, 1).doc.kv_source, fkv::KvSource::snapshot);
  }
};

QTEST_GUILESS_MAIN(TestEngineClient)
#include "test_engine_client.moc"
