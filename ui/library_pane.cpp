#include "library_pane.h"

#include <QDir>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QFont>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QMenu>
#include <QMessageBox>
#include <QMimeData>
#include <QPushButton>
#include <QSortFilterProxyModel>
#include <QStandardPaths>
#include <QTableView>
#include <QUrl>
#include <QVBoxLayout>

#include "library_model.h"
#include "window_layout.h"

namespace {

const QStringList kSuffixes = {"txt", "text", "md", "markdown", "pdf", "html", "htm"};

// Sorts by the model's raw values, filters on the title, and sets the open document in bold.
class LibraryProxy : public QSortFilterProxyModel {
 public:
  explicit LibraryProxy(QObject* parent) : QSortFilterProxyModel(parent) {
    setSortRole(LibraryModel::SortRole);
    setFilterKeyColumn(LibraryModel::TitleColumn);
    setFilterCaseSensitivity(Qt::CaseInsensitive);
  }
  void setOpenDocument(qint64 id) {
    m_open = id;
    if (rowCount() > 0) emit dataChanged(index(0, 0), index(rowCount() - 1, columnCount() - 1), {Qt::FontRole});
  }
  QVariant data(const QModelIndex& index, int role) const override {
    if (role == Qt::FontRole && m_open != 0 && index.data(LibraryModel::DocumentIdRole).toLongLong() == m_open) {
      QFont bold;
      bold.setBold(true);
      return bold;
    }
    return QSortFilterProxyModel::data(index, role);
  }

 private:
  qint64 m_open = 0;
};

}  // namespace

LibraryPane::LibraryPane(QWidget* parent) : QWidget(parent) {
  setAcceptDrops(true);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  m_filter = new QLineEdit(this);
  m_filter->setPlaceholderText(tr("Filter documents"));
  m_filter->setClearButtonEnabled(true);
  windowlayout::keepPlaceholderVisible(m_filter);
  layout->addWidget(m_filter);

  m_proxy = new LibraryProxy(this);
  m_table = new QTableView(this);
  m_table->setModel(m_proxy);
  m_table->setSortingEnabled(true);
  m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_table->setSelectionMode(QAbstractItemView::SingleSelection);
  m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_table->verticalHeader()->hide();
  m_table->horizontalHeader()->setContextMenuPolicy(Qt::CustomContextMenu);
  connect(m_table->horizontalHeader(), &QHeaderView::customContextMenuRequested, this, &LibraryPane::showColumnMenu);
  m_table->setAlternatingRowColors(true);
  m_table->setWordWrap(false);
  m_table->setTextElideMode(Qt::ElideRight);
  m_table->setAccessibleName(tr("Documents"));
  m_table->installEventFilter(this);
  layout->addWidget(m_table, 1);

  auto* buttons = new QHBoxLayout;
  m_import = new QPushButton(tr("&Import…"), this);
  m_open = new QPushButton(tr("&Open"), this);
  m_delete = new QPushButton(tr("&Delete"), this);
  m_import->setToolTip(tr("Add documents to the library (Ctrl+I); you can also drop files here"));
  buttons->addWidget(m_import);
  buttons->addWidget(m_open);
  buttons->addWidget(m_delete);
  buttons->addStretch(1);
  layout->addLayout(buttons);
  m_storage = new QLabel(this);
  m_storage->setToolTip(tr("Disk space taken by the saved KV caches of the documents"));
  m_storage->setWordWrap(true);  // a read-only library adds its reason, which can name a long path
  layout->addWidget(m_storage);

  connect(m_filter, &QLineEdit::textChanged, m_proxy, &QSortFilterProxyModel::setFilterFixedString);
  connect(m_import, &QPushButton::clicked, this, &LibraryPane::importFiles);
  connect(m_open, &QPushButton::clicked, this, &LibraryPane::openSelected);
  connect(m_delete, &QPushButton::clicked, this, &LibraryPane::deleteSelected);
  connect(m_table, &QTableView::activated, this, &LibraryPane::openSelected);
  connect(m_table->selectionModel(), &QItemSelectionModel::selectionChanged, this, &LibraryPane::updateButtons);
  updateButtons();
  updateStorage();
}

void LibraryPane::setModel(LibraryModel* model) {
  if (m_model) disconnect(m_model, nullptr, this, nullptr);
  m_model = model;
  m_proxy->setSourceModel(model);
  if (model) {
    connect(model, &LibraryModel::storageBytesChanged, this, &LibraryPane::updateStorage);
    connect(model, &LibraryModel::readOnlyChanged, this, &LibraryPane::updateStorage);
    connect(model, &QAbstractItemModel::modelReset, this, &LibraryPane::updateButtons);
    m_table->sortByColumn(LibraryModel::LastOpenedColumn, Qt::DescendingOrder);
    QHeaderView* header = m_table->horizontalHeader();
    header->setSectionResizeMode(QHeaderView::ResizeToContents);
    header->setSectionResizeMode(LibraryModel::TitleColumn, QHeaderView::Stretch);
    // A narrow pane shows what decides whether an open is quick; the rest is a right-click away.
    m_table->setColumnHidden(LibraryModel::FormatColumn, true);
    m_table->setColumnHidden(LibraryModel::LastOpenedColumn, true);
  }
  updateButtons();
  updateStorage();
}

qint64 LibraryPane::selectedDocumentId() const {
  const QModelIndexList rows = m_table->selectionModel()->selectedRows();
  return rows.isEmpty() ? 0 : rows.first().data(LibraryModel::DocumentIdRole).toLongLong();
}

void LibraryPane::selectDocument(qint64 documentId) {
  if (!m_model) return;
  const int row = m_model->rowOfDocument(documentId);
  if (row < 0) return;
  const QModelIndex index = m_proxy->mapFromSource(m_model->index(row, 0));
  m_table->selectionModel()->setCurrentIndex(index, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
  m_table->scrollTo(index);
}

void LibraryPane::setOpenDocument(qint64 documentId) {
  m_openDocument = documentId;
  static_cast<LibraryProxy*>(m_proxy)->setOpenDocument(documentId);
}

QString LibraryPane::storageText() const { return m_storage->text(); }

void LibraryPane::updateStorage() {
  const qint64 bytes = m_model ? m_model->storageBytes() : 0;
  const int n = m_model ? m_model->rowCount() : 0;
  QString text = tr("%n document(s) · saved KV caches: %1", nullptr, n).arg(QLocale().formattedDataSize(bytes));
  const QString readOnly = m_model ? m_model->readOnlyReason() : QString();
  if (!readOnly.isEmpty()) {
    text += QLatin1Char('\n') + tr("Read-only: %1. Saved documents open and answer; nothing new can be saved.")
                                    .arg(readOnly);
  }
  m_storage->setText(text);
}

void LibraryPane::showColumnMenu(const QPoint& pos) {
  QMenu menu(this);
  for (int column = 0; column < m_proxy->columnCount(); ++column) {
    QAction* a = menu.addAction(m_proxy->headerData(column, Qt::Horizontal).toString());
    a->setCheckable(true);
    a->setChecked(!m_table->isColumnHidden(column));
    a->setEnabled(column != LibraryModel::TitleColumn);
    connect(a, &QAction::toggled, this, [this, column](bool on) { m_table->setColumnHidden(column, !on); });
  }
  menu.exec(m_table->horizontalHeader()->mapToGlobal(pos));
}

void LibraryPane::updateButtons() {
  const bool selected = selectedDocumentId() != 0;
  m_open->setEnabled(selected);
  m_delete->setEnabled(selected);
  updateStorage();
}

QStringList LibraryPane::importFilters() {
  QStringList patterns;
  for (const QString& s : kSuffixes) patterns << QStringLiteral("*.") + s;
  return {tr("All supported (%1)").arg(patterns.join(QLatin1Char(' '))), tr("All files (*)")};
}

QString LibraryPane::importStartFolder() {
  const QString docs = QStandardPaths::writableLocation(QStandardPaths::DocumentsLocation);
  return !docs.isEmpty() && QFileInfo(docs).isDir() ? docs : QDir::homePath();
}

QStringList LibraryPane::importableFiles(const QMimeData* mime) {
  QStringList files;
  if (!mime || !mime->hasUrls()) return files;
  for (const QUrl& url : mime->urls()) {
    if (!url.isLocalFile()) continue;
    const QFileInfo info(url.toLocalFile());
    if (info.isFile() && (info.suffix().isEmpty() || kSuffixes.contains(info.suffix().toLower())))
      files << info.absoluteFilePath();
  }
  return files;
}

void LibraryPane::importFiles() {
  const QStringList filters = importFilters();
  QString selected = filters.last();
  const QStringList files = QFileDialog::getOpenFileNames(this, tr("Import documents"), importStartFolder(),
                                                          filters.join(QStringLiteral(";;")), &selected);
  if (!files.isEmpty()) emit importRequested(files);
}

void LibraryPane::openSelected() {
  if (const qint64 id = selectedDocumentId(); id != 0) emit openRequested(id);
}

void LibraryPane::deleteSelected() {
  const qint64 id = selectedDocumentId();
  if (id == 0) return;
  if (m_confirmDeletes) {
    const QString title = m_table->selectionModel()->selectedRows().first().data().toString();
    const auto answer = QMessageBox::question(
        this, tr("Delete document"),
        tr("Remove \"%1\" from the library, with its saved KV cache and its chats? The file itself stays.").arg(title));
    if (answer != QMessageBox::Yes) return;
  }
  emit deleteRequested(id);
}

void LibraryPane::dragEnterEvent(QDragEnterEvent* event) {
  if (!importableFiles(event->mimeData()).isEmpty()) event->acceptProposedAction();
}

void LibraryPane::dragMoveEvent(QDragMoveEvent* event) {
  if (!importableFiles(event->mimeData()).isEmpty()) event->acceptProposedAction();
}

void LibraryPane::dropEvent(QDropEvent* event) {
  const QStringList files = importableFiles(event->mimeData());
  if (files.isEmpty()) return;
  event->acceptProposedAction();
  emit importRequested(files);
}

bool LibraryPane::eventFilter(QObject* watched, QEvent* event) {
  if (watched == m_table && event->type() == QEvent::KeyPress) {
    const int key = static_cast<QKeyEvent*>(event)->key();
    if (key == Qt::Key_Delete) {
      deleteSelected();
      return true;
    }
  }
  return QWidget::eventFilter(watched, event);
}
