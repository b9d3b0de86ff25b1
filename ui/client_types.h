// Plain values that cross from the engine worker thread to the GUI (queued signals copy them). Registered with the
// meta-type system by registerClientTypes() before the first connection.
#pragma once

#include <QList>
#include <QMetaType>
#include <QSharedPointer>
#include <QString>
#include <QVector>

#include "fkv/events.h"
#include "fkv/types.h"

// A model as the window shows it.
struct ModelSummary {
  QString path;
  QString name;
  QString architecture;
  int nLayers = 0;
  int nKvHeads = 0;
  int nCtx = 0;       // the context this load uses
  int nCtxTrain = 0;  // the model's own
  quint64 fileBytes = 0;
  quint64 kvBytesPerToken = 0;
  QString chatTemplate;
  QString backend;  // "CPU (AVX2)", "CUDA (NVIDIA H100)", ...
};

// A document made ready (fkv::OpenedDocument) plus what the document view needs (fkv::DocumentContent).
struct ChatTurn {
  QString role;  // "user" | "assistant"
  QString text;
  // A finished answer's: why it ended ("eos", "cancelled", "max_tokens", ...; empty when unknown) and the passages
  // it cited, most chosen first. Kept in the library, so the marks and citations come back when the chat reopens.
  QString stopReason;
  QVector<fkv::Citation> citations;
};

// A document's conversation as the library keeps it.
struct SavedChat {
  qint64 chatId = 0;  // 0: none yet (the next question starts one)
  QList<ChatTurn> turns;
};

// One of a document's chats, as its chat list shows it.
struct ChatSummary {
  qint64 id = 0;
  QString title;  // its first question, unless renamed
  qint64 nMessages = 0;
  qint64 updatedAt = 0;  // unix seconds
};

// Where an ask's turns are kept: the document's library chat. The worker saves the question before answering and
// the answer after, and reports the chat's id (chatSaved); chatId 0 starts a new chat holding all the turns.
struct ChatSaveTarget {
  qint64 documentId = 0;  // 0: a document outside the library; nothing is saved
  qint64 chatId = 0;
};

struct OpenedDocumentInfo {
  fkv::OpenedDocument doc;
  QSharedPointer<const fkv::DocumentContent> content;  // shared, read-only: text, sections, span map
  SavedChat chat;            // its most recent chat, read on the worker thread
  QList<ChatSummary> chats;  // all its chats, most recent first
  QString chatError;         // why they could not be read; empty when they were
};

// Where opening a document stands; the worker sends at most ~20 of these a second (and always a stage's first and
// last report).
struct OpenProgress {
  fkv::Stage stage = fkv::Stage::ingest;
  qint64 done = 0;
  qint64 total = 0;
  double tokensPerSecond = 0;  // prefill only: tokens of this stage per second so far; 0 until measurable
  double secondsLeft = -1;     // this stage at its rate so far; -1 while unknown
};

struct AnswerStats {
  QString text;
  QString stopReason;  // "eos" | "max_tokens" | "cancelled" | "stop_string" | "context_full"
  QVector<fkv::Citation> citations;  // fkv::GenerateResult::citations
  int nPromptTokens = 0;
  int nCachedTokens = 0;
  int nGenerated = 0;
  double decodeTokensPerSecond = 0;
  QString kvRecomputed;  // fkv::GenerateResult::kv_recomputed: why the saved KV was recomputed for this answer
};

// One decode step's retrieval, summed over layers (for the recall timeline).
struct StepRecord : fkv::RetrievalCounters {  // summed over the step's layers
  qint64 step = 0;
  double stallMs() const { return (select_s + recall_s + wait_s) * 1000.0; }  // on the critical path
};

// What the live panels draw, emitted at most 30 times a second. Grids are (nLayers, nKvHeads) row-major.
struct TelemetryFrame {
  QString policy;
  int nLayers = 0;
  int nKvHeads = 0;
  qint64 lastStep = -1;
  QVector<quint8> correctedNow;   // (nLayers * nKvHeads) 1 where the head was corrected in the last step
  QVector<float> cosineNow;       // (nLayers * nKvHeads) query cosine of the last step; NaN where not checked
  QVector<float> correctionRate;  // (nLayers * nKvHeads) share of checked steps corrected, recent (decaying) window
  QVector<StepRecord> newSteps;   // steps completed since the previous frame, oldest first
  // Context positions of the KV pages retrieved in the last step (any layer or head): page p covers positions
  // [p * pageSize, (p + 1) * pageSize); weight = share of (layer, head) pairs that selected it.
  QVector<int> retrievedPages;
  QVector<float> retrievedWeight;
  int pageSize = 32;
  qint64 emittedMs = 0;    // std::chrono::steady_clock, in ms, when the worker sent the frame
  bool answerEnd = false;  // the flush at the end of an answer (it may follow the previous frame sooner than 1/30 s)
};

struct MemoryUse {
  int nCtx = 0;
  int nTokens = 0;
  int nCtxTrain = 0;
  bool contextMemory = false;  // the context reaches past the model's trained window (nCtxTrain)
  quint64 deviceBytes = 0;
  quint64 hostBytes = 0;
  quint64 diskBytes = 0;  // page files in the library
  quint64 budgetTokens = 0;
  // The open document's saved KV read in place (fkv::EngineStats): its size, what of it is resident (in hostBytes),
  // and what was read from the file so far.
  quint64 fileBytes = 0;
  quint64 fileResidentBytes = 0;
  quint64 fileReadBytes = 0;
  double fileWaitS = 0;  // decode threads waiting for those reads
};

void registerClientTypes();

Q_DECLARE_METATYPE(ModelSummary)
Q_DECLARE_METATYPE(OpenedDocumentInfo)
Q_DECLARE_METATYPE(OpenProgress)
Q_DECLARE_METATYPE(fkv::Citation)
Q_DECLARE_METATYPE(ChatTurn)
Q_DECLARE_METATYPE(ChatSaveTarget)
Q_DECLARE_METATYPE(ChatSummary)
Q_DECLARE_METATYPE(SavedChat)
Q_DECLARE_METATYPE(AnswerStats)
Q_DECLARE_METATYPE(StepRecord)
Q_DECLARE_METATYPE(TelemetryFrame)
Q_DECLARE_METATYPE(MemoryUse)
