// The token side of the span map on the Llama-2 vocabulary: segment cuts, round trips (decode(tokens) == text),
// contiguous spans whose tokens spell exactly their bytes, span lookup, and Tokenizer::encode_append.
#include <QtTest>

#include <memory>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "runtime/document_tokens.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

using fkv::DocumentTokens;
using fkv::Tokenizer;
using Ids = std::vector<int32_t>;
using Ends = std::vector<int64_t>;

namespace {

QString qs(std::string_view s) { return QString::fromUtf8(s.data(), static_cast<qsizetype>(s.size())); }

// A document that exercises every cut rule: paragraphs, long lines, runs of spaces, text without spaces (CJK),
// characters only byte-fallback tokens spell, and special-token text that must stay text.
std::string long_document() {
  std::string doc = "Title of the document\n\n";
  for (int i = 0; i < 40; ++i) {
    doc += "Paragraph " + std::to_string(i) + " talks about caches, pages and   retrieval; ";
    doc += "naïve café façade — “quotes” and emoji 😀🚀. <s> is text here, so is </s>.\n";
    if (i % 3 == 0) doc += "  indented line with trailing words\n";
    if (i % 5 == 0) doc += "\n";
  }
  for (int i = 0; i < 300; ++i) doc += "長文書の検索";  // 5400 bytes without a space or line break
  doc += "\n\nThe end.";
  return doc;
}

std::string pieces(const Tokenizer& tok, const Ids& ids, int32_t begin, int32_t end) {
  std::string s;
  for (int32_t i = begin; i < end; ++i) s += tok.token_piece(ids[static_cast<size_t>(i)]);
  return s;
}

}  // namespace

class TestDocumentTokens : public QObject {
  Q_OBJECT

 private:
  std::unique_ptr<Tokenizer> tok_;

  // decode(tokens) == text, and the spans tile tokens and bytes with each span's tokens spelling its bytes.
  void check_round_trip(const std::string& text) {
    auto r = fkv::tokenize_document(*tok_, text);
    QVERIFY2(r.ok(), r.message().c_str());
    const DocumentTokens& d = *r;
    QCOMPARE(qs(tok_->decode(d.tokens)), qs(text));
    QVERIFY(!d.spans.empty());
    int32_t next_token = 0;
    int64_t next_char = 0;
    for (size_t i = 0; i < d.spans.size(); ++i) {
      const fkv::TokenSpan& s = d.spans[i];
      QCOMPARE(s.token_begin, next_token);
      QCOMPARE(s.char_begin, next_char);
      QVERIFY(s.token_end > s.token_begin);
      QVERIFY(s.char_end - s.char_begin <= static_cast<int64_t>(fkv::kMaxSegmentBytes));
      std::string spelled = pieces(*tok_, d.tokens, s.token_begin, s.token_end);
      if (i == 0) spelled.erase(0, 1);  // the space prefix of the first segment is not part of the text
      QCOMPARE(qs(spelled), qs(std::string_view(text).substr(static_cast<size_t>(s.char_begin),
                                                             static_cast<size_t>(s.char_end - s.char_begin))));
      next_token = s.token_end;
      next_char = s.char_end;
    }
    QCOMPARE(next_token, static_cast<int32_t>(d.tokens.size()));
    QCOMPARE(next_char, static_cast<int64_t>(text.size()));
  }

 private slots:
  void initTestCase() {
    auto file = fkv::GgufFile::open(fkvtest::llamaVocabPath().toStdString());
    QVERIFY2(file.ok(), file.message().c_str());
    auto t = Tokenizer::from_gguf(**file);
    QVERIFY2(t.ok(), t.message().c_str());
    tok_ = std::move(*t);
  }

  void segmentCutsPreferParagraphsThenLinesThenSpaces() {
    QCOMPARE(fkv::document_segment_ends("aaaa bbbb\ncccc\n\ndddd eeee ffff gggg", 20), (Ends{16, 35}));
    QCOMPARE(fkv::document_segment_ends("aaaa bbbb\ncccc dddd eeee", 20), (Ends{10, 24}));
    QCOMPARE(fkv::document_segment_ends("aaaa bbbb cccc dddd eeee", 20), (Ends{19, 24}));  // before the space
    QCOMPARE(fkv::document_segment_ends("short", 20), (Ends{5}));
    QCOMPARE(fkv::document_segment_ends("", 20), Ends{});
  }

  void segmentCutsNeverSplitACharacter() {
    std::string text;
    for (int i = 0; i < 15; ++i) text += "é";  // 2 bytes each, no break anywhere
    QCOMPARE(fkv::document_segment_ends(text, 7), (Ends{6, 12, 18, 24, 30}));
    const std::string emoji = "😀😀😀";  // 4 bytes each; a limit below 4 is raised to 4
    QCOMPARE(fkv::document_segment_ends(emoji, 1), (Ends{4, 8, 12}));
    int64_t begin = 0;
    for (const int64_t end : fkv::document_segment_ends(long_document())) {
      QVERIFY(!fkv::utf8_first_invalid(
          long_document().substr(static_cast<size_t>(begin), static_cast<size_t>(end - begin))));
      begin = end;
    }
  }

  void documentsRoundTrip() {
    check_round_trip("Hello world");
    check_round_trip(" Leading space and trailing space ");
    check_round_trip("\n\nStarts with blank lines");
    check_round_trip(long_document());
  }

  void shortTextIsOneSegmentLikeEncode() {
    auto r = fkv::tokenize_document(*tok_, "A short note about <s> and caching.");
    QVERIFY2(r.ok(), r.message().c_str());
    const auto expected = tok_->encode("A short note about <s> and caching.", false, false);
    QVERIFY(expected.ok());
    QCOMPARE(r->tokens, *expected);
    QCOMPARE(r->spans.size(), size_t{1});
  }

  void emptyAndInvalidText() {
    auto empty = fkv::tokenize_document(*tok_, "");
    QVERIFY(empty.ok());
    QVERIFY(empty->tokens.empty() && empty->spans.empty());
    auto bad = fkv::tokenize_document(*tok_, "ab\xFFx");
    QVERIFY(!bad.ok());
    QVERIFY2(bad.message().find("byte offset 2") != std::string::npos, bad.message().c_str());
  }

  void spanAtToken() {
    auto r = fkv::tokenize_document(*tok_, long_document());
    QVERIFY2(r.ok(), r.message().c_str());
    const DocumentTokens& d = *r;
    QVERIFY(d.spans.size() > 3);
    for (int32_t t = 0; t < static_cast<int32_t>(d.tokens.size()); t += 7) {
      const int s = fkv::span_at_token(d, t);
      QVERIFY(s >= 0);
      QVERIFY(d.spans[static_cast<size_t>(s)].token_begin <= t && t < d.spans[static_cast<size_t>(s)].token_end);
    }
    QCOMPARE(fkv::span_at_token(d, static_cast<int32_t>(d.tokens.size()) - 1), static_cast<int>(d.spans.size()) - 1);
    QCOMPARE(fkv::span_at_token(d, static_cast<int32_t>(d.tokens.size())), -1);
    QCOMPARE(fkv::span_at_token(d, -1), -1);
    QCOMPARE(fkv::span_at_token(DocumentTokens{}, 0), -1);
  }

  void encodeAppendMatchesEncode() {
    for (const bool parse_special : {false, true}) {
      for (const std::string text : {"Hello world", "<s>[INST] hi [/INST]</s> after", " two  spaces", "é\n"}) {
        Ids out = {7, 8};
        QVERIFY(tok_->encode_append(text, true, parse_special, out).ok());
        auto expected = tok_->encode(text, false, parse_special);
        QVERIFY(expected.ok());
        expected->insert(expected->begin(), {7, 8});
        QCOMPARE(out, *expected);
      }
    }
  }

  void encodeAppendWithoutPrefixContinuesText() {
    Ids ids;
    QVERIFY(tok_->encode_append("Hello", true, false, ids).ok());
    const size_t n_first = ids.size();
    QVERIFY(tok_->encode_append(" world", false, false, ids).ok());
    QCOMPARE(ids[n_first], *tok_->find_token("\xE2\x96\x81world"));  // "▁world": the text's own space, no extra
    QCOMPARE(qs(tok_->decode(ids)), QString("Hello world"));
    Ids bare;
    QVERIFY(tok_->encode_append("Hello", false, false, bare).ok());
    QCOMPARE(bare.front(), *tok_->find_token("Hello"));
    // After a control piece the prefix comes back, exactly as encode() puts it.
    Ids special;
    QVERIFY(tok_->encode_append("</s>Hi", false, true, special).ok());
    QCOMPARE(special.size(), size_t{2});
    QCOMPARE(special[0], tok_->eos_id());
    QCOMPARE(special[1], *tok_->find_token("\xE2\x96\x81Hi"));
  }

  void encodeAppendLeavesOutputAloneOnError() {
    Ids out = {1, 2, 3};
    const fkv::Status s = tok_->encode_append("ok\xC3(", true, false, out);
    QVERIFY(!s.ok());
    QVERIFY2(s.message().find("byte offset 2") != std::string::npos, s.message().c_str());
    QCOMPARE(out, (Ids{1, 2, 3}));
  }
};

QTEST_APPLESS_MAIN(TestDocumentTokens)
#include "test_document_tokens.moc"
