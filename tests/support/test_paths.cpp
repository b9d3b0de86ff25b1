#include "support/test_paths.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QTemporaryDir>

#include "fkv/models.h"

namespace fkvtest {

QString sharedDir() { return QStringLiteral(FKV_SHARED_DIR); }

QString llamaVocabPath() { return sharedDir() + QStringLiteral("/vocab/llama-spm.gguf"); }

QString gemmaModelPath() {
  QString p = qEnvironmentVariable("FKV_GEMMA_MODEL");
  if (p.isEmpty()) p = QStringLiteral(FKV_GEMMA_DEFAULT);
  return QFileInfo::exists(p) ? p : QString();
}

QString qwenModelPath() {
  QString p = qEnvironmentVariable("FKV_QWEN_MODEL");
  if (p.isEmpty()) {
    p = QString::fromStdString(fkv::default_models_folder()) + QStringLiteral("/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
  }
  return QFileInfo::exists(p) ? p : QString();
}

QString bpeVocabPath(const QString& name) {
  QString dir = qEnvironmentVariable("FKV_BPE_VOCABS");
  if (dir.isEmpty()) dir = QStringLiteral(FKV_BPE_VOCABS_DEFAULT);
  const QString p = dir + QLatin1Char('/') + name;
  return QFileInfo::exists(p) ? p : QString();
}

QString samplePath(const QString& name) {
  return QStringLiteral(FKV_SOURCE_DIR) + QStringLiteral("/resources/samples/") + name;
}

QString testDataPath(const QString& name) {
  return QStringLiteral(FKV_SOURCE_DIR) + QStringLiteral("/tests/data/") + name;
}

QString tempDir() {
  static QTemporaryDir dir;
  return dir.path();
}

void writeFile(const QString& path, const QByteArray& bytes) {
  QDir().mkpath(QFileInfo(path).absolutePath());
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate) || f.write(bytes) != bytes.size())
    qFatal("cannot write %s", qPrintable(path));
}

}  // namespace fkvtest
