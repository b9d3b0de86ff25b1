#include "client_types.h"

#include <QList>
#include <QStringList>

// Queued connections copy their arguments through the meta-type system, which must know each type by then.
void registerClientTypes() {
  qRegisterMetaType<ModelSummary>();
  qRegisterMetaType<OpenedDocumentInfo>();
  qRegisterMetaType<OpenProgress>();
  qRegisterMetaType<ChatTurn>();
  qRegisterMetaType<ChatSaveTarget>();
  qRegisterMetaType<AnswerStats>();
  qRegisterMetaType<StepRecord>();
  qRegisterMetaType<TelemetryFrame>();
  qRegisterMetaType<MemoryUse>();
  qRegisterMetaType<QList<qint64>>();
  qRegisterMetaType<QList<ChatTurn>>();
  qRegisterMetaType<SavedChat>();
  qRegisterMetaType<QSharedPointer<const fkv::DocumentContent>>();
  qRegisterMetaType<ChatSummary>();
  qRegisterMetaType<QList<ChatSummary>>();
}
