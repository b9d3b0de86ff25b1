// The window's construction: panes, docks, menus, status bar, and the wiring between them. The engine flows (model,
// documents, answers, telemetry) are in main_window_flows.cpp.
#include "main_window.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDockWidget>
#include <QFile>
#include <QImageReader>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QPainter>
#include <QResizeEvent>
#include <QSettings>
#include <QSplitter>
#include <QStatusBar>
#include <QVBoxLayout>

#include "chat_model.h"
#include "chat_view.h"
#include "desk_session.h"
#include "document_view.h"
#include "engine_client.h"
#include "help.h"
#include "library_model.h"
#include "library_pane.h"
#include "memory_panel.h"
#include "model_guide.h"
#include "prefill_progress.h"
#include "recall_timeline.h"
#include "retrieval_heatmap.h"
#include "timeline_model.h"
#include "window_layout.h"

namespace {

const QList<int> kPanelWidths = {380, 560, 300};  // px: heatmap, timeline, memory side by side

// The icon drawn with QPainter, matching resources/icons/freekv-desk.svg (a 64-unit square): a page of KV blocks,
// a few of them retrieved.
QPixmap paintIcon(int size) {
  QPixmap pixmap(size, size);
  pixmap.fill(Qt::transparent);
  QPainter p(&pixmap);
  p.setRenderHint(QPainter::Antialiasing);
  p.scale(size / 64.0, size / 64.0);
  p.setPen(Qt::NoPen);
  p.setBrush(QColor(0x1d, 0x35, 0x57));
  p.drawRoundedRect(QRectF(2, 2, 60, 60), 12, 12);
  for (int row = 0; row < 4; ++row) {
    for (int col = 0; col < 4; ++col) {
      const bool retrieved = (row == 1 && col == 2) || (row == 2 && col == 0) || (row == 3 && col == 3);
      p.setBrush(retrieved ? QColor(0xff, 0x9f, 0x1c) : QColor(0xa8, 0xda, 0xdc));
      p.drawRoundedRect(QRectF(11 + col * 11, 11 + row * 11, 9, 9), 2, 2);
    }
  }
  return pixmap;
}

}  // namespace

QIcon MainWindow::appIcon() {
  const QString svg = QStringLiteral(":/icons/freekv-desk.svg");
  if (QImageReader::supportedImageFormats().contains("svg") && QFile::exists(svg)) return QIcon(svg);
  QIcon icon;
  for (int size : {16, 22, 24, 32, 48, 64, 128, 256}) icon.addPixmap(paintIcon(size));
  return icon;
}

MainWindow::MainWindow(const QString& libraryPath, QWidget* parent) : QMainWindow(parent), m_libraryPath(libraryPath) {
  setWindowTitle(tr("FreeKV Desk"));
  setWindowIcon(appIcon());
  setAcceptDrops(true);
  setDockNestingEnabled(true);
  QSettings store;
  m_settings = DeskSettings::load(store);
  // Not saved: a larger model installed later is chosen at the next start, until one is set in Settings.
  if (m_settings.modelPath.isEmpty()) m_settings.modelPath = ModelGuide::installedDefault();

  m_session = new DeskSession(this);
  m_client = new EngineClient(libraryPath, this);
  m_client->setDocumentOptions(m_settings.documentOptions());
  m_libraryModel = new LibraryModel(libraryPath, this);
  m_chatModel = new ChatModel(this);
  m_timelineModel = new TimelineModel(this);

  buildCentre();
  buildDocks();
  buildMenus();
  buildStatusBar();
  connectClient();
  connectViews();

  resize(1400, 900);
  restoreGeometry(store.value("window/geometry").toByteArray());
  restoreState(store.value("window/state").toByteArray());
  m_libraryModel->refresh();
  m_memory->setStorageCap(quint64(m_settings.storageCapMiB) << 20);
  loadConfiguredModel();
  updateTelemetry();
}

// The children (docks, panes, the engine client) are destroyed by ~QWidget, when this object is no longer a
// MainWindow: a dock hiding on its way out must not call back into it.
MainWindow::~MainWindow() {
  for (QObject* child : findChildren<QObject*>()) disconnect(child, nullptr, this, nullptr);
}

void MainWindow::buildCentre() {
  auto* splitter = m_centre = new QSplitter(Qt::Horizontal, this);
  m_libraryPane = new LibraryPane(splitter);
  m_libraryPane->setModel(m_libraryModel);
  auto* middle = new QWidget(splitter);
  auto* column = new QVBoxLayout(middle);
  column->setContentsMargins(0, 0, 0, 0);
  column->setSpacing(0);
  m_prefill = new PrefillProgress(middle);
  m_documentView = new DocumentView(middle);
  column->addWidget(m_prefill);
  column->addWidget(m_documentView, 1);
  m_chatView = new ChatView(splitter);
  m_chatView->setModel(m_chatModel);
  splitter->setStretchFactor(0, 0);
  splitter->setStretchFactor(1, 1);
  splitter->setStretchFactor(2, 0);
  splitter->setObjectName(QStringLiteral("centreSplitter"));
  setCentralWidget(splitter);
}

void MainWindow::buildDocks() {
  auto dock = [this](const QString& title, const QString& name, QWidget* widget) {
    auto* d = new QDockWidget(title, this);
    d->setObjectName(name);  // saveState() needs names
    d->setWidget(widget);
    d->setAllowedAreas(Qt::AllDockWidgetAreas);
    addDockWidget(Qt::BottomDockWidgetArea, d);
    connect(d, &QDockWidget::visibilityChanged, this, &MainWindow::updateTelemetry);
    return d;
  };
  m_heatmap = new RetrievalHeatmap(this);
  m_timeline = new RecallTimeline(this);
  m_timeline->setModel(m_timelineModel);
  m_memory = new MemoryPanel(this);
  m_heatmapDock = dock(tr("Retrieval heatmap"), QStringLiteral("heatmapDock"), m_heatmap);
  m_timelineDock = dock(tr("Recall timeline"), QStringLiteral("timelineDock"), m_timeline);
  m_memoryDock = dock(tr("Memory"), QStringLiteral("memoryDock"), m_memory);
  splitDockWidget(m_heatmapDock, m_timelineDock, Qt::Horizontal);
  splitDockWidget(m_timelineDock, m_memoryDock, Qt::Horizontal);
  resizeDocks({m_heatmapDock, m_timelineDock, m_memoryDock}, kPanelWidths, Qt::Horizontal);
}

void MainWindow::buildMenus() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  QAction* import = file->addAction(tr("&Import Documents…"), m_libraryPane, &LibraryPane::importFiles);
  import->setShortcut(QKeySequence(tr("Ctrl+I")));
  QAction* open = file->addAction(tr("&Open Selected Document"), m_libraryPane, &LibraryPane::openSelected);
  open->setShortcut(QKeySequence::Open);
  file->addAction(tr("&Delete Selected Document"), m_libraryPane, &LibraryPane::deleteSelected);
  file->addSeparator();
  QAction* settings = file->addAction(tr("&Settings…"), this, &MainWindow::showSettings);
  settings->setShortcut(QKeySequence(tr("Ctrl+,")));
  settings->setMenuRole(QAction::PreferencesRole);
  file->addSeparator();
  QAction* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
  quit->setShortcut(QKeySequence::Quit);

  QMenu* chat = menuBar()->addMenu(tr("&Chat"));
  chat->addAction(tr("&Ask…"), QKeySequence(tr("Ctrl+L")), m_chatView, &ChatView::focusInput);
  chat->addAction(tr("&Stop"), QKeySequence(Qt::Key_Escape), this, &MainWindow::stop);
  chat->addAction(tr("&Regenerate Answer"), QKeySequence(tr("Ctrl+R")), this, &MainWindow::regenerate);
  chat->addAction(tr("&Copy Answer"), QKeySequence(tr("Ctrl+Shift+C")), m_chatView, &ChatView::copy);
  chat->addAction(tr("&New Chat"), QKeySequence::New, m_chatView, &ChatView::newChatRequested);

  QMenu* document = menuBar()->addMenu(tr("&Document"));
  // The view's own actions, so each key has one action (two would be ambiguous and neither would fire), widened to
  // the whole window: Ctrl+F works from the chat, the library and the document text alike.
  for (QAction* a : {m_documentView->findAction(), m_documentView->findNextAction(),
                     m_documentView->findPreviousAction()}) {
    a->setShortcutContext(Qt::WindowShortcut);
    document->addAction(a);
  }
  document->addSeparator();
  document->addAction(tr("Next &Passage the Model Read"), QKeySequence(Qt::Key_F8), m_documentView,
                      &DocumentView::nextPassage);
  document->addAction(tr("Previous P&assage the Model Read"), QKeySequence(Qt::SHIFT | Qt::Key_F8), m_documentView,
                      &DocumentView::previousPassage);

  QMenu* view = menuBar()->addMenu(tr("&View"));
  const std::pair<QDockWidget*, const char*> docks[] = {
      {m_heatmapDock, "Ctrl+1"}, {m_timelineDock, "Ctrl+2"}, {m_memoryDock, "Ctrl+3"}};
  for (const auto& [dock, key] : docks) {
    QAction* toggle = dock->toggleViewAction();
    toggle->setShortcut(QKeySequence(tr(key)));
    view->addAction(toggle);
  }
  m_highlightAction = view->addAction(tr("&Highlight Where the Model Looks"));
  m_highlightAction->setCheckable(true);
  m_highlightAction->setChecked(QSettings().value("view/highlights", true).toBool());
  m_highlightAction->setShortcut(QKeySequence(tr("Ctrl+4")));
  connect(m_highlightAction, &QAction::toggled, this, [this](bool on) {
    QSettings().setValue("view/highlights", on);
    if (!on) m_documentView->setRetrievedPages({}, {});
    updateTelemetry();
  });

  QMenu* help = menuBar()->addMenu(tr("&Help"));
  QAction* guide = help->addAction(tr("&User Guide"), this, [this] { help::showUserGuide(this); });
  guide->setShortcut(QKeySequence::HelpContents);
  help->addAction(tr("&Keyboard Shortcuts"), this, [this] { help::showShortcuts(this, menuBar()); });
  help->addSeparator();
  help->addAction(tr("&About FreeKV Desk"), this, [this] {
    QMessageBox::about(this, tr("About FreeKV Desk"),
                       tr("<b>FreeKV Desk</b> %1<br>Ask a local language model about long documents. FreeKV "
                          "retrieval keeps only the KV pages that matter near the model, and the live panels show "
                          "which ones it reads.")
                           .arg(QApplication::applicationVersion()));
  });
}

void MainWindow::buildStatusBar() {
  // Fixed widths: these texts change many times a second, and a label that changes width re-lays out the window.
  auto label = [this](const QString& tip, const QString& widest) {
    auto* l = new QLabel(this);
    l->setToolTip(tip);
    if (!widest.isEmpty()) l->setFixedWidth(l->fontMetrics().horizontalAdvance(widest) + 8);
    statusBar()->addPermanentWidget(l);
    return l;
  };
  m_modelLabel = label(QString(), QString());
  m_speedLabel = label(tr("Tokens per second: prefill while a document opens, decode while an answer streams"),
                       tr("prefill 99,999 tokens/s"));
  m_contextLabel = label(tr("Tokens in the context / tokens it can hold"), tr("context 999,999 / 999,999 tokens"));
  m_memoryLabel = label(tr("KV cache per tier: device (GPU) / host (CPU memory) / disk (saved snapshots)"),
                        tr("device 999.9 MiB · host 999.9 MiB · disk 999.9 MiB"));
  m_modelLabel->setText(tr("no model"));
  m_speedLabel->setText(tr("– tokens/s"));
  onMemory(MemoryUse{});
}

QString MainWindow::speedText() const { return m_speedLabel->text(); }

QString MainWindow::contextText() const { return m_contextLabel->text(); }

QString MainWindow::memoryText() const { return m_memoryLabel->text(); }

void MainWindow::connectViews() {
  connect(m_libraryPane, &LibraryPane::importRequested, this, [this](const QStringList& paths) {
    m_client->importDocuments(paths);
    statusBar()->showMessage(tr("Importing %n document(s)…", nullptr, int(paths.size())));
  });
  connect(m_libraryPane, &LibraryPane::openRequested, this, &MainWindow::openDocument);
  connect(m_libraryPane, &LibraryPane::deleteRequested, m_client, &EngineClient::deleteDocument);
  connect(m_libraryModel, &LibraryModel::errorOccurred, this, &MainWindow::showError);
  connect(m_chatView, &ChatView::sendRequested, this, &MainWindow::ask);
  connect(m_chatView, &ChatView::stopRequested, this, &MainWindow::stop);
  connect(m_chatView, &ChatView::regenerateRequested, this, &MainWindow::regenerate);
  connect(m_chatView, &ChatView::settingsRequested, this, &MainWindow::showSettings);
  connect(m_chatView, &ChatView::citationActivated, m_documentView, &DocumentView::showTextRange);
  connect(m_chatModel, &ChatModel::chatIdChanged, this,
          [this](qint64 chatId) { m_chatView->setChats(m_chatView->chats(), chatId); });
  connect(m_chatView, &ChatView::chatChosen, this, [this](qint64 chatId) {
    if (m_session->state() == DeskSession::State::Ready) m_client->openChat(openDocumentId(), chatId);
  });
  connect(m_chatView, &ChatView::renameChatRequested, this,
          [this](qint64 chatId, const QString& title) { m_client->renameChat(openDocumentId(), chatId, title); });
  connect(m_chatView, &ChatView::deleteChatRequested, this, [this](qint64 chatId) {
    if (isAnswering()) return;
    if (chatId == m_chatModel->chatId()) m_chatModel->startNewChat();
    m_client->deleteChat(openDocumentId(), chatId);
  });
  connect(m_chatView, &ChatView::newChatRequested, this, [this] {
    if (isAnswering()) return;
    m_chatModel->startNewChat();
    m_chatView->focusInput();
  });
  connect(m_prefill, &PrefillProgress::cancelRequested, this, &MainWindow::stop);
}

bool MainWindow::hasModel() const { return m_session->hasModel(); }
bool MainWindow::isAnswering() const { return m_session->state() == DeskSession::State::Answering; }
bool MainWindow::isOpening() const { return m_session->state() == DeskSession::State::Opening; }

void MainWindow::showSettings() {
  auto* dialog = new SettingsDialog(m_settings, this);
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  connect(dialog, &QDialog::accepted, this, [this, dialog] { applySettings(dialog->settings()); });
  dialog->open();  // window-modal, and the event loop keeps running (the engine keeps reporting)
}

void MainWindow::applySettings(const DeskSettings& settings) {
  const DeskSettings old = m_settings;
  m_settings = settings;
  QSettings store;
  m_settings.save(store);
  m_client->setDocumentOptions(m_settings.documentOptions());
  m_memory->setStorageCap(quint64(m_settings.storageCapMiB) << 20);
  if (!m_settings.sameModelLoad(old) || (!m_session->hasModel() && !m_session->isLoadingModel())) {
    loadConfiguredModel();
  } else if (m_session->hasModel()) {
    m_client->setRetrieval(m_settings.retrievalOptions());
  }
}

void MainWindow::updateTelemetry() {
  // Panels closed or tabbed away need nothing; neither do highlights that are turned off. Before the window shows,
  // every dock reports hidden: keep telemetry on until it does.
  if (!m_highlightAction) return;  // docks report while the window is being built
  const bool wanted = m_heatmapDock->isVisible() || m_timelineDock->isVisible() || m_highlightAction->isChecked();
  m_client->setTelemetryEnabled(wanted || !isVisible());
}

void MainWindow::closeEvent(QCloseEvent* event) {
  QSettings store;
  store.setValue("window/geometry", saveGeometry());
  store.setValue("window/state", saveState());
  m_client->cancel();
  event->accept();
}

void MainWindow::resizeEvent(QResizeEvent* event) {
  QMainWindow::resizeEvent(event);
  fitToWidth();
}

void MainWindow::fitToWidth() {
  const bool narrow = width() < windowlayout::kNarrowWidth;
  if (m_narrow == narrow) return;  // within one regime the user's own pane sizes stay
  m_narrow = narrow;
  const QList<QDockWidget*> panels = {m_heatmapDock, m_timelineDock, m_memoryDock};
  if (windowlayout::foldDocks(this, panels, narrow) && !narrow) resizeDocks(panels, kPanelWidths, Qt::Horizontal);
  const windowlayout::CentreWidths sides{m_libraryPane->minimumSizeHint().width(),
                                         m_chatView->minimumSizeHint().width(), m_chatView->rowWidth()};
  m_centre->setSizes(windowlayout::centreSizes(width() - 2 * m_centre->handleWidth(), narrow, sides));
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
  if (!LibraryPane::importableFiles(event->mimeData()).isEmpty()) event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
  const QStringList files = LibraryPane::importableFiles(event->mimeData());
  if (files.isEmpty()) return;
  event->acceptProposedAction();
  m_client->importDocuments(files);
}
