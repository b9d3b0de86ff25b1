// freekv-desk: the desktop app. Sets up the application (names, so settings and data land in "freekv-desk"
// folders; the icon), reads the command line (files to import, the last one opened), and shows the window.
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

#include "main_window.h"

namespace {

struct Options {
  QStringList files;
  QString library;
};

Options parseCommandLine(const QApplication& app) {
  QCommandLineParser parser;
  parser.setApplicationDescription(
      QApplication::translate("main", "Ask a local language model about long documents (txt, md, html, pdf)."));
  parser.addHelpOption();
  parser.addVersionOption();
  const QCommandLineOption library(
      QStringLiteral("library"),
      QApplication::translate("main", "Use the document library at <path> (default: %1).")
          .arg(QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + QStringLiteral("/library.db")),
      QStringLiteral("path"));
  parser.addOption(library);
  parser.addPositionalArgument(QStringLiteral("files"),
                               QApplication::translate("main", "Documents to import; the last one is opened."),
                               QStringLiteral("[files...]"));
  parser.process(app);
  Options o;
  for (const QString& f : parser.positionalArguments()) o.files << QFileInfo(f).absoluteFilePath();
  o.library = parser.value(library);
  if (o.library.isEmpty())
    o.library = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + QStringLiteral("/library.db");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  // No organization name: AppDataLocation is then <data home>/freekv-desk, the library the freekv CLI uses too.
  // QSettings falls back to the domain: <config home>/freekv.org/freekv-desk.conf.
  QApplication::setOrganizationDomain(QStringLiteral("freekv.org"));
  QApplication::setApplicationName(QStringLiteral("freekv-desk"));
  QApplication::setApplicationDisplayName(QStringLiteral("FreeKV Desk"));
  QApplication::setApplicationVersion(QStringLiteral(FKV_VERSION));
  QApplication::setDesktopFileName(QStringLiteral("freekv-desk"));
  QApplication::setWindowIcon(MainWindow::appIcon());

  const Options options = parseCommandLine(app);
  QDir().mkpath(QFileInfo(options.library).absolutePath());
  MainWindow window(options.library);
  window.show();
  window.importAndOpen(options.files);
  return QApplication::exec();
}
