// The library pane: the imported documents as a sortable, filterable table (a LibraryModel), with import (menu,
// button, or files dropped on the pane), delete and open, and the storage the saved KV caches take. The pane asks
// (signals); the window runs the requests on the engine.
#pragma once

#include <QStringList>
#include <QWidget>

class LibraryModel;
class QLabel;
class QLineEdit;
class QMimeData;
class QPushButton;
class QSortFilterProxyModel;
class QTableView;

class LibraryPane : public QWidget {
  Q_OBJECT

 public:
  explicit LibraryPane(QWidget* parent = nullptr);

  // Not owned.
  void setModel(LibraryModel* model);
  qint64 selectedDocumentId() const;  // 0: none
  void selectDocument(qint64 documentId);
  // The document the window has open, shown in bold (0: none).
  void setOpenDocument(qint64 documentId);
  QString storageText() const;
  // Ask before deleting (on by default; tests turn it off).
  void setConfirmDeletes(bool confirm) { m_confirmDeletes = confirm; }

  QTableView* table() const { return m_table; }
  QLineEdit* filterEdit() const { return m_filter; }

  // The local files a drag carries that the library can import: known document types, and files without an
  // extension (plain text often has none; the engine reads the bytes and refuses what is not text). Folders, other
  // extensions and other schemes are left out.
  static QStringList importableFiles(const QMimeData* mime);
  // For the import dialog: "All supported" and "All files", the latter first shown, so a folder of extensionless
  // texts (Debian's license texts, READMEs) does not look empty.
  static QStringList importFilters();
  static QString importStartFolder();  // the user's documents folder, else home

 public slots:
  void importFiles();  // asks for files with a dialog
  void deleteSelected();
  void openSelected();
  void updateStorage();

 signals:
  void importRequested(const QStringList& paths);
  void openRequested(qint64 documentId);
  void deleteRequested(qint64 documentId);

 protected:
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dragMoveEvent(QDragMoveEvent* event) override;
  void dropEvent(QDropEvent* event) override;
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  void updateButtons();
  void showColumnMenu(const QPoint& pos);

  LibraryModel* m_model = nullptr;
  QSortFilterProxyModel* m_proxy = nullptr;
  QTableView* m_table = nullptr;
  QLineEdit* m_filter = nullptr;
  QLabel* m_storage = nullptr;
  QPushButton* m_import = nullptr;
  QPushButton* m_open = nullptr;
  QPushButton* m_delete = nullptr;
  qint64 m_openDocument = 0;
  bool m_confirmDeletes = true;
};
