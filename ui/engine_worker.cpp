#include "engine_worker.h"

#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "chat_recorder.h"
#include "telemetry_throttle.h"

namespace {

QString fromStd(const std::string& s) { return QString::fromStdString(s); }

constexpr qint64 kImportProgressMs = 100;  // a page count the eye can follow; Qt's queue is not flooded

// Every request ends with requestDone, whichever way its slot returns.
class RequestScope {
 public:
  RequestScope(EngineWorker* worker, quint64 id) : m_worker(worker), m_id(id) {}
  ~RequestScope() { emit m_worker->requestDone(m_id); }
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;

 private:
  EngineWorker* m_worker;
  quint64 m_id;
};

std::vector<fkv::Message> toMessages(const QList<ChatTurn>& turns) {
  std::vector<fkv::Message> out;
  out.reserve(size_t(turns.size()));
  for (const ChatTurn& t : turns) out.push_back({t.role.toStdString(), t.text.toStdString()});
  return out;
}

AnswerStats answerStats(const fkv::GenerateResult& r) {
  AnswerStats a;
  a.text = fromStd(r.text);
  a.stopReason = QLatin1String(fkv::stop_reason_name(r.stop_reason));
  a.citations = QVector<fkv::Citation>(r.citations.begin(), r.citations.end());
  a.nPromptTokens = r.n_prompt_tokens;
  a.nCachedTokens = r.n_cached_tokens;
  a.nGenerated = r.n_generated;
  a.decodeTokensPerSecond = r.decode_tokens_per_s;
  a.kvRecomputed = fromStd(r.kv_recomputed);
  return a;
}

QString backendName(const fkv::ModelInfo& info) {
  const QString isa = fromStd(info.isa);
  return QStringLiteral("CPU (%1)").arg(isa == QLatin1String("scalar") ? isa : isa.toUpper());
}

}  // namespace

EngineWorker::EngineWorker(const QString& libraryPath, std::shared_ptr<RequestGate> gate)
    : m_libraryPath(libraryPath), m_gate(std::move(gate)) {
  m_throttle = new TelemetryThrottle(this);
  connect(m_throttle, &TelemetryThrottle::frameReady, this, &EngineWorker::telemetry);
  fkv::EngineOptions options;
  options.library_path = libraryPath.toStdString();
  fkv::Result<std::unique_ptr<fkv::Engine>> engine = fkv::Engine::create(options);
  if (engine.ok()) {
    m_engine = std::move(engine).value();
    m_engine->set_observer(m_throttle);
  } else {
    m_engineError = tr("the engine could not start: %1").arg(fromStd(engine.message()));
  }
}

// The engine goes first: it holds a pointer to the throttle, a child deleted after this body.
EngineWorker::~EngineWorker() { m_engine.reset(); }

void EngineWorker::loadModel(quint64 id, const QString& path, const fkv::ModelOptions& options) {
  const RequestScope scope(this, id);
  if (!m_engine) {
    emit modelFailed(id, m_engineError);
    return;
  }
  const fkv::Status s = m_engine->load_model(path.toStdString(), options);
  if (!s.ok()) {
    emit modelFailed(id, fromStd(s.message()));  // the previous model, if any, is still loaded
    return;
  }
  if (m_documentOpen) closeDocument();  // a new model drops the context, and the document's KV with it
  m_retrieval = options.retrieval;
  m_pageSize = options.page_size;
  configureTelemetry();
  emit modelLoaded(id, modelSummary());
  emitMemory();
}

void EngineWorker::openDocument(quint64 id, const QString& path) {
  runOpen(id, [&](const fkv::DocumentOptions& options, const fkv::ProgressCallback& progress) {
    return m_engine->open_document(path.toStdString(), options, progress);
  });
}

void EngineWorker::openDocumentId(quint64 id, qint64 documentId) {
  runOpen(id, [&](const fkv::DocumentOptions& options, const fkv::ProgressCallback& progress) {
    return m_engine->open_document(static_cast<int64_t>(documentId), options, progress);
  });
}

template <class OpenFn>
void EngineWorker::runOpen(quint64 id, OpenFn&& open) {
  const RequestScope scope(this, id);
  if (!m_engine) {
    emit documentFailed(id, m_engineError);
    return;
  }
  if (!m_gate->openWanted(id)) {
    emit documentFailed(id, tr("opening the document was cancelled before it started"));
    return;
  }
  ProgressThrottle throttle;
  const fkv::ProgressCallback progress = [&](const fkv::Progress& p) {
    OpenProgress out;
    if (throttle.accept(p, out)) {
      // The memory panel follows the context as the prefill fills it, in step with the progress bar.
      if (p.stage == fkv::Stage::prefill) emitMemory(/*withDisk=*/false);
      emit openProgress(id, out);
    }
    return m_gate->openWanted(id);
  };
  // The text is shown while the prefill runs; the same copy then goes with documentOpened.
  QSharedPointer<const fkv::DocumentContent> preview;
  fkv::DocumentOptions options = m_documentOptions;
  options.on_content = [&](const fkv::DocumentContent& content) {
    preview = QSharedPointer<const fkv::DocumentContent>::create(content);
    emit documentPreview(id, preview);
  };
  const fkv::Result<fkv::OpenedDocument> opened = open(options, progress);
  if (!m_libraryPath.isEmpty()) emit libraryChanged();  // even a cancelled open has recorded the document
  if (!opened.ok()) {
    emit documentFailed(id, fromStd(opened.message()));
    // A file that cannot be read leaves the open document as it was; a failure later on has dropped it.
    if (m_documentOpen && m_engine->document() == nullptr) closeDocument();
    emitMemory();
    return;
  }
  OpenedDocumentInfo info;
  info.doc = *opened;
  if (preview) {
    info.content = preview;
  } else if (const fkv::DocumentContent* content = m_engine->document()) {
    info.content = QSharedPointer<fkv::DocumentContent>::create(*content);
  }
  if (opened->id > 0) {
    const fkv::Result<fkv::DocumentLibrary*> lib = library();
    fkv::Result<QList<ChatSummary>> chats = lib.ok() ? chat_recorder::list(**lib, opened->id) : lib.status();
    fkv::Result<SavedChat> chat = chats.ok() ? chat_recorder::latest(**lib, *chats) : chats.status();
    if (chat.ok()) {
      info.chats = std::move(chats).value();
      info.chat = std::move(chat).value();
    } else {
      info.chatError = tr("The chat could not be read: %1").arg(fromStd(chat.message()));
    }
  }
  m_documentOpen = true;
  m_openDocumentId = opened->id;
  emit documentOpened(id, info);
  emitMemory();
}

void EngineWorker::ask(quint64 id, const QList<ChatTurn>& turns, const fkv::GenerationOptions& options,
                       const ChatSaveTarget& save) {
  const RequestScope scope(this, id);
  if (!m_engine) {
    emit answerFailed(id, m_engineError);
    return;
  }
  if (!m_gate->askWanted(id)) {
    emit answerFailed(id, tr("the question was withdrawn before it was answered"));
    return;
  }
  // A newer question or a cancel stops this answer at its next piece.
  const fkv::TextCallback onText = [&](std::string_view piece) {
    emit answerPiece(id, QString::fromUtf8(piece.data(), qsizetype(piece.size())));
    return m_gate->askWanted(id);
  };
  fkv::GenerationOptions o = options;
  o.chat_id = saveQuestion(id, turns, save);  // the engine keeps this chat's KV, so reopening it skips its turns
  const fkv::Result<fkv::GenerateResult> r = m_engine->ask(toMessages(turns), o, onText);
  if (m_throttle->isEnabled()) m_throttle->flush();
  if (r.ok()) {
    const AnswerStats stats = answerStats(*r);
    if (o.chat_id > 0) {
      const fkv::Result<fkv::DocumentLibrary*> lib = library();
      const ChatTurn answer{QStringLiteral("assistant"), stats.text, stats.stopReason, stats.citations};
      const fkv::Status saved = lib.ok() ? chat_recorder::saveAnswer(**lib, o.chat_id, answer) : lib.status();
      if (!saved.ok()) emit chatSaveFailed(id, tr("The answer was not saved: %1").arg(fromStd(saved.message())));
      emitChats(save.documentId);  // its message count
    }
    emit answerFinished(id, stats);
  } else {
    emit answerFailed(id, fromStd(r.message()));
  }
  emitMemory();
}

// Saves the ask's question in the document's chat before it is answered, so a question whose answer fails is still
// kept. Returns the chat's id; 0 when nothing is saved (no library, a document outside it, a failed write).
qint64 EngineWorker::saveQuestion(quint64 id, const QList<ChatTurn>& turns, const ChatSaveTarget& save) {
  if (save.documentId <= 0 || m_libraryPath.isEmpty()) return 0;
  const fkv::Result<fkv::DocumentLibrary*> lib = library();
  const fkv::Result<qint64> chat =
      lib.ok() ? chat_recorder::saveQuestion(**lib, save.documentId, save.chatId, turns) : lib.status();
  if (!chat.ok()) {
    emit chatSaveFailed(id, tr("The question was not saved: %1").arg(fromStd(chat.message())));
    return 0;
  }
  emit chatSaved(id, save.documentId, *chat);
  emitChats(save.documentId);
  return *chat;
}

void EngineWorker::emitChats(qint64 documentId) {
  const fkv::Result<fkv::DocumentLibrary*> lib = library();
  const fkv::Result<QList<ChatSummary>> chats = lib.ok() ? chat_recorder::list(**lib, documentId) : lib.status();
  if (chats.ok()) emit chatsListed(documentId, *chats);
}

void EngineWorker::openChat(quint64 id, qint64 documentId, qint64 chatId) {
  const RequestScope scope(this, id);
  const fkv::Result<fkv::DocumentLibrary*> lib = library();
  const fkv::Result<SavedChat> chat = lib.ok() ? chat_recorder::read(**lib, chatId) : lib.status();
  if (!chat.ok()) {
    emit chatActionFailed(id, tr("The chat could not be read: %1").arg(fromStd(chat.message())));
    return;
  }
  emit chatOpened(id, documentId, *chat);
}

void EngineWorker::renameChat(quint64 id, qint64 documentId, qint64 chatId, const QString& title) {
  const RequestScope scope(this, id);
  const fkv::Result<fkv::DocumentLibrary*> lib = library();
  const fkv::Status s = lib.ok() ? (*lib)->rename_chat(chatId, title.simplified().toStdString()) : lib.status();
  if (!s.ok()) emit chatActionFailed(id, tr("The chat was not renamed: %1").arg(fromStd(s.message())));
  emitChats(documentId);
}

void EngineWorker::deleteChat(quint64 id, qint64 documentId, qint64 chatId) {
  const RequestScope scope(this, id);
  const fkv::Result<fkv::DocumentLibrary*> lib = library();
  const fkv::Status s = lib.ok() ? (*lib)->delete_chat(chatId) : lib.status();
  if (!s.ok()) emit chatActionFailed(id, tr("The chat was not deleted: %1").arg(fromStd(s.message())));
  emitChats(documentId);
  emitMemory();  // its saved KV is gone from the disk
}

void EngineWorker::setRetrieval(quint64 id, const fkv::RetrievalOptions& options) {
  const RequestScope scope(this, id);
  if (!m_engine) {
    emit retrievalFailed(id, m_engineError);
    return;
  }
  const fkv::Status s = m_engine->set_retrieval(options);
  if (!s.ok()) {
    emit retrievalFailed(id, fromStd(s.message()));
    return;
  }
  m_retrieval = options;
  configureTelemetry();
  emit retrievalApplied(id);
  emitMemory();
}

void EngineWorker::importDocuments(quint64 id, const QStringList& paths) {
  const RequestScope scope(this, id);
  QList<qint64> documentIds;
  QStringList errors;
  const fkv::Result<fkv::DocumentLibrary*> lib = library();
  if (!lib.ok()) {
    errors.append(fromStd(lib.message()));
    emit importFinished(id, documentIds, errors);
    return;
  }
  fkv::ImportOptions io;
  io.max_file_bytes = m_documentOptions.max_file_bytes;
  for (const QString& path : paths) {
    if (!m_gate->notCancelled(id)) {
      errors.append(tr("%1: the import was cancelled").arg(path));
      continue;
    }
    io.progress = importProgressReporter(id, path);
    const fkv::Result<int64_t> row = (*lib)->import_file(path.toStdString(), io);
    if (row.ok()) {
      documentIds.append(*row);
    } else {
      errors.append(fromStd(row.message()));  // it names the file
    }
  }
  emit importFinished(id, documentIds, errors);
  if (!documentIds.isEmpty()) emit libraryChanged();
}

// Reports a file's pages to the GUI no more often than a person can read them, and stops at a cancel: a hostile
// PDF can take its whole time budget, and the import must not wait for the next file to notice.
fkv::ProgressCallback EngineWorker::importProgressReporter(quint64 id, const QString& path) {
  auto since = std::make_shared<QElapsedTimer>();
  since->start();
  return [this, id, path, since](const fkv::Progress& p) {
    if (p.done == p.total || since->elapsed() >= kImportProgressMs) {
      since->restart();
      emit importProgress(id, path, OpenProgress{p.stage, p.done, p.total});
    }
    return m_gate->notCancelled(id);
  };
}

void EngineWorker::deleteDocument(quint64 id, qint64 documentId) {
  const RequestScope scope(this, id);
  const fkv::Result<fkv::DocumentLibrary*> lib = library();
  if (!lib.ok()) {
    emit deleteFailed(id, fromStd(lib.message()));
    return;
  }
  const fkv::Status s = (*lib)->delete_document(documentId);
  if (!s.ok()) {
    emit deleteFailed(id, fromStd(s.message()));
    return;
  }
  if (m_documentOpen && m_openDocumentId == documentId) {
    m_engine->close_document();
    closeDocument();
  }
  emit documentDeleted(id, documentId);
  emit libraryChanged();
  emitMemory();
}

void EngineWorker::setTelemetryEnabled(bool enabled) {
  m_throttle->setEnabled(enabled);
  if (!m_engine) return;
  if (enabled) configureTelemetry();  // forget a step left half-gathered when it was turned off
  m_engine->set_observer(enabled ? m_throttle : nullptr);
}

fkv::Result<fkv::DocumentLibrary*> EngineWorker::library() {
  if (m_libraryPath.isEmpty())
    return fkv::err("no document library is configured (the client was created without a library path)");
  if (!m_engine) return fkv::err(m_engineError.toStdString());
  return m_engine->library();
}

void EngineWorker::emitMemory(bool withDisk) {
  if (!m_engine) return;
  const fkv::EngineStats s = m_engine->stats();
  MemoryUse m;
  m.nCtx = s.n_ctx;
  m.nTokens = s.n_tokens;
  m.nCtxTrain = s.n_ctx_train;
  m.contextMemory = s.context_memory;
  m.deviceBytes = s.kv_device_bytes;
  m.hostBytes = s.kv_host_bytes;
  m.fileBytes = s.kv_file_bytes;
  m.fileResidentBytes = s.kv_file_resident_bytes;
  m.fileReadBytes = s.kv_file_read_bytes;
  m.fileWaitS = s.kv_file_wait_s;
  if (!m_libraryPath.isEmpty() && withDisk) {
    const fkv::Result<fkv::DocumentLibrary*> lib = library();
    if (lib.ok()) {
      const fkv::Result<int64_t> total = (*lib)->total_snapshot_bytes();
      if (total.ok()) m_diskBytes = quint64(*total);
    }
  }
  m.diskBytes = m_diskBytes;
  const fkv::RetrievalOptions& r = m_retrieval;
  m.budgetTokens = r.policy == fkv::Policy::full ? quint64(s.n_ctx)
                                      : quint64(r.sink_tokens) + quint64(r.recent_tokens) + quint64(r.retrieved_tokens);
  emit memoryChanged(m);
}

void EngineWorker::configureTelemetry() {
  const fkv::ModelInfo info = m_engine->model_info();
  if (!info.loaded) return;
  m_throttle->configure(info.n_layers, info.n_kv_heads, m_pageSize, m_retrieval.sink_tokens, m_retrieval.recent_tokens);
}

ModelSummary EngineWorker::modelSummary() const {
  const fkv::ModelInfo i = m_engine->model_info();
  ModelSummary m;
  m.path = fromStd(i.path);
  m.name = fromStd(i.name);
  m.architecture = fromStd(i.architecture);
  m.nLayers = i.n_layers;
  m.nKvHeads = i.n_kv_heads;
  m.nCtx = i.n_ctx;
  m.nCtxTrain = i.n_ctx_train;
  m.fileBytes = i.file_bytes;
  m.kvBytesPerToken = i.kv_bytes_per_token;
  m.chatTemplate = fromStd(i.chat_template);
  m.backend = backendName(i);
  return m;
}

void EngineWorker::closeDocument() {
  const qint64 closed = m_openDocumentId;
  m_documentOpen = false;
  m_openDocumentId = 0;
  emit documentClosed(closed);
}
