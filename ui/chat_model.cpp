#include "chat_model.h"

#include <vector>

#include "fkv/library.h"

namespace {

constexpr int kMaxTitleChars = 60;

QString chatTitle(const QString& question) {
  const QString t = question.simplified();
  return t.size() <= kMaxTitleChars ? t : t.left(kMaxTitleChars - 1) + QChar(0x2026);
}

}  // namespace

ChatModel::ChatModel(const QString& libraryPath, QObject* parent)
    : QAbstractListModel(parent), m_libraryPath(libraryPath) {}

ChatModel::~ChatModel() = default;

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
      return t.stopReason;
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
  return names;
}

bool ChatModel::load(qint64 documentId) {
  beginResetModel();
  m_turns.clear();
  m_documentId = documentId;
  m_chatId = 0;
  const fkv::Status s = [&]() -> fkv::Status {
    if (documentId <= 0 || m_libraryPath.isEmpty()) return {};
    FKV_TRY(openLibrary());
    FKV_ASSIGN_OR_RETURN(const std::vector<fkv::ChatRecord> chats, m_library->list_chats(documentId));
    if (chats.empty()) return {};
    FKV_ASSIGN_OR_RETURN(const std::vector<fkv::MessageRecord> messages, m_library->messages(chats.front().id));
    m_chatId = chats.front().id;
    for (const fkv::MessageRecord& m : messages) {
      if (m.role != "user" && m.role != "assistant") continue;  // the document prompt carries any system text
      m_turns.append(Turn{{QString::fromStdString(m.role), QString::fromStdString(m.content)}, false, {}});
    }
    return {};
  }();
  endResetModel();
  report(s);
  return s.ok();
}

void ChatModel::startNewChat() {
  beginResetModel();
  m_turns.clear();
  m_chatId = 0;
  endResetModel();
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
  const ChatTurn turn{QStringLiteral("user"), text};
  appendTurn(Turn{turn, false, {}});
  report(persist(turn));
}

void ChatModel::beginAssistant() {
  if (isStreaming()) finishAssistant(QStringLiteral("cancelled"));  // never two answers streaming at once
  appendTurn(Turn{{QStringLiteral("assistant"), QString()}, true, {}});
}

void ChatModel::appendPiece(const QString& piece) {
  if (!isStreaming() || piece.isEmpty()) return;
  m_turns.back().turn.text += piece;
  const QModelIndex last = index(int(m_turns.size()) - 1);
  emit dataChanged(last, last, {Qt::DisplayRole, TextRole});
}

void ChatModel::finishAssistant(const QString& stopReason) {
  if (!isStreaming()) return;
  Turn& t = m_turns.back();
  t.streaming = false;
  t.stopReason = stopReason;
  const QModelIndex last = index(int(m_turns.size()) - 1);
  emit dataChanged(last, last, {StreamingRole, StopReasonRole});
  report(persist(t.turn));
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
  if (m_chatId == 0) return true;  // nothing persisted yet
  m_chatId = 0;
  const fkv::Status s = [&]() -> fkv::Status {
    for (const Turn& t : m_turns) FKV_TRY(persist(t.turn));
    return {};
  }();
  report(s);
  return true;
}

fkv::Status ChatModel::persist(const ChatTurn& turn) {
  if (m_documentId <= 0 || m_libraryPath.isEmpty()) return {};
  FKV_TRY(ensureChat(turn.text));
  return m_library->append_message(m_chatId, turn.role.toStdString(), turn.text.toStdString()).status();
}

// A chat is created by its first persisted turn and named after it.
fkv::Status ChatModel::ensureChat(const QString& firstQuestion) {
  if (m_chatId != 0) return {};
  FKV_TRY(openLibrary());
  FKV_ASSIGN_OR_RETURN(const int64_t id, m_library->create_chat(m_documentId, chatTitle(firstQuestion).toStdString()));
  m_chatId = id;
  return {};
}

fkv::Status ChatModel::openLibrary() {
  if (m_library) return {};
  FKV_ASSIGN_OR_RETURN(m_library, fkv::DocumentLibrary::open(m_libraryPath.toStdString()));
  return {};
}

void ChatModel::report(const fkv::Status& s) {
  if (s.ok()) return;
  m_lastError = tr("The chat could not be saved or read: %1").arg(QString::fromStdString(s.message()));
  emit errorOccurred(m_lastError);
}

void ChatModel::appendTurn(const Turn& turn) {
  const int row = int(m_turns.size());
  beginInsertRows(QModelIndex(), row, row);
  m_turns.append(turn);
  endInsertRows();
}
