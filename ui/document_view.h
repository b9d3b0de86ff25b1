// The document view: the open document's text with its outline (PDF pages, markdown/HTML headings), a search bar,
// and "where the model looks": the KV pages retrieved in the last decode step, mapped through the span map onto the
// text as highlighted passages (page p holds context positions [p * pageSize, (p + 1) * pageSize); the spans say
// which bytes of the text those positions came from). A minimap strip beside the scrollbar shows the passages and the
// search matches over the whole document; clicking a mark, or a passage in the text, scrolls there.
#pragma once

#include <QSharedPointer>
#include <QString>
#include <QVector>
#include <QWidget>

class QAction;

#include "document_ranges.h"
#include "fkv/types.h"

class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QToolButton;
class QTreeWidget;
class QTreeWidgetItem;

// The strip beside the text's scrollbar: the whole document at a glance. Marks are fractions of the document.
class DocumentMinimap : public QWidget {
  Q_OBJECT

 public:
  struct Mark {
    double from = 0, to = 0;  // [0, 1]
    QColor color;
  };

  explicit DocumentMinimap(QWidget* parent = nullptr);
  void setMarks(const QVector<Mark>& passages, const QVector<Mark>& matches);
  void setVisibleRange(double from, double to);
  const QVector<Mark>& passageMarks() const { return m_passages; }
  const QVector<Mark>& matchMarks() const { return m_matches; }
  double fractionAt(int y) const;
  int yOf(double fraction) const;
  QSize sizeHint() const override;

 signals:
  void clicked(double fraction);

 protected:
  void paintEvent(QPaintEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;

 private:
  QVector<Mark> m_passages;
  QVector<Mark> m_matches;
  double m_visibleFrom = 0, m_visibleTo = 1;
};

class DocumentView : public QWidget {
  Q_OBJECT

 public:
  explicit DocumentView(QWidget* parent = nullptr);

  void setContent(QSharedPointer<const fkv::DocumentContent> content, const QString& title);
  // Shows no document: the default hint, or `message` (e.g. what is being opened).
  void clearContent();
  void showMessage(const QString& message);
  bool hasContent() const { return !m_content.isNull(); }
  QSharedPointer<const fkv::DocumentContent> content() const { return m_content; }
  QString title() const { return m_title; }

  // The pages retrieved in the last step (TelemetryFrame::retrievedPages / retrievedWeight). Empty clears them.
  void setRetrievedPages(const QVector<int>& pages, const QVector<float>& weights);
  // The highlighted passages, in QString positions of the text, in order.
  const QVector<DocumentRange>& passages() const { return m_passages; }
  QString passageText(int i) const;
  int currentPassage() const { return m_currentPassage; }
  void goToPassage(int i);
  void nextPassage();
  void previousPassage();

  // Search (case-insensitive, wraps around). setSearchText finds the first match at or after the view's top.
  void setSearchText(const QString& text);
  bool findNext();
  bool findPrevious();
  int matchCount() const { return int(m_matches.size()); }
  int currentMatch() const { return m_currentMatch; }  // -1: none
  void focusSearch();

  // Scrolls so that QString position `pos` is near the top third of the view.
  void scrollToPosition(int pos);
  int firstVisiblePosition() const;
  // Selects the text of bytes [byteBegin, byteEnd) of the document (a citation) and scrolls it into view.
  void showTextRange(qint64 byteBegin, qint64 byteEnd);
  // The outline entry (page or heading) that holds `pos`; empty when none.
  QString sectionAt(int pos) const;

  QPlainTextEdit* textEdit() const { return m_text; }
  QTreeWidget* outline() const { return m_outline; }
  DocumentMinimap* minimap() const { return m_minimap; }
  QLineEdit* searchEdit() const { return m_search; }
  // Find, Find Next, Find Previous: one action each, with the standard shortcut. They work while the view has focus;
  // a window that puts them in its menu widens them to the whole window (Qt::WindowShortcut), still one shortcut.
  QAction* findAction() const { return m_findAction; }
  QAction* findNextAction() const { return m_findNextAction; }
  QAction* findPreviousAction() const { return m_findPreviousAction; }

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  QWidget* buildSearchBar();
  QWidget* buildPassageBar();
  void buildOutline();
  void runSearch();
  void selectMatch(int i);
  void refreshSelections();
  void refreshMinimap();
  void refreshPassageLabel();
  void onMinimapClicked(double fraction);
  void onScrolled();
  void onOutlineActivated(QTreeWidgetItem* item);
  double fractionOf(int pos) const;
  int passageAt(int pos) const;
  void setShowingDocument(bool showing);

  QSharedPointer<const fkv::DocumentContent> m_content;
  Utf8PositionMap m_positions;
  QString m_title;
  QVector<int> m_sectionStarts;  // (n_sections) QString positions, in order
  QVector<DocumentRange> m_passages;
  int m_currentPassage = -1;
  QVector<int> m_matches;  // (n_matches) QString positions of the search text
  int m_currentMatch = -1;

  QTreeWidget* m_outline = nullptr;
  QPlainTextEdit* m_text = nullptr;
  DocumentMinimap* m_minimap = nullptr;
  QLabel* m_placeholder = nullptr;
  QLineEdit* m_search = nullptr;
  QAction* m_findAction = nullptr;
  QAction* m_findNextAction = nullptr;
  QAction* m_findPreviousAction = nullptr;
  QLabel* m_searchCount = nullptr;
  QLabel* m_passageLabel = nullptr;
  QToolButton* m_prevPassage = nullptr;
  QToolButton* m_nextPassage = nullptr;
};
