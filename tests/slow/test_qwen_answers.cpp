// Answers that are right, on the default model (Qwen2.5-Coder-0.5B-Instruct, installed by setup): a generated report
// is opened through the engine's public API and three questions must be answered with the fact the document holds —
// a needle sentence in one section, a value from a table, a name from another section. Reopening answers from the
// saved KV with the same words. Text around the facts is seeded filler, so the model cannot know them beforehand.
#include <QtTest>

#include <fstream>
#include <memory>
#include <string>

#include "fkv/engine.h"
#include "support/answer_document.h"
#include "support/test_paths.h"

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
    std::ofstream(m_doc.toStdString()) << fkvtest::harbour_report();
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
    QCOMPARE(opened->kv_source, fkv::KvSource::prefill);
  }

  void answersFromTheDocument() {
    for (const fkvtest::AnswerCase& c : fkvtest::harbour_questions()) {
      const QString a = answer(c.question);
      QVERIFY2(fkvtest::answer_is_right(a.toStdString(), c), qPrintable(QStringLiteral("%1 -> %2").arg(c.question, a)));
    }
  }

  // The saved KV gives the same answer as the prefill did.
  void reopenedFromSavedKv() {
    const QString before = answer("What is the access code for the archive room?");
    auto opened = m_engine->open_document(m_doc.toStdString(), {}, nullptr);
    QVERIFY2(opened.ok(), opened.message().c_str());
    QCOMPARE(opened->kv_source, fkv::KvSource::snapshot);
    QCOMPARE(answer("What is the access code for the archive room?"), before);
  }
};

QTEST_APPLESS_MAIN(TestQwenAnswers)
#include "test_qwen_answers.moc"
