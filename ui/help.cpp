#include "help.h"

#include <QAction>
#include <QCoreApplication>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QTextBrowser>
#include <QVBoxLayout>

namespace help {

namespace {

QString plainText(QString menuText) { return menuText.remove(QLatin1Char('&')).remove(QChar(0x2026)); }

QDialog* textWindow(QWidget* parent, const QString& title, QTextBrowser** browser) {
  auto* dialog = new QDialog(parent);
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  dialog->setWindowTitle(title);
  auto* layout = new QVBoxLayout(dialog);
  *browser = new QTextBrowser(dialog);
  (*browser)->setOpenExternalLinks(true);
  layout->addWidget(*browser);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, dialog);
  QObject::connect(buttons, &QDialogButtonBox::rejected, dialog, &QDialog::close);
  layout->addWidget(buttons);
  return dialog;
}

}  // namespace

QString userGuidePath() {
  const QString installed =
      QCoreApplication::applicationDirPath() + QStringLiteral("/../share/doc/freekv-desk/user-guide.md");
  if (QFileInfo(installed).isFile()) return QFileInfo(installed).canonicalFilePath();
  const QString source = QStringLiteral(FKV_DOCS_DIR "/user-guide.md");
  if (QFileInfo(source).isFile()) return source;
  return {};
}

void showUserGuide(QWidget* parent) {
  const QString path = userGuidePath();
  QFile file(path);
  if (path.isEmpty() || !file.open(QIODevice::ReadOnly)) {
    QMessageBox::warning(parent, QObject::tr("User Guide"),
                         QObject::tr("The user guide is not installed: it was looked for in %1 and %2.")
                             .arg(QDir::cleanPath(QCoreApplication::applicationDirPath() +
                                                  QStringLiteral("/../share/doc/freekv-desk")),
                                  QStringLiteral(FKV_DOCS_DIR)));
    return;
  }
  QTextBrowser* browser = nullptr;
  QDialog* dialog = textWindow(parent, QObject::tr("FreeKV Desk User Guide"), &browser);
  browser->setSearchPaths({QFileInfo(path).absolutePath()});
  browser->setMarkdown(QString::fromUtf8(file.readAll()));
  dialog->resize(900, 800);
  dialog->show();
}

QString shortcutsHtml(const QMenuBar* menus) {
  QString rows;
  for (QAction* top : menus->actions()) {
    const QMenu* menu = top->menu();
    if (menu == nullptr) continue;
    for (const QAction* a : menu->actions()) {
      if (a->shortcut().isEmpty()) continue;
      rows += QStringLiteral("<tr><td><b>%1</b></td><td>%2 › %3</td></tr>")
                  .arg(a->shortcut().toString(QKeySequence::NativeText).toHtmlEscaped(),
                       plainText(top->text()).toHtmlEscaped(), plainText(a->text()).toHtmlEscaped());
    }
  }
  return QStringLiteral("<table cellspacing=\"6\">%1</table>").arg(rows);
}

void showShortcuts(QWidget* parent, const QMenuBar* menus) {
  QTextBrowser* browser = nullptr;
  QDialog* dialog = textWindow(parent, QObject::tr("Keyboard Shortcuts"), &browser);
  browser->setHtml(shortcutsHtml(menus));
  dialog->resize(520, 560);
  dialog->show();
}

}  // namespace help
