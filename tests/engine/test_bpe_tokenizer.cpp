// Byte-level BPE (tokenizer.ggml.model "gpt2"): parity with the reference tokenizers library on the real Llama 3 and
// Qwen2 (DeepSeek-R1-Distill) vocabularies (cases written by tests/tools/make_bpe_vocabs.py at setup), hand-checked
// ids, round trips, special and added tokens, the pre-tokenizer splits, a hand-made vocabulary for the merge order,
// and hostile metadata.
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

#include <memory>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "model/gguf_writer.h"
#include "support/test_paths.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

using fkv::GgufFile;
using fkv::GgufWriter;
using fkv::Tokenizer;
using Ids = std::vector<int32_t>;

namespace {

std::unique_ptr<Tokenizer> load(const QString& path) {
  auto f = GgufFile::open(path.toStdString());
  if (!f.ok()) qFatal("%s", f.message().c_str());
  auto t = Tokenizer::from_gguf(**f);
  if (!t.ok()) qFatal("%s", t.message().c_str());
  return std::move(t).value();
}

Ids encode(const Tokenizer& t, const std::string& text, bool parse_special = true) {
  auto r = t.encode(text, false, parse_special);
  return r.ok() ? std::move(r).value() : Ids{-999};
}

QString ids_str(const Ids& ids) {
  QStringList parts;
  for (const int32_t id : ids) parts << QString::number(id);
  return parts.join(' ');
}

// A byte-level vocabulary: the 256 one-byte tokens in byte order, then `extra` tokens, with `merges`.
std::string write_vocab(const QString& name, const std::vector<std::string>& extra,
                        const std::vector<std::string>& merges, const std::string& pre = "llama-bpe") {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(fkv::bytes_to_byte_level(std::string(1, static_cast<char>(b))));
  tokens.insert(tokens.end(), extra.begin(), extra.end());
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "gpt2");
  if (!pre.empty()) w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", std::vector<int32_t>(tokens.size(), 1));
  w.set_string_array("tokenizer.ggml.merges", merges);
  const std::string path = (fkvtest::tempDir() + QLatin1Char('/') + name).toStdString();
  if (const auto s = w.write(path); !s.ok()) qFatal("%s", s.message().c_str());
  return path;
}

fkv::Status load_status(const std::string& path) {
  auto f = GgufFile::open(path);
  if (!f.ok()) return f.status();
  auto t = Tokenizer::from_gguf(**f);
  return t.ok() ? fkv::Status() : t.status();
}

}  // namespace

class TestBpeTokenizer : public QObject {
  Q_OBJECT

 private:
  std::unique_ptr<Tokenizer> m_llama3;
  std::unique_ptr<Tokenizer> m_qwen2;
  QJsonObject m_parity;

 private slots:
  void initTestCase() {
    const QString llama3 = fkvtest::bpeVocabPath("llama3-bpe.gguf");
    const QString qwen2 = fkvtest::bpeVocabPath("qwen2-bpe.gguf");
    const QString parity = fkvtest::bpeVocabPath("bpe-parity.json");
    if (llama3.isEmpty() || qwen2.isEmpty() || parity.isEmpty()) {
      QSKIP("BPE test vocabularies not written: run ./scripts/setup.sh (tests/tools/make_bpe_vocabs.py)");
    }
    m_llama3 = load(llama3);
    m_qwen2 = load(qwen2);
    QFile f(parity);
    QVERIFY(f.open(QIODevice::ReadOnly));
    m_parity = QJsonDocument::fromJson(f.readAll()).object();
  }

  void parity_with_reference() {
    for (const auto& [name, tok] : {std::pair{"llama3-bpe.gguf", m_llama3.get()}, {"qwen2-bpe.gguf", m_qwen2.get()}}) {
      const QJsonArray cases = m_parity.value(name).toArray();
      QVERIFY2(cases.size() > 500, name);
      int n_bad = 0;
      QString first_bad;
      for (const QJsonValue& v : cases) {
        const QJsonObject c = v.toObject();
        const std::string text = c.value("text").toString().toStdString();
        Ids want;
        for (const QJsonValue& id : c.value("ids").toArray()) want.push_back(id.toInt());
        const Ids got = encode(*tok, text);
        if (got == want) continue;
        if (n_bad++ == 0) {
          first_bad = QStringLiteral("%1: text %2\n got  %3\n want %4")
                          .arg(name, QString::fromUtf8(QByteArray::fromStdString(text).toPercentEncoding()),
                               ids_str(got), ids_str(want));
        }
      }
      QVERIFY2(n_bad == 0, qPrintable(QStringLiteral("%1 of %2 cases differ; first: %3")
                                          .arg(n_bad).arg(cases.size()).arg(first_bad)));
    }
  }

  void round_trips() {
    for (const Tokenizer* tok : {m_llama3.get(), m_qwen2.get()}) {
      for (const QJsonValue& v : m_parity.value("llama3-bpe.gguf").toArray()) {
        const std::string text = v.toObject().value("text").toString().toStdString();
        QCOMPARE(tok->decode(encode(*tok, text, false)), text);  // with parse_special, control text decodes to ""
      }
    }
  }

  // Expected ids read off the vocabularies by hand: the token texts are checked next to the ids.
  void hand_checked_ids() {
    const Tokenizer& l = *m_llama3;
    QCOMPARE(encode(l, "Hello world"), (Ids{9906, 1917}));
    QCOMPARE(std::string(l.token_text(9906)), std::string("Hello"));
    QCOMPARE(std::string(l.token_text(1917)), std::string("\xC4\xA0world"));  // "Ġworld"
    // Llama 3 groups digits by three from the left; Qwen2 splits every digit.
    const Ids l_digits = encode(l, "1234567");
    QCOMPARE(l_digits.size(), size_t{3});
    QCOMPARE(l.decode({&l_digits[0], 1}), std::string("123"));
    QCOMPARE(l.decode({&l_digits[2], 1}), std::string("7"));
    const Tokenizer& q = *m_qwen2;
    QCOMPARE(encode(q, "Hello world"), (Ids{9707, 1879}));
    QCOMPARE(encode(q, "2026"), (Ids{17, 15, 17, 21}));
    QCOMPARE(std::string(q.token_text(15)), std::string("0"));
    // Control tokens only with parse_special; Qwen2's added <think> always (it is user-defined).
    QCOMPARE(encode(l, "<|eot_id|>"), (Ids{128009}));
    QVERIFY(encode(l, "<|eot_id|>", false).size() > 1);
    const auto think = q.find_token("<think>");
    QVERIFY(think.has_value());
    QCOMPARE(encode(q, "<think>", false), (Ids{*think}));
    QCOMPARE(q.token_piece(*think), std::string("<think>"));
  }

  void vocabulary_facts() {
    QVERIFY(m_llama3->is_bpe());
    QCOMPARE(m_llama3->pre_tokenizer_name(), std::string("llama-bpe"));
    QCOMPARE(m_qwen2->pre_tokenizer_name(), std::string("deepseek-r1-qwen"));
    QVERIFY(!m_llama3->add_space_prefix());
    QCOMPARE(m_llama3->bos_id(), 128000);
    QVERIFY(m_llama3->is_eog(128009));
    QVERIFY(m_qwen2->is_eog(m_qwen2->eos_id()));
    QVERIFY(m_llama3->fingerprint() != m_qwen2->fingerprint());
    QCOMPARE(load(fkvtest::bpeVocabPath("qwen2-bpe.gguf"))->fingerprint(), m_qwen2->fingerprint());
  }

  void pre_tokenizer_splits() {
    auto llama3 = fkv::PreTokenizer::create("llama-bpe");
    QVERIFY(llama3.ok());
    const auto words = (*llama3)->split("I'M here  \n\n\tx 1234567 naïve\x0B\xC2\x85!!");
    QVERIFY(words.ok());
    // As the reference splits it: VT and NEL count as white space (ICU's own \s would not).
    const std::vector<std::string_view> want = {"I",   "'M",  " here", "  \n\n", "\tx", " ", "123",        "456",
                                                "7",   " naïve", "\x0B",  "\xC2\x85", "!!"};
    QCOMPARE(*words, want);
    auto qwen2 = fkv::PreTokenizer::create("qwen2");
    QVERIFY(qwen2.ok());
    QCOMPARE((*qwen2)->split("x 42").value(), (std::vector<std::string_view>{"x", " ", "4", "2"}));
    const auto bad = fkv::PreTokenizer::create("falcon3");
    QVERIFY(!bad.ok());
    QVERIFY(bad.message().find("'falcon3' is not supported (supported: default, gpt2, llama-bpe") != std::string::npos);
  }

  void byte_level_alphabet() {
    std::string all;
    for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
    QCOMPARE(fkv::byte_level_to_bytes(fkv::bytes_to_byte_level(all)), all);
    QCOMPARE(fkv::bytes_to_byte_level(" \n!"), std::string("\xC4\xA0\xC4\x8A!"));  // "ĠĊ!"
    QCOMPARE(fkv::byte_level_to_bytes("<think> x"), std::string("<think> x"));   // plain text stays
  }

  // Lowest rank merges first, leftmost first among equal ranks, and merges never cross a pre-tokenizer word.
  void merge_order() {
    const std::string path =
        write_vocab("order.gguf", {"ab", "bc", "abc", "aa"}, {"b c", "a b", "ab c", "a a"}, "qwen2");
    const auto tok = load(QString::fromStdString(path));
    // Ids: a byte's token is its value; "ab" 256, "bc" 257, "abc" 258, "aa" 259.
    QCOMPARE(encode(*tok, "abc"), (Ids{'a', 257}));   // "b c" (rank 0) before "a b" (rank 1); then no "a bc"
    QCOMPARE(encode(*tok, "abab"), (Ids{256, 256}));
    QCOMPARE(encode(*tok, "aaa"), (Ids{259, 'a'}));   // equal ranks: the leftmost pair first
    QCOMPARE(encode(*tok, "ab c"), (Ids{256, ' ', 'c'}));  // " c" is a word of its own: no "ab c" merge across it
    QCOMPARE(tok->decode(encode(*tok, "ab c")), std::string("ab c"));
    // Llama 3 looks the whole word up first, so "abc" is its own token although the merges cannot reach it.
    const auto llama3 = load(QString::fromStdString(
        write_vocab("order3.gguf", {"ab", "bc", "abc", "aa"}, {"b c", "a b", "ab c", "a a"}, "llama-bpe")));
    QCOMPARE(encode(*llama3, "abc"), (Ids{258}));
    QCOMPARE(encode(*llama3, "abcabc"), (Ids{'a', 257, 'a', 257}));
  }

  void hostile_metadata() {
    const auto missing_merge_token = load_status(write_vocab("bad_merge.gguf", {"ab"}, {"a zz"}));
    QVERIFY(missing_merge_token.message().find("merges[0] 'a zz' needs the token 'zz'") != std::string::npos);
    const auto no_space = load_status(write_vocab("no_space.gguf", {"ab"}, {"ab"}));
    QVERIFY(no_space.message().find("expected two tokens separated by a space") != std::string::npos);
    const auto no_merges = load_status(write_vocab("no_merges.gguf", {}, {}));
    QVERIFY(no_merges.message().find("tokenizer.ggml.merges is missing or empty") != std::string::npos);
    GgufWriter no_bytes;  // a vocabulary that cannot spell every byte
    no_bytes.set_string("tokenizer.ggml.model", "gpt2");
    no_bytes.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
    no_bytes.set_i32_array("tokenizer.ggml.token_type", {1, 1, 1});
    no_bytes.set_string_array("tokenizer.ggml.merges", {"a b"});
    const std::string no_bytes_path = (fkvtest::tempDir() + "/no_bytes.gguf").toStdString();
    QVERIFY(no_bytes.write(no_bytes_path).ok());
    QVERIFY(load_status(no_bytes_path).message().find("has no token for byte 0x00") != std::string::npos);
    const auto unknown_pre = load_status(write_vocab("pre.gguf", {"ab"}, {"a b"}, "falcon3"));
    QVERIFY(unknown_pre.message().find("tokenizer.ggml.pre: pre-tokenizer 'falcon3' is not supported") !=
            std::string::npos);
  }
};

QTEST_APPLESS_MAIN(TestBpeTokenizer)
#include "test_bpe_tokenizer.moc"
