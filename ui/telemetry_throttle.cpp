#include "telemetry_throttle.h"

#include <algorithm>
#include <chrono>
#include <limits>

namespace {

// More steps than this between two frames means the GUI stopped taking them; keep the newest.
constexpr int kMaxPendingSteps = 4096;

}  // namespace

TelemetryThrottle::TelemetryThrottle(QObject* parent) : QObject(parent) { m_clock.start(); }

void TelemetryThrottle::configure(int nLayers, int nKvHeads, int pageSize, int sinkTokens, int recentTokens) {
  m_nLayers = std::max(nLayers, 0);
  m_nKvHeads = std::max(nKvHeads, 0);
  m_pageSize = std::max(pageSize, 1);
  m_sinkPages = std::max(sinkTokens, 0) / m_pageSize;
  m_recentPages = std::max(recentTokens / m_pageSize, 1);
  const qsizetype n = qsizetype(m_nLayers) * m_nKvHeads;
  m_corrected = QVector<quint8>(n, 0);
  m_cosine = QVector<float>(n, std::numeric_limits<float>::quiet_NaN());
  m_rate = QVector<float>(n, 0.f);
  m_pageCount.clear();
  m_lastPages.clear();
  m_lastWeights.clear();
  m_newSteps.clear();
  m_step = -1;
  m_lastStep = -1;
  m_stepsSinceFlush = false;
  m_policy.reset();
}

void TelemetryThrottle::on_layer_step(const fkv::LayerStepEvent& e) {
  if (!m_enabled.load(std::memory_order_relaxed)) return;
  if (e.layer < 0 || e.layer >= m_nLayers || e.n_kv_heads != m_nKvHeads) return;  // not the configured model
  if (e.step != m_step) {
    if (m_step >= 0) endStep();  // a step cut short (cancelled) still counts
    beginStep(e.step);
  }
  m_policy = e.policy;
  m_current += e;
  recordGrid(e);
  countRetrieved(e);
  if (e.layer == m_nLayers - 1) {
    endStep();
    if (m_clock.nsecsElapsed() - m_lastEmitNs >= kMinIntervalNs) emitFrame(false);
  }
}

void TelemetryThrottle::flush() {
  if (m_step >= 0) endStep();
  if (m_stepsSinceFlush) emitFrame(true);
  m_stepsSinceFlush = false;
}

void TelemetryThrottle::beginStep(qint64 step) {
  m_step = step;
  m_current = StepRecord{};
  m_current.step = step;
  std::fill(m_pageCount.begin(), m_pageCount.end(), 0);
}

// The step's record goes to the next frame, and its retrieved pages become "the last step's".
void TelemetryThrottle::endStep() {
  if (m_newSteps.size() >= kMaxPendingSteps) m_newSteps.removeFirst();
  m_newSteps.append(m_current);
  m_lastStep = m_step;
  m_step = -1;
  m_stepsSinceFlush = true;
  m_lastPages.clear();
  m_lastWeights.clear();
  const float nPairs = float(std::max(m_nLayers * m_nKvHeads, 1));
  for (int p = 0; p < m_pageCount.size(); ++p) {
    if (m_pageCount[p] == 0) continue;
    m_lastPages.append(p);
    m_lastWeights.append(float(m_pageCount[p]) / nPairs);
  }
}

// Per head of this layer: corrected now, the query cosine, and the decaying share of checked steps corrected.
void TelemetryThrottle::recordGrid(const fkv::LayerStepEvent& e) {
  const qsizetype row = qsizetype(e.layer) * m_nKvHeads;
  for (int h = 0; h < m_nKvHeads; ++h) {
    const qsizetype i = row + h;
    if (e.cosine == nullptr) {
      m_corrected[i] = 0;
      m_cosine[i] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    const bool corrected = e.corrected != nullptr && e.corrected[h] != 0;
    m_corrected[i] = corrected ? 1 : 0;
    m_cosine[i] = e.cosine[h];
    m_rate[i] += kRateDecay * ((corrected ? 1.f : 0.f) - m_rate[i]);
  }
}

void TelemetryThrottle::countRetrieved(const fkv::LayerStepEvent& e) {
  const int end = fkv::retrievable_end(e, m_recentPages);
  if (end <= m_sinkPages) return;
  if (m_pageCount.size() < end) m_pageCount.resize(end, 0);
  fkv::for_each_selected_page(e, m_sinkPages, end, [this](int p) { ++m_pageCount[p]; });
}

void TelemetryThrottle::emitFrame(bool answerEnd) {
  TelemetryFrame f;
  f.policy = m_policy ? QString::fromLatin1(fkv::policy_name(*m_policy)) : QString();
  f.nLayers = m_nLayers;
  f.nKvHeads = m_nKvHeads;
  f.lastStep = m_lastStep;
  f.correctedNow = m_corrected;
  f.cosineNow = m_cosine;
  f.correctionRate = m_rate;
  f.newSteps = std::move(m_newSteps);
  m_newSteps = {};
  f.retrievedPages = m_lastPages;
  f.retrievedWeight = m_lastWeights;
  f.pageSize = m_pageSize;
  f.answerEnd = answerEnd;
  m_lastEmitNs = m_clock.nsecsElapsed();
  f.emittedMs =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  emit frameReady(f);
}

bool ProgressThrottle::accept(const fkv::Progress& p, OpenProgress& out) {
  const qint64 now = m_clock.nsecsElapsed();
  const fkv::Stage stage = p.stage;
  const bool newStage = stage != m_stage;
  if (newStage) {
    m_stage = stage;
    m_stageStartNs = now;
    m_stageStartDone = p.done;
    m_eta.reset();
  }
  if (stage == fkv::Stage::prefill) m_eta.add(p.done, double(now - m_stageStartNs) * 1e-9);
  const bool last = p.total > 0 && p.done >= p.total;
  if (!newStage && !last && now - m_lastEmitNs < kMinIntervalNs) return false;
  m_lastEmitNs = now;
  out = OpenProgress{};
  out.stage = stage;
  out.done = p.done;
  out.total = p.total;
  const double seconds = double(now - m_stageStartNs) * 1e-9;
  const double rate = seconds > 0 ? double(p.done - m_stageStartDone) / seconds : 0.0;
  if (stage == fkv::Stage::prefill) out.tokensPerSecond = rate;
  const double modelled = stage == fkv::Stage::prefill ? m_eta.seconds_left(p.total) : -1;
  if (last) {
    out.secondsLeft = 0;
  } else if (modelled >= 0) {
    out.secondsLeft = modelled;
  } else if (rate > 0 && p.total > 0) {
    out.secondsLeft = double(p.total - p.done) / rate;
  }
  return true;
}
