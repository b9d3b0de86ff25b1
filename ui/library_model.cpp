#include "library_model.h"

#include <QDateTime>
#include <QFileInfo>
#include <QLocale>
#include <algorithm>

namespace {

QString fromStd(const std::string& s) { return QString::fromStdString(s); }

}  // namespace

LibraryModel::LibraryModel(const QString& libraryPath, QObject* parent)
    : QAbstractTableModel(parent), m_libraryPath(libraryPath) {}

LibraryModel::~LibraryModel() = default;

int LibraryModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : int(m_rows.size()); }

int LibraryModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant LibraryModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) return {};
  const Row& row = m_rows[size_t(index.row())];
  switch (role) {
    case Qt::DisplayRole:
      return display(row, index.column());
    case Qt::ToolTipRole:
      return index.column() == KvStateColumn ? toolTip(row) : QVariant(fromStd(row.summary.info.path));
    case Qt::TextAlignmentRole:
      if (index.column() == SizeColumn || index.column() == TokensColumn) return int(Qt::AlignRight | Qt::AlignVCenter);
      return {};
    case DocumentIdRole:
      return qint64(row.summary.info.id);
    case SortRole:
      return sortValue(row, index.column());
    case PathRole:
      return fromStd(row.summary.info.path);
    case KvStateRole:
      return kvState(row);
    default:
      return {};
  }
}

QVariant LibraryModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (orientation != Qt::Horizontal || role != Qt::DisplayRole || section < 0 || section >= ColumnCount) return {};
  switch (section) {
    case TitleColumn:
      return tr("Title");
    case FormatColumn:
      return tr("Format");
    case SizeColumn:
      return tr("Size");
    case TokensColumn:
      return tr("Tokens");
    case KvStateColumn:
      return tr("KV");
    case LastOpenedColumn:
      return tr("Last opened");
    default:
      return {};
  }
}

qint64 LibraryModel::documentId(int row) const {
  return row >= 0 && size_t(row) < m_rows.size() ? qint64(m_rows[size_t(row)].summary.info.id) : 0;
}

int LibraryModel::rowOfDocument(qint64 documentId) const {
  const auto it =
      std::find_if(m_rows.begin(), m_rows.end(), [&](const Row& r) { return r.summary.info.id == documentId; });
  return it == m_rows.end() ? -1 : int(it - m_rows.begin());
}

void LibraryModel::refresh() {
  if (m_libraryPath.isEmpty()) return;
  std::vector<Row> rows;
  qint64 storage = 0;
  if (const fkv::Status s = readRows(rows, storage); !s.ok()) {
    fail(fromStd(s.message()));  // the rows shown stay as they were
    return;
  }
  m_lastError.clear();
  const bool sameRows = std::equal(rows.begin(), rows.end(), m_rows.begin(), m_rows.end(),
                                   [](const Row& a, const Row& b) { return a.summary.info.id == b.summary.info.id; });
  if (sameRows) {
    m_rows = std::move(rows);
    if (!m_rows.empty()) emit dataChanged(index(0, 0), index(int(m_rows.size()) - 1, ColumnCount - 1));
  } else {
    beginResetModel();
    m_rows = std::move(rows);
    endResetModel();
  }
  if (storage != m_storageBytes) {
    m_storageBytes = storage;
    emit storageBytesChanged(storage);
  }
}

fkv::Status LibraryModel::readRows(std::vector<Row>& rows, qint64& storageBytes) {
  // A read-only library is opened again each time: once space is freed, the next refresh finds it writable.
  if (!m_library || m_library->read_only()) {
    m_library.reset();
    FKV_ASSIGN_OR_RETURN(m_library, fkv::DocumentLibrary::open(m_libraryPath.toStdString()));
    const QString reason = fromStd(m_library->read_only_reason());
    if (reason != m_readOnlyReason) {
      m_readOnlyReason = reason;
      emit readOnlyChanged(reason);
    }
  }
  FKV_ASSIGN_OR_RETURN(rows, m_library->list_documents());
  // Every snapshot belongs to a document, so the rows' bytes (files that exist) already add up to the total.
  storageBytes = 0;
  for (const Row& r : rows) storageBytes += r.summary.snapshot_bytes;
  return {};
}

void LibraryModel::fail(const QString& message) {
  m_lastError = tr("The document library could not be read: %1").arg(message);
  emit errorOccurred(m_lastError);
}

QVariant LibraryModel::display(const Row& row, int column) const {
  const fkv::DocumentInfo& d = row.summary.info;
  const QLocale locale;
  switch (column) {
    case TitleColumn:
      return d.title.empty() ? QFileInfo(fromStd(d.path)).fileName() : fromStd(d.title);
    case FormatColumn:
      return fromStd(d.format);
    case SizeColumn:
      return locale.formattedDataSize(d.size_bytes);
    case TokensColumn:
      return row.n_tokens >= 0 ? locale.toString(row.n_tokens) : QString();
    case KvStateColumn:
      return kvState(row);
    case LastOpenedColumn:
      return d.opened_at == 0 ? tr("never")
                              : locale.toString(QDateTime::fromSecsSinceEpoch(d.opened_at), QLocale::ShortFormat);
    default:
      return {};
  }
}

QVariant LibraryModel::sortValue(const Row& row, int column) const {
  const fkv::DocumentInfo& d = row.summary.info;
  switch (column) {
    case SizeColumn:
      return qint64(d.size_bytes);
    case TokensColumn:
      return qint64(row.n_tokens);
    case KvStateColumn:
      return int(row.summary.best_state);
    case LastOpenedColumn:
      return qint64(d.opened_at);
    default:
      return display(row, column);
  }
}

QVariant LibraryModel::toolTip(const Row& row) const {
  const QLocale locale;
  switch (row.summary.best_state) {
    case fkv::SnapshotState::ready:
      return tr("The KV cache is saved (%1): opening needs no prefill")
          .arg(locale.formattedDataSize(row.summary.snapshot_bytes));
    case fkv::SnapshotState::stale:
      return tr("The saved KV cannot be used: %1")
          .arg(row.stale_reason.empty() ? tr("unknown") : QString::fromStdString(row.stale_reason));
    case fkv::SnapshotState::none:
      break;
  }
  if (row.summary.prefill_done > 0) {
    return tr("Its prefill stopped at %1 of %2 tokens and was saved there: the next open resumes it")
        .arg(locale.toString(row.summary.prefill_done), locale.toString(row.summary.prefill_total));
  }
  if (tooLongForTheContext(row))
    return tr("The last open was refused: %1. Raise the context size in Settings if the model can take it.")
        .arg(QString::fromStdString(row.summary.refusal));
  if (!row.summary.refusal.empty())
    return tr("The last open was refused: %1").arg(QString::fromStdString(row.summary.refusal));
  return tr("Opening it runs a prefill, then saves the KV cache");
}

QString LibraryModel::kvState(const Row& row) {
  switch (row.summary.best_state) {
    case fkv::SnapshotState::ready:
      return tr("ready");
    case fkv::SnapshotState::stale:
      return tr("stale");
    case fkv::SnapshotState::none:
      break;
  }
  if (row.summary.prefill_done > 0 && row.summary.prefill_total > 0) {
    return tr("prefill %1% done").arg(int(100 * row.summary.prefill_done / row.summary.prefill_total));
  }
  if (row.summary.refusal.empty()) return tr("needs prefill");
  // A fixed context too small is mended in Settings; the other refusals (the cap on a document's length, policy full
  // past the model's trained window, no memory for the KV) say their own remedy in the tooltip.
  return tooLongForTheContext(row) ? tr("too long for this model") : tr("refused");
}
