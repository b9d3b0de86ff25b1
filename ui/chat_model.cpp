#include "chat_model.h"

ChatModel::ChatModel(QObject* parent) : QAbstractListModel(parent) {}

int ChatModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : int(m_turns.size()); }

QVariant ChatModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) return {};
  const Turn& t = m_turns[index.row()];
  switch (role) {
    case Qt::DisplayRole:
    case TextRole:
      return t.turn.text;
    case RoleRole:
      return t.turn.role;
    case StreamingRole:
      return t.streaming;
    case StopReasonRole:
      return t.streaming ? QString() : t.turn.stopReason;
    case CitationsRole:
      return QVariant::fromValue(t.turn.citations);
    default:
      return {};
  }
}

QHash<int, QByteArray> ChatModel::roleNames() const {
  QHash<int, QByteArray> names = QAbstractListModel::roleNames();
  names.insert(RoleRole, "role");
  names.insert(TextRole, "text");
  names.insert(StreamingRole, "streaming");
  names.insert(StopReasonRole, "stopReason");
  names.insert(CitationsRole, "citations");
  return names;
}

void ChatModel::show(qint64 documentId, const SavedChat& chat) {
  beginResetModel();
  m_turns.clear();
  m_documentId = documentId;
  for (const ChatTurn& t : chat.turns) m_turns.append(Turn{t, false});
  endResetModel();
  setChatIdAndSay(documentId > 0 ? chat.chatId : 0);
}

void ChatModel::setChatIdAndSay(qint64 chatId) {
  m_chatId = chatId;
  emit chatIdChanged(chatId);
}

void ChatModel::setChatId(qint64 documentId, qint64 chatId) {
  if (documentId == m_documentId && documentId > 0 && chatId != m_chatId) setChatIdAndSay(chatId);
}

void ChatModel::startNewChat() {
  beginResetModel();
  m_turns.clear();
  endResetModel();
  setChatIdAndSay(0);
}

QList<ChatTurn> ChatModel::turns() const {
  QList<ChatTurn> out;
  out.reserve(m_turns.size());
  for (const Turn& t : m_turns) {
    if (!t.streaming) out.append(t.turn);
  }
  return out;
}

void ChatModel::appendUser(const QString& text) {
  appendTurn(Turn{{QStringLiteral("user"), text, {}, {}}, false});
}

void ChatModel::beginAssistant() {
  if (isStreaming()) finishAssistant(QStringLiteral("cancelled"));  // never two answers streaming at once
  appendTurn(Turn{{QStringLiteral("assistant"), QString(), {}, {}}, true});
}

void ChatModel::appendPiece(const QString& piece) {
  if (!isStreaming() || piece.isEmpty()) return;
  m_turns.back().turn.text += piece;
  const QModelIndex last = index(int(m_turns.size()) - 1);
  emit dataChanged(last, last, {Qt::DisplayRole, TextRole});
}

void ChatModel::finishAssistant(const QString& stopReason, const QVector<fkv::Citation>& citations) {
  if (!isStreaming()) return;
  Turn& t = m_turns.back();
  t.streaming = false;
  t.turn.stopReason = stopReason;
  t.turn.citations = citations;
  const QModelIndex last = index(int(m_turns.size()) - 1);
  emit dataChanged(last, last, {StreamingRole, StopReasonRole, CitationsRole});
}

void ChatModel::discardAssistant() {
  if (!isStreaming()) return;
  const int row = int(m_turns.size()) - 1;
  beginRemoveRows(QModelIndex(), row, row);
  m_turns.removeLast();
  endRemoveRows();
}

bool ChatModel::removeLastAnswer() {
  if (m_turns.isEmpty() || isStreaming() || m_turns.back().turn.role != QLatin1String("assistant")) return false;
  const int row = int(m_turns.size()) - 1;
  beginRemoveRows(QModelIndex(), row, row);
  m_turns.removeLast();
  endRemoveRows();
  setChatIdAndSay(0);
  return true;
}

void ChatModel::appendTurn(const Turn& turn) {
  const int row = int(m_turns.size());
  beginInsertRows(QModelIndex(), row, row);
  m_turns.append(turn);
  endInsertRows();
}
