// How the window fits a narrow screen (a 1024x700 laptop): below kNarrowWidth the live panels share one tabbed dock
// and the side panes step back so the document column stays readable; at full width both come back. The arrangement
// follows the window's width alone, and changes only when the width crosses the threshold, so a pane the user
// dragged keeps its size while the window is resized within one regime.
#pragma once

#include <QList>

class QDockWidget;
class QLineEdit;
class QMainWindow;

namespace windowlayout {

// px: three panes and three panels side by side need about this much to leave the document column ~500 px.
constexpr int kNarrowWidth = 1200;

// The width a line edit needs to show its whole placeholder: the text plus the frame, margins and clear button Qt
// reserves around it.
int placeholderWidth(const QLineEdit* edit);
// Sets that width as the edit's minimum, so no splitter or layout squeezes the placeholder into an elided tail.
void keepPlaceholderVisible(QLineEdit* edit);

struct CentreWidths {
  int libraryMinimum = 0;
  int chatMinimum = 0;
  int chatRow = 0;  // the chat with its buttons in one row
};
// The centre splitter's sizes (library, document, chat) for a splitter `width` px wide. Wide: the sides at their
// usual widths, the chat's buttons in one row. Narrow: each side a share of the width, at least its minimum; the
// document column takes the rest.
QList<int> centreSizes(int width, bool narrow, const CentreWidths& sides);

// Folds the docks that sit in the bottom area (not floating) into tabs on the first of them, or spreads them side by
// side again in the order given. A dock closed from the View menu stays closed either way. False: nothing to move.
bool foldDocks(QMainWindow* window, const QList<QDockWidget*>& docks, bool fold);

}  // namespace windowlayout
