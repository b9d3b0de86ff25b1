// Where tests find shared data and the real model.
#pragma once

#include <QByteArray>
#include <QString>
#include <string>

namespace fkvtest {

// ../shared beside the repository (test vocabularies).
QString sharedDir();
// The Llama-2 SentencePiece vocabulary GGUF in ../shared/vocab.
QString llamaVocabPath();
// The Gemma 3 270M Q4_K_M GGUF installed by the setup command (env FKV_GEMMA_MODEL overrides); empty when absent.
QString gemmaModelPath();
// Qwen2.5-Coder-0.5B-Instruct Q4_K_M installed by the setup command into the app's models folder
// (scripts/install_models.py; env FKV_QWEN_MODEL overrides); empty when absent.
QString qwenModelPath();
// A byte-level BPE test file written by the setup command (tests/tools/make_bpe_vocabs.py): "llama3-bpe.gguf",
// "qwen2-bpe.gguf" or "bpe-parity.json". Env FKV_BPE_VOCABS names another folder. Empty when absent.
QString bpeVocabPath(const QString& name);
// A file under resources/samples/ of the source tree.
QString samplePath(const QString& name);
// A file under tests/data/ of the source tree (small recorded data the tests replay).
QString testDataPath(const QString& name);
// A fresh temporary directory for this test process (removed at exit).
QString tempDir();
// Writes `bytes` to `path` (replacing it; parent folders are created). A file that cannot be written ends the test
// process: every later check would fail for that reason.
void writeFile(const QString& path, const QByteArray& bytes);
inline void writeFile(const std::string& path, const std::string& bytes) {
  writeFile(QString::fromStdString(path), QByteArray::fromStdString(bytes));
}

}  // namespace fkvtest
