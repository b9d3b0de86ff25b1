#include "chat_recorder.h"

#include <vector>

namespace chat_recorder {

namespace {

constexpr int kMaxTitleChars = 60;

QString chatTitle(const QString& question) {
  const QString t = question.simplified();
  return t.size() <= kMaxTitleChars ? t : t.left(kMaxTitleChars - 1) + QChar(0x2026);
}

fkv::Status append(fkv::DocumentLibrary& library, qint64 chatId, const ChatTurn& turn) {
  fkv::MessageRecord m;
  m.role = turn.role.toStdString();
  m.content = turn.text.toStdString();
  m.stop_reason = turn.stopReason.toStdString();
  m.citations.assign(turn.citations.begin(), turn.citations.end());
  return library.append_message(chatId, m).status();
}

}  // namespace

fkv::Result<qint64> saveQuestion(fkv::DocumentLibrary& library, qint64 documentId, qint64 chatId,
                                 const QList<ChatTurn>& turns) {
  if (turns.isEmpty()) return fkv::err("there is no question to save");
  if (chatId != 0) {
    FKV_TRY(append(library, chatId, turns.back()));
    return chatId;
  }
  FKV_ASSIGN_OR_RETURN(const int64_t id, library.create_chat(documentId, chatTitle(turns.front().text).toStdString()));
  for (const ChatTurn& t : turns) FKV_TRY(append(library, id, t));
  return qint64(id);
}

fkv::Status saveAnswer(fkv::DocumentLibrary& library, qint64 chatId, const ChatTurn& answer) {
  return append(library, chatId, answer);
}

fkv::Result<SavedChat> latest(fkv::DocumentLibrary& library, const QList<ChatSummary>& chats) {
  if (chats.isEmpty()) return SavedChat{};
  return read(library, chats.front().id);
}

fkv::Result<SavedChat> read(fkv::DocumentLibrary& library, qint64 chatId) {
  SavedChat out;
  FKV_ASSIGN_OR_RETURN(const std::vector<fkv::MessageRecord> messages, library.messages(chatId));
  out.chatId = chatId;
  for (const fkv::MessageRecord& m : messages) {
    if (m.role != "user" && m.role != "assistant") continue;  // the document prompt carries any system text
    out.turns.append(ChatTurn{QString::fromStdString(m.role), QString::fromStdString(m.content),
                              QString::fromStdString(m.stop_reason),
                              QVector<fkv::Citation>(m.citations.begin(), m.citations.end())});
  }
  return out;
}

fkv::Result<QList<ChatSummary>> list(fkv::DocumentLibrary& library, qint64 documentId) {
  FKV_ASSIGN_OR_RETURN(const std::vector<fkv::ChatRecord> chats, library.list_chats(documentId));
  QList<ChatSummary> out;
  for (const fkv::ChatRecord& c : chats)
    out.append(ChatSummary{c.id, QString::fromStdString(c.title), c.n_messages, c.updated_at});
  return out;
}

}  // namespace chat_recorder
