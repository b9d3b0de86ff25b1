#include "document_view.h"

#include <QAction>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QMouseEvent>
#include <QPainter>
#include <QPlainTextEdit>
#include <QScrollBar>
#include <QSplitter>
#include <QStackedLayout>
#include <QTextBlock>
#include <QToolButton>
#include <QTreeWidget>
#include <QVBoxLayout>
#include <algorithm>

#include "window_layout.h"

namespace {

const QColor kPassage(0x9c, 0x6a, 0xde);  // where the model looks
const QColor kMatch(0xff, 0xe0, 0x66);    // search matches
const QColor kCurrentMatch(0xff, 0x9f, 0x1c);
constexpr int kMaxMatches = 10000;  // beyond this the count says "10000+" and the rest are not found
// Matches painted in the text: the selections are rebuilt whenever the passages change (up to 30 times a second).
constexpr int kMaxMarkedMatches = 1000;

QColor withAlpha(QColor c, float weight) {
  c.setAlphaF(std::clamp(0.25f + 0.55f * weight, 0.25f, 0.8f));
  return c;
}

}  // namespace

// ---- minimap ----

DocumentMinimap::DocumentMinimap(QWidget* parent) : QWidget(parent) {
  setFixedWidth(14);
  setCursor(Qt::PointingHandCursor);
  setToolTip(tr("Where the model looks (violet) and search matches (yellow); click to go there"));
}

void DocumentMinimap::setMarks(const QVector<Mark>& passages, const QVector<Mark>& matches) {
  m_passages = passages;
  m_matches = matches;
  update();
}

void DocumentMinimap::setVisibleRange(double from, double to) {
  m_visibleFrom = from;
  m_visibleTo = to;
  update();
}

double DocumentMinimap::fractionAt(int y) const { return std::clamp(double(y) / std::max(1, height()), 0.0, 1.0); }

int DocumentMinimap::yOf(double fraction) const { return int(fraction * height()); }

QSize DocumentMinimap::sizeHint() const { return QSize(14, 200); }

void DocumentMinimap::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), palette().color(QPalette::AlternateBase));
  const QRect view(0, yOf(m_visibleFrom), width(), std::max(4, yOf(m_visibleTo) - yOf(m_visibleFrom)));
  p.fillRect(view, palette().color(QPalette::Midlight));
  for (const Mark& m : m_matches) p.fillRect(QRect(width() / 2, yOf(m.from), width() / 2, 2), m.color);
  for (const Mark& m : m_passages)
    p.fillRect(QRect(1, yOf(m.from), width() / 2, std::max(3, yOf(m.to) - yOf(m.from))), m.color);
  p.setPen(palette().color(QPalette::Mid));
  p.drawRect(view.adjusted(0, 0, -1, -1));
}

void DocumentMinimap::mousePressEvent(QMouseEvent* event) {
  if (event->button() == Qt::LeftButton) emit clicked(fractionAt(event->position().toPoint().y()));
}

// ---- the view ----

DocumentView::DocumentView(QWidget* parent) : QWidget(parent) {
  auto* stack = new QStackedLayout;
  m_placeholder = new QLabel(this);
  m_placeholder->setAlignment(Qt::AlignCenter);
  m_placeholder->setWordWrap(true);
  stack->addWidget(m_placeholder);

  auto* document = new QWidget(this);
  auto* column = new QVBoxLayout(document);
  column->setContentsMargins(0, 0, 0, 0);
  column->addWidget(buildSearchBar());
  column->addWidget(buildPassageBar());
  auto* splitter = new QSplitter(Qt::Horizontal, document);
  m_outline = new QTreeWidget(splitter);
  m_outline->setHeaderHidden(true);
  m_outline->setAccessibleName(tr("Document outline"));
  auto* textArea = new QWidget(splitter);
  auto* row = new QHBoxLayout(textArea);
  row->setContentsMargins(0, 0, 0, 0);
  row->setSpacing(0);
  m_text = new QPlainTextEdit(textArea);
  m_text->setReadOnly(true);
  m_text->setTextInteractionFlags(Qt::TextSelectableByMouse | Qt::TextSelectableByKeyboard);
  m_text->setAccessibleName(tr("Document text"));
  m_minimap = new DocumentMinimap(textArea);
  row->addWidget(m_text, 1);
  row->addWidget(m_minimap);
  splitter->setStretchFactor(1, 1);
  splitter->setSizes({180, 600});
  column->addWidget(splitter, 1);
  stack->addWidget(document);
  setLayout(stack);

  m_text->viewport()->installEventFilter(this);
  connect(m_text->verticalScrollBar(), &QScrollBar::valueChanged, this, &DocumentView::onScrolled);
  connect(m_text->verticalScrollBar(), &QScrollBar::rangeChanged, this, &DocumentView::onScrolled);
  connect(m_minimap, &DocumentMinimap::clicked, this, &DocumentView::onMinimapClicked);
  connect(m_outline, &QTreeWidget::itemClicked, this, &DocumentView::onOutlineActivated);
  connect(m_outline, &QTreeWidget::itemActivated, this, &DocumentView::onOutlineActivated);
  const auto action = [this](const QString& text, QKeySequence::StandardKey key, auto slot) {
    auto* a = new QAction(text, this);
    a->setShortcut(key);
    a->setShortcutContext(Qt::WidgetWithChildrenShortcut);
    connect(a, &QAction::triggered, this, slot);
    addAction(a);
    return a;
  };
  m_findAction = action(tr("&Find…"), QKeySequence::Find, &DocumentView::focusSearch);
  m_findNextAction = action(tr("Find &Next"), QKeySequence::FindNext, [this] { findNext(); });
  m_findPreviousAction = action(tr("Find &Previous"), QKeySequence::FindPrevious, [this] { findPrevious(); });
  clearContent();
}

QWidget* DocumentView::buildSearchBar() {
  auto* bar = new QWidget(this);
  auto* row = new QHBoxLayout(bar);
  row->setContentsMargins(4, 2, 4, 2);
  m_search = new QLineEdit(bar);
  m_search->setPlaceholderText(tr("Search the document (Ctrl+F)"));
  m_search->setClearButtonEnabled(true);
  windowlayout::keepPlaceholderVisible(m_search);
  m_searchCount = new QLabel(bar);
  m_searchCount->setFixedWidth(m_searchCount->fontMetrics().horizontalAdvance(tr("10000 of 10000+")) + 4);
  m_searchCount->setAlignment(Qt::AlignRight | Qt::AlignVCenter);
  auto* prev = new QToolButton(bar);
  prev->setArrowType(Qt::UpArrow);
  prev->setToolTip(tr("Previous match (Shift+F3)"));
  auto* next = new QToolButton(bar);
  next->setArrowType(Qt::DownArrow);
  next->setToolTip(tr("Next match (F3, Enter)"));
  row->addWidget(m_search, 1);
  row->addWidget(m_searchCount);
  row->addWidget(prev);
  row->addWidget(next);
  connect(m_search, &QLineEdit::textChanged, this, &DocumentView::runSearch);
  connect(m_search, &QLineEdit::returnPressed, this, &DocumentView::findNext);
  connect(prev, &QToolButton::clicked, this, &DocumentView::findPrevious);
  connect(next, &QToolButton::clicked, this, &DocumentView::findNext);
  return bar;
}

QWidget* DocumentView::buildPassageBar() {
  auto* bar = new QWidget(this);
  auto* row = new QHBoxLayout(bar);
  row->setContentsMargins(4, 0, 4, 2);
  auto* swatch = new QLabel(bar);
  swatch->setFixedSize(12, 12);
  swatch->setStyleSheet(QStringLiteral("background: %1; border-radius: 2px;").arg(kPassage.name()));
  m_passageLabel = new QLabel(bar);
  // Its text changes with every telemetry frame; a width that follows it would re-lay out the window each time.
  m_passageLabel->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
  m_prevPassage = new QToolButton(bar);
  m_prevPassage->setArrowType(Qt::LeftArrow);
  m_prevPassage->setToolTip(tr("Previous passage the model looked at"));
  m_nextPassage = new QToolButton(bar);
  m_nextPassage->setArrowType(Qt::RightArrow);
  m_nextPassage->setToolTip(tr("Next passage the model looked at"));
  row->addWidget(swatch);
  row->addWidget(m_passageLabel, 1);
  row->addWidget(m_prevPassage);
  row->addWidget(m_nextPassage);
  connect(m_prevPassage, &QToolButton::clicked, this, &DocumentView::previousPassage);
  connect(m_nextPassage, &QToolButton::clicked, this, &DocumentView::nextPassage);
  return bar;
}

void DocumentView::setShowingDocument(bool showing) {
  static_cast<QStackedLayout*>(layout())->setCurrentIndex(showing ? 1 : 0);
}

void DocumentView::setContent(QSharedPointer<const fkv::DocumentContent> content, const QString& title) {
  m_content = std::move(content);
  m_title = title;
  m_passages.clear();
  m_currentPassage = -1;
  m_matches.clear();
  m_currentMatch = -1;
  if (!m_content) {
    clearContent();
    return;
  }
  m_positions = Utf8PositionMap(m_content->text);
  m_text->setPlainText(QString::fromStdString(m_content->text));
  buildOutline();
  setShowingDocument(true);
  runSearch();
  refreshPassageLabel();
}

void DocumentView::clearContent() {
  m_content.reset();
  m_positions = Utf8PositionMap();
  m_title.clear();
  m_sectionStarts.clear();
  m_passages.clear();
  m_currentPassage = -1;
  m_matches.clear();
  m_currentMatch = -1;
  m_text->clear();
  m_outline->clear();
  refreshSelections();
  refreshMinimap();
  m_placeholder->setText(
      tr("Open a document from the library (double-click it), or import one with File › Import "
         "(Ctrl+I) or by dropping files on the window."));
  setShowingDocument(false);
}

void DocumentView::showMessage(const QString& message) {
  clearContent();
  m_placeholder->setText(message);
}

void DocumentView::buildOutline() {
  m_outline->clear();
  m_sectionStarts.clear();
  QVector<QTreeWidgetItem*> parents;  // (heading depth) the open heading at each level
  for (const fkv::DocumentSection& s : m_content->sections) {
    const int level = s.is_page ? 1 : std::max(1, s.level);
    while (parents.size() >= level) parents.removeLast();
    auto* item = parents.isEmpty() ? new QTreeWidgetItem(m_outline) : new QTreeWidgetItem(parents.last());
    item->setText(0, QString::fromStdString(s.title).simplified());
    item->setData(0, Qt::UserRole, int(m_sectionStarts.size()));
    m_sectionStarts.append(m_positions.toUtf16(s.char_offset));
    if (!s.is_page) parents.append(item);
  }
  m_outline->expandToDepth(0);
  m_outline->setVisible(!m_sectionStarts.isEmpty());
}

void DocumentView::onOutlineActivated(QTreeWidgetItem* item) {
  const int i = item ? item->data(0, Qt::UserRole).toInt() : -1;
  if (i >= 0 && i < m_sectionStarts.size()) scrollToPosition(m_sectionStarts[i]);
}

QString DocumentView::sectionAt(int pos) const {
  const auto it = std::upper_bound(m_sectionStarts.begin(), m_sectionStarts.end(), pos);
  if (it == m_sectionStarts.begin() || !m_content) return {};
  return QString::fromStdString(m_content->sections[size_t(it - m_sectionStarts.begin() - 1)].title).simplified();
}

void DocumentView::setRetrievedPages(const QVector<int>& pages, const QVector<float>& weights) {
  QVector<DocumentRange> ranges;
  if (m_content) {
    for (DocumentRange r : pageByteRanges(*m_content, pages, weights)) {
      r.begin = m_positions.toUtf16(r.begin);
      r.end = m_positions.toUtf16(r.end);
      if (r.end > r.begin) ranges.append(r);
    }
  }
  const bool same = ranges.size() == m_passages.size() &&
                    std::equal(ranges.begin(), ranges.end(), m_passages.begin(), [](const auto& x, const auto& y) {
                      return x.begin == y.begin && x.end == y.end && x.weight == y.weight;
                    });
  if (same) return;
  m_passages = ranges;
  m_currentPassage = -1;
  refreshSelections();
  refreshMinimap();
  refreshPassageLabel();
}

QString DocumentView::passageText(int i) const {
  if (i < 0 || i >= m_passages.size()) return {};
  QTextCursor c(m_text->document());
  c.setPosition(int(m_passages[i].begin));
  c.setPosition(int(m_passages[i].end), QTextCursor::KeepAnchor);
  return c.selectedText().replace(QChar::ParagraphSeparator, QLatin1Char('\n'));
}

void DocumentView::goToPassage(int i) {
  if (i < 0 || i >= m_passages.size()) return;
  m_currentPassage = i;
  scrollToPosition(int(m_passages[i].begin));
  refreshSelections();
  refreshPassageLabel();
}

void DocumentView::nextPassage() {
  if (!m_passages.isEmpty()) goToPassage((m_currentPassage + 1) % int(m_passages.size()));
}

void DocumentView::previousPassage() {
  if (m_passages.isEmpty()) return;
  goToPassage(m_currentPassage <= 0 ? int(m_passages.size()) - 1 : m_currentPassage - 1);
}

int DocumentView::passageAt(int pos) const {
  for (int i = 0; i < m_passages.size(); ++i)
    if (pos >= m_passages[i].begin && pos < m_passages[i].end) return i;
  return -1;
}

void DocumentView::refreshPassageLabel() {
  const int n = int(m_passages.size());
  m_prevPassage->setEnabled(n > 0);
  m_nextPassage->setEnabled(n > 0);
  if (n == 0) {
    m_passageLabel->setText(tr("Where the model looks: nothing yet (the passages appear while it answers)"));
  } else if (m_currentPassage < 0) {
    m_passageLabel->setText(tr("Where the model looks: %n passage(s)", nullptr, n));
  } else {
    const QString section = sectionAt(int(m_passages[m_currentPassage].begin));
    m_passageLabel->setText(section.isEmpty()
                                ? tr("Passage %1 of %2").arg(m_currentPassage + 1).arg(n)
                                : tr("Passage %1 of %2 · %3").arg(m_currentPassage + 1).arg(n).arg(section));
  }
}

void DocumentView::focusSearch() {
  m_search->setFocus(Qt::ShortcutFocusReason);
  m_search->selectAll();
}

void DocumentView::setSearchText(const QString& text) { m_search->setText(text); }

void DocumentView::runSearch() {
  m_matches.clear();
  m_currentMatch = -1;
  const QString needle = m_search->text();
  if (m_content && !needle.isEmpty()) {
    const QString hay = m_text->document()->toRawText();
    for (qsizetype at = hay.indexOf(needle, 0, Qt::CaseInsensitive); at >= 0 && m_matches.size() < kMaxMatches;
         at = hay.indexOf(needle, at + needle.size(), Qt::CaseInsensitive))
      m_matches.append(int(at));
  }
  if (m_matches.isEmpty()) {
    m_searchCount->setText(needle.isEmpty() || !m_content ? QString() : tr("no matches"));
    refreshSelections();
    refreshMinimap();
    return;
  }
  const int top = firstVisiblePosition();
  const auto it = std::lower_bound(m_matches.begin(), m_matches.end(), top);
  selectMatch(it == m_matches.end() ? 0 : int(it - m_matches.begin()));
  refreshMinimap();
}

bool DocumentView::findNext() {
  if (m_matches.isEmpty()) return false;
  selectMatch((m_currentMatch + 1) % int(m_matches.size()));
  return true;
}

bool DocumentView::findPrevious() {
  if (m_matches.isEmpty()) return false;
  selectMatch(m_currentMatch <= 0 ? int(m_matches.size()) - 1 : m_currentMatch - 1);
  return true;
}

void DocumentView::selectMatch(int i) {
  m_currentMatch = i;
  QTextCursor c(m_text->document());
  c.setPosition(m_matches[i]);
  c.setPosition(m_matches[i] + int(m_search->text().size()), QTextCursor::KeepAnchor);
  m_text->setTextCursor(c);
  m_text->centerCursor();
  const QString more = m_matches.size() >= kMaxMatches ? QStringLiteral("+") : QString();
  m_searchCount->setText(tr("%1 of %2%3").arg(i + 1).arg(m_matches.size()).arg(more));
  refreshSelections();
}

void DocumentView::refreshSelections() {
  QList<QTextEdit::ExtraSelection> selections;
  for (int i = 0; i < m_passages.size(); ++i) {
    QTextEdit::ExtraSelection s;
    s.cursor = QTextCursor(m_text->document());
    s.cursor.setPosition(int(m_passages[i].begin));
    s.cursor.setPosition(int(m_passages[i].end), QTextCursor::KeepAnchor);
    s.format.setBackground(withAlpha(kPassage, i == m_currentPassage ? 1.0f : m_passages[i].weight));
    if (i == m_currentPassage) s.format.setFontUnderline(true);
    selections.append(s);
  }
  const int length = int(m_search->text().size());
  const int nMarked = std::min(int(m_matches.size()), kMaxMarkedMatches);
  for (int i = 0; i < nMarked; ++i) {
    QTextEdit::ExtraSelection s;
    s.cursor = QTextCursor(m_text->document());
    s.cursor.setPosition(m_matches[i]);
    s.cursor.setPosition(m_matches[i] + length, QTextCursor::KeepAnchor);
    s.format.setBackground(i == m_currentMatch ? kCurrentMatch : kMatch);
    selections.append(s);
  }
  m_text->setExtraSelections(selections);
}

double DocumentView::fractionOf(int pos) const {
  const QTextDocument* doc = m_text->document();
  return double(doc->findBlock(pos).blockNumber()) / std::max(1, doc->blockCount());
}

void DocumentView::refreshMinimap() {
  QVector<DocumentMinimap::Mark> passages, matches;
  if (m_content) {
    for (const DocumentRange& r : m_passages)
      passages.append({fractionOf(int(r.begin)), fractionOf(int(r.end)), withAlpha(kPassage, r.weight)});
    for (int pos : m_matches) matches.append({fractionOf(pos), fractionOf(pos), kCurrentMatch});
  }
  m_minimap->setMarks(passages, matches);
  onScrolled();
}

void DocumentView::onMinimapClicked(double fraction) {
  if (!m_content) return;
  // A click near a passage's mark goes to the passage: marks are thin, so be generous.
  const double slack = 5.0 / std::max(1, m_minimap->height());
  const QVector<DocumentMinimap::Mark>& marks = m_minimap->passageMarks();
  int best = -1;
  double bestDistance = slack;
  for (int i = 0; i < marks.size(); ++i) {
    const double d = fraction < marks[i].from ? marks[i].from - fraction : std::max(0.0, fraction - marks[i].to);
    if (d <= bestDistance) best = i, bestDistance = d;
  }
  if (best >= 0) {
    goToPassage(best);
    return;
  }
  const QTextDocument* doc = m_text->document();
  scrollToPosition(doc->findBlockByNumber(int(fraction * doc->blockCount())).position());
}

void DocumentView::scrollToPosition(int pos) {
  QTextCursor c(m_text->document());
  c.setPosition(std::clamp(pos, 0, m_text->document()->characterCount() - 1));
  m_text->setTextCursor(c);
  m_text->centerCursor();
}

void DocumentView::showTextRange(qint64 byteBegin, qint64 byteEnd) {
  if (!m_content) return;
  const int last = m_text->document()->characterCount() - 1;
  const int begin = std::clamp(m_positions.toUtf16(byteBegin), 0, last);
  const int end = std::clamp(m_positions.toUtf16(byteEnd), begin, last);
  scrollToPosition(end);  // centring the end first, then the start, keeps the whole passage in view when it fits
  scrollToPosition(begin);
  QTextCursor c(m_text->document());
  c.setPosition(begin);
  c.setPosition(end, QTextCursor::KeepAnchor);
  m_text->setTextCursor(c);
}

int DocumentView::firstVisiblePosition() const { return m_text->cursorForPosition(QPoint(0, 0)).position(); }

void DocumentView::onScrolled() {
  if (!m_content) return;
  const int first = firstVisiblePosition();
  const QRect r = m_text->viewport()->rect();
  const int last = m_text->cursorForPosition(r.bottomRight()).position();
  m_minimap->setVisibleRange(fractionOf(first), std::max(fractionOf(last), fractionOf(first)));
  // The outline follows the reading position.
  const auto it = std::upper_bound(m_sectionStarts.begin(), m_sectionStarts.end(), first);
  const int section = int(it - m_sectionStarts.begin()) - 1;
  for (QTreeWidgetItemIterator i(m_outline); section >= 0 && *i; ++i) {
    if ((*i)->data(0, Qt::UserRole).toInt() != section) continue;
    const QSignalBlocker block(m_outline);
    m_outline->setCurrentItem(*i);
    break;
  }
}

bool DocumentView::eventFilter(QObject* watched, QEvent* event) {
  if (watched == m_text->viewport() && event->type() == QEvent::MouseButtonRelease && m_content) {
    auto* mouse = static_cast<QMouseEvent*>(event);
    if (mouse->button() == Qt::LeftButton && !m_text->textCursor().hasSelection()) {
      const int i = passageAt(m_text->cursorForPosition(mouse->position().toPoint()).position());
      if (i >= 0) goToPassage(i);
    }
  }
  if (watched == m_text->viewport() && event->type() == QEvent::Resize) onScrolled();
  return QWidget::eventFilter(watched, event);
}
