#include "recall_timeline.h"

#include <QHelpEvent>
#include <QKeyEvent>
#include <QLocale>
#include <QPainter>
#include <QScrollBar>
#include <QToolTip>
#include <algorithm>

namespace {

const QColor kRecalled(0xe0, 0x6c, 0x1b);  // copied from the host tier this step: the expensive part
const QColor kFromFile(0x8e, 0x24, 0xaa);  // a tick over a step that read the saved KV from its page file
const QColor kReused(0x2f, 0x9e, 0x8f);    // retrieved and already in the working set
const QColor kResident(0xa9, 0xb8, 0xc9);  // sink + recent window (and retrieved pages not counted above)
const QColor kStall(0x7b, 0x4f, 0xc9);

constexpr int kMargin = 4;

QString bytesText(quint64 bytes) { return QLocale().formattedDataSize(qint64(bytes), 1); }

}  // namespace

RecallTimeline::RecallTimeline(QWidget* parent) : QAbstractScrollArea(parent) {
  setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOn);
  setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  setFocusPolicy(Qt::StrongFocus);
  viewport()->setMouseTracking(true);
  setAccessibleName(tr("Recall timeline"));
  connect(horizontalScrollBar(), &QScrollBar::valueChanged, this, &RecallTimeline::onScrolled);
}

void RecallTimeline::setModel(TimelineModel* model) {
  if (m_model) disconnect(m_model, nullptr, this, nullptr);
  m_model = model;
  if (m_model) {
    connect(m_model, &QAbstractItemModel::rowsRemoved, this, &RecallTimeline::onRowsRemoved);
    connect(m_model, &QAbstractItemModel::rowsInserted, this, &RecallTimeline::onRowsInserted);
    connect(m_model, &QAbstractItemModel::modelReset, this, &RecallTimeline::onReset);
    connect(m_model, &QAbstractItemModel::dataChanged, viewport(), qOverload<>(&QWidget::update));
  }
  onReset();
}

int RecallTimeline::stepCount() const { return m_model ? m_model->rowCount() : 0; }

StepRecord RecallTimeline::stepAt(int row) const { return m_model ? m_model->record(row) : StepRecord{}; }

void RecallTimeline::setScroll(int value) {
  m_adjusting = true;
  horizontalScrollBar()->setValue(value);
  m_adjusting = false;
}

void RecallTimeline::onRowsRemoved(const QModelIndex&, int first, int last) {
  // Keep the reader's steps under their eyes: the columns left of them left the model.
  const int shift = first == 0 ? (last + 1) * m_barWidth : 0;
  const int keep = horizontalScrollBar()->value() - shift;
  updateScrollRange();
  if (!m_follow) setScroll(std::max(0, keep));
  viewport()->update();
}

void RecallTimeline::onRowsInserted() {
  updateScrollRange();
  if (m_follow) setScroll(horizontalScrollBar()->maximum());
  viewport()->update();
}

void RecallTimeline::onReset() {
  m_follow = true;
  updateScrollRange();
  setScroll(horizontalScrollBar()->maximum());
  viewport()->update();
}

void RecallTimeline::setBarWidth(int px) {
  m_barWidth = std::max(2, px);
  updateScrollRange();
  if (m_follow) setScroll(horizontalScrollBar()->maximum());
  viewport()->update();
}

void RecallTimeline::updateScrollRange() {
  QScrollBar* bar = horizontalScrollBar();
  const int content = stepCount() * m_barWidth;
  const int view = viewport()->width();
  m_adjusting = true;
  bar->setRange(0, std::max(0, content - view));
  bar->setPageStep(std::max(1, view));
  bar->setSingleStep(m_barWidth);
  m_adjusting = false;
}

void RecallTimeline::onScrolled(int value) {
  if (!m_adjusting) m_follow = value >= horizontalScrollBar()->maximum();
  viewport()->update();
}

int RecallTimeline::firstVisibleIndex() const {
  if (stepCount() == 0) return -1;
  return std::min(stepCount() - 1, horizontalScrollBar()->value() / m_barWidth);
}

int RecallTimeline::indexAt(QPoint viewportPos) const {
  if (viewportPos.x() < 0) return -1;
  const int i = (viewportPos.x() + horizontalScrollBar()->value()) / m_barWidth;
  return i < stepCount() ? i : -1;
}

void RecallTimeline::scrollToIndex(int row) {
  if (row < 0 || row >= stepCount()) return;
  QScrollBar* bar = horizontalScrollBar();
  const int x = row * m_barWidth;
  if (x < bar->value() || x + m_barWidth > bar->value() + viewport()->width())
    bar->setValue(x - viewport()->width() / 2);
}

QString RecallTimeline::stepToolTip(int row) const {
  if (row < 0 || row >= stepCount()) return {};
  const StepRecord s = stepAt(row);
  QString fromFile;
  if (s.bytes_from_file > 0)
    fromFile = tr("\nRead from the saved KV's page file: %1 (decode waited %2 ms for it)")
                   .arg(bytesText(s.bytes_from_file))
                   .arg(s.file_wait_s * 1000.0, 0, 'f', 2);
  return tr("Step %1\nAttended: %2 KV pages (all layers)\n  recalled from host: %3 pages\n  reused in working set: %4 "
            "pages\nBytes recalled: %5\nHeads corrected: %6 of %7 KV heads checked\nStall: %8 ms")
      .arg(s.step)
      .arg(s.pages_selected)
      .arg(s.pages_recalled)
      .arg(s.pages_reused)
      .arg(bytesText(s.bytes_recalled))
      .arg(s.heads_corrected)
      .arg(s.heads_checked)
      .arg(QString::number(s.stallMs(), 'f', 2)) +
         fromFile;
}

QSize RecallTimeline::sizeHint() const { return QSize(480, 180); }

QSize RecallTimeline::minimumSizeHint() const { return QSize(160, 100); }

bool RecallTimeline::viewportEvent(QEvent* event) {
  if (event->type() == QEvent::ToolTip) {
    auto* help = static_cast<QHelpEvent*>(event);
    const int i = indexAt(help->pos());
    if (i >= 0)
      QToolTip::showText(help->globalPos(), stepToolTip(i), viewport());
    else
      QToolTip::hideText();
    return true;
  }
  return QAbstractScrollArea::viewportEvent(event);
}

void RecallTimeline::resizeEvent(QResizeEvent* event) {
  QAbstractScrollArea::resizeEvent(event);
  updateScrollRange();
  if (m_follow) setScroll(horizontalScrollBar()->maximum());
}

void RecallTimeline::keyPressEvent(QKeyEvent* event) {
  QScrollBar* bar = horizontalScrollBar();
  switch (event->key()) {
    case Qt::Key_Left:
      bar->triggerAction(QAbstractSlider::SliderSingleStepSub);
      break;
    case Qt::Key_Right:
      bar->triggerAction(QAbstractSlider::SliderSingleStepAdd);
      break;
    case Qt::Key_PageUp:
      bar->triggerAction(QAbstractSlider::SliderPageStepSub);
      break;
    case Qt::Key_PageDown:
      bar->triggerAction(QAbstractSlider::SliderPageStepAdd);
      break;
    case Qt::Key_Home:
      bar->setValue(bar->minimum());
      break;
    case Qt::Key_End:
      bar->setValue(bar->maximum());
      break;
    default:
      QAbstractScrollArea::keyPressEvent(event);
      return;
  }
  event->accept();
}

RecallTimeline::Layout RecallTimeline::layout() const {
  const QRect r = viewport()->rect();
  const int legendHeight = fontMetrics().height() + 6;
  const int body = std::max(0, r.height() - legendHeight - kMargin);
  const int stallHeight = body / 4;
  Layout l;
  l.legend = QRect(r.left(), r.top(), r.width(), legendHeight);
  l.pages = QRect(r.left(), l.legend.bottom() + 1, r.width(), body - stallHeight - kMargin);
  l.stall = QRect(r.left(), l.pages.bottom() + 1 + kMargin, r.width(), stallHeight);
  return l;
}

void RecallTimeline::paintEvent(QPaintEvent*) {
  QPainter p(viewport());
  p.fillRect(viewport()->rect(), palette().base());
  const Layout l = layout();
  paintLegend(p, l.legend);
  if (stepCount() == 0) {
    p.setPen(palette().color(QPalette::PlaceholderText));
    p.drawText(l.pages.united(l.stall), Qt::AlignCenter | Qt::TextWordWrap,
               tr("No decode steps yet: each answer adds one column per generated token."));
    return;
  }
  paintColumns(p, l);
}

void RecallTimeline::paintLegend(QPainter& p, const QRect& r) const {
  const QFontMetrics fm = fontMetrics();
  int x = r.left() + kMargin;
  const int box = fm.height() - 4;
  const std::pair<QColor, QString> items[] = {
      {kRecalled, tr("recalled")}, {kReused, tr("reused")},         {kResident, tr("sink + recent")},
      {kStall, tr("stall")},       {kFromFile, tr("from disk")}};
  for (const auto& [color, label] : items) {
    p.fillRect(QRect(x, r.top() + (r.height() - box) / 2, box, box), color);
    x += box + 3;
    p.setPen(palette().color(QPalette::Text));
    p.drawText(QRect(x, r.top(), fm.horizontalAdvance(label) + 1, r.height()), Qt::AlignVCenter, label);
    x += fm.horizontalAdvance(label) + 10;
  }
  if (stepCount() == 0) return;
  const QString last = lastStepText();
  if (x + fm.horizontalAdvance(last) + kMargin < r.right())
    p.drawText(r.adjusted(0, 0, -kMargin, 0), Qt::AlignRight | Qt::AlignVCenter, last);
}

QString RecallTimeline::lastStepText() const {
  if (stepCount() == 0) return {};
  const StepRecord s = stepAt(stepCount() - 1);
  return tr("step %1: %2 pages recalled, %3, %4 ms stall")
      .arg(s.step)
      .arg(s.pages_recalled)
      .arg(bytesText(s.bytes_recalled), QString::number(s.stallMs(), 'f', 2));
}

RecallTimeline::Scale RecallTimeline::visibleScale() const {
  Scale scale;
  const int offset = horizontalScrollBar()->value();
  scale.first = std::max(0, offset / m_barWidth);
  scale.last = std::min(stepCount() - 1, (offset + viewport()->width()) / m_barWidth);
  for (int i = scale.first; i <= scale.last; ++i) {
    const StepRecord s = m_model->record(i);
    scale.maxPages = std::max(scale.maxPages, s.pages_selected);
    scale.maxStallMs = std::max(scale.maxStallMs, s.stallMs());
  }
  return scale;
}

QString RecallTimeline::pagesScaleText() const {
  return tr("%1 KV pages/step").arg(QLocale().toString(qlonglong(visibleScale().maxPages)));
}

QString RecallTimeline::stallScaleText() const {
  return tr("%1 ms stall/step").arg(QString::number(visibleScale().maxStallMs, 'f', 2));
}

void RecallTimeline::paintColumns(QPainter& p, const Layout& l) const {
  const int offset = horizontalScrollBar()->value();
  const Scale view = visibleScale();
  const int first = view.first;
  const int last = view.last;
  const int64_t maxPages = view.maxPages;
  const double maxStall = view.maxStallMs;
  const int w = m_barWidth - 1;
  auto barHeight = [](int64_t value, int full, double max) { return int(std::lround(full * (value / max))); };
  for (int i = first; i <= last; ++i) {
    const StepRecord s = m_model->record(i);
    const int x = i * m_barWidth - offset;
    const int recalled = barHeight(s.pages_recalled, l.pages.height(), maxPages);
    const int reused = barHeight(s.pages_reused, l.pages.height(), maxPages);
    const int total = std::max(recalled + reused, barHeight(s.pages_selected, l.pages.height(), maxPages));
    const int base = l.pages.bottom() + 1;
    p.fillRect(QRect(x, base - total, w, total - recalled - reused), kResident);
    p.fillRect(QRect(x, base - recalled - reused, w, reused), kReused);
    p.fillRect(QRect(x, base - recalled, w, recalled), kRecalled);
    // Reads from the disk tier are marked apart from host recalls: a tick at the top of the step's column.
    if (s.bytes_from_file > 0) p.fillRect(QRect(x, l.pages.top(), w, 3), kFromFile);
    const int stall = int(std::lround(l.stall.height() * (s.stallMs() / maxStall)));
    p.fillRect(QRect(x, l.stall.bottom() + 1 - stall, w, stall), kStall);
  }
  p.setPen(palette().color(QPalette::PlaceholderText));
  p.drawLine(l.stall.left(), l.stall.top() - kMargin / 2, l.stall.right(), l.stall.top() - kMargin / 2);
  // The scales sit on a patch of the background, readable over the bars.
  auto scale = [&](const QRect& area, const QString& text) {
    const QRect box = fontMetrics().boundingRect(text).adjusted(-3, 0, 3, 0);
    const QRect at(area.right() - kMargin - box.width(), area.top(), box.width(), box.height());
    QColor back = palette().color(QPalette::Base);
    back.setAlphaF(0.8f);
    p.fillRect(at, back);
    p.setPen(palette().color(QPalette::Text));
    p.drawText(at, Qt::AlignCenter, text);
  };
  scale(l.pages, pagesScaleText());
  scale(l.stall, stallScaleText());
}
