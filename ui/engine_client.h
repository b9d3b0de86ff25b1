// The GUI thread's handle on the engine: starts the engine worker's thread, forwards requests to it (queued) and
// hands its answers back as signals. Every request returns an id (1, 2, 3, ...) that its result signals carry.
//
// Stale results are dropped here: of the asks, the opens and the model loads, only the latest request of each kind
// reports (an answer to an older question never reaches the chat). A newer ask or open also stops the older one
// inside the worker, and cancel() stops whatever runs now and skips every request issued before it that has not
// started (model loads, retrieval changes and deletions still run: they are quick and leave the engine consistent).
#pragma once

#include <QList>
#include <QObject>
#include <QSet>
#include <QString>
#include <QStringList>
#include <memory>

#include "client_types.h"
#include "fkv/types.h"

class QThread;
class EngineWorker;
struct RequestGate;

class EngineClient : public QObject {
  Q_OBJECT

 public:
  // libraryPath: the document library's database (the app passes AppDataLocation + "/library.db"); empty: nothing is
  // remembered and imports fail.
  explicit EngineClient(const QString& libraryPath, QObject* parent = nullptr);
  // Cancels what runs, stops the thread and waits for it (a model load in progress finishes first).
  ~EngineClient() override;

  QString libraryPath() const { return m_libraryPath; }
  bool isBusy() const { return !m_pending.isEmpty(); }
  bool hasModel() const { return m_hasModel; }
  bool telemetryEnabled() const { return m_telemetryEnabled; }

  quint64 loadModel(const QString& path, const fkv::ModelOptions& options);
  quint64 openDocument(const QString& path);
  quint64 openDocumentId(qint64 documentId);
  // Answers the last turn of `turns` (user, assistant, ..., user) about the open document. With a library document
  // in `save`, the question and then the answer are saved in its chat (chatSaved says which).
  quint64 ask(const QList<ChatTurn>& turns, const fkv::GenerationOptions& options, const ChatSaveTarget& save = {});
  quint64 setRetrieval(const fkv::RetrievalOptions& options);
  // Ingests the files and records them in the library without opening them.
  quint64 importDocuments(const QStringList& paths);
  quint64 deleteDocument(qint64 documentId);
  // A document's chats (EngineWorker::openChat, renameChat, deleteChat).
  quint64 openChat(qint64 documentId, qint64 chatId);
  quint64 renameChat(qint64 documentId, qint64 chatId, const QString& title);
  quint64 deleteChat(qint64 documentId, qint64 chatId);
  // Options for the opens that follow (snapshot use, storage cap, largest file).
  void setDocumentOptions(const fkv::DocumentOptions& options);
  // On by default. Off removes the telemetry observer from the engine (hidden panels cost nothing); no telemetry
  // signals follow.
  void setTelemetryEnabled(bool enabled);
  // Stops what runs now (prefill, answer, import) and skips requests issued before this call that have not started.
  // Callable any time; the engine's own cancel is thread-safe.
  void cancel();

 signals:
  void modelLoaded(quint64 id, const ModelSummary& model);
  void modelFailed(quint64 id, const QString& message);
  void openProgress(quint64 id, const OpenProgress& progress);
  void documentOpened(quint64 id, const OpenedDocumentInfo& document);
  // The text of the document being opened, before its prefill runs.
  void documentPreview(quint64 id, QSharedPointer<const fkv::DocumentContent> content);
  void documentFailed(quint64 id, const QString& message);
  // The open document was closed by something other than a successful open: its model was replaced, it was
  // deleted, or an open of another document failed after it had dropped this one (documentFailed comes first).
  void documentClosed(qint64 documentId);
  void answerPiece(quint64 id, const QString& piece);
  void answerFinished(quint64 id, const AnswerStats& stats);
  void answerFailed(quint64 id, const QString& message);
  void chatSaved(quint64 id, qint64 documentId, qint64 chatId);
  void chatSaveFailed(quint64 id, const QString& message);
  void chatOpened(quint64 id, qint64 documentId, const SavedChat& chat);
  void chatActionFailed(quint64 id, const QString& message);
  void chatsListed(qint64 documentId, const QList<ChatSummary>& chats);
  void retrievalApplied(quint64 id);
  void retrievalFailed(quint64 id, const QString& message);
  // A file of an import being read: a PDF's pages (stage "ingest"), a few times a second.
  void importProgress(quint64 id, const QString& path, const OpenProgress& progress);
  // documentIds: the library rows of the files that were imported; errors: "path: reason" for each that was not.
  void importFinished(quint64 id, const QList<qint64>& documentIds, const QStringList& errors);
  void documentDeleted(quint64 id, qint64 documentId);
  void deleteFailed(quint64 id, const QString& message);
  // The library's rows changed (import, delete, an open that saved or touched a snapshot).
  void libraryChanged();
  void telemetry(const TelemetryFrame& frame);
  void memoryChanged(const MemoryUse& memory);
  void busyChanged(bool busy);

 private:
  quint64 issue();
  void onRequestDone(quint64 id);
  void connectWorker();
  template <class... Args>
  void relayLatest(void (EngineWorker::*from)(quint64, Args...), void (EngineClient::*to)(quint64, Args...),
                   const quint64* latest);
  template <class Fn>
  void post(Fn&& fn);

  QString m_libraryPath;
  QThread* m_thread = nullptr;
  EngineWorker* m_worker = nullptr;  // lives on m_thread; deleted there when it finishes
  std::shared_ptr<RequestGate> m_gate;
  quint64 m_lastId = 0;
  quint64 m_latestLoad = 0;
  quint64 m_latestOpen = 0;
  quint64 m_latestAsk = 0;
  QSet<quint64> m_pending;  // issued, not yet done in the worker
  bool m_hasModel = false;
  bool m_telemetryEnabled = true;
};
