#include "support/cli_runner.h"

#include <QJsonDocument>
#include <QProcessEnvironment>

#include "support/test_paths.h"

namespace fkvtest {

CliRun runCli(const QStringList& args, const QByteArray& input) {
  QProcess p;
  QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
  env.insert("FKV_VOCAB", llamaVocabPath());
  env.insert("FKV_LIBRARY", tempDir() + "/default-library/library.db");
  p.setProcessEnvironment(env);
  p.start(QStringLiteral(FKV_CLI_PATH), args);
  CliRun r;
  if (!p.waitForStarted(10000)) return r;
  p.write(input);
  p.closeWriteChannel();
  if (!p.waitForFinished(120000)) {
    p.kill();
    p.waitForFinished();
    return r;
  }
  r.exitStatus = p.exitStatus();
  if (r.exitStatus == QProcess::NormalExit) r.exitCode = p.exitCode();
  r.out = p.readAllStandardOutput();
  r.err = p.readAllStandardError();
  return r;
}

QJsonObject parseObject(const QByteArray& text) {
  QJsonParseError e{};
  const QJsonDocument doc = QJsonDocument::fromJson(text, &e);
  if (e.error != QJsonParseError::NoError || !doc.isObject()) {
    qWarning("not a JSON object (%s): %s", qPrintable(e.errorString()), text.constData());
    return {};
  }
  return doc.object();
}

}  // namespace fkvtest
