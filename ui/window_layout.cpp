#include "window_layout.h"

#include <QDockWidget>
#include <QLineEdit>
#include <QMainWindow>
#include <algorithm>

namespace windowlayout {

namespace {

constexpr int kLibraryWidth = 330;  // px, the sides' widths in a wide window
constexpr int kChatWidth = 390;
constexpr int kSizeHintChars = 17;  // QLineEdit::sizeHint() is 17 'x' wide plus its frame and margins

}  // namespace

int placeholderWidth(const QLineEdit* edit) {
  const QFontMetrics fm = edit->fontMetrics();
  // Qt's size hint minus its text is what the edit adds around any text: frame, margins, the clear button's room.
  const int around = edit->sizeHint().width() - kSizeHintChars * fm.horizontalAdvance(QLatin1Char('x'));
  return fm.horizontalAdvance(edit->placeholderText()) + around;
}

void keepPlaceholderVisible(QLineEdit* edit) { edit->setMinimumWidth(placeholderWidth(edit)); }

QList<int> centreSizes(int width, bool narrow, const CentreWidths& sides) {
  int library = std::max(kLibraryWidth, sides.libraryMinimum);
  int chat = std::max({kChatWidth, sides.chatRow, sides.chatMinimum});
  if (narrow) {
    library = std::clamp(width * 22 / 100, sides.libraryMinimum, library);
    chat = std::clamp(width * 28 / 100, sides.chatMinimum, chat);
  }
  return {library, std::max(0, width - library - chat), chat};
}

bool foldDocks(QMainWindow* window, const QList<QDockWidget*>& docks, bool fold) {
  QList<QDockWidget*> bottom;
  for (QDockWidget* d : docks) {
    if (!d->isFloating() && window->dockWidgetArea(d) == Qt::BottomDockWidgetArea) bottom << d;
  }
  if (bottom.size() < 2) return false;
  // Open: not closed from the View menu. A dock tabbed away is open, and so is one whose window is not shown yet.
  QList<bool> open;
  for (QDockWidget* d : bottom) open << !d->isHidden();
  if (fold) {
    for (int i = 1; i < bottom.size(); ++i) window->tabifyDockWidget(bottom[0], bottom[i]);
    // The last dock tabified is the one shown; the first open one is.
    const auto first = std::find(open.begin(), open.end(), true);
    if (first != open.end()) bottom[int(first - open.begin())]->raise();
    return true;
  }
  // A closed dock lists no tabs beside it, so any of them may tell.
  const bool tabbed = std::any_of(bottom.begin(), bottom.end(),
                                  [window](QDockWidget* d) { return !window->tabifiedDockWidgets(d).isEmpty(); });
  if (!tabbed) return false;
  // A dock split from a tabbed one becomes another tab: out of the group, then back into the area one by one.
  for (int i = 1; i < bottom.size(); ++i) window->removeDockWidget(bottom[i]);
  for (int i = 1; i < bottom.size(); ++i) {
    window->addDockWidget(Qt::BottomDockWidgetArea, bottom[i], Qt::Horizontal);
    bottom[i]->setVisible(open[i]);
  }
  return true;
}

}  // namespace windowlayout
