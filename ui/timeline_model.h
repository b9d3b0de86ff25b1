// The recall timeline's data: the last N decode steps' retrieval (StepRecord), oldest first, one row per step.
// Fed with TelemetryFrame::newSteps; older rows leave from the top as new ones arrive at the bottom.
#pragma once

#include <QAbstractTableModel>
#include <QList>
#include <QVector>

#include "client_types.h"

class TimelineModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column { StepColumn, SelectedColumn, ReusedColumn, RecalledColumn, BytesColumn, StallColumn, ColumnCount };
  enum Role { RawValueRole = Qt::UserRole + 1 };  // the column's number (qint64 or double) for painting and sorting
  static constexpr int kDefaultCapacity = 512;

  explicit TimelineModel(QObject* parent = nullptr);

  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

  int capacity() const { return m_capacity; }
  // At least 1; fewer rows than shown drops the oldest.
  void setCapacity(int capacity);
  StepRecord record(int row) const { return m_steps.value(row); }

 public slots:
  void appendSteps(const QVector<StepRecord>& steps);
  void addFrame(const TelemetryFrame& frame) { appendSteps(frame.newSteps); }
  void clear();

 private:
  void dropOldest(int n);
  QVariant value(const StepRecord& s, int column) const;

  QList<StepRecord> m_steps;  // (<= m_capacity) oldest first
  int m_capacity = kDefaultCapacity;
};
