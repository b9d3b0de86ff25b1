// The chat pane: the turns of the chat about the open document (a ChatModel, painted as bubbles by ChatTurnDelegate),
// the answer streaming into the last one, and an input box where Enter sends and Shift+Enter starts a new line.
// Stop, Regenerate, Copy and New chat act on the chat; the view only asks for them (signals): the window owns the
// model and the engine. A banner says what is missing (a model, a document) and what to do about it.
#pragma once

#include <QStringList>
#include <QStyledItemDelegate>
#include <QWidget>

#include "client_types.h"

class QAbstractItemModel;
class QAction;
class QBoxLayout;
class QComboBox;
class QLabel;
class QListView;
class QPlainTextEdit;
class QPushButton;
class QTimer;
class QToolButton;

// An answer of a reasoning model (DeepSeek-R1-Distill) split at its "<think>" ... "</think>" block.
struct AnswerParts {
  QString reasoning;      // the thinking, trimmed; empty when the answer has none
  QString answer;         // what follows it (all of the text when there is no block)
  bool thinking = false;  // the block is still open: the answer has not started
  static AnswerParts split(const QString& text);
};

class ChatTurnDelegate : public QStyledItemDelegate {
  Q_OBJECT

 public:
  using QStyledItemDelegate::QStyledItemDelegate;
  void paint(QPainter* painter, const QStyleOptionViewItem& option, const QModelIndex& index) const override;
  QSize sizeHint(const QStyleOptionViewItem& option, const QModelIndex& index) const override;
  // The text a turn shows: its answer (without a reasoning block), a cursor while streaming, a note when it stopped
  // early.
  static QString displayText(const QModelIndex& index);
  // The reasoning block shown above the answer, in grey ("" when there is none), with the cursor while it streams.
  static QString reasoningText(const QModelIndex& index);
  struct TurnText {
    QString reasoning;     // reasoningText()
    QString answer;        // displayText()
    QStringList citations;  // a finished answer's, one line each: "[1] Page 3 · Termination — “snippet”"
  };
  // Both texts from one reading of the turn (one split of its reasoning block), for measuring and painting.
  static TurnText turnText(const QModelIndex& index);
  // Lets views re-measure a turn whose text grew.
  void turnChanged(const QModelIndex& index) { emit sizeHintChanged(index); }
  // Where the turn's citation lines are drawn, in the view's coordinates (option.rect is the turn's).
  QVector<QRect> citationRects(const QStyleOptionViewItem& option, const QModelIndex& index) const;

 signals:
  void citationClicked(const QModelIndex& index, int citation);

 protected:
  bool editorEvent(QEvent* event, QAbstractItemModel* model, const QStyleOptionViewItem& option,
                   const QModelIndex& index) override;

 private:
  QRect bubbleRect(const QStyleOptionViewItem& option, const TurnText& text, QRect* reasoning = nullptr,
                   QRect* answer = nullptr, QVector<QRect>* citations = nullptr) const;
};

class ChatView : public QWidget {
  Q_OBJECT

 public:
  enum class State {
    NoModel,       // no model file configured: the first-run text (where models go, which fit; ModelGuide)
    LoadingModel,  // a model is loading
    ModelFailed,   // the configured model could not be loaded (detail: why)
    NoDocument,    // a model, no document open
    Preparing,     // the document is being opened (prefill or snapshot load)
    Ready,         // questions can be asked
    Answering,     // an answer is streaming
  };

  explicit ChatView(QWidget* parent = nullptr);

  // A ChatModel (roles RoleRole, TextRole, StreamingRole, StopReasonRole); not owned.
  void setModel(QAbstractItemModel* model);
  void setState(State state, const QString& detail = QString());
  State state() const { return m_state; }
  QString bannerText() const;
  bool isBannerVisible() const;
  // A failure the user must read (a document that was not opened, an answer that failed), shown whole above the chat
  // until dismissed or replaced by the next one.
  void showError(const QString& message);
  void dismissError();
  QString errorText() const;
  bool isErrorVisible() const;
  // What Copy puts on the clipboard: the selected turn, else the last answer.
  QString copyText() const;
  // Where citation `n` of turn `row` is drawn, in the list's viewport; empty when there is none.
  QRect citationRect(int row, int n) const;
  // The open document's chats, and the one shown (0: a new chat, not saved yet).
  void setChats(const QList<ChatSummary>& chats, qint64 currentChatId);
  qint64 currentChat() const { return m_currentChat; }
  const QList<ChatSummary>& chats() const { return m_chatList; }
  QComboBox* chatPicker() const { return m_chats; }
  QAction* renameChatAction() const { return m_renameChat; }
  QAction* deleteChatAction() const { return m_deleteChat; }
  // Compact: the banner's button under its text and the buttons in two rows, as the pane is when narrower than one
  // row of each needs (beside the document in a narrow window).
  bool isCompact() const;
  // One row of each: the width below which the pane is compact.
  int rowWidth() const { return rowsWidth(false); }
  QSize minimumSizeHint() const override;

  QListView* list() const { return m_list; }
  QPlainTextEdit* input() const { return m_input; }
  QPushButton* sendButton() const { return m_send; }
  QPushButton* stopButton() const { return m_stop; }
  QPushButton* regenerateButton() const { return m_regenerate; }
  QPushButton* copyButton() const { return m_copy; }
  QPushButton* settingsButton() const { return m_bannerAction; }
  QPushButton* dismissErrorButton() const { return m_dismissError; }

 public slots:
  void send();
  void copy();
  void focusInput();

 signals:
  void sendRequested(const QString& question);
  void stopRequested();
  void regenerateRequested();
  void newChatRequested();
  void settingsRequested();
  // A citation was clicked: the document's bytes [begin, end) (fkv::Citation) should be shown.
  void citationActivated(qint64 begin, qint64 end);
  // From the chat bar: show another chat of the document, rename or delete one (after the user confirmed).
  void chatChosen(qint64 chatId);
  void renameChatRequested(qint64 chatId, const QString& title);
  void deleteChatRequested(qint64 chatId);

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;

 private:
  QWidget* buildButtons();
  QWidget* buildChatBar();
  void askRenameChat();
  void askDeleteChat();
  QString currentChatTitle() const;
  void updateCompact();
  // What the banner row and the button row need: their parts side by side, or stacked.
  int rowsWidth(bool stacked) const;
  void updateActions();
  void followTail();
  bool lastTurnIsFinishedAnswer() const;

  QAbstractItemModel* m_model = nullptr;
  ChatTurnDelegate* m_delegate = nullptr;
  State m_state = State::NoModel;
  QLabel* m_banner = nullptr;
  QPushButton* m_bannerAction = nullptr;
  QWidget* m_errorBox = nullptr;
  QLabel* m_error = nullptr;
  QPushButton* m_dismissError = nullptr;
  QListView* m_list = nullptr;
  QPlainTextEdit* m_input = nullptr;
  QPushButton* m_send = nullptr;
  QPushButton* m_stop = nullptr;
  QPushButton* m_regenerate = nullptr;
  QPushButton* m_copy = nullptr;
  QPushButton* m_newChat = nullptr;
  QBoxLayout* m_bannerRow = nullptr;      // (banner, its button): a row, or a column in a compact pane
  QBoxLayout* m_buttonRows = nullptr;     // (chat buttons, answer buttons): a row, or two in a compact pane
  QBoxLayout* m_chatButtons = nullptr;    // new chat, copy
  QBoxLayout* m_answerButtons = nullptr;  // regenerate, stop, send
  QTimer* m_scrollTimer = nullptr;
  QWidget* m_chatBar = nullptr;
  QComboBox* m_chats = nullptr;
  QToolButton* m_chatMenu = nullptr;
  QAction* m_renameChat = nullptr;
  QAction* m_deleteChat = nullptr;
  QList<ChatSummary> m_chatList;
  qint64 m_currentChat = 0;        // one scroll to the end per burst of changes
};
