// FreeKV Desk's window: the library pane on the left, the open document in the centre, the chat on the right, and
// the live panels (retrieval heatmap, recall timeline, memory) in dock widgets along the bottom. It owns the engine
// client and the models, and wires them to the views: the views ask (signals), the window runs the requests on the
// engine worker and hands the results back. Hidden live panels turn the engine's telemetry off.
#pragma once

#include <QElapsedTimer>
#include <QIcon>
#include <QMainWindow>
#include <QStringList>
#include <optional>

#include "client_types.h"
#include "settings_dialog.h"

class ChatModel;
class ChatView;
class DeskSession;
class DocumentView;
class EngineClient;
class LibraryModel;
class LibraryPane;
class MemoryPanel;
class PrefillProgress;
class QAction;
class QDockWidget;
class QLabel;
class QSplitter;
class QTimer;
class RecallTimeline;
class RetrievalHeatmap;
class TimelineModel;

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  // libraryPath: the document library's database (the app passes AppDataLocation + "/library.db"). Settings come
  // from QSettings; a configured model starts loading at once.
  explicit MainWindow(const QString& libraryPath, QWidget* parent = nullptr);
  ~MainWindow() override;

  // Imports the files; the last one that imports is then opened (the command line's files).
  void importAndOpen(const QStringList& paths);
  void openDocument(qint64 documentId);
  // Saves the settings, reloads the model when its file or load options changed, else applies the retrieval.
  void applySettings(const DeskSettings& settings);
  DeskSettings settings() const { return m_settings; }

  bool hasModel() const;
  const ModelSummary& model() const { return m_model; }
  qint64 openDocumentId() const { return m_openDocument.doc.id; }
  // The last document opened: where its KV came from ("snapshot" or "prefill") and the rest of what the engine said.
  const OpenedDocumentInfo& openedDocument() const { return m_openDocument; }
  bool isAnswering() const;
  bool isOpening() const;
  const DeskSession* session() const { return m_session; }

  EngineClient* client() const { return m_client; }
  LibraryModel* libraryModel() const { return m_libraryModel; }
  ChatModel* chatModel() const { return m_chatModel; }
  TimelineModel* timelineModel() const { return m_timelineModel; }
  LibraryPane* libraryPane() const { return m_libraryPane; }
  DocumentView* documentView() const { return m_documentView; }
  ChatView* chatView() const { return m_chatView; }
  PrefillProgress* prefillProgress() const { return m_prefill; }
  RetrievalHeatmap* heatmap() const { return m_heatmap; }
  RecallTimeline* timeline() const { return m_timeline; }
  MemoryPanel* memoryPanel() const { return m_memory; }
  QDockWidget* heatmapDock() const { return m_heatmapDock; }
  QDockWidget* timelineDock() const { return m_timelineDock; }
  QDockWidget* memoryDock() const { return m_memoryDock; }
  // The status bar's parts: tokens/s, context used / max, memory per tier.
  QString speedText() const;
  QString contextText() const;
  QString memoryText() const;

  // The app's icon: the SVG where Qt can render it, else the same drawing painted at the usual sizes.
  static QIcon appIcon();

 public slots:
  void showSettings();
  void ask(const QString& question);
  void stop();
  void regenerate();

 signals:
  // The engine became idle with a document ready (after an open, an answer, or a model load that reopened one).
  void documentReady(qint64 documentId);
  void answerDone(const AnswerStats& stats);

 protected:
  void closeEvent(QCloseEvent* event) override;
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;

 private:
  void buildCentre();
  void buildDocks();
  void buildMenus();
  void buildStatusBar();
  // Below windowlayout::kNarrowWidth: the panels in tabs and narrower sides; above: the usual layout.
  void fitToWidth();
  void connectClient();
  void connectViews();
  void loadConfiguredModel();
  void updateTelemetry();
  void updateChatState();
  void showError(const QString& message);
  void askWithCurrentTurns();

  void onModelLoaded(const ModelSummary& model);
  void onModelFailed(const QString& message);
  void onDocumentOpened(const OpenedDocumentInfo& info);
  void onDocumentFailed(const QString& message);
  void onDocumentClosed(qint64 documentId);
  void onAnswerPiece(const QString& piece);
  void flushPieces();
  void onAnswerFinished(const AnswerStats& stats);
  void onAnswerFailed(const QString& message);
  void onImportProgress(quint64 id, const QString& path, const OpenProgress& progress);
  void onImportFinished(const QList<qint64>& ids, const QStringList& errors, bool openLast);
  void onTelemetry(const TelemetryFrame& frame);
  void onMemory(const MemoryUse& memory);

  QString m_libraryPath;
  DeskSettings m_settings;
  EngineClient* m_client = nullptr;
  LibraryModel* m_libraryModel = nullptr;
  ChatModel* m_chatModel = nullptr;
  TimelineModel* m_timelineModel = nullptr;

  QSplitter* m_centre = nullptr;  // library | document column | chat
  LibraryPane* m_libraryPane = nullptr;
  DocumentView* m_documentView = nullptr;
  ChatView* m_chatView = nullptr;
  PrefillProgress* m_prefill = nullptr;
  RetrievalHeatmap* m_heatmap = nullptr;
  RecallTimeline* m_timeline = nullptr;
  MemoryPanel* m_memory = nullptr;
  QDockWidget* m_heatmapDock = nullptr;
  QDockWidget* m_timelineDock = nullptr;
  QDockWidget* m_memoryDock = nullptr;
  QAction* m_highlightAction = nullptr;
  QLabel* m_modelLabel = nullptr;
  QLabel* m_speedLabel = nullptr;
  QLabel* m_contextLabel = nullptr;
  QLabel* m_memoryLabel = nullptr;

  DeskSession* m_session = nullptr;  // what the desk is doing: model, document, answer
  ModelSummary m_model;
  QString m_modelError;
  OpenedDocumentInfo m_openDocument;
  QString m_openingTitle;
  int m_answerPieces = 0;
  QString m_pendingPieces;  // arrived, not yet in the chat model
  QTimer* m_pieceTimer = nullptr;
  QElapsedTimer m_answerClock;
  quint64 m_importRequest = 0;   // the import whose last document is opened when it finishes (0: none)
  QString m_importShown;         // the file whose import the progress bar shows; empty: none
  std::optional<bool> m_narrow;  // the width regime the layout was last fitted to; none before the first resize
};
