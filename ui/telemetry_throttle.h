// Rate limits between the engine worker and the GUI. The engine reports retrieval per decode step and layer (hundreds
// to thousands of events a second) and prefill progress per chunk; the panels need neither more than a screen can
// show. TelemetryThrottle folds the events into TelemetryFrames on the worker thread and emits at most 30 a second;
// ProgressThrottle lets through about 20 progress reports a second with a rate and a time left.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QVector>
#include <atomic>
#include <optional>

#include "client_types.h"
#include "fkv/events.h"
#include "fkv/prefill_eta.h"
#include "fkv/types.h"

class TelemetryThrottle : public QObject, public fkv::TelemetryObserver {
  Q_OBJECT

 public:
  static constexpr qint64 kMinIntervalNs = 1'000'000'000 / 30 + 1;  // <= 30 frames a second
  // Weight of the newest checked step in the decaying correction rate (about the last 10 steps count).
  static constexpr float kRateDecay = 0.1f;

  explicit TelemetryThrottle(QObject* parent = nullptr);

  // Sizes the grids for a model and tells which pages are always attended (sink, recent window), so the rest of a
  // selection counts as retrieved. Forgets everything gathered so far.
  void configure(int nLayers, int nKvHeads, int pageSize, int sinkTokens, int recentTokens);
  // Events arriving while disabled are ignored at once (the worker also removes the observer between requests).
  void setEnabled(bool enabled) { m_enabled.store(enabled); }
  bool isEnabled() const { return m_enabled.load(); }

  // Called by the engine on the worker thread, per decode step and layer.
  void on_layer_step(const fkv::LayerStepEvent& e) override;
  // The end of an answer: emits a frame marked answerEnd with whatever arrived since the last frame (perhaps no new
  // step, but the final grids); nothing if no step arrived since the last flush.
  void flush();

 signals:
  void frameReady(const TelemetryFrame& frame);

 private:
  void beginStep(qint64 step);
  void endStep();
  void recordGrid(const fkv::LayerStepEvent& e);
  void countRetrieved(const fkv::LayerStepEvent& e);
  void emitFrame(bool answerEnd);

  std::atomic<bool> m_enabled{true};
  int m_nLayers = 0;
  int m_nKvHeads = 0;
  int m_pageSize = 32;
  int m_sinkPages = 0;
  int m_recentPages = 1;
  std::optional<fkv::Policy> m_policy;  // of the last event; none since configure()
  qint64 m_step = -1;      // the step being gathered; -1: none
  qint64 m_lastStep = -1;  // the last completed step
  StepRecord m_current;
  QVector<quint8> m_corrected;   // (nLayers * nKvHeads)
  QVector<float> m_cosine;       // (nLayers * nKvHeads)
  QVector<float> m_rate;         // (nLayers * nKvHeads)
  QVector<int> m_pageCount;      // (pages seen so far) (layer, head) pairs that retrieved each page in the current step
  QVector<int> m_lastPages;      // pages retrieved in the last completed step, ascending
  QVector<float> m_lastWeights;  // (m_lastPages.size())
  QVector<StepRecord> m_newSteps;  // completed since the last frame
  bool m_stepsSinceFlush = false;
  QElapsedTimer m_clock;
  qint64 m_lastEmitNs = -kMinIntervalNs;
};

// Decides which prefill/load/save progress reports to pass on: a stage's first and last, and otherwise one per
// ~50 ms. Adds the rate and the time left of the stage.
class ProgressThrottle {
 public:
  static constexpr qint64 kMinIntervalNs = 50'000'000;  // ~20 a second

  ProgressThrottle() { m_clock.start(); }
  // Returns true (and fills `out`) when this report should be sent.
  bool accept(const fkv::Progress& p, OpenProgress& out);

 private:
  std::optional<fkv::Stage> m_stage;  // of the last report; none before the first
  fkv::PrefillEta m_eta;              // the prefill's time left, from every report (not only those sent on)
  qint64 m_stageStartNs = 0;
  qint64 m_stageStartDone = 0;
  qint64 m_lastEmitNs = 0;
  QElapsedTimer m_clock;
};
