// The `freekv` executable, run as a user would (QProcess) on a synthetic model: every command's normal output, its
// JSON forms, determinism of greedy generation, and bad input that must end with one error line and the right exit
// code, never a crash.
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QtTest>

#include "model/synthetic.h"
#include "support/cli_runner.h"
#include "support/test_models.h"
#include "support/test_paths.h"

namespace {

using fkvtest::CliRun;
using fkvtest::parseObject;
using fkvtest::runCli;

}  // namespace

class TestCli : public QObject {
  Q_OBJECT

 private:
  QString m_model;
  QString m_truncated;
  QString m_notGguf;

 private slots:
  void initTestCase() {
    fkv::SyntheticModelSpec spec = fkvtest::llamaSpec(3, 512);
    spec.weight_type = fkv::DType::Q8_0;
    spec.name = "cli test model";
    m_model = fkvtest::tempDir() + "/cli.gguf";
    const QString written = fkvtest::writeModel(spec, m_model);
    QVERIFY2(written.isEmpty(), qPrintable(written));

    QFile whole(m_model);
    QVERIFY(whole.open(QIODevice::ReadOnly));
    const QByteArray head = whole.read(100);
    m_truncated = fkvtest::tempDir() + "/truncated.gguf";
    QFile cut(m_truncated);
    QVERIFY(cut.open(QIODevice::WriteOnly));
    cut.write(head);
    cut.close();

    m_notGguf = fkvtest::tempDir() + "/notes.txt";
    QFile text(m_notGguf);
    QVERIFY(text.open(QIODevice::WriteOnly));
    text.write("these are notes, not a model\n");
  }

  void versionAndHelp() {
    const CliRun v = runCli({"--version"});
    QCOMPARE(v.exitCode, 0);
    QVERIFY(v.out.startsWith("freekv "));
    QVERIFY(v.out.contains("backends: cpu ("));
    const CliRun h = runCli({"help"});
    QCOMPARE(h.exitCode, 0);
    for (const char* cmd : {"info", "tokenize", "generate", "chat", "bench"}) QVERIFY(h.out.contains(cmd));
    const CliRun bh = runCli({"bench", "--help"});
    QCOMPARE(bh.exitCode, 0);
    QVERIFY(bh.out.contains("--prompt-tokens"));
    QVERIFY(bh.err.isEmpty());
  }

  void infoText() {
    const CliRun r = runCli({"info", m_model});
    QCOMPARE(r.exitCode, 0);
    QVERIFY2(r.out.contains("llama"), r.out.constData());
    QVERIFY(r.out.contains("layers 2, embd 64, heads 4, kv heads 2, head dim 16, ffn 128, vocab 32000"));
    QVERIFY(r.out.contains("Q8_0 x"));
    QVERIFY(r.out.contains("BOS 1 '<s>', EOS 2 '</s>'"));
    QVERIFY(r.out.contains("chat template  llama2"));
  }

  void infoJson() {
    const CliRun r = runCli({"info", m_model, "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject o = parseObject(r.out);
    QCOMPARE(o.value("name").toString(), QStringLiteral("cli test model"));
    QCOMPARE(o.value("architecture").toString(), QStringLiteral("llama"));
    QCOMPARE(o.value("n_layers").toInt(), 2);
    QCOMPARE(o.value("n_kv_heads").toInt(), 2);
    QCOMPARE(o.value("n_vocab").toInt(), 32000);
    QCOMPARE(o.value("n_ctx_train").toInt(), 512);
    // 2 (K and V) x 2 layers x 2 KV heads x head dim 16 x 2 bytes.
    QCOMPARE(o.value("kv_bytes_per_token").toInteger(), 256);
    QCOMPARE(o.value("kv_bytes_4k").toInteger(), 256 * 4096);
    QCOMPARE(o.value("weights_bytes").toInteger(), QFileInfo(m_model).size());
    QVERIFY(o.value("tensor_types").toObject().value("Q8_0").toInt() > 0);
    QCOMPARE(o.value("tokenizer").toObject().value("model").toString(), QStringLiteral("llama"));
    QCOMPARE(o.value("chat_template").toString(), QStringLiteral("llama2"));
  }

  void tokenize() {
    const CliRun r = runCli({"tokenize", "-m", m_model, "Hello world"});
    QCOMPARE(r.exitCode, 0);
    QCOMPARE(r.out.trimmed(), QByteArray("1 15043 3186"));
    const CliRun nobos = runCli({"tokenize", "-m", m_model, "--no-bos", "Hello world"});
    QCOMPARE(nobos.out.trimmed(), QByteArray("15043 3186"));
    const CliRun pieces = runCli({"tokenize", "-m", m_model, "--pieces", "Hello world"});
    QCOMPARE(pieces.exitCode, 0);
    QCOMPARE(pieces.out.count('\n'), 3);
    QVERIFY(pieces.out.contains("15043  '\xE2\x96\x81Hello'"));
  }

  void generateGreedyIsRepeatable() {
    const QStringList args = {"generate", "-m", m_model,     "-p", "Tell me a story", "-n", "8",
                              "--temp",   "0",  "--threads", "2"};
    const CliRun a = runCli(args);
    const CliRun b = runCli(args);
    QCOMPARE(a.exitCode, 0);
    QCOMPARE(b.exitCode, 0);
    QVERIFY(!a.out.trimmed().isEmpty());
    QCOMPARE(a.out, b.out);
    QVERIFY2(a.err.contains("tok/s"), a.err.constData());
    QVERIFY(!a.err.contains("error"));
  }

  void generateJson() {
    const CliRun r = runCli({"generate", "-m", m_model, "-p", "Hi", "-n", "5", "--temp", "0", "--raw", "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject o = parseObject(r.out);
    QVERIFY(o.contains("text"));
    QVERIFY(o.value("n_generated").toInt() >= 1 && o.value("n_generated").toInt() <= 5);
    QCOMPARE(o.value("n_prompt_tokens").toInt(), 2);  // BOS + "Hi"
    QVERIFY(!o.value("stop_reason").toString().isEmpty());
  }

  void chatRepl() {
    const CliRun r =
        runCli({"chat", "-m", m_model, "-n", "4", "--temp", "0", "--threads", "2"}, "Hello\n/reset\nHi again\n/quit\n");
    QCOMPARE(r.exitCode, 0);
    QVERIFY2(r.err.contains("[conversation cleared]"), r.err.constData());
    QCOMPARE(r.err.count("tok/s"), 4);  // two timing lines, two rates each
    QVERIFY(!r.err.contains("error"));
  }

  void benchJson() {
    const CliRun r = runCli({"bench", "-m", m_model, "--prompt-tokens", "16", "--decode-tokens", "4", "--context", "8",
                             "--threads", "2", "--repeat", "2", "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject o = parseObject(r.out);
    for (const char* key :
         {"prefill_tokens_per_s", "decode_tokens_per_s", "decode_ms_per_token", "weights_gb_per_s", "peak_rss_mib"}) {
      QVERIFY2(o.value(key).toDouble() > 0, key);
    }
    QCOMPARE(o.value("model_file_bytes").toInteger(), QFileInfo(m_model).size());
    QCOMPARE(o.value("threads").toInt(), 2);
    QCOMPARE(o.value("prompt_tokens").toInt(), 16);
    QCOMPARE(o.value("context_depth").toInt(), 8);
    QCOMPARE(o.value("decode_tokens").toInt(), 4);
    QVERIFY(!o.value("isa").toString().isEmpty());
  }

  // The reopen benchmark with a cap on the saved KV's resident part: the capped answer is the uncapped one.
  void benchReopenCapped() {
    const CliRun r = runCli({"bench", "-m", m_model, "--reopen-tokens", "2048", "--host-kv-mib", "1", "--threads",
                             "2", "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const QJsonObject o = parseObject(r.out);
    QVERIFY(o.value("document_tokens").toInt() >= 2048);
    QVERIFY(o.value("answer_tokens").toInt() > 0);
    const QJsonObject capped = o.value("capped").toObject();
    QCOMPARE(capped.value("host_kv_mib").toInt(), 1);
    QVERIFY(capped.value("same_answer").toBool());
    QVERIFY(capped.value("resident_bytes").toInteger() <= (1 << 20));
    QVERIFY(capped.contains("file_read_bytes_per_answer_token"));
    QVERIFY(capped.value("file_read_bytes").toInteger() > 0);  // read in place, not copied
  }

  // Decode over a document: the first run prefills it into the library, the second reuses its saved KV; each
  // answer runs for exactly the steps asked (a synthetic model's answer need not end its turn there, or anywhere).
  void benchDocument() {
    const QString doc = fkvtest::tempDir() + "/bench-document.txt";
    QByteArray text;
    for (int i = 0; i < 200; ++i) text += "Line " + QByteArray::number(i) + " of the harbour log: the tide turned.\n";
    fkvtest::writeFile(doc, text);
    const QString lib = fkvtest::tempDir() + "/bench-library/library.db";
    for (const char* source : {"prefill", "snapshot"}) {
      const CliRun r = runCli({"bench", "-m", m_model, "--document", doc, "--library", lib, "--decode-tokens", "7",
                               "--threads", "2", "--json"});
      QVERIFY2(r.exitCode == 0, r.err.constData());
      const QJsonObject o = parseObject(r.out);
      QCOMPARE(o.value("kv_source").toString(), QString(source));
      QVERIFY(o.value("document_tokens").toInt() > 1000);
      QCOMPARE(o.value("decode_tokens").toInt(), 7);
      QVERIFY(o.value("decode_tokens_per_s").toDouble() > 0);
      QVERIFY(o.value("first_token_s").toDouble() > 0);
      QCOMPARE(o.value("policy").toString(), QString("freekv"));
      QVERIFY(o.contains("select_ms_per_token"));
    }
    const CliRun both = runCli({"bench", "-m", m_model, "--document", doc, "--reopen-tokens", "512"});
    QCOMPARE(both.exitCode, 2);
    QVERIFY(both.err.contains("give one"));
    const CliRun stray = runCli({"bench", "-m", m_model, "--library", lib});
    QCOMPARE(stray.exitCode, 2);
    QVERIFY(stray.err.contains("--library goes with --document"));
  }

  void benchSynthetic() {
    const CliRun r = runCli({"bench", "--synthetic", "tiny-gemma3", "--vocab", fkvtest::llamaVocabPath(),
                             "--prompt-tokens", "8", "--decode-tokens", "2", "--threads", "1"});
    QCOMPARE(r.exitCode, 0);
    QVERIFY2(r.out.contains("gemma3"), r.out.constData());
    QVERIFY(r.out.contains("prefill") && r.out.contains("decode") && r.out.contains("peak RSS"));
  }

  // No -m: the largest installed model that fits, from the models folder under XDG_DATA_HOME; -c 0 is its trained
  // window.
  void generateWithoutModelTakesTheInstalledOne() {
    const QByteArray old = qgetenv("XDG_DATA_HOME");
    const QString data = fkvtest::tempDir() + "/xdg-data";
    qputenv("XDG_DATA_HOME", data.toUtf8());
    const QStringList args = {"generate", "-p", "Hi", "-n", "3", "--temp", "0", "--raw", "-c", "0", "--json"};
    const CliRun none = runCli(args);
    QCOMPARE(none.exitCode, 2);
    QVERIFY2(none.err.contains("none installed in " + data.toUtf8() + "/freekv-desk/models"), none.err.constData());
    const QString installed = data + "/freekv-desk/models/cli.gguf";
    QVERIFY(QDir().mkpath(data + "/freekv-desk/models") && QFile::copy(m_model, installed));
    const CliRun r = runCli(args);
    if (old.isNull()) {
      qunsetenv("XDG_DATA_HOME");
    } else {
      qputenv("XDG_DATA_HOME", old);
    }
    QCOMPARE(r.exitCode, 0);
    QVERIFY2(r.err.contains("note: model " + installed.toUtf8()), r.err.constData());
    QCOMPARE(parseObject(r.out).value("n_generated").toInt(), 3);
  }

  void badInput_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<int>("exitCode");
    const QString model = m_model;
    QTest::newRow("no command") << QStringList{} << 2;
    QTest::newRow("unknown command") << QStringList{"frobnicate"} << 2;
    QTest::newRow("missing file") << QStringList{"info", "/nonexistent/model.gguf"} << 1;
    QTest::newRow("truncated gguf") << QStringList{"info", m_truncated} << 1;
    QTest::newRow("truncated gguf generate") << QStringList{"generate", "-m", m_truncated, "-p", "hi"} << 1;
    QTest::newRow("not a gguf") << QStringList{"info", m_notGguf} << 1;
    QTest::newRow("unknown flag") << QStringList{"generate", "-m", model, "-p", "hi", "--bogus"} << 2;
    QTest::newRow("missing value") << QStringList{"generate", "-m", model, "-p"} << 2;
    QTest::newRow("ctx negative") << QStringList{"generate", "-m", model, "-p", "hi", "--ctx", "-1"} << 2;
    QTest::newRow("not a number") << QStringList{"generate", "-m", model, "-p", "hi", "-n", "many"} << 2;
    QTest::newRow("no prompt") << QStringList{"generate", "-m", model} << 2;
    QTest::newRow("bad template") << QStringList{"generate", "-m", model, "-p", "hi", "--template", "jinja"} << 2;
    QTest::newRow("bad prefill") << QStringList{"generate", "-m", model, "-p", "hi", "--prefill", "sparse"} << 2;
    QTest::newRow("bad rope scaling") << QStringList{"generate", "-m", model, "-p", "hi", "--rope-scaling", "ntk"} << 2;
    QTest::newRow("yarn without factor") << QStringList{"generate", "-m", model, "-p", "hi", "--rope-scaling", "yarn"}
                                         << 1;
    QTest::newRow("rope scale too small") << QStringList{"generate", "-m", model, "-p", "hi", "--rope-scale", "0.5"}
                                          << 2;
    QTest::newRow("bench bad prefill") << QStringList{"bench", "--synthetic", "tiny-llama", "--prefill", "x"} << 2;
    QTest::newRow("host kv zero") << QStringList{"generate", "-m", model, "-p", "hi", "--host-kv-mib", "0"} << 2;
    QTest::newRow("bench host kv huge") << QStringList{"bench", "-m", model, "--reopen-tokens", "256",
                                                       "--host-kv-mib", "99999999"}
                                        << 2;
    QTest::newRow("prompt too long") << QStringList{"generate", "-m", model, "-p", "one two three", "--ctx", "2"} << 1;
    QTest::newRow("tokenize no model") << QStringList{"tokenize", "hello"} << 2;
    QTest::newRow("info flag value") << QStringList{"info", model, "--json=yes"} << 2;
    QTest::newRow("bench model and synthetic") << QStringList{"bench", "-m", model, "--synthetic", "tiny-llama"} << 2;
    QTest::newRow("bench unknown shape") << QStringList{"bench", "--synthetic", "huge"} << 2;
    QTest::newRow("bench missing document")
        << QStringList{"bench", "-m", model, "--document", "/nonexistent/book.txt", "--decode-tokens", "2"} << 1;
    QTest::newRow("bench document zero steps")
        << QStringList{"bench", "-m", model, "--document", m_notGguf, "--decode-tokens", "0"} << 2;
    QTest::newRow("bench missing vocab") << QStringList{"bench", "--synthetic", "tiny-llama", "--vocab",
                                                        "/nonexistent/vocab.gguf"}
                                         << 1;
  }

  void badInput() {
    QFETCH(QStringList, args);
    QFETCH(int, exitCode);
    const CliRun r = runCli(args);
    QCOMPARE(r.exitStatus, QProcess::NormalExit);  // a signal (crash, abort) is never an answer
    QCOMPARE(r.exitCode, exitCode);
    const QList<QByteArray> lines = r.err.trimmed().split('\n');
    QVERIFY2(lines.size() == 1 && lines[0].startsWith("freekv: error: "), r.err.constData());
    QVERIFY(lines[0].size() > 20);  // says something
    QVERIFY(r.out.isEmpty());
  }

  void gemmaInfo() {
    const QString gemma = fkvtest::gemmaModelPath();
    if (gemma.isEmpty()) QSKIP("the Gemma 3 270M model is not installed (set FKV_GEMMA_MODEL)");
    const CliRun r = runCli({"info", gemma, "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject o = parseObject(r.out);
    QCOMPARE(o.value("architecture").toString(), QStringLiteral("gemma3"));
    QCOMPARE(o.value("n_layers").toInt(), 18);
    QCOMPARE(o.value("chat_template").toString(), QStringLiteral("gemma"));
    QVERIFY(o.value("tensor_types").toObject().contains("Q4_K"));
    const CliRun text = runCli({"info", gemma});
    QCOMPARE(text.exitCode, 0);
    QVERIFY(text.out.contains("Q5_0 x"));
  }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
