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

  // A short answer ends at the end of its turn; with ignore_eos (benchmarks) the same answer runs on for every step
  // asked, and the end-of-turn token does not reach the text.
  void ignoreEosDecodesEveryStep() {
    fkv::GenerationOptions g;
    g.temperature = 0;
    g.max_tokens = 48;
    const std::string q = "What is the access code for the archive room?";
    auto ended = m_engine->ask({{"user", q}}, g, nullptr);
    QVERIFY2(ended.ok(), ended.message().c_str());
    QCOMPARE(ended->stop_reason, fkv::StopReason::eos);
    QVERIFY(ended->n_generated < 48);
    g.ignore_eos = true;
    auto all = m_engine->ask({{"user", q}}, g, nullptr);
    QVERIFY2(all.ok(), all.message().c_str());
    QCOMPARE(all->stop_reason, fkv::StopReason::max_tokens);
    QCOMPARE(all->n_generated, 48);
    QVERIFY2(all->text.rfind(ended->text, 0) == 0, all->text.c_str());
    QVERIFY2(all->text.find("<|im_end|>") == std::string::npos, all->text.c_str());
  }

  // With a budget smaller than the document, retrieval has to choose: the passage holding the needle sentence and
  // the one holding the table are the first citations under their answers. The name in the staff section is not a
  // requirement: selection counts over a whole answer favour the report's opening there (docs/user-guide.md says
  // citations show where retrieval looked).
  void citesThePassageHoldingTheFact() {
    fkv::RetrievalOptions r;
    r.sink_tokens = 128;
    r.recent_tokens = 64;
    r.retrieved_tokens = 128;
    QVERIFY(m_engine->set_retrieval(r).ok());
    const fkv::DocumentContent* doc = m_engine->document();
    QVERIFY(doc != nullptr);
    for (const fkvtest::AnswerCase& c : fkvtest::harbour_questions()) {
      fkv::GenerationOptions g;
      g.temperature = 0;
      g.max_tokens = 24;
      auto a = m_engine->ask({{"user", c.question}}, g, nullptr);
      QVERIFY2(a.ok(), a.message().c_str());
      QVERIFY2(!a->citations.empty(), c.question);
      // The fact's sentence: from the end of the previous one to the end of its own.
      size_t at = std::string::npos;
      for (const std::string& fact : c.accepted) at = std::min(at, doc->text.find(fact));
      QVERIFY(at != std::string::npos);
      const size_t begin = doc->text.find_last_of(".\n", at) + 1, end = doc->text.find_first_of(".\n", at);
      int rank = 0;
      for (size_t i = 0; i < a->citations.size() && rank == 0; ++i) {
        const fkv::Citation& ci = a->citations[i];
        if (ci.char_begin < int64_t(end) && int64_t(begin) < ci.char_end) rank = int(i) + 1;
      }
      qInfo("%s: the fact's passage is citation %d of %zu (0: not cited)", c.name, rank, a->citations.size());
      if (std::string_view(c.name) != "section") QCOMPARE(rank, 1);
    }
    QVERIFY(m_engine->set_retrieval(fkv::RetrievalOptions{}).ok());
  }
};

QTEST_APPLESS_MAIN(TestQwenAnswers)
#include "test_qwen_answers.moc"
