#include "prefill_progress.h"

#include <QGridLayout>
#include <QLabel>
#include <QLocale>
#include <QProgressBar>
#include <QPushButton>
#include <algorithm>
#include <cmath>

namespace {

// The bar counts in at most this many steps: QProgressBar takes int, and page files can exceed 2 GiB.
constexpr int kBarSteps = 10000;

}  // namespace

PrefillProgress::PrefillProgress(QWidget* parent) : QWidget(parent) {
  m_title = new QLabel(this);
  // The status is the bar's own text: a label beside it would change width 20 times a second, and every change
  // re-lays out the whole window.
  m_bar = new QProgressBar(this);
  m_bar->setTextVisible(true);
  m_bar->setAlignment(Qt::AlignCenter);
  m_bar->setMinimumWidth(200);
  m_cancel = new QPushButton(tr("Cancel"), this);
  m_cancel->setToolTip(tr("Stop opening this document (Esc)"));
  // Two rows: the bar gets the pane's whole width for its text.
  auto* grid = new QGridLayout(this);
  grid->setContentsMargins(6, 4, 6, 4);
  grid->addWidget(m_title, 0, 0);
  grid->addWidget(m_cancel, 0, 1);
  grid->addWidget(m_bar, 1, 0, 1, 2);
  grid->setColumnStretch(0, 1);
  connect(m_cancel, &QPushButton::clicked, this, &PrefillProgress::cancelRequested);
  setAccessibleName(tr("Document open progress"));
  hide();
}

void PrefillProgress::start(const QString& title) {
  m_documentTitle = title;
  m_active = true;
  m_title->setText(tr("Opening %1").arg(title));
  m_bar->setRange(0, 0);  // busy until the first report says how much there is
  setStatus(tr("starting…"));
  m_cancel->setEnabled(true);
  m_cancelling = false;
  m_resumedAt = -1;
  show();
}

void PrefillProgress::startImport(const QString& fileName) {
  start(fileName);
  m_title->setText(tr("Importing %1").arg(fileName));
}

void PrefillProgress::setProgress(const OpenProgress& progress) {
  if (!m_active) start(m_documentTitle);
  // A prefill's first report says where it starts: past 0, it resumes what a stopped open saved.
  if (progress.stage == fkv::Stage::prefill && m_resumedAt < 0) m_resumedAt = progress.done;
  if (progress.total > 0) {
    const double share = std::clamp(double(progress.done) / double(progress.total), 0.0, 1.0);
    m_bar->setRange(0, kBarSteps);
    m_bar->setValue(int(std::lround(share * kBarSteps)));
  } else {
    m_bar->setRange(0, 0);
  }
  setStatus(m_cancelling ? tr("Cancelling…") : stageText(progress));
}

void PrefillProgress::cancelling() {
  if (!m_active) return;
  m_cancelling = true;
  m_cancel->setEnabled(false);
  setStatus(tr("Cancelling…"));
}

void PrefillProgress::finish() {
  m_active = false;
  m_cancelling = false;
  m_cancel->setEnabled(false);
  hide();
}

QString PrefillProgress::statusText() const { return m_bar->format(); }

void PrefillProgress::setStatus(const QString& text) {
  QString format = text;
  m_bar->setFormat(format.replace(QLatin1Char('%'), QStringLiteral("%%")));
}

QString PrefillProgress::durationText(double seconds) {
  if (!(seconds >= 0)) return QStringLiteral("?");
  const qint64 s = qint64(std::ceil(seconds));
  if (s < 60) return tr("%1 s").arg(s);
  if (s < 3600) return QStringLiteral("%1:%2").arg(s / 60).arg(s % 60, 2, 10, QLatin1Char('0'));
  return QStringLiteral("%1:%2:%3")
      .arg(s / 3600)
      .arg((s / 60) % 60, 2, 10, QLatin1Char('0'))
      .arg(s % 60, 2, 10, QLatin1Char('0'));
}

QString PrefillProgress::stageText(const OpenProgress& p) const {
  const QLocale locale;
  const auto bytes = [&locale](qint64 n) { return locale.formattedDataSize(n, 1); };
  switch (p.stage) {
    case fkv::Stage::prefill: {
      QString text = m_resumedAt > 0 ? tr("Prefill, resumed at %1: %2 / %3 tokens")
                                           .arg(locale.toString(m_resumedAt), locale.toString(p.done),
                                                locale.toString(p.total))
                                     : tr("Prefill: %1 / %2 tokens").arg(locale.toString(p.done), locale.toString(p.total));
      if (p.tokensPerSecond > 0) text += tr(" · %1 tokens/s").arg(locale.toString(p.tokensPerSecond, 'f', 0));
      if (p.secondsLeft >= 0) text += tr(" · %1 left").arg(durationText(p.secondsLeft));
      return text;
    }
    case fkv::Stage::load:
      return tr("Loading the saved KV cache: %1 / %2").arg(bytes(p.done), bytes(p.total));
    case fkv::Stage::save:
      return tr("Saving the KV cache: %1 / %2").arg(bytes(p.done), bytes(p.total));
    case fkv::Stage::tokenize:
      return tr("Tokenizing…");
    case fkv::Stage::ingest:
      if (p.total > 0)  // a PDF's pages
        return tr("Reading page %1 / %2").arg(locale.toString(p.done), locale.toString(p.total));
      return tr("Reading the document…");
    case fkv::Stage::prompt:
      return tr("Reading the question: %1 / %2 tokens").arg(locale.toString(p.done), locale.toString(p.total));
  }
  return {};
}
