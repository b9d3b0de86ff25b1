#include "chat_view.h"

#include <QAbstractItemModel>
#include <QApplication>
#include <QBoxLayout>
#include <QClipboard>
#include <QComboBox>
#include <QDateTime>
#include <QFrame>
#include <QHBoxLayout>
#include <QInputDialog>
#include <QKeyEvent>
#include <QLabel>
#include <QListView>
#include <QLocale>
#include <QMenu>
#include <QMessageBox>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QResizeEvent>
#include <QScrollBar>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>
#include <algorithm>

#include "chat_model.h"
#include "model_guide.h"

namespace {

constexpr int kPad = 8;          // inside a bubble
constexpr int kGap = 6;          // between bubbles and the view's edges
constexpr double kWidth = 0.85;  // of the view a bubble may take

const QColor kUserBubble(0xdb, 0xe9, 0xff);
const QColor kAnswerBubble(0xf1, 0xf3, 0xf5);
const QColor kBubbleText(0x21, 0x25, 0x29);

int viewWidth(const QStyleOptionViewItem& option) {
  if (const auto* view = qobject_cast<const QAbstractItemView*>(option.widget)) return view->viewport()->width();
  return std::max(200, option.rect.width());
}

bool isUser(const QModelIndex& index) { return index.data(ChatModel::RoleRole).toString() == QLatin1String("user"); }

const QColor kReasoningText(0x6c, 0x75, 0x7d);  // a reasoning model's thinking: grey, italic, above the answer

QFont reasoningFont(const QStyleOptionViewItem& option) {
  QFont f = option.font;
  f.setItalic(true);
  return f;
}

QString messageCount(qint64 n) {
  return n == 1 ? ChatView::tr("1 message") : ChatView::tr("%1 messages").arg(QLocale().toString(n));
}

}  // namespace

AnswerParts AnswerParts::split(const QString& text) {
  static const QString open = QStringLiteral("<think>"), close = QStringLiteral("</think>");
  AnswerParts p;
  const QString head = text.trimmed();
  const qsizetype end = text.indexOf(close);
  // Some templates open the block in the prompt, so the answer may carry only its end.
  if (!head.startsWith(open) && end < 0) {
    p.answer = text;
    return p;
  }
  const qsizetype start = head.startsWith(open) ? text.indexOf(open) + open.size() : 0;
  p.thinking = end < 0;
  p.reasoning = text.mid(start, p.thinking ? -1 : end - start).trimmed();
  if (!p.thinking) p.answer = text.mid(end + close.size()).trimmed();
  return p;
}

ChatTurnDelegate::TurnText ChatTurnDelegate::turnText(const QModelIndex& index) {
  const QString raw = index.data(ChatModel::TextRole).toString();
  const bool user = isUser(index);
  const AnswerParts parts = user ? AnswerParts{QString(), raw, false} : AnswerParts::split(raw);
  const bool streaming = index.data(ChatModel::StreamingRole).toBool();
  TurnText t;
  if (!user && (!parts.reasoning.isEmpty() || parts.thinking)) {
    t.reasoning = tr("Reasoning:") + QLatin1Char(' ') + parts.reasoning +
                  (streaming && parts.thinking ? QStringLiteral(" ▍") : QString());
  }
  if (streaming) {
    if (!parts.thinking) t.answer = parts.answer + QStringLiteral(" ▍");
    return t;
  }
  t.answer = parts.answer;
  const QString stop = index.data(ChatModel::StopReasonRole).toString();
  if (stop == QLatin1String("cancelled")) t.answer += tr("\n\n(stopped)");
  if (stop == QLatin1String("max_tokens")) t.answer += tr("\n\n(cut at the longest-answer setting)");
  if (stop == QLatin1String("context_full")) t.answer += tr("\n\n(the context is full: start a new chat)");
  t.answer = t.answer.trimmed();
  const auto citations = index.data(ChatModel::CitationsRole).value<QVector<fkv::Citation>>();
  for (qsizetype i = 0; i < citations.size(); ++i) {
    const fkv::Citation& c = citations[i];
    const QString where = QString::fromStdString(c.where);
    t.citations << tr("[%1] %2“%3”")
                       .arg(i + 1)
                       .arg(where.isEmpty() ? QString() : where + QStringLiteral(" — "),
                            QString::fromStdString(c.snippet));
  }
  return t;
}

QString ChatTurnDelegate::displayText(const QModelIndex& index) { return turnText(index).answer; }
QString ChatTurnDelegate::reasoningText(const QModelIndex& index) { return turnText(index).reasoning; }

QRect ChatTurnDelegate::bubbleRect(const QStyleOptionViewItem& option, const TurnText& text, QRect* reasoning,
                                   QRect* answer, QVector<QRect>* citations) const {
  const int maxText = std::max(40, int(viewWidth(option) * kWidth) - 2 * kPad);
  const QRect area(0, 0, maxText, 1 << 24);
  QRect r = text.reasoning.isEmpty()
                ? QRect()
                : QFontMetrics(reasoningFont(option)).boundingRect(area, Qt::TextWordWrap, text.reasoning);
  QRect a = text.answer.isEmpty() && !text.reasoning.isEmpty()
                ? QRect()
                : option.fontMetrics.boundingRect(area, Qt::TextWordWrap, text.answer);
  const int between = r.isNull() || a.isNull() ? 0 : kPad;
  r.moveTo(kPad, kPad);
  a.moveTo(kPad, kPad + r.height() + between);
  int width = std::max(r.width(), a.width());
  int bottom = a.bottom() + 1;
  // One line per citation under the answer, cut to the bubble's width (the snippet's start is what finds it).
  const int line = option.fontMetrics.height();
  if (citations) citations->clear();
  for (qsizetype i = 0; i < text.citations.size(); ++i) {
    const int w = std::min(maxText, option.fontMetrics.horizontalAdvance(text.citations[i]));
    const QRect c(kPad, bottom + (i == 0 ? kPad : 2), w, line);
    if (citations) citations->append(c);
    width = std::max(width, w);
    bottom = c.bottom() + 1;
  }
  if (reasoning) *reasoning = r;
  if (answer) *answer = a;
  return QRect(0, 0, width + 2 * kPad, bottom + kPad);
}

QVector<QRect> ChatTurnDelegate::citationRects(const QStyleOptionViewItem& option, const QModelIndex& index) const {
  const TurnText text = turnText(index);
  QVector<QRect> out;
  const QRect bubble = bubbleRect(option, text, nullptr, nullptr, &out);
  const QPoint at(isUser(index) ? option.rect.right() - kGap - bubble.width() : option.rect.left() + kGap,
                  option.rect.top() + kGap / 2);
  for (QRect& r : out) r.translate(at);
  return out;
}

bool ChatTurnDelegate::editorEvent(QEvent* event, QAbstractItemModel* model, const QStyleOptionViewItem& option,
                                   const QModelIndex& index) {
  if (event->type() == QEvent::MouseButtonRelease) {
    const auto* mouse = static_cast<QMouseEvent*>(event);
    const QVector<QRect> rects = citationRects(option, index);
    for (qsizetype i = 0; i < rects.size(); ++i) {
      if (mouse->button() == Qt::LeftButton && rects[i].contains(mouse->position().toPoint())) {
        emit citationClicked(index, int(i));
        return true;
      }
    }
  }
  return QStyledItemDelegate::editorEvent(event, model, option, index);
}

QSize ChatTurnDelegate::sizeHint(const QStyleOptionViewItem& option, const QModelIndex& index) const {
  const QRect bubble = bubbleRect(option, turnText(index));
  return QSize(viewWidth(option), bubble.height() + kGap);
}

void ChatTurnDelegate::paint(QPainter* painter, const QStyleOptionViewItem& option, const QModelIndex& index) const {
  const TurnText text = turnText(index);
  QRect reasoning, answer;
  QVector<QRect> citations;
  QRect bubble = bubbleRect(option, text, &reasoning, &answer, &citations);
  const bool user = isUser(index);
  const int x = user ? option.rect.right() - kGap - bubble.width() : option.rect.left() + kGap;
  bubble.moveTo(x, option.rect.top() + kGap / 2);
  painter->save();
  painter->setRenderHint(QPainter::Antialiasing);
  QPainterPath path;
  path.addRoundedRect(bubble, 8, 8);
  painter->fillPath(path, user ? kUserBubble : kAnswerBubble);
  if (option.state & QStyle::State_Selected) {
    painter->setPen(QPen(option.palette.color(QPalette::Highlight), 2));
    painter->drawPath(path);
  }
  if (!reasoning.isNull()) {
    painter->setPen(kReasoningText);
    painter->setFont(reasoningFont(option));
    painter->drawText(reasoning.translated(bubble.topLeft()), Qt::TextWordWrap, text.reasoning);
    painter->setFont(option.font);
  }
  painter->setPen(kBubbleText);
  painter->drawText(answer.translated(bubble.topLeft()), Qt::TextWordWrap, text.answer);
  painter->setPen(option.palette.color(QPalette::Link));
  for (qsizetype i = 0; i < citations.size(); ++i) {
    const QRect r = citations[i].translated(bubble.topLeft());
    painter->drawText(r, Qt::TextSingleLine, option.fontMetrics.elidedText(text.citations[i], Qt::ElideRight, r.width()));
  }
  painter->restore();
}

// ---- the pane ----

ChatView::ChatView(QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  auto* bannerRow = m_bannerRow = new QBoxLayout(QBoxLayout::LeftToRight);
  m_banner = new QLabel(this);
  m_banner->setWordWrap(true);
  m_banner->setTextInteractionFlags(Qt::TextSelectableByMouse | Qt::LinksAccessibleByMouse);
  m_banner->setOpenExternalLinks(true);  // the first-run text links the models folder
  m_banner->setAlignment(Qt::AlignTop | Qt::AlignLeft);
  m_bannerAction = new QPushButton(tr("Open &Settings…"), this);
  connect(m_bannerAction, &QPushButton::clicked, this, &ChatView::settingsRequested);
  bannerRow->setContentsMargins(8, 8, 8, 0);
  bannerRow->addWidget(m_banner, 1);
  bannerRow->addWidget(m_bannerAction, 0, Qt::AlignTop);
  layout->addLayout(bannerRow);

  m_errorBox = new QFrame(this);
  m_errorBox->setObjectName(QStringLiteral("chatError"));
  m_errorBox->setStyleSheet(QStringLiteral(
      "#chatError { background: #fff0f0; border: 1px solid #e03131; border-radius: 4px; } QLabel { color: #a61e1e; }"));
  auto* errorRow = new QHBoxLayout(m_errorBox);
  m_error = new QLabel(m_errorBox);
  m_error->setWordWrap(true);
  m_error->setTextFormat(Qt::PlainText);  // engine messages may hold '<'
  m_error->setTextInteractionFlags(Qt::TextSelectableByMouse);
  m_error->setAccessibleName(tr("Error"));
  m_dismissError = new QPushButton(tr("&Dismiss"), m_errorBox);
  connect(m_dismissError, &QPushButton::clicked, this, &ChatView::dismissError);
  errorRow->addWidget(m_error, 1);
  errorRow->addWidget(m_dismissError, 0, Qt::AlignTop);
  m_errorBox->hide();
  layout->addWidget(m_errorBox);
  m_chatBar = buildChatBar();
  layout->addWidget(m_chatBar);

  m_list = new QListView(this);
  m_delegate = new ChatTurnDelegate(m_list);
  m_list->setItemDelegate(m_delegate);
  connect(m_delegate, &ChatTurnDelegate::citationClicked, this, [this](const QModelIndex& index, int n) {
    const auto citations = index.data(ChatModel::CitationsRole).value<QVector<fkv::Citation>>();
    if (n >= 0 && n < citations.size()) emit citationActivated(citations[n].char_begin, citations[n].char_end);
  });
  m_list->setResizeMode(QListView::Adjust);
  m_list->setVerticalScrollMode(QAbstractItemView::ScrollPerPixel);
  m_list->setSelectionMode(QAbstractItemView::SingleSelection);
  m_list->setWordWrap(true);
  m_list->setAccessibleName(tr("Chat"));
  layout->addWidget(m_list, 1);

  m_input = new QPlainTextEdit(this);
  m_input->setPlaceholderText(tr("Ask about the document (Enter sends, Shift+Enter starts a new line)"));
  m_input->setTabChangesFocus(true);
  m_input->setMaximumHeight(m_input->fontMetrics().lineSpacing() * 6);
  m_input->installEventFilter(this);
  m_input->setAccessibleName(tr("Question"));
  layout->addWidget(m_input);
  layout->addWidget(buildButtons());
  connect(m_input, &QPlainTextEdit::textChanged, this, &ChatView::updateActions);
  m_scrollTimer = new QTimer(this);
  m_scrollTimer->setSingleShot(true);
  m_scrollTimer->setInterval(15);
  connect(m_scrollTimer, &QTimer::timeout, m_list, &QListView::scrollToBottom);
  setState(State::NoModel);
}

QWidget* ChatView::buildButtons() {
  auto* row = new QWidget(this);
  // Two groups, side by side; a compact pane stacks them.
  m_buttonRows = new QBoxLayout(QBoxLayout::LeftToRight, row);
  m_buttonRows->setContentsMargins(4, 0, 4, 4);
  auto* chatButtons = m_chatButtons = new QHBoxLayout;
  auto* answerButtons = m_answerButtons = new QHBoxLayout;
  m_buttonRows->addLayout(chatButtons);
  m_buttonRows->addLayout(answerButtons);
  m_newChat = new QPushButton(tr("&New chat"), row);
  m_copy = new QPushButton(tr("&Copy"), row);
  m_regenerate = new QPushButton(tr("&Regenerate"), row);
  m_stop = new QPushButton(tr("S&top"), row);
  m_send = new QPushButton(tr("&Send"), row);
  m_copy->setToolTip(tr("Copy the selected turn, or the last answer"));
  m_regenerate->setToolTip(tr("Answer the last question again"));
  m_stop->setToolTip(tr("Stop the answer (Esc)"));
  m_send->setToolTip(tr("Send the question (Enter)"));
  m_send->setDefault(true);
  chatButtons->addWidget(m_newChat);
  chatButtons->addWidget(m_copy);
  chatButtons->addStretch(1);
  answerButtons->addStretch(1);
  answerButtons->addWidget(m_regenerate);
  answerButtons->addWidget(m_stop);
  answerButtons->addWidget(m_send);
  connect(m_newChat, &QPushButton::clicked, this, &ChatView::newChatRequested);
  connect(m_copy, &QPushButton::clicked, this, &ChatView::copy);
  connect(m_regenerate, &QPushButton::clicked, this, &ChatView::regenerateRequested);
  connect(m_stop, &QPushButton::clicked, this, &ChatView::stopRequested);
  connect(m_send, &QPushButton::clicked, this, &ChatView::send);
  return row;
}

// The document's chats: a list to switch between them, and Rename and Delete for the one shown.
QWidget* ChatView::buildChatBar() {
  auto* bar = new QWidget(this);
  auto* row = new QHBoxLayout(bar);
  row->setContentsMargins(4, 4, 4, 0);
  m_chats = new QComboBox(bar);
  m_chats->setObjectName(QStringLiteral("chatPicker"));
  m_chats->setAccessibleName(tr("Chats about this document"));
  m_chats->setToolTip(tr("The chats about this document, most recent first"));
  // Titles are whole questions: the list must not widen the pane to fit them.
  m_chats->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
  m_chats->setMinimumContentsLength(12);
  m_chatMenu = new QToolButton(bar);
  m_chatMenu->setText(tr("Chat"));
  m_chatMenu->setToolTip(tr("Rename or delete this chat"));
  m_chatMenu->setPopupMode(QToolButton::InstantPopup);
  auto* menu = new QMenu(m_chatMenu);
  m_renameChat = menu->addAction(tr("&Rename Chat…"), this, &ChatView::askRenameChat);
  m_deleteChat = menu->addAction(tr("&Delete Chat…"), this, &ChatView::askDeleteChat);
  m_chatMenu->setMenu(menu);
  row->addWidget(new QLabel(tr("Chat:"), bar));
  row->addWidget(m_chats, 1);
  row->addWidget(m_chatMenu);
  connect(m_chats, &QComboBox::activated, this, [this](int i) {
    const qint64 id = m_chats->itemData(i).toLongLong();
    if (id != m_currentChat && id > 0) emit chatChosen(id);
  });
  return bar;
}

void ChatView::setChats(const QList<ChatSummary>& chats, qint64 currentChatId) {
  m_chatList = chats;
  m_currentChat = currentChatId;
  const QSignalBlocker block(m_chats);
  m_chats->clear();
  if (currentChatId == 0) m_chats->addItem(tr("New chat"), qint64(0));
  for (const ChatSummary& c : chats) {
    const QString when = QLocale().toString(QDateTime::fromSecsSinceEpoch(c.updatedAt), QLocale::ShortFormat);
    m_chats->addItem(tr("%1 (%2, %3)").arg(c.title, messageCount(c.nMessages), when), c.id);
    if (c.id == currentChatId) m_chats->setCurrentIndex(m_chats->count() - 1);
  }
  updateActions();
}

QString ChatView::currentChatTitle() const {
  for (const ChatSummary& c : m_chatList)
    if (c.id == m_currentChat) return c.title;
  return {};
}

void ChatView::askRenameChat() {
  if (m_currentChat <= 0) return;
  auto* dialog = new QInputDialog(this);
  dialog->setObjectName(QStringLiteral("renameChatDialog"));
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  dialog->setWindowTitle(tr("Rename Chat"));
  dialog->setLabelText(tr("Name:"));
  dialog->setTextValue(currentChatTitle());
  const qint64 id = m_currentChat;
  connect(dialog, &QInputDialog::textValueSelected, this, [this, id](const QString& title) {
    if (!title.trimmed().isEmpty()) emit renameChatRequested(id, title.trimmed());
  });
  dialog->open();
}

void ChatView::askDeleteChat() {
  if (m_currentChat <= 0) return;
  qint64 n = 0;
  for (const ChatSummary& c : m_chatList)
    if (c.id == m_currentChat) n = c.nMessages;
  auto* box = new QMessageBox(QMessageBox::Question, tr("Delete Chat"),
                              tr("Delete the chat “%1” and its %2? This cannot be undone.")
                                  .arg(currentChatTitle(), messageCount(n)),
                              QMessageBox::Yes | QMessageBox::Cancel, this);
  box->setObjectName(QStringLiteral("deleteChatDialog"));
  box->setAttribute(Qt::WA_DeleteOnClose);
  box->setDefaultButton(QMessageBox::Cancel);
  const qint64 id = m_currentChat;
  connect(box, &QMessageBox::finished, this, [this, id](int result) {
    if (result == QMessageBox::Yes) emit deleteChatRequested(id);
  });
  box->open();
}

void ChatView::updateCompact() {
  const bool compact = width() < rowsWidth(false);
  if (compact == isCompact()) return;
  const QBoxLayout::Direction direction = compact ? QBoxLayout::TopToBottom : QBoxLayout::LeftToRight;
  m_bannerRow->setDirection(direction);
  m_bannerRow->setAlignment(m_bannerAction, compact ? Qt::AlignLeft : Qt::AlignTop);
  m_buttonRows->setDirection(direction);
}

bool ChatView::isCompact() const { return m_buttonRows->direction() == QBoxLayout::TopToBottom; }

int ChatView::rowsWidth(bool stacked) const {
  auto need = [stacked](const QBoxLayout* row, int first, int second) {
    const QMargins m = row->contentsMargins();
    return m.left() + m.right() + (stacked ? std::max(first, second) : first + row->spacing() + second);
  };
  auto widthOf = [this](const QWidget* w) { return w->isVisibleTo(this) ? w->minimumSizeHint().width() : 0; };
  return std::max(need(m_bannerRow, widthOf(m_banner), widthOf(m_bannerAction)),
                  need(m_buttonRows, m_chatButtons->minimumSize().width(), m_answerButtons->minimumSize().width()));
}

// The stacked rows' width, not the side-by-side one: the banner's longest word (the models folder's path) and five
// buttons in a row would otherwise keep a narrow window's document column at a couple of hundred pixels.
QSize ChatView::minimumSizeHint() const {
  QSize size = QWidget::minimumSizeHint();
  int width = rowsWidth(true);
  for (int i = 0; i < layout()->count(); ++i) {
    QLayoutItem* item = layout()->itemAt(i);
    if (item->layout() == m_bannerRow || item->widget() == m_buttonRows->parentWidget() || item->isEmpty()) continue;
    width = std::max(width, item->minimumSize().width());
  }
  size.setWidth(width);
  return size;
}

void ChatView::resizeEvent(QResizeEvent* event) {
  QWidget::resizeEvent(event);
  updateCompact();
}

void ChatView::setModel(QAbstractItemModel* model) {
  if (m_model) disconnect(m_model, nullptr, this, nullptr);
  m_model = model;
  m_list->setModel(model);
  if (model) {
    connect(model, &QAbstractItemModel::dataChanged, this, [this](const QModelIndex& topLeft) {
      m_delegate->turnChanged(topLeft);
      followTail();
      updateActions();
    });
    connect(model, &QAbstractItemModel::rowsInserted, this, [this] {
      followTail();
      updateActions();
    });
    connect(model, &QAbstractItemModel::rowsRemoved, this, &ChatView::updateActions);
    connect(model, &QAbstractItemModel::modelReset, this, [this] {
      m_list->scrollToBottom();
      updateActions();
    });
  }
  updateActions();
}

void ChatView::setState(State state, const QString& detail) {
  m_state = state;
  QString banner;
  switch (state) {
    case State::NoModel:
      banner = ModelGuide::noModelHtml();
      break;
    case State::LoadingModel:
      banner = tr("Loading the model %1…").arg(detail);
      break;
    case State::ModelFailed:
      banner = tr("The model could not be loaded: %1\nChoose another file in Settings (Ctrl+,).").arg(detail);
      break;
    case State::NoDocument:
      banner = tr("Open a document from the library (double-click it) to ask about it; import one with Ctrl+I.");
      break;
    case State::Preparing:
      banner = tr("Reading %1… questions can be asked when it is ready.").arg(detail);
      break;
    case State::Ready:
    case State::Answering:
      break;
  }
  // Only the first-run text is rich text: the others carry engine messages, which may hold '<'.
  m_banner->setTextFormat(state == State::NoModel ? Qt::RichText : Qt::PlainText);
  m_banner->setText(banner);
  m_banner->setVisible(!banner.isEmpty());
  m_list->setVisible(state != State::NoModel);  // no model, no chat: the first-run text takes the room
  m_chatBar->setVisible(state == State::Ready || state == State::Answering);  // chats belong to an open document
  m_bannerAction->setVisible(state == State::NoModel || state == State::ModelFailed);
  updateActions();
  updateCompact();  // the banner's longest word may have changed
}

QString ChatView::bannerText() const { return m_banner->text(); }

void ChatView::showError(const QString& message) {
  m_error->setText(message);
  m_errorBox->show();
}

void ChatView::dismissError() {
  m_errorBox->hide();
  m_error->clear();
}

QString ChatView::errorText() const { return m_error->text(); }

bool ChatView::isErrorVisible() const { return !m_errorBox->isHidden(); }

bool ChatView::isBannerVisible() const { return !m_banner->isHidden(); }

bool ChatView::lastTurnIsFinishedAnswer() const {
  if (!m_model || m_model->rowCount() == 0) return false;
  const QModelIndex last = m_model->index(m_model->rowCount() - 1, 0);
  return !isUser(last) && !last.data(ChatModel::StreamingRole).toBool();
}

void ChatView::updateActions() {
  const bool ready = m_state == State::Ready;
  const bool answering = m_state == State::Answering;
  m_input->setReadOnly(!(ready || answering));
  m_send->setEnabled(ready && !m_input->toPlainText().trimmed().isEmpty());
  m_stop->setEnabled(answering);
  m_regenerate->setEnabled(ready && lastTurnIsFinishedAnswer());
  m_copy->setEnabled(m_model && m_model->rowCount() > 0);
  m_newChat->setEnabled((ready || m_state == State::NoDocument) && m_model && m_model->rowCount() > 0);
  m_chats->setEnabled(ready && m_chats->count() > 1);
  m_renameChat->setEnabled(ready && m_currentChat > 0);
  m_deleteChat->setEnabled(ready && m_currentChat > 0);
  m_chatMenu->setEnabled(ready && m_currentChat > 0);
}

void ChatView::followTail() {
  // Only when the reader is already at the end: scrolling back to read must not be undone by the stream. One
  // scroll per burst of changes: scrolling lays the list out, which measures every turn.
  QScrollBar* bar = m_list->verticalScrollBar();
  if (bar->value() >= bar->maximum() - 4 && !m_scrollTimer->isActive()) m_scrollTimer->start();
}

void ChatView::send() {
  const QString question = m_input->toPlainText().trimmed();
  if (m_state != State::Ready || question.isEmpty()) return;
  m_input->clear();
  emit sendRequested(question);
}

QString ChatView::copyText() const {
  if (!m_model) return {};
  const QModelIndexList selected =
      m_list->selectionModel() ? m_list->selectionModel()->selectedIndexes() : QModelIndexList();
  // An answer is copied without its reasoning block.
  const auto answerOf = [](const QModelIndex& i) {
    const QString text = i.data(ChatModel::TextRole).toString();
    return isUser(i) ? text : AnswerParts::split(text).answer;
  };
  if (!selected.isEmpty()) return answerOf(selected.first());
  for (int row = m_model->rowCount() - 1; row >= 0; --row) {
    const QModelIndex i = m_model->index(row, 0);
    if (!isUser(i)) return answerOf(i);
  }
  return {};
}

QRect ChatView::citationRect(int row, int n) const {
  if (!m_model || row < 0 || row >= m_model->rowCount()) return {};
  const QModelIndex index = m_model->index(row, 0);
  QStyleOptionViewItem option;
  option.initFrom(m_list->viewport());
  option.widget = m_list;
  option.font = m_list->font();
  option.fontMetrics = QFontMetrics(option.font);
  option.rect = m_list->visualRect(index);
  const QVector<QRect> rects = m_delegate->citationRects(option, index);
  return n >= 0 && n < rects.size() ? rects[n] : QRect();
}

void ChatView::copy() {
  const QString text = copyText();
  if (!text.isEmpty()) QApplication::clipboard()->setText(text);
}

void ChatView::focusInput() { m_input->setFocus(Qt::ShortcutFocusReason); }

bool ChatView::eventFilter(QObject* watched, QEvent* event) {
  if (watched == m_input && event->type() == QEvent::KeyPress) {
    auto* key = static_cast<QKeyEvent*>(event);
    if (key->key() == Qt::Key_Return || key->key() == Qt::Key_Enter) {
      if (key->modifiers() & Qt::ShiftModifier)
        m_input->insertPlainText(QStringLiteral("\n"));
      else
        send();
      return true;
    }
  }
  return QWidget::eventFilter(watched, event);
}
