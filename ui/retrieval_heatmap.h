// The retrieval heatmap: one cell per (layer, KV head). Its fill is the head's recent correction rate (how often
// FreeKV had to re-select its pages synchronously because its query moved); a ring marks the heads corrected in the
// last step. Hovering a cell shows the query cosine that decided it. Layers run along x because the panel docks
// wide and short, and models have many more layers than KV heads.
#pragma once

#include <QColor>
#include <QPoint>
#include <QRect>
#include <QString>
#include <QVector>
#include <QWidget>

#include "client_types.h"

class RetrievalHeatmap : public QWidget {
  Q_OBJECT

 public:
  explicit RetrievalHeatmap(QWidget* parent = nullptr);

  // Takes the grids of a frame (its steps and pages are for the other panels). A frame with other dimensions
  // replaces the grid; one whose grids do not match its dimensions is ignored (the worker never sends one).
  void setFrame(const TelemetryFrame& frame);
  void clear();

  int layerCount() const { return m_nLayers; }
  int headCount() const { return m_nKvHeads; }
  QString policy() const { return m_policy; }

  // Geometry and content of one cell, for painting, tooltips and tests.
  QRect gridRect() const;
  QRect cellRect(int layer, int head) const;
  // The cell under `pos`; false outside the grid.
  bool cellAt(QPoint pos, int* layer, int* head) const;
  QColor cellColor(int layer, int head) const;
  bool correctedNow(int layer, int head) const;
  QString cellToolTip(int layer, int head) const;
  // The legend's texts: the colour ramp's ends ("corrections 0% … 100% of checked steps") and what the axis labels'
  // letters stand for.
  QString rampText() const;
  QString axisText() const;

  // The fill for a recent correction rate in [0, 1] (clamped): pale blue (never corrected) through amber to red.
  static QColor rateColor(float rate);

  QSize sizeHint() const override;
  QSize minimumSizeHint() const override;

 protected:
  bool event(QEvent* event) override;
  void paintEvent(QPaintEvent* event) override;

 private:
  int index(int layer, int head) const { return layer * m_nKvHeads + head; }
  void paintAxes(class QPainter& p, const QRect& grid) const;
  struct LegendItem {
    enum Kind { Ramp, Corrected, Unchecked, Axes, Policy } kind;
    QString text;
    int width = 0;
    QPoint at;  // from the legend's top-left corner
  };
  QVector<LegendItem> legendItems() const;
  QString rampLowText() const;
  QString rampHighText() const;
  void paintLegend(class QPainter& p) const;
  QRect legendRect() const;

  QString m_policy;
  int m_nLayers = 0;
  int m_nKvHeads = 0;
  qint64 m_lastStep = -1;
  QVector<quint8> m_correctedNow;   // (m_nLayers * m_nKvHeads)
  QVector<float> m_cosineNow;       // (m_nLayers * m_nKvHeads) NaN where not checked
  QVector<float> m_correctionRate;  // (m_nLayers * m_nKvHeads)
};
