// `freekv ingest`, `freekv library` and `freekv ask`, run as a user would (QProcess) on a synthetic model and documents
// the test writes: what each prints (text and JSON), a second ask from a new process that loads the saved KV instead
// of prefilling and answers the same, and usage errors that end with one error line and exit code 2.
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QStandardPaths>
#include <QtTest>

#include <signal.h>

#include "model/synthetic.h"
#include "support/cli_runner.h"
#include "support/test_models.h"
#include "support/test_paths.h"

namespace {

using fkvtest::CliRun;
using fkvtest::parseObject;
using fkvtest::runCli;
using fkvtest::writeFile;


// A few hundred tokens of seeded prose.
QByteArray prose(int n_words, uint32_t seed) {
  static const char* const k_words[] = {"the",  "garden", "wall",  "apple", "tree",   "summer", "bees", "path",
                                        "gate", "old",    "green", "rain",  "shadow", "bench",  "rose", "well"};
  uint32_t x = seed;
  QByteArray out;
  for (int i = 0; i < n_words; ++i) {
    x = x * 1664525u + 1013904223u;
    out += k_words[(x >> 16) % 16];
    out += i % 12 == 11 ? ". " : " ";
  }
  return out;
}

// The single error line every failure prints, or an empty array when stderr is anything else.
QByteArray errorLine(const CliRun& r) {
  const QList<QByteArray> lines = r.err.trimmed().split('\n');
  return lines.size() == 1 && lines[0].startsWith("freekv: error: ") ? lines[0] : QByteArray();
}

}  // namespace

class TestCliDocuments : public QObject {
  Q_OBJECT

 private:
  QString m_model, m_lib, m_txt, m_md, m_empty, m_missing;
  qint64 m_txtId = 0, m_mdId = 0;

  QStringList askArgs(const QStringList& doc) const {
    return QStringList{"ask", "-m", m_model, "--library", m_lib,       "--temp", "0",
                       "-n",  "8",  "--ctx", "1024",      "--threads", "2",      "--json"} +
           doc + QStringList{"What grows by the wall?"};
  }

  QJsonObject listJson() const {
    const CliRun r = runCli({"library", "list", "--library", m_lib, "--json"});
    if (r.exitCode != 0) qWarning("library list: %s", r.err.constData());
    return parseObject(r.out);
  }

  static QJsonObject documentById(const QJsonObject& list, qint64 id) {
    for (const QJsonValue& v : list.value("documents").toArray())
      if (v.toObject().value("id").toInteger() == id) return v.toObject();
    return {};
  }

 private slots:
  void initTestCase() {
    m_model = fkvtest::tempDir() + "/cli-docs.gguf";
    const QString written = fkvtest::writeModel(fkvtest::llamaSpec(21, 1024), m_model);
    QVERIFY2(written.isEmpty(), qPrintable(written));
    QVERIFY(QDir().mkpath(fkvtest::tempDir() + "/docs"));
    m_lib = fkvtest::tempDir() + "/lib/library.db";
    m_txt = fkvtest::tempDir() + "/docs/garden.txt";
    writeFile(m_txt, "The walled garden\n\n" + prose(300, 4));
    m_md = fkvtest::tempDir() + "/docs/orchard.md";
    writeFile(m_md, "# Orchard\n\n## Apples\n\n" + prose(150, 5) + "\n\n## Pears\n\n" + prose(150, 6));
    m_empty = fkvtest::tempDir() + "/docs/empty.txt";
    writeFile(m_empty, "");
    m_missing = fkvtest::tempDir() + "/docs/missing.txt";
  }

  void ingest() {
    const CliRun r = runCli({"ingest", "--library", m_lib, "--json", m_txt, m_md});
    QCOMPARE(r.exitCode, 0);
    const QJsonArray docs = parseObject(r.out).value("documents").toArray();
    QCOMPARE(docs.size(), 2);
    const QJsonObject txt = docs[0].toObject(), md = docs[1].toObject();
    m_txtId = txt.value("id").toInteger();
    m_mdId = md.value("id").toInteger();
    QVERIFY(m_txtId > 0 && m_mdId > 0 && m_txtId != m_mdId);
    QCOMPARE(txt.value("format").toString(), QStringLiteral("text"));
    QCOMPARE(md.value("format").toString(), QStringLiteral("markdown"));
    QCOMPARE(md.value("title").toString(), QStringLiteral("Orchard"));
    QCOMPARE(md.value("headings").toInt(), 3);
    QVERIFY(!txt.value("title").toString().isEmpty());
    QVERIFY(txt.value("n_chars").toInteger() > 1000);

    // Again, as text: the same content keeps its id.
    const CliRun again = runCli({"ingest", "--library", m_lib, m_txt});
    QCOMPARE(again.exitCode, 0);
    QVERIFY2(again.out.startsWith(QByteArray::number(m_txtId) + "  "), again.out.constData());
    QVERIFY(again.out.contains("(text, "));
  }

  void ingestBadFiles_data() {
    QTest::addColumn<QString>("file");
    QTest::addColumn<QByteArray>("reason");
    QTest::newRow("missing") << m_missing << QByteArray("not found");
    QTest::newRow("empty") << m_empty << QByteArray("empty");
  }

  void ingestBadFiles() {
    QFETCH(QString, file);
    QFETCH(QByteArray, reason);
    const CliRun r = runCli({"ingest", "--library", m_lib, file});
    QCOMPARE(r.exitCode, 1);
    const QByteArray line = errorLine(r);
    QVERIFY2(line.contains(file.toUtf8()) && line.contains(reason), r.err.constData());
    // With --json the failure is an entry of its own, beside the files that worked.
    const CliRun j = runCli({"ingest", "--library", m_lib, "--json", m_txt, file});
    QCOMPARE(j.exitCode, 1);
    const QJsonArray docs = parseObject(j.out).value("documents").toArray();
    QCOMPARE(docs.size(), 2);
    QCOMPARE(docs[0].toObject().value("id").toInteger(), m_txtId);
    QVERIFY(docs[1].toObject().value("error").toString().contains(file));
  }

  void libraryBeforeAsking() {
    const QJsonObject list = listJson();
    QCOMPARE(list.value("documents").toArray().size(), 2);
    QCOMPARE(list.value("snapshot_bytes").toInteger(), 0);
    const QJsonObject md = documentById(list, m_mdId);
    QCOMPARE(md.value("title").toString(), QStringLiteral("Orchard"));
    QCOMPARE(md.value("kv_state").toString(), QStringLiteral("none"));
    const CliRun size = runCli({"library", "size", "--library", m_lib});
    QCOMPARE(size.exitCode, 0);
    QCOMPARE(size.out.trimmed(), QByteArray("0"));
  }

  void askTwice() {
    const CliRun first = runCli(askArgs({"--doc", m_txt}));
    QVERIFY2(first.exitCode == 0, first.err.constData());
    const QJsonObject a = parseObject(first.out);
    const QJsonObject da = a.value("document").toObject();
    QCOMPARE(da.value("kv_source").toString(), QStringLiteral("prefill"));
    QCOMPARE(da.value("id").toInteger(), m_txtId);
    QVERIFY(da.value("snapshot_bytes").toInteger() > 0);
    QVERIFY(da.value("save_error").toString().isEmpty());
    QVERIFY(!a.value("answer").toString().isEmpty());
    QVERIFY(a.value("n_generated").toInt() >= 1 && a.value("n_generated").toInt() <= 8);
    const QJsonObject ra = a.value("retrieval").toObject();
    QVERIFY(ra.contains("select_ms_per_token") && ra.contains("wait_ms_per_token") && ra.contains("correction_rate"));

    const CliRun second = runCli(askArgs({"--doc", m_txt}));
    QVERIFY2(second.exitCode == 0, second.err.constData());
    const QJsonObject b = parseObject(second.out);
    const QJsonObject db = b.value("document").toObject();
    QCOMPARE(db.value("kv_source").toString(), QStringLiteral("snapshot"));
    QCOMPARE(db.value("prefill_s").toDouble(), 0.0);
    QCOMPARE(db.value("n_tokens").toInt(), da.value("n_tokens").toInt());
    QCOMPARE(b.value("answer").toString(), a.value("answer").toString());
    QCOMPARE(b.value("question_tokens").toInt(), a.value("question_tokens").toInt());

    const CliRun byId = runCli(askArgs({"--doc-id", QString::number(m_txtId)}));
    QVERIFY2(byId.exitCode == 0, byId.err.constData());
    const QJsonObject c = parseObject(byId.out);
    QCOMPARE(c.value("document").toObject().value("kv_source").toString(), QStringLiteral("snapshot"));
    QCOMPARE(c.value("answer").toString(), a.value("answer").toString());

    const QJsonObject list = listJson();
    QCOMPARE(documentById(list, m_txtId).value("kv_state").toString(), QStringLiteral("ready"));
    QCOMPARE(list.value("snapshot_bytes").toInteger(), da.value("snapshot_bytes").toInteger());
    const CliRun size = runCli({"library", "size", "--library", m_lib});
    QCOMPARE(size.exitCode, 0);
    QCOMPARE(size.out.trimmed().toLongLong(), da.value("snapshot_bytes").toInteger());
  }

  // A budget smaller than the document makes retrieval choose: the answer cites passages of the file's text.
  void askCitesPassages() {
    const QStringList budget{"--budget-sink", "32", "--budget-recent", "64", "--budget-retrieved", "64"};
    const CliRun r = runCli(askArgs(QStringList{"--doc", m_txt} + budget));
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const QJsonArray cites = parseObject(r.out).value("citations").toArray();
    QVERIFY(!cites.isEmpty() && cites.size() <= 3);
    QFile f(m_txt);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QString text = QString::fromUtf8(f.readAll()).simplified();
    for (const QJsonValue& v : cites) {
      const QJsonObject c = v.toObject();
      QVERIFY(c.value("char_end").toInteger() > c.value("char_begin").toInteger());
      QVERIFY(c.value("weight").toDouble() > 0 && c.value("weight").toDouble() <= 1);
      const QString snippet = c.value("snippet").toString().remove(QStringLiteral("…"));
      QVERIFY2(text.contains(snippet.left(40)), qPrintable(snippet));
    }
    const CliRun none = runCli(askArgs(QStringList{"--doc", m_txt, "--policy", "full"}));
    QVERIFY2(none.exitCode == 0, none.err.constData());
    QVERIFY(parseObject(none.out).value("citations").toArray().isEmpty());
    const CliRun bad = runCli(askArgs(QStringList{"--doc", m_txt, "--budget-recent", "0"}));
    QCOMPARE(bad.exitCode, 2);
    QVERIFY2(bad.err.contains("recent"), bad.err.constData());
  }

  void deleteDocument() {
    const CliRun del = runCli({"library", "delete", QString::number(m_txtId), "--library", m_lib});
    QVERIFY2(del.exitCode == 0, del.err.constData());
    const QJsonObject list = listJson();
    QCOMPARE(list.value("documents").toArray().size(), 1);
    QVERIFY(documentById(list, m_txtId).isEmpty());
    QCOMPARE(documentById(list, m_mdId).value("title").toString(), QStringLiteral("Orchard"));
    QCOMPARE(list.value("snapshot_bytes").toInteger(), 0);  // its snapshot went with it
    const CliRun gone = runCli(askArgs({"--doc-id", QString::number(m_txtId)}));
    QCOMPARE(gone.exitCode, 1);
    QVERIFY2(!errorLine(gone).isEmpty(), gone.err.constData());
  }

  void askHelpSaysItsContext() {
    const CliRun r = runCli({"ask", "--help"});
    QCOMPARE(r.exitCode, 0);
    const QByteArray ctx = r.out.mid(r.out.indexOf("--ctx"));
    const QByteArray line = ctx.left(ctx.indexOf('\n'));
    QVERIFY2(line.contains("training context") && line.contains("32768") && !line.contains("4096"), line.constData());
  }

  // Ctrl-C during a long question stops it cleanly, with a message, where it used to kill the process (or, with a
  // handler that waited for the answer, to be ignored for minutes).
  void askCtrlCCancels() {
    QProcess p;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert("FKV_VOCAB", fkvtest::llamaVocabPath());
    p.setProcessEnvironment(env);
    const QString question = "Which of these words grows by the wall? " + QString::fromUtf8(prose(2000, 9));
    p.start(QStringLiteral(FKV_CLI_PATH), {"ask", "-m", m_model, "--no-library", "--doc", m_txt, "--temp", "0", "-n",
                                           "4000", "--ctx", "4096", "--threads", "2", question});
    QVERIFY(p.waitForStarted(10000));
    p.setReadChannel(QProcess::StandardError);
    QByteArray err;
    while (!err.contains("evaluating a long question") && p.waitForReadyRead(60000)) err += p.readAllStandardError();
    QVERIFY2(err.contains("freekv: note: evaluating a long question ("), err.constData());
    QVERIFY(::kill(static_cast<pid_t>(p.processId()), SIGINT) == 0);
    QVERIFY(p.waitForFinished(60000));
    err += p.readAllStandardError();
    QCOMPARE(p.exitStatus(), QProcess::NormalExit);  // not killed by the signal
    // Usually it lands in the question's evaluation; on a fast machine, in the answer.
    const bool in_question = err.contains("freekv: error: ask: cancelled while evaluating the question (");
    const bool in_answer = err.contains("; the answer was cancelled]");
    QVERIFY2(in_question ? p.exitCode() == 1 : in_answer && p.exitCode() == 0, err.constData());
  }

  // Titles come from file names and file contents: printed as text, their control characters must reach the
  // terminal as visible escapes; in JSON they are escaped and read back exactly.
  // On a terminal the prefill's progress line shows its rate and time left. The document is past the model's window
  // of 1,024 tokens, so with no --ctx the context grows and reads it as context memory (the JSON says so).
  void aTerminalSeesThePrefillRateAndTimeLeft() {
    if (QStandardPaths::findExecutable("script").isEmpty()) QSKIP("util-linux 'script' (a pseudo-terminal) is missing");
    const QString doc = fkvtest::tempDir() + "/docs/long-garden.txt";
    writeFile(doc, "The long garden\n\n" + prose(4000, 8));
    const QStringList args{FKV_CLI_PATH, "ask", "-m", m_model, "--no-library", "--temp", "0", "-n", "2", "--threads",
                           "2", "--doc", doc, "What grows by the wall?"};
    QStringList quoted;
    for (const QString& a : args) quoted << "'" + a + "'";
    QProcess p;
    p.start("script", {"-qec", quoted.join(' '), "/dev/null"});
    QVERIFY(p.waitForFinished(120'000));
    const QByteArray out = p.readAllStandardOutput();
    QVERIFY2(p.exitCode() == 0, out.constData());
    QVERIFY2(out.contains("prefill") && out.contains(" tok/s, ") && out.contains(" left"), out.constData());

    const CliRun r = runCli({"ask", "-m", m_model, "--no-library", "--temp", "0", "-n", "2", "--threads", "2", "--json",
                             "--doc", doc, "What grows by the wall?"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject o = parseObject(r.out);
    QVERIFY(o.value("context_memory").toBool());
    QCOMPARE(o.value("n_ctx_train").toInt(), 1024);
    QVERIFY(o.value("n_ctx").toInt() > o.value("document").toObject().value("n_tokens").toInt());
  }

  void controlCharactersAreEscaped() {
    const QByteArray stem = "\x1b]0;pwned\x07report\x1b[2J\xc2\x9b" "1m";
    const QString file = fkvtest::tempDir() + "/docs/" + QString::fromUtf8(stem) + ".txt";
    writeFile(file, prose(40, 8));
    const QString lib = fkvtest::tempDir() + "/escapes/library.db";
    const QByteArray shown = "\\e]0;pwned\\x07report\\e[2J\\u009b1m";
    const auto isClean = [](const QByteArray& text) {
      return !text.contains('\x1b') && !text.contains('\x07') && !text.contains("\xc2\x9b");
    };
    const CliRun ingest = runCli({"ingest", "--library", lib, file});
    QVERIFY2(ingest.exitCode == 0, ingest.err.constData());
    QVERIFY2(isClean(ingest.out) && ingest.out.contains(shown), ingest.out.constData());
    const CliRun list = runCli({"library", "--library", lib});
    QVERIFY2(list.exitCode == 0, list.err.constData());
    QVERIFY2(isClean(list.out) && list.out.contains(shown), list.out.constData());
    const CliRun json = runCli({"library", "--library", lib, "--json"});
    QVERIFY2(isClean(json.out), json.out.constData());
    const QJsonObject doc = json.exitCode == 0 ? parseObject(json.out).value("documents").toArray()[0].toObject()
                                               : QJsonObject();
    QCOMPARE(doc.value("title").toString().toUtf8(), stem);
    QCOMPARE(doc.value("path").toString(), file);
    const CliRun missing = runCli({"ingest", "--library", lib, file + ".gone"});
    QCOMPARE(missing.exitCode, 1);
    QVERIFY2(isClean(missing.err) && errorLine(missing).contains(shown), missing.err.constData());
  }

  void evictCapPastInt64() {
    const CliRun big = runCli({"library", "evict", "--cap", "99999999999G", "--library", m_lib});
    QCOMPARE(big.exitCode, 2);
    QCOMPARE(errorLine(big), QByteArray("freekv: error: library: option --cap: expected a size below 8589934592G "
                                        "(2^63 bytes), found '99999999999G'"));
    const CliRun inf = runCli({"library", "evict", "--cap", "inf", "--library", m_lib});
    QCOMPARE(inf.exitCode, 2);
    QVERIFY2(!errorLine(inf).isEmpty(), inf.err.constData());
    const CliRun largest = runCli({"library", "evict", "--cap", "8589934591G", "--library", m_lib});
    QVERIFY2(largest.exitCode == 0 && largest.out.startsWith("evicted 0 snapshot(s)"), largest.err.constData());
  }

  void usageErrors_data() {
    QTest::addColumn<QStringList>("args");
    const QString lib = m_lib;
    QTest::newRow("ask without --doc") << QStringList{"ask", "-m", m_model, "--library", lib, "what?"};
    QTest::newRow("ask with --doc and --doc-id")
        << QStringList{"ask", "-m", m_model, "--library", lib, "--doc", m_txt, "--doc-id", "1", "what?"};
    QTest::newRow("ask without question") << QStringList{"ask", "-m", m_model, "--library", lib, "--doc", m_txt};
    QTest::newRow("ask bad --doc-id") << QStringList{"ask", "-m", m_model, "--library", lib, "--doc-id", "x", "q"};
    QTest::newRow("ingest without files") << QStringList{"ingest", "--library", lib};
    QTest::newRow("library unknown action") << QStringList{"library", "rename", "--library", lib};
    QTest::newRow("library delete without id") << QStringList{"library", "delete", "--library", lib};
  }

  void usageErrors() {
    QFETCH(QStringList, args);
    const CliRun r = runCli(args);
    QCOMPARE(r.exitCode, 2);
    QVERIFY2(!errorLine(r).isEmpty(), r.err.constData());
    QVERIFY(r.out.isEmpty());
  }
};

QTEST_GUILESS_MAIN(TestCliDocuments)
#include "test_cli_documents.moc"
