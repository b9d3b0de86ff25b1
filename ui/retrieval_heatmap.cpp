#include "retrieval_heatmap.h"

#include <QEvent>
#include <QHelpEvent>
#include <QLinearGradient>
#include <QPainter>
#include <QToolTip>
#include <algorithm>
#include <cmath>

namespace {

constexpr int kMargin = 6;
constexpr int kCellGap = 1;
constexpr int kRampWidth = 80;

// Stops of the correction-rate ramp: a head that is never corrected stays calm, one corrected every step burns.
struct RampStop {
  float at;
  QColor color;
};
const RampStop kRamp[] = {
    {0.0f, QColor(0xdc, 0xe6, 0xf2)},
    {0.15f, QColor(0x8f, 0xb8, 0xde)},
    {0.4f, QColor(0xf2, 0xb2, 0x4c)},
    {1.0f, QColor(0xc9, 0x2a, 0x2a)},
};

QColor mix(const QColor& a, const QColor& b, float t) {
  auto lerp = [t](int x, int y) { return static_cast<int>(std::lround(x + (y - x) * t)); };
  return QColor(lerp(a.red(), b.red()), lerp(a.green(), b.green()), lerp(a.blue(), b.blue()));
}

// Label every n-th layer so the labels never overlap.
int labelStride(int nCells, int pixels, int labelWidth) {
  int stride = 1;
  while (stride < nCells && (pixels * stride) / std::max(1, nCells) < labelWidth) stride *= 2;
  return stride;
}

}  // namespace

RetrievalHeatmap::RetrievalHeatmap(QWidget* parent) : QWidget(parent) {
  setMouseTracking(true);
  setAttribute(Qt::WA_OpaquePaintEvent, false);
  setAccessibleName(tr("Retrieval heatmap"));
  setAccessibleDescription(tr("Correction rate per layer and KV head"));
}

void RetrievalHeatmap::setFrame(const TelemetryFrame& frame) {
  const qsizetype nCells = qsizetype(frame.nLayers) * frame.nKvHeads;
  if (frame.nLayers <= 0 || frame.nKvHeads <= 0) return;
  if (frame.correctedNow.size() != nCells || frame.cosineNow.size() != nCells || frame.correctionRate.size() != nCells)
    return;
  const bool resized = frame.nLayers != m_nLayers || frame.nKvHeads != m_nKvHeads;
  m_policy = frame.policy;
  m_nLayers = frame.nLayers;
  m_nKvHeads = frame.nKvHeads;
  m_lastStep = frame.lastStep;
  m_correctedNow = frame.correctedNow;
  m_cosineNow = frame.cosineNow;
  m_correctionRate = frame.correctionRate;
  if (resized) updateGeometry();
  update();
}

void RetrievalHeatmap::clear() {
  m_policy.clear();
  m_nLayers = m_nKvHeads = 0;
  m_lastStep = -1;
  m_correctedNow.clear();
  m_cosineNow.clear();
  m_correctionRate.clear();
  updateGeometry();
  update();
}

QColor RetrievalHeatmap::rateColor(float rate) {
  if (!(rate > 0.0f)) return kRamp[0].color;  // also NaN
  rate = std::min(rate, 1.0f);
  for (size_t i = 1; i < std::size(kRamp); ++i) {
    if (rate <= kRamp[i].at) {
      const float t = (rate - kRamp[i - 1].at) / (kRamp[i].at - kRamp[i - 1].at);
      return mix(kRamp[i - 1].color, kRamp[i].color, t);
    }
  }
  return kRamp[std::size(kRamp) - 1].color;
}

QRect RetrievalHeatmap::legendRect() const {
  const QVector<LegendItem> items = legendItems();
  const int h = items.last().at.y() + fontMetrics().height() + 6;
  return QRect(kMargin, height() - kMargin - h, width() - 2 * kMargin, h);
}

QRect RetrievalHeatmap::gridRect() const {
  const QFontMetrics fm = fontMetrics();
  const int left = kMargin + fm.horizontalAdvance(QStringLiteral("H00")) + 4;
  const int top = kMargin;
  const int bottom = legendRect().top() - fm.height() - 6;  // room for the layer labels
  return QRect(QPoint(left, top), QPoint(width() - kMargin - 1, std::max(top, bottom)));
}

QRect RetrievalHeatmap::cellRect(int layer, int head) const {
  if (layer < 0 || layer >= m_nLayers || head < 0 || head >= m_nKvHeads) return {};
  const QRect g = gridRect();
  // Integer edges from proportional splits: cells tile the grid exactly, whatever its size.
  const int x0 = g.left() + (g.width() * layer) / m_nLayers;
  const int x1 = g.left() + (g.width() * (layer + 1)) / m_nLayers;
  const int y0 = g.top() + (g.height() * head) / m_nKvHeads;
  const int y1 = g.top() + (g.height() * (head + 1)) / m_nKvHeads;
  return QRect(QPoint(x0, y0), QPoint(x1 - 1, y1 - 1));
}

bool RetrievalHeatmap::cellAt(QPoint pos, int* layer, int* head) const {
  const QRect g = gridRect();
  if (m_nLayers == 0 || !g.contains(pos)) return false;
  *layer = std::clamp(int((qint64(pos.x() - g.left()) * m_nLayers) / std::max(1, g.width())), 0, m_nLayers - 1);
  *head = std::clamp(int((qint64(pos.y() - g.top()) * m_nKvHeads) / std::max(1, g.height())), 0, m_nKvHeads - 1);
  return true;
}

bool RetrievalHeatmap::correctedNow(int layer, int head) const {
  if (layer < 0 || layer >= m_nLayers || head < 0 || head >= m_nKvHeads) return false;
  return m_correctedNow[index(layer, head)] != 0;
}

QColor RetrievalHeatmap::cellColor(int layer, int head) const {
  if (layer < 0 || layer >= m_nLayers || head < 0 || head >= m_nKvHeads) return {};
  return rateColor(m_correctionRate[index(layer, head)]);
}

QString RetrievalHeatmap::cellToolTip(int layer, int head) const {
  if (layer < 0 || layer >= m_nLayers || head < 0 || head >= m_nKvHeads) return {};
  const int i = index(layer, head);
  QString cosine;
  if (std::isnan(m_cosineNow[i]))
    cosine = tr("not checked in step %1").arg(m_lastStep);
  else
    cosine = QString::number(double(m_cosineNow[i]), 'f', 3);
  return tr("Layer %1, KV head %2\nQuery cosine: %3\nCorrected this step: %4\nRecent correction rate: %5% of checked "
            "steps")
      .arg(layer)
      .arg(head)
      .arg(cosine, m_correctedNow[i] ? tr("yes") : tr("no"))
      .arg(QString::number(100.0 * double(m_correctionRate[i]), 'f', 1));
}

QSize RetrievalHeatmap::sizeHint() const { return QSize(420, 180); }

QSize RetrievalHeatmap::minimumSizeHint() const { return QSize(160, 90); }

bool RetrievalHeatmap::event(QEvent* event) {
  if (event->type() == QEvent::ToolTip) {
    auto* help = static_cast<QHelpEvent*>(event);
    int layer = 0, head = 0;
    if (cellAt(help->pos(), &layer, &head))
      QToolTip::showText(help->globalPos(), cellToolTip(layer, head), this, cellRect(layer, head));
    else
      QToolTip::hideText();
    return true;
  }
  return QWidget::event(event);
}

void RetrievalHeatmap::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), palette().base());
  if (m_nLayers == 0) {
    p.setPen(palette().color(QPalette::PlaceholderText));
    p.drawText(rect().adjusted(kMargin, kMargin, -kMargin, -kMargin), Qt::AlignCenter | Qt::TextWordWrap,
               tr("No retrieval yet: ask a question about an open document to see which heads FreeKV corrects."));
    return;
  }
  const QRect g = gridRect();
  const QColor ring = palette().color(QPalette::Text);
  const QColor hatch = palette().color(QPalette::Mid);
  for (int layer = 0; layer < m_nLayers; ++layer) {
    for (int head = 0; head < m_nKvHeads; ++head) {
      const QRect c = cellRect(layer, head).adjusted(0, 0, -kCellGap, -kCellGap);
      p.fillRect(c, cellColor(layer, head));
      // Hatched: the head was not checked in the last step (a layer without retrieval, e.g. a sliding-window one).
      if (std::isnan(m_cosineNow[index(layer, head)])) p.fillRect(c, QBrush(hatch, Qt::BDiagPattern));
      if (!correctedNow(layer, head)) continue;
      const int w = std::max(1, std::min(c.width(), c.height()) / 6);
      p.setPen(QPen(ring, w));
      p.setBrush(Qt::NoBrush);
      p.drawRect(c.adjusted(w / 2, w / 2, -(w + 1) / 2, -(w + 1) / 2));
    }
  }
  paintAxes(p, g);
  paintLegend(p);
}

void RetrievalHeatmap::paintAxes(QPainter& p, const QRect& g) const {
  const QFontMetrics fm = fontMetrics();
  p.setPen(palette().color(QPalette::Text));
  const int headStride = labelStride(m_nKvHeads, g.height(), fm.height());
  for (int head = 0; head < m_nKvHeads; head += headStride) {
    const QRect c = cellRect(0, head);
    p.drawText(QRect(kMargin, c.top(), g.left() - kMargin - 4, c.height()), Qt::AlignRight | Qt::AlignVCenter,
               QStringLiteral("H%1").arg(head));
  }
  const int layerStride = labelStride(m_nLayers, g.width(), fm.horizontalAdvance(QStringLiteral("L00")) + 4);
  for (int layer = 0; layer < m_nLayers; layer += layerStride) {
    const QRect c = cellRect(layer, 0);
    p.drawText(
        QRect(c.left(), g.bottom() + 2, std::max(c.width(), fm.horizontalAdvance(QStringLiteral("L00"))), fm.height()),
        Qt::AlignLeft | Qt::AlignTop, QStringLiteral("L%1").arg(layer));
  }
}

QString RetrievalHeatmap::rampLowText() const { return tr("corrections 0%"); }

QString RetrievalHeatmap::rampHighText() const { return tr("100% of checked steps"); }

QString RetrievalHeatmap::rampText() const { return tr("%1 … %2").arg(rampLowText(), rampHighText()); }

QString RetrievalHeatmap::axisText() const { return tr("L: layer · H: KV head"); }

void RetrievalHeatmap::paintLegend(QPainter& p) const {
  const QRect r = legendRect();
  const QFontMetrics fm = fontMetrics();
  const int h = fm.height() + 6;
  const int box = h - 6;
  const QVector<LegendItem> items = legendItems();
  for (const LegendItem& item : items) {
    const QPoint at = r.topLeft() + item.at;
    p.setPen(palette().color(QPalette::Text));
    switch (item.kind) {
      case LegendItem::Ramp: {
        const QString low = rampLowText();
        int x = at.x();
        p.drawText(QRect(x, at.y(), fm.horizontalAdvance(low), h), Qt::AlignVCenter, low);
        x += fm.horizontalAdvance(low) + 4;
        QLinearGradient gradient(x, 0, x + kRampWidth, 0);
        for (const RampStop& stop : kRamp) gradient.setColorAt(stop.at, stop.color);
        p.fillRect(QRect(x, at.y() + 3, kRampWidth, box), gradient);
        p.drawText(QRect(x + kRampWidth + 4, at.y(), fm.horizontalAdvance(rampHighText()), h), Qt::AlignVCenter,
                   rampHighText());
        break;
      }
      case LegendItem::Corrected:
      case LegendItem::Unchecked: {
        const QRect swatch(at.x(), at.y() + 3, box, box);
        p.fillRect(swatch, rateColor(0.0f));
        if (item.kind == LegendItem::Corrected) {
          p.setPen(QPen(palette().color(QPalette::Text), 2));
          p.drawRect(swatch.adjusted(1, 1, -1, -1));
          p.setPen(palette().color(QPalette::Text));
        } else {
          p.fillRect(swatch, QBrush(palette().color(QPalette::Mid), Qt::BDiagPattern));
        }
        p.drawText(QRect(at.x() + box + 4, at.y(), item.width - box - 4, h), Qt::AlignVCenter, item.text);
        break;
      }
      case LegendItem::Axes:
      case LegendItem::Policy:
        p.drawText(QRect(at.x(), at.y(), item.width, h), Qt::AlignVCenter, item.text);
        break;
    }
  }
}

// The legend's items flowed into rows that fit the widget's width (positions relative to the legend's corner).
QVector<RetrievalHeatmap::LegendItem> RetrievalHeatmap::legendItems() const {
  const QFontMetrics fm = fontMetrics();
  const int h = fm.height() + 6;
  const int box = h - 6;
  QVector<LegendItem> items = {
      {LegendItem::Ramp, rampText(),
       fm.horizontalAdvance(rampLowText()) + 4 + kRampWidth + 4 + fm.horizontalAdvance(rampHighText())},
      {LegendItem::Corrected, tr("corrected this step"), box + 4 + fm.horizontalAdvance(tr("corrected this step"))},
      {LegendItem::Unchecked, tr("not checked"), box + 4 + fm.horizontalAdvance(tr("not checked"))},
      {LegendItem::Axes, axisText(), fm.horizontalAdvance(axisText()) + 1},
  };
  if (!m_policy.isEmpty()) {
    const QString tag = tr("%1 · step %2").arg(m_policy).arg(m_lastStep);
    items.append({LegendItem::Policy, tag, fm.horizontalAdvance(tag) + 1});
  }
  const int width = std::max(1, this->width() - 2 * kMargin);
  int x = 0, y = 0;
  for (LegendItem& item : items) {
    if (x > 0 && x + item.width > width) {
      x = 0;
      y += h;
    }
    item.at = QPoint(x, y);
    x += item.width + 16;
  }
  return items;
}
