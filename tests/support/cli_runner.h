// Runs the `freekv` executable as a user would (QProcess), for the suites that test the command-line tool.
#pragma once

#include <QByteArray>
#include <QJsonObject>
#include <QProcess>
#include <QStringList>

namespace fkvtest {

struct CliRun {
  int exitCode = -1;  // -1: it did not start, did not finish in time, or died of a signal
  QProcess::ExitStatus exitStatus = QProcess::CrashExit;
  QByteArray out, err;
};

// FKV_VOCAB points at the shared vocabulary (for --synthetic) and FKV_LIBRARY at a library in the test's temporary
// folder, so a command given no --library never touches the user's own. `input` goes to stdin, which is then closed.
CliRun runCli(const QStringList& args, const QByteArray& input = {});

// The JSON object in `text`; an empty object (and a warning with the text) when it is not one.
QJsonObject parseObject(const QByteArray& text);

}  // namespace fkvtest
