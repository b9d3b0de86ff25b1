// A document's chats in the library, as the engine worker keeps them: the question of each ask is saved before it is
// answered and the answer after, on the worker's thread and through the engine's own library connection, so the
// window's thread never writes (or waits on) SQLite. Plain functions over a DocumentLibrary; no Qt model here.
#pragma once

#include <QList>

#include "client_types.h"
#include "fkv/library.h"

namespace chat_recorder {

// Saves the question that ends `turns` (user, assistant, ..., user). A chat without an id yet (chatId 0) is created,
// named after its first question, and holds all the turns: the kept turns of a regenerated answer continue as a new
// chat, the old one stays as history. Returns the chat's id.
fkv::Result<qint64> saveQuestion(fkv::DocumentLibrary& library, qint64 documentId, qint64 chatId,
                                 const QList<ChatTurn>& turns);
// The answer with its stop reason and citations.
fkv::Status saveAnswer(fkv::DocumentLibrary& library, qint64 chatId, const ChatTurn& answer);
// The document's chats, most recently updated first.
fkv::Result<QList<ChatSummary>> list(fkv::DocumentLibrary& library, qint64 documentId);
// A chat's user and assistant turns.
fkv::Result<SavedChat> read(fkv::DocumentLibrary& library, qint64 chatId);
// The most recently updated of `chats` (as list() gives them), read; chatId 0 when there is none.
fkv::Result<SavedChat> latest(fkv::DocumentLibrary& library, const QList<ChatSummary>& chats);

}  // namespace chat_recorder
