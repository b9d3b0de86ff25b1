// Answers that are right, on the default model (Qwen2.5-Coder-0.5B-Instruct, installed by setup): a generated report
// is opened through the engine's public API and three questions must be answered with the fact the document holds —
// a needle sentence in one section, a value from a table, a name from another section. Reopening answers from the
// saved KV with the same words. Text around the facts is seeded filler, so the model cannot know them beforehand.
#include <QtTest>

#include <fstream>
#include <memory>
#include <random>
#include <string>

#include "fkv/engine.h"
#include "support/test_paths.h"

namespace {

std::string filler(std::mt19937& rng, int n_words) {
  static const char* const k_words[] = {"the",      "harbour", "board", "met",    "on",      "tuesday", "to",
                                        "review",   "cargo",   "pier",  "clerks", "filed",   "reports", "tonnage",
                                        "weather",  "staff",   "crane", "tide",   "ledger",  "north"};
  std::string out;
  for (int i = 0; i < n_words; ++i) {
    out += k_words[rng() % std::size(k_words)];
    out += i + 1 == n_words ? ". " : " ";
  }
  out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

std::string report() {
  std::mt19937 rng(7);
  std::string s = "# Harbour Board Annual Report\n\n## 1. Overview\n\n" + filler(rng, 60) + "\n\n## 2. Staff\n\n" +
                  filler(rng, 50) + "The chief engineer of the harbour is Marta Velasquez. " + filler(rng, 40) +
                  "\n\n## 3. Cargo\n\n" + filler(rng, 40) +
                  "\n\n| Month | Containers |\n|---|---|\n| January | 1,204 |\n| February | 987 |\n| March | 1,530 |\n"
                  "| April | 1,112 |\n\n" +
                  filler(rng, 40) + "\n\n## 4. Security\n\n" + filler(rng, 60) +
                  "The access code for the archive room is 4817. " + filler(rng, 60) + "\n\n## 5. Outlook\n\n" +
                  filler(rng, 80) + "\n";
  return s;
}

}  // namespace

class TestQwenAnswers : public QObject {
  Q_OBJECT
  std::unique_ptr<fkv::Engine> m_engine;
  QString m_doc;

  QString answer(const std::string& question) {
    fkv::GenerationOptions g;
    g.temperature = 0;
    g.max_tokens = 48;
    auto r = m_engine->ask({{"user", question}}, g, nullptr);
    if (!r.ok()) return QStringLiteral("error: ") + QString::fromStdString(r.message());
    return QString::fromStdString(r->text);
  }

 private slots:
  void initTestCase() {
    const QString model = fkvtest::qwenModelPath();
    if (model.isEmpty()) QSKIP("Qwen2.5-Coder-0.5B-Instruct is not installed: run ./scripts/setup.sh");
    m_doc = fkvtest::tempDir() + QStringLiteral("/harbour-report.md");
    std::ofstream(m_doc.toStdString()) << report();
    fkv::EngineOptions eo;
    eo.library_path = (fkvtest::tempDir() + QStringLiteral("/library.db")).toStdString();
    auto e = fkv::Engine::create(eo);
    QVERIFY2(e.ok(), e.message().c_str());
    m_engine = std::move(e).value();
    fkv::ModelOptions mo;
    mo.n_ctx = 4096;
    mo.n_threads = 2;
    const fkv::Status s = m_engine->load_model(model.toStdString(), mo);
    QVERIFY2(s.ok(), s.message().c_str());
    auto opened = m_engine->open_document(m_doc.toStdString(), {}, nullptr);
    QVERIFY2(opened.ok(), opened.message().c_str());
    QCOMPARE(QString::fromStdString(opened->kv_source), QStringLiteral("prefill"));
  }

  void answersFromTheDocument_data() {
    QTest::addColumn<QString>("question");
    QTest::addColumn<QStringList>("accepted");  // any of these in the answer
    QTest::newRow("needle") << "What is the access code for the archive room?" << QStringList{"4817"};
    QTest::newRow("table") << "How many containers were handled in March?" << QStringList{"1,530", "1530"};
    QTest::newRow("section") << "Who is the chief engineer of the harbour?" << QStringList{"Marta Velasquez"};
  }

  void answersFromTheDocument() {
    QFETCH(QString, question);
    QFETCH(QStringList, accepted);
    const QString a = answer(question.toStdString());
    bool found = false;
    for (const QString& want : accepted) found = found || a.contains(want);
    QVERIFY2(found, qPrintable(QStringLiteral("%1 -> %2").arg(question, a)));
  }

  // The saved KV gives the same answer as the prefill did.
  void reopenedFromSavedKv() {
    const QString before = answer("What is the access code for the archive room?");
    auto opened = m_engine->open_document(m_doc.toStdString(), {}, nullptr);
    QVERIFY2(opened.ok(), opened.message().c_str());
    QCOMPARE(QString::fromStdString(opened->kv_source), QStringLiteral("snapshot"));
    QCOMPARE(answer("What is the access code for the archive room?"), before);
  }
};

QTEST_APPLESS_MAIN(TestQwenAnswers)
#include "test_qwen_answers.moc"
