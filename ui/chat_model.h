// The chat about one document: its turns as a list, the last one possibly still streaming. Finished turns are
// persisted in the library (chats/messages of the document) through the model's own SQLite connection on the GUI
// thread, and load() restores the document's most recent chat.
#pragma once

#include <QAbstractListModel>
#include <QList>
#include <QString>
#include <memory>

#include "client_types.h"
#include "fkv/status.h"

namespace fkv {
class DocumentLibrary;
}

class ChatModel : public QAbstractListModel {
  Q_OBJECT

 public:
  enum Role {
    RoleRole = Qt::UserRole + 1,  // "user" | "assistant"
    TextRole,                     // the turn's text so far
    StreamingRole,                // true while the answer is still arriving
    StopReasonRole,               // a finished answer's stop reason ("eos", "cancelled", ...); empty otherwise
  };

  // libraryPath: the document library (empty: nothing is persisted).
  explicit ChatModel(const QString& libraryPath, QObject* parent = nullptr);
  ~ChatModel() override;

  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QHash<int, QByteArray> roleNames() const override;

  // Shows the document's latest chat (empty if it has none). documentId 0: a document outside the library; its
  // turns are kept in memory only. Returns false (and reports) when the library cannot be read.
  bool load(qint64 documentId);
  // Starts a new chat about the same document: the next question creates it in the library.
  void startNewChat();
  qint64 documentId() const { return m_documentId; }
  qint64 chatId() const { return m_chatId; }

  // The finished turns, in order: what EngineClient::ask takes.
  QList<ChatTurn> turns() const;
  bool isStreaming() const { return !m_turns.isEmpty() && m_turns.back().streaming; }
  QString lastError() const { return m_lastError; }

  // Adds the user's question (persisted at once).
  void appendUser(const QString& text);
  // Streaming: an empty assistant turn, pieces appended as they arrive, then finished (persisted with its text) or
  // discarded (an answer that failed before it said anything useful).
  void beginAssistant();
  void appendPiece(const QString& piece);
  void finishAssistant(const QString& stopReason = QString());
  void discardAssistant();
  // For regenerate: removes the last answer so that the turns end with its question again. The library's messages
  // are append-only, so the chat continues as a new chat holding the kept turns (the old one stays as history).
  bool removeLastAnswer();

 signals:
  void errorOccurred(const QString& message);

 private:
  struct Turn {
    ChatTurn turn;
    bool streaming = false;
    QString stopReason;
  };

  fkv::Status persist(const ChatTurn& turn);
  fkv::Status ensureChat(const QString& firstQuestion);
  fkv::Status openLibrary();
  void report(const fkv::Status& s);
  void appendTurn(const Turn& turn);

  QString m_libraryPath;
  std::unique_ptr<fkv::DocumentLibrary> m_library;
  qint64 m_documentId = 0;
  qint64 m_chatId = 0;  // 0: not created yet
  QList<Turn> m_turns;
  QString m_lastError;
};
