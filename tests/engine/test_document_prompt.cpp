// The token layout of a conversation about a document (runtime/document_prompt.h): the prefix does not depend on the
// question, every question's tokens start with the prefix, chat-template and completion layouts read as intended, and
// turn lists in the wrong shape are refused.
#include <QtTest>

#include "core/gguf.h"
#include "runtime/document_prompt.h"
#include "runtime/document_tokens.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"

namespace {

using fkv::ChatMessage;
using fkv::ChatTemplate;
using fkv::DocumentPrompt;

bool startsWith(const std::vector<int32_t>& v, const std::vector<int32_t>& prefix) {
  return v.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), v.begin());
}

}  // namespace

class TestDocumentPrompt : public QObject {
  Q_OBJECT

 private:
  std::unique_ptr<fkv::Tokenizer> tok_;
  fkv::DocumentTokens doc_;

  DocumentPrompt make(ChatTemplate t, bool completion, const char* title = "Notes") {
    auto p = fkv::make_document_prompt(*tok_, t, title, doc_, completion);
    if (!p.ok()) qFatal("make_document_prompt: %s", p.message().c_str());
    return *p;
  }
  std::string tail(const DocumentPrompt& p, const std::vector<ChatMessage>& turns) {
    auto ids = fkv::document_turn_tokens(*tok_, p, turns);
    if (!ids.ok()) qFatal("document_turn_tokens: %s", ids.message().c_str());
    if (!startsWith(*ids, p.prefix)) qFatal("the turn tokens do not start with the prefix");
    return tok_->decode(std::span(*ids).subspan(p.prefix.size()));
  }

 private slots:
  void initTestCase() {
    auto file = fkv::GgufFile::open(fkvtest::llamaVocabPath().toStdString());
    QVERIFY2(file.ok(), file.message().c_str());
    auto t = fkv::Tokenizer::from_gguf(**file);
    QVERIFY2(t.ok(), t.message().c_str());
    tok_ = std::move(*t);
    auto d = fkv::tokenize_document(*tok_, "The mill stands by the river.\n\nIts wheel turned until 1921.");
    QVERIFY2(d.ok(), d.message().c_str());
    doc_ = *d;
  }

  // The document sits at doc_begin, after the head and the intro that names the title.
  void prefixHoldsTheDocument() {
    for (bool completion : {false, true}) {
      const DocumentPrompt p = make(ChatTemplate::Llama2, completion);
      QCOMPARE(p.prefix.front(), tok_->bos_id());
      QCOMPARE(std::vector<int32_t>(p.prefix.begin() + p.doc_begin, p.prefix.end()), doc_.tokens);
      const std::string head = tok_->decode(std::span(p.prefix).first(static_cast<size_t>(p.doc_begin)));
      QVERIFY2(head.find("\"Notes\"") != std::string::npos, head.c_str());
      QCOMPARE(head.find("[INST]") != std::string::npos, !completion);
      // Chat layouts ask for short answers from the document in a system turn; a base model has none to read.
      QCOMPARE(head.find("from the document only") != std::string::npos, !completion);
    }
  }

  void completionLayout() {
    const DocumentPrompt p = make(ChatTemplate::Llama2, true);
    QCOMPARE(QString::fromStdString(tail(p, {{"user", "When did it stop?"}})),
             QStringLiteral("\n\nQuestion: When did it stop?\nAnswer:"));
    QCOMPARE(QString::fromStdString(
                 tail(p, {{"user", "Where?"}, {"assistant", "By the river."}, {"user", "When did it stop?"}})),
             QStringLiteral("\n\nQuestion: Where?\nAnswer: By the river.\n\nQuestion: When did it stop?\nAnswer:"));
    QCOMPARE(fkv::document_stop_strings(p), std::vector<std::string>{"\nQuestion:"});
  }

  void chatTemplateLayout() {
    const DocumentPrompt p = make(ChatTemplate::Llama2, false);
    const std::string t = tail(p, {{"user", "When did it stop?"}});
    QVERIFY2(t.find("When did it stop?") != std::string::npos && t.find("[/INST]") != std::string::npos, t.c_str());
    QVERIFY(fkv::document_stop_strings(p).empty());
    // A longer conversation extends the shorter one's tokens only after the prefix; the prefix never changes.
    const std::string t2 = tail(p, {{"user", "Where?"}, {"assistant", "By the river."}, {"user", "When?"}});
    QVERIFY2(t2.find("By the river.") != std::string::npos, t2.c_str());
  }

  // The tag names the layout and the exact prefix tokens, so a snapshot serves only the prompt it was made for.
  void formatTagsTellLayoutsAndDocumentsApart() {
    const DocumentPrompt a = make(ChatTemplate::Llama2, false);
    const DocumentPrompt b = make(ChatTemplate::Llama2, true);
    const DocumentPrompt c = make(ChatTemplate::ChatML, false);
    const DocumentPrompt d = make(ChatTemplate::Llama2, false, "Other title");
    QCOMPARE(a.format_tag, make(ChatTemplate::Llama2, false).format_tag);
    QVERIFY(a.format_tag != b.format_tag && a.format_tag != c.format_tag && a.format_tag != d.format_tag);
    QVERIFY(b.format_tag.rfind("doc2-completion-", 0) == 0);
    QVERIFY(a.format_tag.size() <= 64);
  }

  void badTurnsAreRefused() {
    const DocumentPrompt p = make(ChatTemplate::Llama2, true);
    const std::vector<std::vector<ChatMessage>> bad = {
        {}, {{"assistant", "Hi"}}, {{"user", "a"}, {"assistant", "b"}}, {{"user", "a"}, {"user", "b"}},
        {{"system", "be brief"}, {"user", "a"}}};
    for (const auto& turns : bad) {
      auto r = fkv::document_turn_tokens(*tok_, p, turns);
      QVERIFY2(!r.ok(), "a turn list in the wrong shape was accepted");
      QVERIFY2(r.message().find("turn") != std::string::npos || r.message().find("question") != std::string::npos,
               r.message().c_str());
    }
  }
};

QTEST_APPLESS_MAIN(TestDocumentPrompt)
#include "test_document_prompt.moc"
