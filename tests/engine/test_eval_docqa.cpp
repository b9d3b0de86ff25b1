// Evaluation prompts for instruct models and questions about real documents: the docqa dataset against the license
// texts Debian installs, docqa prompts sized to the target with the whole asked document inside, and the chat-template
// layout (question in the user turn, then the assistant's turn) chosen for a model that has a template.
#include <QJsonArray>
#include <QJsonObject>
#include <QtTest>

#include <algorithm>
#include <fstream>
#include <set>

#include "core/gguf.h"
#include "eval/docqa.h"
#include "eval/eval_tasks.h"
#include "fkv/models.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/document_prompt.h"
#include "support/cli_runner.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"

namespace {

const std::string kDocs = "/usr/share/common-licenses";

std::unique_ptr<fkv::Model> writeAndLoad(const std::string& vocab, const std::string& name) {
  fkv::SyntheticModelSpec spec;  // 2 layers, embd 64: only the tokenizer and the template matter here
  spec.vocab_path = vocab;
  spec.seed = 5;
  spec.n_ctx = 32768;
  const std::string path = (fkvtest::tempDir() + "/" + QString::fromStdString(name)).toStdString();
  if (const fkv::Status s = fkv::write_synthetic_model(spec, path); !s.ok()) {
    qWarning("write_synthetic_model: %s", s.message().c_str());
    return nullptr;
  }
  fkv::Result<std::unique_ptr<fkv::Model>> m = fkv::Model::load(path);
  if (!m.ok()) qWarning("load: %s", m.message().c_str());
  return m.ok() ? std::move(m).value() : nullptr;
}

// The scoring task of the dataset's own question on `file` that contains `words`, so a test checks the pattern that
// is shipped rather than a copy of it.
fkv::EvalTask taskFor(std::string_view file, std::string_view words) {
  fkv::EvalTask t;
  t.answers_are_patterns = true;
  for (const fkv::DocqaQuestion& q : fkv::docqa_questions()) {
    if (q.file == file && q.question.find(words) != std::string_view::npos) t.answers = {std::string(q.pattern)};
  }
  return t;
}

int countId(const std::vector<int32_t>& ids, int32_t id) {
  return static_cast<int>(std::count(ids.begin(), ids.end(), id));
}

}  // namespace

class TestEvalDocqa : public QObject {
  Q_OBJECT

 private:
  std::unique_ptr<fkv::Model> m_llama;  // SentencePiece vocabulary, llama2 template

  fkv::Result<std::vector<fkv::EvalTask>> docqa(int target, int count, const fkv::TaskOptions& o) {
    return fkv::make_tasks(m_llama->tokenizer(), "docqa", target, count, 3, o);
  }
  fkv::Result<std::vector<fkv::EvalTask>> docqa(int target, int count) {
    const fkv::TaskOptions defaults;  // named: GCC 12 at -O3 misreads a defaulted temporary's strings
    return docqa(target, count, defaults);
  }

 private slots:
  void initTestCase() {
    m_llama = writeAndLoad(fkvtest::llamaVocabPath().toStdString(), "llama.gguf");
    QVERIFY(m_llama);
  }

  // The dataset cannot rot unseen: every answer pattern occurs in its document as Debian ships it.
  void everyAnswerIsInItsDocument() {
    const auto questions = fkv::docqa_questions();
    QVERIFY(questions.size() >= 20);
    std::set<std::string_view> asked;
    for (const fkv::DocqaQuestion& q : questions) {
      const auto docs = fkv::docqa_documents();
      const auto d = std::find_if(docs.begin(), docs.end(), [&](auto& doc) { return doc.file == q.file; });
      QVERIFY2(d != docs.end(), q.file.data());
      QVERIFY2(q.question.find(d->title) != std::string_view::npos, q.question.data());  // it names its document
      fkv::Result<std::string> text = fkv::read_docqa_document(kDocs, q.file);
      QVERIFY2(text.ok(), text.message().c_str());
      fkv::Result<bool> found = fkv::pattern_occurs(q.pattern, *text);
      QVERIFY2(found.ok(), found.message().c_str());
      QVERIFY2(*found, qPrintable(QString("'%1' not in %2").arg(q.pattern.data(), q.file.data())));
      // A pattern that accepts anything would make every answer right.
      QVERIFY2(!*fkv::pattern_occurs(q.pattern, "I do not know."), q.pattern.data());
      // Small models often repeat the question; that must not score as the answer.
      QVERIFY2(!*fkv::pattern_occurs(q.pattern, q.question), q.question.data());
      asked.insert(q.file);
    }
    QVERIFY(asked.size() >= 4);
  }

  void patternScoring() {
    fkv::EvalTask t;
    t.answers = {R"(\b60\b|sixty)"};
    t.answers_are_patterns = true;
    QVERIFY(fkv::answers_match(t, "Within 60 days."));
    QVERIFY(fkv::answers_match(t, "SIXTY days"));
    QVERIFY(!fkv::answers_match(t, "160 days"));
    QVERIFY(!fkv::answers_match(t, "18"));
    fkv::EvalTask wrapped;
    wrapped.answers = {"principal place of business"};
    wrapped.answers_are_patterns = true;
    QVERIFY(fkv::answers_match(wrapped, "its principal\n  place of business"));  // whitespace runs are one space
    const fkv::EvalTask years = taskFor("GPL-3", "written offer");               // its title holds the "3" it asks for
    QCOMPARE(years.answers.size(), size_t{1});
    QVERIFY(fkv::answers_match(years, "At least three years."));
    QVERIFY(fkv::answers_match(years, "3-year"));
    QVERIFY(fkv::answers_match(years, " 3."));
    QVERIFY(!fkv::answers_match(years, "The GNU General Public License, version 3, says one year."));
    const fkv::EvalTask date = taskFor("GFDL-1.3", "published");  // the day and month with another year is wrong
    QCOMPARE(date.answers.size(), size_t{1});
    QVERIFY(fkv::answers_match(date, "It was published on November 3, 2008."));
    QVERIFY(fkv::answers_match(date, "3 November 2008"));
    QVERIFY(!fkv::answers_match(date, "It was published on November 3, 2007."));
    wrapped.answers = {"("};
    QCOMPARE(fkv::count_answers_found(wrapped, "("), 0);  // a broken pattern matches nothing
    QVERIFY(!fkv::pattern_occurs("(", "(").ok());
  }

  void promptsFitWithTheDocumentWhole() {
    for (int target : {4096, 9000}) {
      fkv::Result<std::vector<fkv::EvalTask>> ts = docqa(target, 4);
      QVERIFY2(ts.ok(), ts.message().c_str());
      QCOMPARE(ts->size(), size_t(4));
      std::set<std::string> prompts;
      for (const fkv::EvalTask& t : *ts) {
        QCOMPARE(t.kind, std::string("docqa"));
        QVERIFY2(t.n_tokens <= target && t.n_tokens > target - 300, qPrintable(QString::number(t.n_tokens)));
        QCOMPARE(static_cast<int>(t.tokens.size()), t.n_tokens);
        const fkv::Result<std::string> doc = fkv::read_docqa_document(kDocs, t.document);
        QVERIFY(doc.ok());
        QVERIFY2(t.prompt.find(*doc) != std::string::npos, t.document.c_str());  // whole, never truncated
        QVERIFY(*fkv::pattern_occurs(t.answers[0], t.prompt));
        QVERIFY(t.answers_are_patterns);
        QVERIFY(t.depth >= 0 && t.depth <= 1);
        prompts.insert(t.prompt);
      }
      QCOMPARE(prompts.size(), size_t(4));  // four different questions
    }
    fkv::Result<std::vector<fkv::EvalTask>> again = docqa(4096, 4);
    QVERIFY(again.ok());
    QCOMPARE(again->at(2).prompt, docqa(4096, 4)->at(2).prompt);  // seeded
  }

  // docqa-filler asks the same questions at the same seed, with the document whole, among generated sentences and
  // none of the other license texts: the pair isolates what the neighbouring licenses cost.
  void fillerPaddingAsksTheSameQuestionsAlone() {
    const fkv::TaskOptions o;
    for (int target : {9000, 40000}) {
      fkv::Result<std::vector<fkv::EvalTask>> licenses = docqa(target, 5);
      fkv::Result<std::vector<fkv::EvalTask>> filler =
          fkv::make_tasks(m_llama->tokenizer(), "docqa-filler", target, 5, 3, o);
      QVERIFY2(licenses.ok(), licenses.message().c_str());
      QVERIFY2(filler.ok(), filler.message().c_str());
      for (size_t i = 0; i < 5; ++i) {
        const fkv::EvalTask& a = licenses->at(i);
        const fkv::EvalTask& t = filler->at(i);
        QCOMPARE(t.kind, std::string("docqa-filler"));
        QCOMPARE(t.document, a.document);
        QCOMPARE(t.answers, a.answers);
        QVERIFY(t.prompt.ends_with(a.prompt.substr(a.prompt.rfind("\n\n"))));  // the same question
        QVERIFY2(t.n_tokens <= target && t.n_tokens > target - 300, qPrintable(QString::number(t.n_tokens)));
        const fkv::Result<std::string> doc = fkv::read_docqa_document(kDocs, t.document);
        QVERIFY(doc.ok());
        QVERIFY(t.prompt.find(*doc) != std::string::npos);  // whole
        // The asked document's header, and no other document's.
        QVERIFY(t.prompt.find("Document: ") != std::string::npos);
        QCOMPARE(t.prompt.find("Document: "), t.prompt.rfind("Document: "));
        // Where the padding is long, the document sits at its depth (short padding has few places to put it).
        QVERIFY2(target < 40000 || std::abs(t.depth - (i + 0.5) / 5) < 0.02, qPrintable(QString::number(t.depth)));
        // Where the document ends, filler goes on: no digit but the document's own.
        const size_t end = t.prompt.find(*doc) + doc->size();
        const std::string after = t.prompt.substr(end, t.prompt.rfind("\n\n") - end);
        QVERIFY(after.size() > 100 || i == 4);
        QVERIFY(std::none_of(after.begin(), after.end(), [](char c) { return c >= '0' && c <= '9'; }));
      }
    }
    QCOMPARE(fkv::make_tasks(m_llama->tokenizer(), "docqa-filler", 9000, 2, 3, o)->at(1).prompt,
             fkv::make_tasks(m_llama->tokenizer(), "docqa-filler", 9000, 2, 3, o)->at(1).prompt);  // seeded
  }

  void docqaErrors() {
    fkv::Result<std::vector<fkv::EvalTask>> r = docqa(1000, 1);  // shorter than the shortest asked document
    QVERIFY(!r.ok());
    QVERIFY2(r.message().find("too short for every document") != std::string::npos, r.message().c_str());
    fkv::TaskOptions missing;
    missing.docqa_dir = fkvtest::tempDir().toStdString() + "/no-such-folder";
    r = docqa(4096, 1, missing);
    QVERIFY(!r.ok());
    QVERIFY2(r.message().find("no-such-folder/GPL-3") != std::string::npos, r.message().c_str());
    QVERIFY(r.message().find("base-files") != std::string::npos);
    // Short stand-ins for every document: the padding runs out long before the target.
    const std::string dir = fkvtest::tempDir().toStdString() + "/tiny-docs";
    QVERIFY(QDir().mkpath(QString::fromStdString(dir)));
    for (const fkv::DocqaDocument& d : fkv::docqa_documents()) {
      std::ofstream(dir + "/" + std::string(d.file)) << "First paragraph.\n\nSecond paragraph.\n";
    }
    fkv::TaskOptions tiny;
    tiny.docqa_dir = dir;
    r = docqa(3000, 1, tiny);
    QVERIFY(!r.ok());
    QVERIFY2(r.message().find("ran out") != std::string::npos, r.message().c_str());
  }

  // The instruct model setup installs carries a ChatML template: it gets chat prompts, the question sits in the user
  // turn and the prompt ends with the opening of the assistant's turn. Only its header and vocabulary are read.
  void chatmlModelGetsChatPrompts() {
    const std::string path = fkv::default_models_folder() + "/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
    if (!QFileInfo::exists(QString::fromStdString(path)))
      QSKIP("Qwen2.5-Coder-0.5B-Instruct not installed: run ./scripts/setup.sh");
    fkv::Result<std::unique_ptr<fkv::GgufFile>> f = fkv::GgufFile::open(path);
    QVERIFY2(f.ok(), f.message().c_str());
    fkv::Result<std::unique_ptr<fkv::Tokenizer>> tok = fkv::Tokenizer::from_gguf(**f);
    QVERIFY2(tok.ok(), tok.message().c_str());
    fkv::Result<fkv::TaskPrompt> p = fkv::choose_task_prompt(**f, fkv::PromptMode::Auto);
    QVERIFY2(p.ok(), p.message().c_str());
    QCOMPARE(p->style, fkv::PromptStyle::Chat);
    QCOMPARE(p->chat_template, fkv::ChatTemplate::ChatML);
    QCOMPARE(fkv::choose_task_prompt(**f, fkv::PromptMode::Completion)->style, fkv::PromptStyle::Completion);
    const int32_t im_start = (*tok)->encode("<|im_start|>", false, true)->at(0);
    const int32_t im_end = (*tok)->encode("<|im_end|>", false, true)->at(0);
    for (std::string_view kind : {"passkey", "qa", "docqa"}) {
      fkv::TaskOptions o;
      o.prompt = *p;
      fkv::Result<std::vector<fkv::EvalTask>> ts = fkv::make_tasks(**tok, kind, 9000, 1, 2, o);
      QVERIFY2(ts.ok(), ts.message().c_str());
      const fkv::EvalTask& t = ts->at(0);
      QCOMPARE(t.style, fkv::PromptStyle::Chat);
      QVERIFY2(t.prompt.starts_with("<|im_start|>user\n"), kind.data());
      QVERIFY2(t.prompt.ends_with("?<|im_end|>\n<|im_start|>assistant\n"), kind.data());  // no answer cue
      QCOMPARE(countId(t.tokens, im_start), 2);  // the user's and the assistant's turn, as control tokens
      QCOMPARE(countId(t.tokens, im_end), 1);
      QVERIFY(t.n_tokens <= 9000 && t.n_tokens > 8600);
      // With a system turn (freekv eval --system), it comes first and the rest is as before.
      o.prompt.system = std::string(fkv::document_system_prompt());
      const fkv::EvalTask with_system = fkv::make_tasks(**tok, kind, 9000, 1, 2, o)->at(0);
      QVERIFY2(with_system.prompt.starts_with("<|im_start|>system\n" + o.prompt.system + "<|im_end|>\n<|im_start|>user\n"),
               kind.data());
      QVERIFY(with_system.prompt.ends_with(t.prompt.substr(t.prompt.rfind("\n\n"))));  // the same question
      QCOMPARE(countId(with_system.tokens, im_start), 3);
      QCOMPARE(countId(with_system.tokens, im_end), 2);
      QVERIFY(with_system.n_tokens <= 9000);
      o.prompt = {};
      const fkv::EvalTask completion = fkv::make_tasks(**tok, kind, 9000, 1, 2, o)->at(0);
      QCOMPARE(countId(completion.tokens, im_start), 0);
      QVERIFY(!completion.prompt.ends_with("?"));  // the question, then the answer cue or "Answer:"
    }
  }

  void vocabularyWithoutTemplateKeepsCompletion() {
    // The SentencePiece vocabulary file itself has no tokenizer.chat_template: a base model's situation.
    fkv::Result<std::unique_ptr<fkv::GgufFile>> f = fkv::GgufFile::open(fkvtest::llamaVocabPath().toStdString());
    QVERIFY2(f.ok(), f.message().c_str());
    QVERIFY((*f)->find("tokenizer.chat_template") == nullptr);
    QCOMPARE(fkv::choose_task_prompt(**f, fkv::PromptMode::Auto)->style, fkv::PromptStyle::Completion);
    QCOMPARE(fkv::choose_task_prompt(m_llama->gguf(), fkv::PromptMode::Auto)->chat_template, fkv::ChatTemplate::Llama2);
    QVERIFY(!fkv::parse_prompt_mode("instruct").ok());
    QCOMPARE(*fkv::parse_prompt_mode("chat"), fkv::PromptMode::Chat);
  }

  // Instruct models often restate a docqa question (about 30 tokens) before the answer, so docqa decodes 64 steps
  // where passkey's one number gets 32: at 32 a right answer was cut off after "before August".
  void docqaDecodesRoomForARestatedQuestion() {
    const fkvtest::CliRun r =
        fkvtest::runCli({"eval", "--synthetic", "tiny-llama", "--tasks", "passkey,docqa,docqa-filler", "--lengths",
                         "3000", "--policies", "quest", "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    QHash<QString, int> steps;
    for (const QJsonValue& v : fkvtest::parseObject(r.out).value("results").toArray())
      steps.insert(v.toObject().value("task").toString(), v.toObject().value("gen_tokens").toInt());
    QCOMPARE(steps.value("passkey"), 32);
    QCOMPARE(steps.value("docqa"), 64);
    QCOMPARE(steps.value("docqa-filler"), 64);
  }

  void evalCommandSaysWhichPrompt() {
    const auto run = [](std::initializer_list<const char*> extra) {
      QStringList args = {"eval", "--synthetic",  "tiny-llama", "--tasks",    "passkey,docqa", "--lengths",
                          "3000", "--gen-tokens", "2",          "--policies", "quest",         "--json"};
      for (const char* e : extra) args << e;
      return fkvtest::runCli(args);
    };
    const fkvtest::CliRun chat = run({});
    QVERIFY2(chat.exitCode == 0, chat.err.constData());
    const QJsonObject c = fkvtest::parseObject(chat.out);
    QCOMPARE(c.value("prompt").toString(), QStringLiteral("chat"));
    QCOMPARE(c.value("prompt_mode").toString(), QStringLiteral("auto"));
    QCOMPARE(c.value("chat_template").toString(), QStringLiteral("llama2"));
    QCOMPARE(c.value("results").toArray().size(), 2 * 2);
    const fkvtest::CliRun completion = run({"--prompt", "completion"});
    QVERIFY2(completion.exitCode == 0, completion.err.constData());
    QCOMPARE(fkvtest::parseObject(completion.out).value("prompt").toString(), QStringLiteral("completion"));
    QCOMPARE(c.value("system").toString(), QString());
    const fkvtest::CliRun system = run({"--system", "document"});
    QVERIFY2(system.exitCode == 0, system.err.constData());
    QCOMPARE(fkvtest::parseObject(system.out).value("system").toString(),
             QString::fromUtf8(fkv::document_system_prompt().data(),
                               static_cast<qsizetype>(fkv::document_system_prompt().size())));
    const fkvtest::CliRun own = run({"--system", "Answer in one word."});
    QVERIFY2(own.exitCode == 0, own.err.constData());
    QCOMPARE(fkvtest::parseObject(own.out).value("system").toString(), QStringLiteral("Answer in one word."));
    const fkvtest::CliRun none = run({"--system", "none"});
    QCOMPARE(fkvtest::parseObject(none.out).value("system").toString(), QString());
    QCOMPARE(run({"--system", ""}).exitCode, 2);
    const fkvtest::CliRun bad = run({"--prompt", "instruct"});
    QCOMPARE(bad.exitCode, 2);
    QVERIFY2(bad.err.contains("instruct"), bad.err.constData());
    // A missing document stops the run before any prompt is evaluated, whatever kinds come first.
    const fkvtest::CliRun missing = run({"--docs", "/nonexistent-docs"});
    QCOMPARE(missing.exitCode, 1);
    QVERIFY2(missing.err.contains("/nonexistent-docs/GPL-3"), missing.err.constData());
    QVERIFY2(!missing.err.contains("at 3000 tokens"), missing.err.constData());  // not found while running the tasks
  }
};

QTEST_GUILESS_MAIN(TestEvalDocqa)
#include "test_eval_docqa.moc"
