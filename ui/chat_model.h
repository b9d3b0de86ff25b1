// The chat about one document: its turns as a list, the last one possibly still streaming. A thin model: it never
// touches the library. The engine worker saves each ask's question and answer in the document's library chat
// (chat_recorder.h) and reads the most recent chat when the document opens; show() and setChatId() bring that here.
#pragma once

#include <QAbstractListModel>
#include <QList>
#include <QString>

#include "client_types.h"

class ChatModel : public QAbstractListModel {
  Q_OBJECT

 public:
  enum Role {
    RoleRole = Qt::UserRole + 1,  // "user" | "assistant"
    TextRole,                     // the turn's text so far
    StreamingRole,                // true while the answer is still arriving
    StopReasonRole,               // a finished answer's stop reason ("eos", "cancelled", ...); empty otherwise
    CitationsRole,                // a finished answer's QVector<fkv::Citation>, most chosen first
  };

  explicit ChatModel(QObject* parent = nullptr);

  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QHash<int, QByteArray> roleNames() const override;

  // Shows the document's chat as the library holds it (documentId 0: no document, or one outside the library).
  void show(qint64 documentId, const SavedChat& chat);
  // The library's id of the chat shown, once the worker has saved its first question (ignored for another document).
  void setChatId(qint64 documentId, qint64 chatId);
  // Where the next ask's turns are kept: this document's chat, or a new one.
  ChatSaveTarget saveTarget() const { return {m_documentId, m_chatId}; }
  // Starts a new chat about the same document: the next question creates it in the library.
  void startNewChat();
  qint64 documentId() const { return m_documentId; }
  qint64 chatId() const { return m_chatId; }

 signals:
  // The chat shown is another one: another saved chat, a new chat (0), or the new chat just saved.
  void chatIdChanged(qint64 chatId);

 public:
  // The finished turns, in order: what EngineClient::ask takes.
  QList<ChatTurn> turns() const;
  bool isStreaming() const { return !m_turns.isEmpty() && m_turns.back().streaming; }

  // Adds the user's question.
  void appendUser(const QString& text);
  // Streaming: an empty assistant turn, pieces appended as they arrive, then finished or discarded (an answer that
  // failed before it said anything useful).
  void beginAssistant();
  void appendPiece(const QString& piece);
  void finishAssistant(const QString& stopReason = QString(), const QVector<fkv::Citation>& citations = {});
  void discardAssistant();
  // For regenerate: removes the last answer so that the turns end with its question again. The library's messages
  // are append-only, so the next ask saves the kept turns as a new chat (the old one stays as history).
  bool removeLastAnswer();

 private:
  struct Turn {
    ChatTurn turn;  // its stop reason and citations once finished
    bool streaming = false;
  };

  void appendTurn(const Turn& turn);
  void setChatIdAndSay(qint64 chatId);

  qint64 m_documentId = 0;
  qint64 m_chatId = 0;  // 0: not created yet
  QList<Turn> m_turns;
};
