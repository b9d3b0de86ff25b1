// freekv-desk: the desktop app. Sets up the application (names, so settings and data land in "freekv-desk"
// folders; the icon), reads the command line (files to import, the last one opened), and shows the window.
#include <QApplication>
#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>
#include <cstring>

#include "main_window.h"
#include "model_guide.h"

namespace {

struct Options {
  QStringList files;
  QString library;
};

// No organization name: AppDataLocation is then <data home>/freekv-desk, the library the freekv CLI uses too.
// QSettings falls back to the domain: <config home>/freekv.org/freekv-desk.conf.
void setApplicationNames() {
  QCoreApplication::setOrganizationDomain(QStringLiteral("freekv.org"));
  QCoreApplication::setApplicationName(QStringLiteral("freekv-desk"));
  QCoreApplication::setApplicationVersion(QStringLiteral(FKV_VERSION));
}

QString defaultLibrary() {
  return QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + QStringLiteral("/library.db");
}

void describeCommandLine(QCommandLineParser& parser, const QCommandLineOption& library) {
  parser.setApplicationDescription(
      QCoreApplication::translate("main", "Ask a local language model about long documents (txt, md, html, pdf)."));
  parser.addHelpOption();
  parser.addVersionOption();
  parser.addOption(library);
  parser.addPositionalArgument(QStringLiteral("files"),
                               QCoreApplication::translate("main", "Documents to import; the last one is opened."),
                               QStringLiteral("[files...]"));
}

QCommandLineOption libraryOption() {
  return QCommandLineOption(
      QStringLiteral("library"),
      QCoreApplication::translate("main", "Use the document library at <path> (default: %1).").arg(defaultLibrary()),
      QStringLiteral("path"));
}

Options parseCommandLine(const QApplication& app) {
  QCommandLineParser parser;
  const QCommandLineOption library = libraryOption();
  describeCommandLine(parser, library);
  parser.process(app);
  Options o;
  for (const QString& f : parser.positionalArguments()) o.files << QFileInfo(f).absoluteFilePath();
  o.library = parser.value(library);
  if (o.library.isEmpty()) o.library = defaultLibrary();
  return o;
}

// True when the command line asks only for text (--help, --help-all, --version): it is answered before any
// QApplication exists, because a QApplication connects to the display, and install checks, ssh sessions and
// package builds have none.
bool wantsTextOnly(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strcmp(a, "--") == 0) return false;  // what follows are file names
    for (const char* flag : {"-h", "--help", "--help-all", "-v", "--version"}) {
      if (std::strcmp(a, flag) == 0) return true;
    }
  }
  return false;
}

// Prints the version or the help and exits, with no window system. --help-all goes through process(), which adds
// the QCoreApplication options; Qt's GUI options (-platform, -style) are listed in the man page.
int answerTextOnly(int argc, char** argv) {
  QCoreApplication app(argc, argv);
  setApplicationNames();
  QCommandLineParser parser;
  describeCommandLine(parser, libraryOption());
  parser.parse(QCoreApplication::arguments());  // unknown options (say -platform offscreen) do not matter here
  if (parser.isSet(QStringLiteral("version"))) parser.showVersion();
  if (parser.isSet(QStringLiteral("help-all"))) parser.process(app);
  parser.showHelp(0);
}

}  // namespace

int main(int argc, char** argv) {
  if (wantsTextOnly(argc, argv)) return answerTextOnly(argc, argv);
  QApplication app(argc, argv);
  setApplicationNames();
  QApplication::setApplicationDisplayName(QStringLiteral("FreeKV Desk"));
  QApplication::setDesktopFileName(QStringLiteral("freekv-desk"));
  QApplication::setWindowIcon(MainWindow::appIcon());

  const Options options = parseCommandLine(app);
  QDir().mkpath(QFileInfo(options.library).absolutePath());
  QDir().mkpath(ModelGuide::modelsFolder());  // the first-run text suggests it, so it exists to copy models into
  MainWindow window(options.library);
  window.show();
  window.importAndOpen(options.files);
  return QApplication::exec();
}
