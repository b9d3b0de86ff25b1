// The throttles between the engine worker and the GUI, fed by hand: TelemetryThrottle folds per-layer events into
// frames (step records summed over layers, the heads' grids, the retrieved pages and their weights, the decaying
// correction rate), sends at most one frame per 1/30 s and always flushes the end of an answer; ProgressThrottle
// passes a stage's first and last report and about 20 a second in between, with a rate and a time left.
#include <QFile>
#include <QSignalSpy>
#include <QTest>

#include <cmath>
#include <vector>

#include "fkv/prefill_eta.h"
#include "support/test_paths.h"
#include "telemetry_throttle.h"

namespace {

// One layer's event for a 2-head model; the selections are head 0: {0, 3, 5, 9}, head 1: {0, 4, 5, 9}.
struct FakeLayer {
  std::vector<int32_t> indptr{0, 4, 8};
  std::vector<int32_t> pages{0, 3, 5, 9, 0, 4, 5, 9};
  std::vector<float> cosine{0.95f, 0.5f};
  std::vector<uint8_t> corrected{0, 1};

  fkv::LayerStepEvent event(qint64 step, int layer, bool checked) const {
    fkv::LayerStepEvent e;
    e.step = step;
    e.layer = layer;
    e.policy = fkv::Policy::freekv;
    e.n_kv_heads = 2;
    e.sel_indptr = indptr.data();
    e.sel_pages = pages.data();
    e.pages_selected = indptr.back();  // as the engine counts it: the CSR's length
    e.pages_reused = 3;
    e.pages_recalled = 1;
    e.bytes_recalled = 8192;
    if (checked) {
      e.heads_checked = 2;
      e.heads_corrected = 1;
      e.cosine = cosine.data();
      e.corrected = corrected.data();
    }
    e.select_s = 0.001;
    e.wait_s = 0.0005;
    return e;
  }
};

TelemetryFrame frameAt(const QSignalSpy& spy, int i) { return spy.at(i).at(0).value<TelemetryFrame>(); }

}  // namespace

class TestTelemetryThrottle : public QObject {
  Q_OBJECT

 private:
  FakeLayer m_layer;

  // Layer 0 is checked (cosine, corrections), layer 1 is not.
  void feedStep(TelemetryThrottle& t, qint64 step) {
    t.on_layer_step(m_layer.event(step, 0, true));
    t.on_layer_step(m_layer.event(step, 1, false));
  }

 private slots:
  void initTestCase() { registerClientTypes(); }

  void firstStepIsSentAtOnceThenThrottled() {
    TelemetryThrottle t;
    t.configure(2, 2, 32, 32, 32);
    QSignalSpy frames(&t, &TelemetryThrottle::frameReady);
    feedStep(t, 0);
    QCOMPARE(frames.count(), 1);
    for (qint64 s = 1; s <= 5; ++s) feedStep(t, s);  // microseconds apart: no frame
    QCOMPARE(frames.count(), 1);
    t.flush();
    QCOMPARE(frames.count(), 2);
    const TelemetryFrame last = frameAt(frames, 1);
    QVERIFY(last.answerEnd);
    QVERIFY(!frameAt(frames, 0).answerEnd);
    QCOMPARE(last.newSteps.size(), 5);
    QCOMPARE(last.newSteps.front().step, 1);
    QCOMPARE(last.newSteps.back().step, 5);
    QCOMPARE(last.lastStep, 5);
    t.flush();  // nothing new: no frame
    QCOMPARE(frames.count(), 2);
    QTest::qSleep(40);
    feedStep(t, 6);
    QCOMPARE(frames.count(), 3);
    QVERIFY(frameAt(frames, 2).emittedMs - frameAt(frames, 1).emittedMs >= 33);
  }

  void frameSumsLayersAndMapsTheGrids() {
    TelemetryThrottle t;
    t.configure(2, 2, 32, 32, 32);
    QSignalSpy frames(&t, &TelemetryThrottle::frameReady);
    feedStep(t, 0);
    QCOMPARE(frames.count(), 1);
    const TelemetryFrame f = frameAt(frames, 0);
    QCOMPARE(f.policy, QStringLiteral("freekv"));
    QCOMPARE(f.nLayers, 2);
    QCOMPARE(f.nKvHeads, 2);
    QCOMPARE(f.pageSize, 32);
    QCOMPARE(f.newSteps.size(), 1);
    const StepRecord& s = f.newSteps.front();
    QCOMPARE(s.pages_selected, 16);
    QCOMPARE(s.pages_reused, 6);
    QCOMPARE(s.pages_recalled, 2);
    QCOMPARE(s.bytes_recalled, quint64(16384));
    QCOMPARE(s.heads_checked, 2);
    QCOMPARE(s.heads_corrected, 1);
    QVERIFY(std::abs(s.stallMs() - 3.0) < 1e-9);
    // Grids, (layer, head) row-major: layer 0 was checked, layer 1 was not.
    QCOMPARE(f.correctedNow, (QVector<quint8>{0, 1, 0, 0}));
    QCOMPARE(f.cosineNow[0], 0.95f);
    QCOMPARE(f.cosineNow[1], 0.5f);
    QVERIFY(std::isnan(f.cosineNow[2]) && std::isnan(f.cosineNow[3]));
    QCOMPARE(f.correctionRate[0], 0.f);
    QCOMPARE(f.correctionRate[1], TelemetryThrottle::kRateDecay);
    QCOMPARE(f.correctionRate[3], 0.f);
    // Page 0 is the sink and page 9 the recent window; between them 3 and 4 were chosen by one head of each layer,
    // page 5 by every (layer, head) pair.
    QCOMPARE(f.retrievedPages, (QVector<int>{3, 4, 5}));
    QCOMPARE(f.retrievedWeight, (QVector<float>{0.5f, 0.5f, 1.f}));
  }

  void correctionRateDecays() {
    TelemetryThrottle t;
    t.configure(2, 2, 32, 32, 32);
    QSignalSpy frames(&t, &TelemetryThrottle::frameReady);
    for (qint64 s = 0; s < 30; ++s) feedStep(t, s);
    t.flush();
    const TelemetryFrame f = frameAt(frames, frames.count() - 1);
    const float expected = 1.f - std::pow(1.f - TelemetryThrottle::kRateDecay, 30.f);  // corrected every step
    QVERIFY(std::abs(f.correctionRate[1] - expected) < 1e-4f);
    QCOMPARE(f.correctionRate[0], 0.f);  // checked every step, never corrected
    int nSteps = 0;
    for (int i = 0; i < frames.count(); ++i) nSteps += int(frameAt(frames, i).newSteps.size());
    QCOMPARE(nSteps, 30);  // every step in exactly one frame
  }

  void disabledOrForeignEventsAreIgnored() {
    TelemetryThrottle t;
    t.configure(2, 2, 32, 32, 32);
    QSignalSpy frames(&t, &TelemetryThrottle::frameReady);
    t.setEnabled(false);
    feedStep(t, 0);
    t.flush();
    QCOMPARE(frames.count(), 0);
    t.setEnabled(true);
    fkv::LayerStepEvent other = m_layer.event(1, 5, false);  // a layer this model does not have
    t.on_layer_step(other);
    t.flush();
    QCOMPARE(frames.count(), 0);
  }

  void progressPassesStageEndsAndPacesTheRest() {
    ProgressThrottle p;
    OpenProgress out;
    QVERIFY(p.accept({fkv::Stage::tokenize, 0, 100}, out));
    QCOMPARE(out.stage, fkv::Stage::tokenize);
    QVERIFY(p.accept({fkv::Stage::prefill, 0, 1000}, out));  // a new stage
    QCOMPARE(out.secondsLeft, -1.0);
    QVERIFY(!p.accept({fkv::Stage::prefill, 100, 1000}, out));  // too soon
    QTest::qSleep(60);
    QVERIFY(p.accept({fkv::Stage::prefill, 500, 1000}, out));
    QCOMPARE(out.done, 500);
    QCOMPARE(out.total, 1000);
    QVERIFY(out.tokensPerSecond > 0);
    QVERIFY(out.secondsLeft > 0);
    QVERIFY(p.accept({fkv::Stage::prefill, 1000, 1000}, out));  // the last is never dropped
    QCOMPARE(out.secondsLeft, 0.0);
    QVERIFY(p.accept({fkv::Stage::save, 0, 4096}, out));
    QCOMPARE(out.tokensPerSecond, 0.0);  // bytes, not tokens
  }

  // The time left, on a prefill recorded from the engine (tests/data/prefill-trace-*.csv: tokens done and seconds at
  // each chunk). From 20% done on, the cost model's estimate is within 25% of the time that was actually left, where
  // the average rate promises too little as the context grows.
  void prefillEtaHoldsOnARecordedRun() {
    QFile f(fkvtest::testDataPath(QStringLiteral("prefill-trace-gemma3-270m.csv")));
    QVERIFY(f.open(QIODevice::ReadOnly));
    struct Point {
      qint64 done, total;
      double seconds;
    };
    QList<Point> trace;
    for (const QByteArray& line : f.readAll().split('\n')) {
      const QList<QByteArray> cells = line.trimmed().split(',');
      bool ok = false;
      if (cells.size() == 3 && (cells[0].toLongLong(&ok), ok))
        trace.append({cells[0].toLongLong(), cells[1].toLongLong(), cells[2].toDouble()});
    }
    QVERIFY(trace.size() > 20);
    const qint64 total = trace.back().total;
    const double end = trace.back().seconds;
    fkv::PrefillEta eta;
    int checked = 0, linearTooLow = 0;
    for (const Point& p : trace) {
      eta.add(p.done, p.seconds);
      if (p.done < total / 5 || p.done >= total) continue;
      const double actual = end - p.seconds;
      const double modelled = eta.seconds_left(total);
      QVERIFY2(std::abs(modelled - actual) <= 0.25 * actual,
               qPrintable(QString("at %1 of %2 tokens: %3 s estimated, %4 s left")
                              .arg(p.done)
                              .arg(total)
                              .arg(modelled)
                              .arg(actual)));
      const double linear = double(total - p.done) * p.seconds / double(p.done - trace.front().done);
      if (linear < 0.9 * actual) ++linearTooLow;
      ++checked;
    }
    QVERIFY(checked > 10);
    QVERIFY2(linearTooLow > checked / 2, "the recorded run should be one where the average rate misleads");
    QVERIFY(fkv::PrefillEta{}.seconds_left(total) < 0);  // nothing to go on yet
  }
};

QTEST_GUILESS_MAIN(TestTelemetryThrottle)
#include "test_telemetry_throttle.moc"
