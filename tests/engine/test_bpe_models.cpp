// Llama-3- and Qwen2-shaped synthetic models carrying the real byte-level BPE vocabularies (written at setup by
// tests/tools/make_bpe_vocabs.py): the engine loads them, tokenizes real text, and its logits on those tokens match the
// double-precision reference; `freekv info` and `freekv generate` accept the files as a user would run them.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/context.h"
#include "support/cli_runner.h"
#include "support/reference_model.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"

using fkv::Arch;
using fkv::SyntheticModelSpec;

namespace {

struct Family {
  const char* name;
  const char* vocab;  // file under the BPE vocabulary folder
  Arch arch;
  const char* pre;    // the pre-tokenizer the vocabulary names
};

const Family kFamilies[] = {{"llama3", "llama3-bpe.gguf", Arch::Llama, "llama-bpe"},
                            {"qwen2", "qwen2-bpe.gguf", Arch::Qwen2, "deepseek-r1-qwen"}};

// Small dimensions (the 128k / 152k vocabularies dominate the file), Llama 3's rope scaling for the llama family.
QString writeModel(const Family& f, const QString& vocab) {
  SyntheticModelSpec s;
  s.arch = f.arch;
  s.vocab_path = vocab.toStdString();
  s.n_layers = 2;
  s.n_embd = 64;
  s.n_heads = 4;
  s.n_kv_heads = f.arch == Arch::Qwen2 ? 1 : 2;
  s.n_ff = 96;
  s.n_ctx = 256;
  s.seed = f.arch == Arch::Qwen2 ? 32 : 31;
  s.llama3_rope = f.arch == Arch::Llama;
  s.rope_base = f.arch == Arch::Llama ? 500000.f : 1000000.f;
  s.name = std::string("synthetic ") + f.name;
  const QString path = fkvtest::tempDir() + "/" + f.name + "-bpe-model.gguf";
  const fkv::Status st = fkv::write_synthetic_model(s, path.toStdString());
  if (!st.ok()) qFatal("%s", st.message().c_str());
  return path;
}

}  // namespace

class TestBpeModels : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() {
    for (const Family& f : kFamilies) {
      if (fkvtest::bpeVocabPath(f.vocab).isEmpty()) {
        QSKIP("BPE test vocabularies not written: run ./scripts/setup.sh (tests/tools/make_bpe_vocabs.py)");
      }
    }
  }

  void logitsMatchReference_data() {
    QTest::addColumn<int>("index");
    for (int i = 0; i < 2; ++i) QTest::newRow(kFamilies[i].name) << i;
  }
  void logitsMatchReference() {
    QFETCH(int, index);
    const Family& fam = kFamilies[index];
    const QString path = writeModel(fam, fkvtest::bpeVocabPath(fam.vocab));
    auto model = fkv::Model::load(path.toStdString());
    QVERIFY2(model.ok(), model.message().c_str());
    const fkv::Tokenizer& tok = (*model)->tokenizer();
    QVERIFY(tok.is_bpe());
    QCOMPARE(tok.pre_tokenizer_name(), std::string(fam.pre));
    const std::string text = "The river town's 1,204 bridges, 河 and 🙂:\n\tdef f(x): return x**2";
    auto ids = tok.encode(text, true, false);
    QVERIFY2(ids.ok(), ids.message().c_str());
    QCOMPARE(tok.decode(*ids), text);

    QString error;
    const auto ref = fkvtest::ReferenceModel::load(path, &error);
    QVERIFY2(ref, qPrintable(error));
    const std::vector<double> want = ref->forward(*ids);  // (n_tokens, n_vocab)
    fkv::ContextParams p;
    p.n_ctx = 64;
    p.page_size = 8;
    p.kv_type = fkv::DType::F32;
    p.n_threads = 2;
    auto ctx = fkv::Context::create(**model, p);
    QVERIFY2(ctx.ok(), ctx.message().c_str());
    const size_t n_vocab = static_cast<size_t>(ref->n_vocab());
    std::vector<float> got(ids->size() * n_vocab);  // (n_tokens, n_vocab)
    QVERIFY((*ctx)->eval(*ids, fkv::LogitsMode::All, got).ok());
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
      max_ref = std::max(max_ref, std::fabs(want[i]));
    }
    // F32 weights and KV: only float-vs-double rounding separates them, as in test_forward.
    QVERIFY2(max_diff / max_ref < 1e-3, qPrintable(QString("relative error %1").arg(max_diff / max_ref)));
  }

  void cliAcceptsTheFiles_data() {
    QTest::addColumn<int>("index");
    for (int i = 0; i < 2; ++i) QTest::newRow(kFamilies[i].name) << i;
  }
  void cliAcceptsTheFiles() {
    QFETCH(int, index);
    const Family& fam = kFamilies[index];
    const QString path = writeModel(fam, fkvtest::bpeVocabPath(fam.vocab));
    const fkvtest::CliRun info = fkvtest::runCli({"info", path, "--json"});
    QVERIFY2(info.exitCode == 0, info.err.constData());
    const QJsonObject tok = fkvtest::parseObject(info.out).value("tokenizer").toObject();
    QCOMPARE(tok.value("model").toString(), QString("gpt2"));
    QCOMPARE(tok.value("pre").toString(), QString(fam.pre));
    const fkvtest::CliRun gen = fkvtest::runCli(
        {"generate", "-m", path, "-p", "Tell me about the river", "-n", "6", "--temp", "0", "--json", "-t", "2"});
    QVERIFY2(gen.exitCode == 0, gen.err.constData());
    const QJsonObject o = fkvtest::parseObject(gen.out);
    QVERIFY(o.value("n_generated").toInt() >= 1);
    QVERIFY(o.value("n_prompt_tokens").toInt() > 5);  // the chat template's markers and the prompt
  }
};

QTEST_APPLESS_MAIN(TestBpeModels)
#include "test_bpe_models.moc"
