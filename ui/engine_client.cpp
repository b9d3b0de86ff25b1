#include "engine_client.h"

#include <QThread>
#include <utility>

#include "engine_worker.h"
#include "telemetry_throttle.h"

template <class Fn>
void EngineClient::post(Fn&& fn) {
  QMetaObject::invokeMethod(m_worker, std::forward<Fn>(fn), Qt::QueuedConnection);
}

EngineClient::EngineClient(const QString& libraryPath, QObject* parent)
    : QObject(parent), m_libraryPath(libraryPath), m_gate(std::make_shared<RequestGate>()) {
  registerClientTypes();
  m_thread = new QThread(this);
  m_thread->setObjectName(QStringLiteral("fkv-engine"));
  m_worker = new EngineWorker(libraryPath, m_gate);
  m_worker->moveToThread(m_thread);
  // QThread deletes deferred objects as it finishes, so the engine and its SQLite connection die on their thread.
  connect(m_thread, &QThread::finished, m_worker, &QObject::deleteLater);
  connectWorker();
  m_thread->start();
}

EngineClient::~EngineClient() {
  cancel();
  m_thread->quit();
  m_thread->wait();
}

quint64 EngineClient::loadModel(const QString& path, const fkv::ModelOptions& options) {
  const quint64 id = issue();
  m_latestLoad = id;
  post([w = m_worker, id, path, options] { w->loadModel(id, path, options); });
  return id;
}

quint64 EngineClient::openDocument(const QString& path) {
  const quint64 id = issue();
  m_latestOpen = id;
  m_gate->latestOpen.store(id);  // an older open still running stops at its next progress report
  post([w = m_worker, id, path] { w->openDocument(id, path); });
  return id;
}

quint64 EngineClient::openDocumentId(qint64 documentId) {
  const quint64 id = issue();
  m_latestOpen = id;
  m_gate->latestOpen.store(id);
  post([w = m_worker, id, documentId] { w->openDocumentId(id, documentId); });
  return id;
}

quint64 EngineClient::ask(const QList<ChatTurn>& turns, const fkv::GenerationOptions& options,
                          const ChatSaveTarget& save) {
  const quint64 id = issue();
  m_latestAsk = id;
  m_gate->latestAsk.store(id);  // an older answer still streaming stops at its next piece
  post([w = m_worker, id, turns, options, save] { w->ask(id, turns, options, save); });
  return id;
}

quint64 EngineClient::setRetrieval(const fkv::RetrievalOptions& options) {
  const quint64 id = issue();
  post([w = m_worker, id, options] { w->setRetrieval(id, options); });
  return id;
}

quint64 EngineClient::importDocuments(const QStringList& paths) {
  const quint64 id = issue();
  post([w = m_worker, id, paths] { w->importDocuments(id, paths); });
  return id;
}

quint64 EngineClient::deleteDocument(qint64 documentId) {
  const quint64 id = issue();
  post([w = m_worker, id, documentId] { w->deleteDocument(id, documentId); });
  return id;
}

quint64 EngineClient::openChat(qint64 documentId, qint64 chatId) {
  const quint64 id = issue();
  post([w = m_worker, id, documentId, chatId] { w->openChat(id, documentId, chatId); });
  return id;
}

quint64 EngineClient::renameChat(qint64 documentId, qint64 chatId, const QString& title) {
  const quint64 id = issue();
  post([w = m_worker, id, documentId, chatId, title] { w->renameChat(id, documentId, chatId, title); });
  return id;
}

quint64 EngineClient::deleteChat(qint64 documentId, qint64 chatId) {
  const quint64 id = issue();
  post([w = m_worker, id, documentId, chatId] { w->deleteChat(id, documentId, chatId); });
  return id;
}

void EngineClient::setDocumentOptions(const fkv::DocumentOptions& options) {
  post([w = m_worker, options] { w->setDocumentOptions(options); });
}

void EngineClient::setTelemetryEnabled(bool enabled) {
  if (enabled == m_telemetryEnabled) return;
  m_telemetryEnabled = enabled;
  m_worker->telemetryThrottle()->setEnabled(enabled);  // at once, even during a long answer
  post([w = m_worker, enabled] { w->setTelemetryEnabled(enabled); });
}

void EngineClient::cancel() {
  m_gate->cancelledUpTo.store(m_lastId);
  if (fkv::Engine* engine = m_worker->engine()) engine->cancel();
}

quint64 EngineClient::issue() {
  const quint64 id = ++m_lastId;
  const bool wasIdle = m_pending.isEmpty();
  m_pending.insert(id);
  if (wasIdle) emit busyChanged(true);
  return id;
}

void EngineClient::onRequestDone(quint64 id) {
  if (!m_pending.remove(id)) return;
  if (m_pending.isEmpty()) emit busyChanged(false);
}

// Re-emits a worker result only while `latest` still names its request: a newer request of the kind replaced it.
template <class... Args>
void EngineClient::relayLatest(void (EngineWorker::*from)(quint64, Args...), void (EngineClient::*to)(quint64, Args...),
                               const quint64* latest) {
  const auto relay = [this, to, latest](quint64 id, Args... args) {
    if (id == *latest) emit(this->*to)(id, args...);
  };
  connect(m_worker, from, this, relay, Qt::QueuedConnection);
}

// Every worker signal comes back queued; results of replaced requests stop here.
void EngineClient::connectWorker() {
  const EngineWorker* w = m_worker;
  const auto queued = Qt::QueuedConnection;
  connect(w, &EngineWorker::requestDone, this, &EngineClient::onRequestDone, queued);
  connect(this, &EngineClient::modelLoaded, this, [this] { m_hasModel = true; });  // first: before any listener
  relayLatest(&EngineWorker::modelLoaded, &EngineClient::modelLoaded, &m_latestLoad);
  relayLatest(&EngineWorker::modelFailed, &EngineClient::modelFailed, &m_latestLoad);
  relayLatest(&EngineWorker::openProgress, &EngineClient::openProgress, &m_latestOpen);
  relayLatest(&EngineWorker::documentOpened, &EngineClient::documentOpened, &m_latestOpen);
  relayLatest(&EngineWorker::documentPreview, &EngineClient::documentPreview, &m_latestOpen);
  relayLatest(&EngineWorker::documentFailed, &EngineClient::documentFailed, &m_latestOpen);
  relayLatest(&EngineWorker::answerPiece, &EngineClient::answerPiece, &m_latestAsk);
  relayLatest(&EngineWorker::answerFinished, &EngineClient::answerFinished, &m_latestAsk);
  relayLatest(&EngineWorker::answerFailed, &EngineClient::answerFailed, &m_latestAsk);
  const auto relayTelemetry = [this](const TelemetryFrame& f) {
    if (m_telemetryEnabled) emit telemetry(f);  // frames sent before telemetry was turned off
  };
  connect(w, &EngineWorker::telemetry, this, relayTelemetry, queued);
  connect(w, &EngineWorker::documentClosed, this, &EngineClient::documentClosed, queued);
  // Not filtered: a chat created for a question that was then replaced still exists, and the next ask continues it.
  connect(w, &EngineWorker::chatSaved, this, &EngineClient::chatSaved, queued);
  connect(w, &EngineWorker::chatSaveFailed, this, &EngineClient::chatSaveFailed, queued);
  connect(w, &EngineWorker::chatOpened, this, &EngineClient::chatOpened, queued);
  connect(w, &EngineWorker::chatActionFailed, this, &EngineClient::chatActionFailed, queued);
  connect(w, &EngineWorker::chatsListed, this, &EngineClient::chatsListed, queued);
  connect(w, &EngineWorker::retrievalApplied, this, &EngineClient::retrievalApplied, queued);
  connect(w, &EngineWorker::retrievalFailed, this, &EngineClient::retrievalFailed, queued);
  connect(w, &EngineWorker::importProgress, this, &EngineClient::importProgress, queued);
  connect(w, &EngineWorker::importFinished, this, &EngineClient::importFinished, queued);
  connect(w, &EngineWorker::documentDeleted, this, &EngineClient::documentDeleted, queued);
  connect(w, &EngineWorker::deleteFailed, this, &EngineClient::deleteFailed, queued);
  connect(w, &EngineWorker::libraryChanged, this, &EngineClient::libraryChanged, queued);
  connect(w, &EngineWorker::memoryChanged, this, &EngineClient::memoryChanged, queued);
}
