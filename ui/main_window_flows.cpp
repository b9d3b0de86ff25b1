// The window's engine flows: loading the configured model, importing and opening documents, asking and streaming
// answers, and feeding telemetry and memory to the live panels and the status bar.
#include <QDockWidget>
#include <QFileInfo>
#include <QLabel>
#include <QLocale>
#include <QMessageBox>
#include <QStatusBar>
#include <QTimer>

#include "chat_model.h"
#include "chat_view.h"
#include "desk_session.h"
#include "document_view.h"
#include "engine_client.h"
#include "library_model.h"
#include "library_pane.h"
#include "main_window.h"
#include "memory_panel.h"
#include "prefill_progress.h"
#include "recall_timeline.h"
#include "retrieval_heatmap.h"
#include "timeline_model.h"

namespace {

constexpr int kMessageMs = 8000;
constexpr int kPieceFlushMs = 30;

QString fromStd(const std::string& s) { return QString::fromStdString(s); }

QString bytesText(quint64 bytes) { return QLocale().formattedDataSize(qint64(bytes), 1); }

}  // namespace

void MainWindow::connectClient() {
  EngineClient* c = m_client;
  connect(c, &EngineClient::modelLoaded, this, [this](quint64, const ModelSummary& m) { onModelLoaded(m); });
  connect(c, &EngineClient::modelFailed, this, [this](quint64, const QString& e) { onModelFailed(e); });
  connect(c, &EngineClient::openProgress, this, [this](quint64, const OpenProgress& p) {
    m_prefill->setProgress(p);
    if (p.stage == fkv::Stage::prefill && p.tokensPerSecond > 0)
      m_speedLabel->setText(tr("prefill %1 tokens/s").arg(QLocale().toString(p.tokensPerSecond, 'f', 0)));
  });
  connect(c, &EngineClient::documentOpened, this,
          [this](quint64, const OpenedDocumentInfo& d) { onDocumentOpened(d); });
  // The text can be read while the prefill runs; highlights and questions wait for it.
  connect(c, &EngineClient::documentPreview, this,
          [this](quint64, QSharedPointer<const fkv::DocumentContent> content) {
            if (isOpening()) m_documentView->setContent(content, m_openingTitle);
          });
  connect(c, &EngineClient::documentFailed, this, [this](quint64, const QString& e) { onDocumentFailed(e); });
  connect(c, &EngineClient::documentClosed, this, &MainWindow::onDocumentClosed);
  connect(c, &EngineClient::answerPiece, this, [this](quint64, const QString& piece) { onAnswerPiece(piece); });
  connect(c, &EngineClient::answerFinished, this, [this](quint64, const AnswerStats& s) { onAnswerFinished(s); });
  connect(c, &EngineClient::answerFailed, this, [this](quint64, const QString& e) { onAnswerFailed(e); });
  connect(c, &EngineClient::chatSaved, this,
          [this](quint64, qint64 documentId, qint64 chatId) { m_chatModel->setChatId(documentId, chatId); });
  connect(c, &EngineClient::chatSaveFailed, this, [this](quint64, const QString& e) { showError(e); });
  connect(c, &EngineClient::chatActionFailed, this, [this](quint64, const QString& e) { showError(e); });
  connect(c, &EngineClient::chatsListed, this, [this](qint64 documentId, const QList<ChatSummary>& chats) {
    if (documentId == openDocumentId()) m_chatView->setChats(chats, m_chatModel->chatId());
  });
  connect(c, &EngineClient::chatOpened, this, [this](quint64, qint64 documentId, const SavedChat& chat) {
    if (documentId == openDocumentId() && !isAnswering()) m_chatModel->show(documentId, chat);
  });
  connect(c, &EngineClient::retrievalFailed, this,
          [this](quint64, const QString& e) { showError(tr("The retrieval settings were not applied: %1").arg(e)); });
  connect(c, &EngineClient::importProgress, this, &MainWindow::onImportProgress);
  connect(c, &EngineClient::importFinished, this,
          [this](quint64 id, const QList<qint64>& ids, const QStringList& errors) {
            const bool openLast = id == m_importRequest;  // the command line's import opens what it brought in
            if (openLast) m_importRequest = 0;
            if (!m_importShown.isEmpty() && !isOpening()) m_prefill->finish();
            m_importShown.clear();
            onImportFinished(ids, errors, openLast);
          });
  connect(c, &EngineClient::documentDeleted, this, [this](quint64, qint64 documentId) {
    statusBar()->showMessage(tr("Document deleted"), kMessageMs);
    if (documentId == m_openDocument.doc.id) onDocumentClosed(documentId);
  });
  connect(c, &EngineClient::deleteFailed, this,
          [this](quint64, const QString& e) { showError(tr("The document was not deleted: %1").arg(e)); });
  m_pieceTimer = new QTimer(this);
  m_pieceTimer->setSingleShot(true);
  m_pieceTimer->setInterval(kPieceFlushMs);
  connect(m_pieceTimer, &QTimer::timeout, this, &MainWindow::flushPieces);
  connect(c, &EngineClient::libraryChanged, m_libraryModel, &LibraryModel::refresh);
  connect(c, &EngineClient::telemetry, this, &MainWindow::onTelemetry);
  connect(c, &EngineClient::memoryChanged, this, &MainWindow::onMemory);
}

// Failures go where the user is looking, whole and until dismissed: the chat pane. The status bar only points there.
void MainWindow::showError(const QString& message) {
  m_chatView->showError(message);
  statusBar()->showMessage(tr("Something went wrong: see the message above the chat."), kMessageMs);
  qWarning("%s", qPrintable(message));
}

// ---- the model ----

void MainWindow::loadConfiguredModel() {
  const QStringList problems = m_settings.validate();
  if (m_settings.modelPath.isEmpty() || !problems.isEmpty()) {
    m_modelError = problems.join(QLatin1Char(' '));
    m_session->noModelToLoad(!m_settings.modelPath.isEmpty());
    updateChatState();
    return;
  }
  m_modelError.clear();
  m_session->modelLoadStarted();
  m_client->loadModel(m_settings.modelPath, m_settings.modelOptions());
  m_modelLabel->setText(tr("loading %1…").arg(QFileInfo(m_settings.modelPath).fileName()));
  updateChatState();
}

void MainWindow::onModelLoaded(const ModelSummary& m) {
  m_model = m;
  const qint64 reopen = m_session->modelLoaded();
  m_memory->setModel(m);
  m_timelineModel->clear();  // a new context: its steps count from 0 again
  m_heatmap->clear();
  const quint64 need = m.fileBytes + quint64(m.nCtx) * m.kvBytesPerToken;
  m_modelLabel->setText(tr("%1 · %2").arg(m.name.isEmpty() ? QFileInfo(m.path).fileName() : m.name, m.backend));
  m_modelLabel->setToolTip(tr("%1 (%2)\n%3 layers, %4 KV heads, context %5 of %6 trained\nFile %7; memory need "
                              "%8 with a full context (KV %9 per token)\nChat template: %10")
                               .arg(m.name, m.architecture)
                               .arg(m.nLayers)
                               .arg(m.nKvHeads)
                               .arg(QLocale().toString(m.nCtx), QLocale().toString(m.nCtxTrain), bytesText(m.fileBytes),
                                    bytesText(need), bytesText(m.kvBytesPerToken), m.chatTemplate));
  statusBar()->showMessage(tr("Model loaded: %1").arg(m.name), kMessageMs);
  if (reopen != 0) openDocument(reopen);
  updateChatState();
}

void MainWindow::onModelFailed(const QString& message) {
  m_session->modelFailed();
  m_modelError = message;
  m_modelLabel->setText(m_session->hasModel() ? m_modelLabel->text() : tr("no model"));
  showError(tr("The model could not be loaded: %1").arg(message));
  updateChatState();
}

void MainWindow::updateChatState() {
  using State = ChatView::State;
  switch (m_session->state()) {
    case DeskSession::State::NoModel:
      return m_chatView->setState(State::NoModel);
    case DeskSession::State::LoadingModel:
      return m_chatView->setState(State::LoadingModel, QFileInfo(m_settings.modelPath).fileName());
    case DeskSession::State::ModelFailed:
      return m_chatView->setState(State::ModelFailed, m_modelError);
    case DeskSession::State::NoDocument:
      return m_chatView->setState(State::NoDocument);
    case DeskSession::State::Opening:
      return m_chatView->setState(State::Preparing, m_openingTitle);
    case DeskSession::State::Ready:
      return m_chatView->setState(State::Ready);
    case DeskSession::State::Answering:
      return m_chatView->setState(State::Answering);
  }
}

// ---- documents ----

void MainWindow::importAndOpen(const QStringList& paths) {
  if (paths.isEmpty()) return;
  m_importRequest = m_client->importDocuments(paths);
  statusBar()->showMessage(tr("Importing %n document(s)…", nullptr, int(paths.size())));
}

// A long PDF's import shows its pages in the open's bar, whose Cancel stops it; an open waiting behind the import
// keeps the bar to itself.
void MainWindow::onImportProgress(quint64 /*id*/, const QString& path, const OpenProgress& progress) {
  if (isOpening()) return;
  if (m_importShown != path) m_prefill->startImport(QFileInfo(path).fileName());
  m_importShown = path;
  m_prefill->setProgress(progress);
}

void MainWindow::onImportFinished(const QList<qint64>& ids, const QStringList& errors, bool openLast) {
  m_libraryModel->refresh();
  if (!ids.isEmpty()) m_libraryPane->selectDocument(ids.last());
  if (!errors.isEmpty()) {
    auto* box =
        new QMessageBox(QMessageBox::Warning, tr("Import"),
                        tr("%n file(s) could not be imported.", nullptr, int(errors.size())), QMessageBox::Ok, this);
    box->setDetailedText(errors.join(QLatin1Char('\n')));
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();  // not exec(): the engine keeps reporting while it shows
  }
  statusBar()->showMessage(tr("Imported %n document(s)", nullptr, int(ids.size())), kMessageMs);
  if (openLast && !ids.isEmpty()) openDocument(ids.last());
}

void MainWindow::openDocument(qint64 documentId) {
  if (isAnswering()) stop();
  const int row = m_libraryModel->rowOfDocument(documentId);
  m_openingTitle = row >= 0 ? m_libraryModel->index(row, LibraryModel::TitleColumn).data().toString()
                            : tr("document %1").arg(documentId);
  if (!m_session->openStarted(documentId)) {  // remembered when a model is loading
    showError(m_session->isLoadingModel() ? tr("The model is still loading; open the document when it is ready.")
                                          : tr("Choose a model in Settings (Ctrl+,) before opening documents."));
    return;
  }
  m_prefill->start(m_openingTitle);
  if (documentId != m_openDocument.doc.id) {
    m_documentView->showMessage(tr("Reading %1…\n\nThe first open of a document runs a prefill; later opens load "
                                   "its saved KV cache.")
                                    .arg(m_openingTitle));
    m_chatModel->show(0, {});  // the chat follows the document: the previous one's turns are not this one's
    m_chatView->setChats({}, 0);
  }
  m_client->openDocumentId(documentId);
  m_libraryPane->selectDocument(documentId);
  updateChatState();
}

void MainWindow::onDocumentOpened(const OpenedDocumentInfo& info) {
  m_session->documentOpened(info.doc.id);
  m_prefill->finish();
  m_openDocument = info;
  const QString title = fromStd(info.doc.title);
  if (m_documentView->content() != info.content) m_documentView->setContent(info.content, title);
  m_chatModel->show(info.doc.id, info.chat);
  m_chatView->setChats(info.chats, m_chatModel->chatId());
  if (!info.chatError.isEmpty()) showError(info.chatError);
  m_libraryPane->setOpenDocument(info.doc.id);
  setWindowTitle(tr("%1 — FreeKV Desk").arg(title));
  QString how = info.doc.kv_source == fkv::KvSource::snapshot
                    ? tr("KV cache loaded from disk in %1 s, no prefill").arg(info.doc.load_s, 0, 'f', 2)
                    : tr("prefilled %1 tokens in %2 s")
                          .arg(QLocale().toString(info.doc.n_tokens))
                          .arg(info.doc.prefill_s, 0, 'f', 1);
  if (!info.doc.recompute_reason.empty())
    how += tr(" (the saved KV was recomputed: %1)").arg(fromStd(info.doc.recompute_reason));
  if (!info.doc.save_error.empty()) how += tr(" (not saved: %1)").arg(fromStd(info.doc.save_error));
  statusBar()->showMessage(tr("Opened %1: %2").arg(title, how), 2 * kMessageMs);
  updateChatState();
  m_chatView->focusInput();
  emit documentReady(info.doc.id);
}

void MainWindow::onDocumentFailed(const QString& message) {
  const DeskSession::FailedOpen failed = m_session->openFailed();
  m_prefill->finish();
  if (failed.cancelled) {
    statusBar()->showMessage(tr("Opening %1 was cancelled.").arg(m_openingTitle), kMessageMs);
  } else {
    showError(tr("The document was not opened: %1").arg(message));
  }
  onDocumentClosed(m_openDocument.doc.id);  // a failed open leaves no document in the context
  // A cancel or a refusal keeps what was open before: the engine dropped it, its saved KV brings it back.
  if (failed.reopen != 0) openDocument(failed.reopen);
}

void MainWindow::onDocumentClosed(qint64 documentId) {
  m_session->documentClosed(documentId);
  m_openDocument = OpenedDocumentInfo{};
  if (!m_session->isLoadingModel()) {
    m_documentView->clearContent();
    m_chatModel->show(0, {});
    m_chatView->setChats({}, 0);
    setWindowTitle(tr("FreeKV Desk"));
  }
  m_libraryPane->setOpenDocument(0);
  updateChatState();
}

// ---- answers ----

void MainWindow::ask(const QString& question) {
  if (m_session->state() != DeskSession::State::Ready || question.trimmed().isEmpty()) return;
  m_chatModel->appendUser(question.trimmed());
  askWithCurrentTurns();
}

void MainWindow::askWithCurrentTurns() {
  if (!m_session->answerStarted()) return;
  const QList<ChatTurn> turns = m_chatModel->turns();
  m_chatModel->beginAssistant();
  m_answerPieces = 0;
  m_answerClock.start();
  m_client->ask(turns, m_settings.generationOptions(), m_chatModel->saveTarget());
  updateChatState();
}

void MainWindow::regenerate() {
  if (m_session->state() != DeskSession::State::Ready || !m_chatModel->removeLastAnswer()) return;
  askWithCurrentTurns();
}

void MainWindow::stop() {
  if (!isAnswering() && !isOpening() && m_importShown.isEmpty()) return;
  m_session->cancelRequested();
  m_prefill->cancelling();  // the engine stops after its current chunk; say so now
  m_client->cancel();
}

// Pieces can come faster than a screen refreshes (thousands a second from a small model): they are gathered and
// handed to the chat at most every kPieceFlushMs, so the event loop never spends a frame re-laying out the answer.
void MainWindow::onAnswerPiece(const QString& piece) {
  m_pendingPieces += piece;
  if (!m_pieceTimer->isActive()) m_pieceTimer->start();
  ++m_answerPieces;
}

void MainWindow::flushPieces() {
  m_pieceTimer->stop();
  if (m_pendingPieces.isEmpty()) return;
  m_chatModel->appendPiece(m_pendingPieces);
  m_pendingPieces.clear();
  const double seconds = m_answerClock.nsecsElapsed() / 1e9;
  if (seconds > 0.2) m_speedLabel->setText(tr("%1 tokens/s").arg(QLocale().toString(m_answerPieces / seconds, 'f', 1)));
}

void MainWindow::onAnswerFinished(const AnswerStats& stats) {
  flushPieces();
  const bool ready = m_session->answerEnded();
  m_chatModel->finishAssistant(stats.stopReason, stats.citations);
  m_speedLabel->setText(tr("%1 tokens/s").arg(QLocale().toString(stats.decodeTokensPerSecond, 'f', 1)));
  if (!stats.kvRecomputed.isEmpty())
    statusBar()->showMessage(tr("The saved KV cache was damaged and has been recomputed: %1").arg(stats.kvRecomputed),
                             2 * kMessageMs);
  updateChatState();
  emit answerDone(stats);
  if (ready) emit documentReady(m_openDocument.doc.id);
}

void MainWindow::onAnswerFailed(const QString& message) {
  m_pieceTimer->stop();
  m_pendingPieces.clear();
  m_session->answerEnded();
  m_chatModel->discardAssistant();
  showError(tr("No answer: %1").arg(message));
  updateChatState();
}

// ---- live panels ----

void MainWindow::onTelemetry(const TelemetryFrame& frame) {
  if (m_heatmapDock->isVisible()) m_heatmap->setFrame(frame);
  m_timelineModel->addFrame(frame);  // cheap, and the timeline keeps its history while hidden
  // A frame without decode steps (the flush at the end of an answer) says nothing new about where the model looked.
  if (m_highlightAction->isChecked() && !frame.newSteps.isEmpty())
    m_documentView->setRetrievedPages(frame.retrievedPages, frame.retrievedWeight);
}

void MainWindow::onMemory(const MemoryUse& m) {
  m_memory->setMemoryUse(m);
  const QLocale locale;
  m_contextLabel->setText(tr("context %1 / %2 tokens").arg(locale.toString(m.nTokens), locale.toString(m.nCtx)));
  const QString device = m_memory->hasDeviceTier() ? bytesText(m.deviceBytes) : tr("–");
  m_memoryLabel->setText(
      tr("device %1 · host %2 · disk %3").arg(device, bytesText(m.hostBytes), bytesText(m.diskBytes)));
}
