// The library's documents as a table for the library pane: title, format, size, tokens, KV state, last opened.
// It reads the library through its own SQLite connection on the GUI thread (DESIGN.md §5) and re-reads it on
// refresh(), which the app connects to EngineClient::libraryChanged.
#pragma once

#include <QAbstractTableModel>
#include <QString>
#include <memory>
#include <vector>

#include "fkv/library.h"

class LibraryModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column { TitleColumn, FormatColumn, SizeColumn, TokensColumn, KvStateColumn, LastOpenedColumn, ColumnCount };
  enum Role {
    DocumentIdRole = Qt::UserRole + 1,  // qint64, any column
    SortRole,                           // the column's raw value (numbers, seconds) for sorting proxies
    PathRole,                           // the file the document was imported from
    KvStateRole,                        // "ready", "needs prefill" or "stale"
  };

  // libraryPath: the database the engine worker writes (empty: the model stays empty).
  explicit LibraryModel(const QString& libraryPath, QObject* parent = nullptr);
  ~LibraryModel() override;

  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

  qint64 documentId(int row) const;
  int rowOfDocument(qint64 documentId) const;             // -1 when absent
  qint64 storageBytes() const { return m_storageBytes; }  // page files of every snapshot
  QString lastError() const { return m_lastError; }
  // Why the library could only be opened read-only (a full disk, a read-only folder); empty when it is writable.
  QString readOnlyReason() const { return m_readOnlyReason; }

 public slots:
  // Re-reads the library. Rows keep their places (and views their selection) when only values changed.
  void refresh();

 signals:
  void errorOccurred(const QString& message);
  void storageBytesChanged(qint64 bytes);
  void readOnlyChanged(const QString& reason);

 private:
  using Row = fkv::LibraryEntry;

  fkv::Status readRows(std::vector<Row>& rows, qint64& storageBytes);
  void fail(const QString& message);
  QVariant display(const Row& row, int column) const;
  QVariant sortValue(const Row& row, int column) const;
  QVariant toolTip(const Row& row) const;
  static QString kvState(const Row& row);
  // Refused because a fixed context size could not hold it (the engine's "too long for this model: ..." refusal).
  static bool tooLongForTheContext(const Row& row) {
    return row.summary.refusal.rfind("too long for this model", 0) == 0;
  }

  QString m_libraryPath;
  std::unique_ptr<fkv::DocumentLibrary> m_library;  // opened on the first refresh
  std::vector<Row> m_rows;
  qint64 m_storageBytes = 0;
  QString m_lastError;
  QString m_readOnlyReason;
};
