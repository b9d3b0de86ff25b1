// The recall timeline: a view on a TimelineModel, one column per decode step, newest on the right. The upper plot
// stacks the pages attended that step (recalled from the host tier, reused from the working set, and the rest: sink
// and recent window); the lower strip is the stall the step's retrieval put on the critical path. The model keeps the
// last N steps; the view follows the newest while it sits at the right end and otherwise stays on the steps the
// reader scrolled to, even as older ones leave the model.
#pragma once

#include <QAbstractScrollArea>
#include <QPointer>
#include <QString>

#include "client_types.h"
#include "timeline_model.h"

class RecallTimeline : public QAbstractScrollArea {
  Q_OBJECT

 public:
  explicit RecallTimeline(QWidget* parent = nullptr);

  // The steps to draw (not owned; null shows nothing).
  void setModel(TimelineModel* model);
  TimelineModel* model() const { return m_model; }

  void setBarWidth(int px);  // pixels per step, >= 2 (one of them is the gap)
  int barWidth() const { return m_barWidth; }

  int stepCount() const;
  StepRecord stepAt(int row) const;
  // Whether new steps scroll into view (the view is at the right end).
  bool isFollowing() const { return m_follow; }
  // The model row at the left edge of the view, and the one under a viewport position (-1 if none).
  int firstVisibleIndex() const;
  int indexAt(QPoint viewportPos) const;
  QString stepToolTip(int row) const;
  // The legend's summary of the newest step ("" without steps), and the scales of the two plots: the most KV pages
  // (summed over layers) and the longest stall among the steps in view.
  QString lastStepText() const;
  QString pagesScaleText() const;
  QString stallScaleText() const;
  // Scrolls so that row `row` is in view (the view stops following unless it ends up at the right end).
  void scrollToIndex(int row);

  QSize sizeHint() const override;
  QSize minimumSizeHint() const override;

 protected:
  bool viewportEvent(QEvent* event) override;
  void paintEvent(QPaintEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;
  void keyPressEvent(QKeyEvent* event) override;

 private:
  struct Layout {
    QRect legend, pages, stall;
  };
  // The steps in view and their largest figures: the plots scale to them, so a quiet stretch is still readable after
  // a burst of recalls.
  struct Scale {
    int first = 0, last = -1;  // model rows
    int64_t maxPages = 1;
    double maxStallMs = 1e-3;
  };
  Scale visibleScale() const;
  Layout layout() const;
  void updateScrollRange();
  void setScroll(int value);  // a change made by this widget, not the reader
  void onScrolled(int value);
  void onRowsRemoved(const QModelIndex& parent, int first, int last);
  void onRowsInserted();
  void onReset();
  void paintLegend(class QPainter& p, const QRect& r) const;
  void paintColumns(class QPainter& p, const Layout& l) const;

  QPointer<TimelineModel> m_model;
  int m_barWidth = 7;
  bool m_follow = true;
  bool m_adjusting = false;
};
