// The engine's own thread (DESIGN.md §5): EngineWorker lives on a QThread, owns the fkv::Engine and runs one request
// at a time, in the order they were queued. EngineClient calls its slots with Qt::QueuedConnection and listens to its
// signals the same way; nothing blocks across the two threads. Every request ends with exactly one requestDone(id),
// after its result signal, so the client knows when the worker is idle.
#pragma once

#include <QList>
#include <QObject>
#include <QString>
#include <QStringList>
#include <atomic>
#include <memory>

#include "client_types.h"
#include "fkv/engine.h"

namespace fkv {
class DocumentLibrary;
}
class TelemetryThrottle;

// Which requests are still wanted; written by the GUI thread, read by the worker while it runs one. Asks and opens
// are wanted while they are the latest of their kind and were issued after the last cancel.
struct RequestGate {
  std::atomic<quint64> latestAsk{0};
  std::atomic<quint64> latestOpen{0};
  std::atomic<quint64> cancelledUpTo{0};  // requests with ids up to this one were cancelled

  bool notCancelled(quint64 id) const { return id > cancelledUpTo.load(); }
  bool askWanted(quint64 id) const { return notCancelled(id) && latestAsk.load() == id; }
  bool openWanted(quint64 id) const { return notCancelled(id) && latestOpen.load() == id; }
};

class EngineWorker : public QObject {
  Q_OBJECT

 public:
  // Creates the engine (on the calling thread; it touches nothing thread-bound until its first request).
  EngineWorker(const QString& libraryPath, std::shared_ptr<RequestGate> gate);
  ~EngineWorker() override;

  // For EngineClient::cancel(): the one engine call that is safe from another thread. Null if creation failed.
  fkv::Engine* engine() const { return m_engine.get(); }
  // Its setEnabled() is thread-safe: the client mutes telemetry at once, before setTelemetryEnabled() runs here.
  TelemetryThrottle* telemetryThrottle() const { return m_throttle; }

 public slots:
  void loadModel(quint64 id, const QString& path, const fkv::ModelOptions& options);
  void openDocument(quint64 id, const QString& path);
  void openDocumentId(quint64 id, qint64 documentId);
  void ask(quint64 id, const QList<ChatTurn>& turns, const fkv::GenerationOptions& options, const ChatSaveTarget& save);
  void setRetrieval(quint64 id, const fkv::RetrievalOptions& options);
  void importDocuments(quint64 id, const QStringList& paths);
  void deleteDocument(quint64 id, qint64 documentId);
  // A document's chats in the library: show one, rename one, delete one (with its saved KV). Each change is followed
  // by chatsListed.
  void openChat(quint64 id, qint64 documentId, qint64 chatId);
  void renameChat(quint64 id, qint64 documentId, qint64 chatId, const QString& title);
  void deleteChat(quint64 id, qint64 documentId, qint64 chatId);
  void setDocumentOptions(const fkv::DocumentOptions& options) { m_documentOptions = options; }
  // Installs the telemetry observer in the engine, or removes it.
  void setTelemetryEnabled(bool enabled);

 signals:
  void modelLoaded(quint64 id, const ModelSummary& model);
  void modelFailed(quint64 id, const QString& message);
  void openProgress(quint64 id, const OpenProgress& progress);
  void documentOpened(quint64 id, const OpenedDocumentInfo& document);
  // The text of the document being opened, before its prefill (the same pointer documentOpened then carries).
  void documentPreview(quint64 id, QSharedPointer<const fkv::DocumentContent> content);
  // An ask's question was saved in the document's chat `chatId` (created for it when the ask named none).
  void chatSaved(quint64 id, qint64 documentId, qint64 chatId);
  void chatSaveFailed(quint64 id, const QString& message);
  void chatOpened(quint64 id, qint64 documentId, const SavedChat& chat);
  void chatActionFailed(quint64 id, const QString& message);
  // The document's chats, most recently updated first, after each change to them (documentOpened carries them).
  void chatsListed(qint64 documentId, const QList<ChatSummary>& chats);
  void documentFailed(quint64 id, const QString& message);
  void documentClosed(qint64 documentId);
  void answerPiece(quint64 id, const QString& piece);
  void answerFinished(quint64 id, const AnswerStats& stats);
  void answerFailed(quint64 id, const QString& message);
  void retrievalApplied(quint64 id);
  void retrievalFailed(quint64 id, const QString& message);
  // A PDF being imported: pages read (stage "ingest"), at most every kImportProgressMs and after its last page.
  void importProgress(quint64 id, const QString& path, const OpenProgress& progress);
  void importFinished(quint64 id, const QList<qint64>& documentIds, const QStringList& errors);
  void documentDeleted(quint64 id, qint64 documentId);
  void deleteFailed(quint64 id, const QString& message);
  void libraryChanged();
  void telemetry(const TelemetryFrame& frame);
  void memoryChanged(const MemoryUse& memory);
  void requestDone(quint64 id);

 private:
  template <class OpenFn>
  void runOpen(quint64 id, OpenFn&& open);
  fkv::Result<fkv::DocumentLibrary*> library();  // the engine's own connection
  qint64 saveQuestion(quint64 id, const QList<ChatTurn>& turns, const ChatSaveTarget& save);
  fkv::ProgressCallback importProgressReporter(quint64 id, const QString& path);
  // withDisk: also the library's page files (a query); a prefill's updates leave it out.
  void emitMemory(bool withDisk = true);
  void emitChats(qint64 documentId);
  quint64 m_diskBytes = 0;  // the library's page files, as last measured
  void configureTelemetry();
  ModelSummary modelSummary() const;
  void closeDocument();

  QString m_libraryPath;
  std::shared_ptr<RequestGate> m_gate;
  std::unique_ptr<fkv::Engine> m_engine;
  QString m_engineError;                    // why m_engine is null
  TelemetryThrottle* m_throttle = nullptr;  // a child: it moves to the worker thread with this object
  fkv::DocumentOptions m_documentOptions;
  fkv::RetrievalOptions m_retrieval;  // in use by the loaded model
  int m_pageSize = 32;
  qint64 m_openDocumentId = 0;  // library id of the open document; 0: none (or not in the library)
  bool m_documentOpen = false;  // as the engine has it: documentClosed tells the GUI when this goes false
};
