#include "timeline_model.h"

#include <QLocale>
#include <algorithm>

TimelineModel::TimelineModel(QObject* parent) : QAbstractTableModel(parent) {}

int TimelineModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : int(m_steps.size()); }

int TimelineModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant TimelineModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) return {};
  const StepRecord& s = m_steps[index.row()];
  switch (role) {
    case RawValueRole:
      return value(s, index.column());
    case Qt::DisplayRole:
      if (index.column() == BytesColumn) return QLocale().formattedDataSize(qint64(s.bytes_recalled));
      if (index.column() == StallColumn) return QString::number(s.stallMs(), 'f', 2);
      return value(s, index.column());
    case Qt::TextAlignmentRole:
      return int(Qt::AlignRight | Qt::AlignVCenter);
    default:
      return {};
  }
}

QVariant TimelineModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole || section < 0 || section >= ColumnCount) return {};
  switch (section) {
    case StepColumn:
      return tr("Step");
    case SelectedColumn:
      return tr("Selected");
    case ReusedColumn:
      return tr("Reused");
    case RecalledColumn:
      return tr("Recalled");
    case BytesColumn:
      return tr("Bytes");
    case StallColumn:
      return tr("Stall ms");
    default:
      return {};
  }
}

void TimelineModel::setCapacity(int capacity) {
  m_capacity = std::max(capacity, 1);
  if (m_steps.size() > m_capacity) dropOldest(int(m_steps.size()) - m_capacity);
}

void TimelineModel::appendSteps(const QVector<StepRecord>& steps) {
  if (steps.isEmpty()) return;
  const int nNew = int(std::min<qsizetype>(steps.size(), m_capacity));  // more than fit: only the newest count
  const int overflow = int(m_steps.size()) + nNew - m_capacity;
  if (overflow > 0) dropOldest(overflow);
  const int first = int(m_steps.size());
  beginInsertRows(QModelIndex(), first, first + nNew - 1);
  m_steps.append(steps.mid(steps.size() - nNew));
  endInsertRows();
}

void TimelineModel::clear() {
  if (m_steps.isEmpty()) return;
  beginResetModel();
  m_steps.clear();
  endResetModel();
}

void TimelineModel::dropOldest(int n) {
  beginRemoveRows(QModelIndex(), 0, n - 1);
  m_steps.remove(0, n);
  endRemoveRows();
}

QVariant TimelineModel::value(const StepRecord& s, int column) const {
  switch (column) {
    case StepColumn:
      return s.step;
    case SelectedColumn:
      return qint64(s.pages_selected);
    case ReusedColumn:
      return qint64(s.pages_reused);
    case RecalledColumn:
      return qint64(s.pages_recalled);
    case BytesColumn:
      return qint64(s.bytes_recalled);
    case StallColumn:
      return s.stallMs();
    default:
      return {};
  }
}
