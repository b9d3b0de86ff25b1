// Help that works offline: the user guide shipped with the app, rendered in a window of its own, and the keyboard
// shortcuts read from the window's menus (so the list is never out of date).
#pragma once

#include <QString>

class QMenuBar;
class QWidget;

namespace help {

// The installed user guide (<prefix>/share/doc/freekv-desk/user-guide.md beside the executable's bin/), else the
// source tree's docs/ when running from a build folder; empty when neither exists.
QString userGuidePath();
// Opens the guide in a window (its images load from beside it); says where it looked when there is none.
void showUserGuide(QWidget* parent);
// Every menu action that has a shortcut, as "shortcut: menu › action" rows of an HTML table, in menu order.
QString shortcutsHtml(const QMenuBar* menus);
void showShortcuts(QWidget* parent, const QMenuBar* menus);

}  // namespace help
