// SentencePiece tokenizer built from GGUF metadata: llama.cpp parity on the Llama-2 vocabulary, round trips, special
// tokens, the Gemma 3 vocabulary (when installed), hand-made vocabularies that exercise edge cases, hostile metadata,
// and the UTF-8 streamer.
#include <QFile>
#include <QtTest>

#include <memory>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "model/gguf_writer.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"

using fkv::GgufFile;
using fkv::GgufWriter;
using fkv::Tokenizer;
using fkv::TokenType;
using Ids = std::vector<int32_t>;

namespace {

struct ParityCase {
  std::string text;
  Ids expected;
};

std::string read_all(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) return {};
  const QByteArray b = f.readAll();
  return std::string(b.constData(), static_cast<size_t>(b.size()));
}

// .inp: texts each followed by "\n__ggml_vocab_test__\n"; .out: one line of space-separated ids per text.
std::vector<ParityCase> read_parity(const QString& stem) {
  const std::string inp = read_all(stem + ".inp");
  const std::string out = read_all(stem + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<ParityCase> cases;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t end = inp.find(sep, pos);
    if (end == std::string::npos) break;
    cases.push_back({inp.substr(pos, end - pos), {}});
    pos = end + sep.size();
  }
  size_t line_start = 0;
  for (ParityCase& c : cases) {
    const size_t line_end = out.find('\n', line_start);
    const std::string line = out.substr(line_start, line_end - line_start);
    for (const QByteArray& tok : QByteArray::fromStdString(line).split(' ')) {
      if (!tok.isEmpty()) c.expected.push_back(tok.toInt());
    }
    line_start = line_end + 1;
  }
  return cases;
}

QString ids_str(const Ids& ids) {
  QStringList parts;
  for (const int32_t id : ids) parts << QString::number(id);
  return parts.join(' ');
}

// A small vocabulary, without byte tokens unless asked, with a duplicate and an empty piece: every odd corner the
// model builder has to smooth over for libsentencepiece.
struct MiniVocab {
  // U+2581 is SentencePiece's escaped space.
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "\u2581", "a",   "b", "\u2581a",
                                     "ab",    "b",   "",     "<ctl>",  "[u]", "  "};
  std::vector<float> scores = {0, 0, 0, -1.f, -2.f, -2.f, -0.5f, -0.2f, -3.f, -3.f, 0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 3, 4, 4};
  std::string model = "llama";

  GgufWriter writer() const {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("tokenizer.ggml.model", model);
    w.set_string_array("tokenizer.ggml.tokens", tokens);
    w.set_f32_array("tokenizer.ggml.scores", scores);
    w.set_i32_array("tokenizer.ggml.token_type", types);
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    return w;
  }
};

// Parses `w`'s bytes and builds a tokenizer; the GGUF buffer only has to live through from_gguf.
fkv::Result<std::unique_ptr<Tokenizer>> tokenizer_from(const GgufWriter& w) {
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto file = GgufFile::parse(bytes.data(), bytes.size(), "mini.gguf");
  if (!file.ok()) return file.status();
  return Tokenizer::from_gguf(**file);
}

QString load_error(const GgufWriter& w) {
  auto t = tokenizer_from(w);
  return t.ok() ? QString() : QString::fromStdString(t.message());
}

}  // namespace

class TestTokenizer : public QObject {
  Q_OBJECT

 private:
  std::unique_ptr<Tokenizer> llama_;

 private slots:
  void initTestCase() {
    auto file = GgufFile::open(fkvtest::llamaVocabPath().toStdString());
    QVERIFY2(file.ok(), file.message().c_str());
    auto t = Tokenizer::from_gguf(**file);
    QVERIFY2(t.ok(), t.message().c_str());
    llama_ = std::move(*t);
  }

  void llamaVocabularyFacts() {
    QCOMPARE(llama_->n_vocab(), 32000);
    QCOMPARE(llama_->bos_id(), 1);
    QCOMPARE(llama_->eos_id(), 2);
    QCOMPARE(llama_->unk_id(), 0);
    QVERIFY(llama_->add_bos_default());
    QVERIFY(llama_->add_space_prefix());
    QCOMPARE(llama_->find_token("\xE2\x96\x81Hello"), std::optional<int32_t>(15043));
    QCOMPARE(llama_->find_token("no-such-piece"), std::optional<int32_t>());
    QCOMPARE(llama_->token_piece(15043), std::string(" Hello"));
    QCOMPARE(llama_->token_piece(13), std::string("\n"));  // <0x0A>
    QCOMPARE(llama_->token_text(13), std::string_view("<0x0A>"));
    QCOMPARE(llama_->token_type(13), TokenType::Byte);
    QCOMPARE(llama_->token_piece(1), std::string());  // <s> is a control token
    QCOMPARE(llama_->token_piece(-1), std::string());
    QCOMPARE(llama_->token_piece(32000), std::string());
    QVERIFY(llama_->is_eog(2));
    QVERIFY(!llama_->is_eog(1));
    QVERIFY(!llama_->is_eog(15043));
  }

  void llamaParity() {
    const auto cases = read_parity(fkvtest::sharedDir() + "/vocab/llama-spm");
    QVERIFY2(cases.size() >= 40, "the parity files were not found or hold too few cases");
    for (size_t i = 0; i < cases.size(); ++i) {
      const ParityCase& c = cases[i];
      auto ids = llama_->encode(c.text, false, false);
      QVERIFY2(ids.ok(), ids.message().c_str());
      const QByteArray what = QStringLiteral("case %1 '%2': got [%3] expected [%4]")
                                  .arg(i)
                                  .arg(QString::fromStdString(c.text).left(60), ids_str(*ids), ids_str(c.expected))
                                  .toUtf8();
      QVERIFY2(*ids == c.expected, what.constData());
      QVERIFY2(llama_->decode(*ids) == c.text, ("decode of case " + std::to_string(i)).c_str());
    }
  }

  void llamaBosAndEmpty() {
    QCOMPARE(*llama_->encode("", false, false), Ids{});
    QCOMPARE(*llama_->encode("", true, false), Ids{1});
    QCOMPARE(*llama_->encode("Hello world", true, false), (Ids{1, 15043, 3186}));
    QCOMPARE(llama_->decode(Ids{1, 15043, 3186, 2}), std::string("Hello world"));
  }

  void llamaSpecialTokens() {
    // With parse_special the control pieces' text becomes their ids and each text fragment gets the space prefix.
    QCOMPARE(*llama_->encode("<s>Hello</s>", false, true), (Ids{1, 15043, 2}));
    QCOMPARE(*llama_->encode("Hello world</s>", false, true), (Ids{15043, 3186, 2}));
    // Without it, "<s>" is plain text: no control id may appear.
    const Ids plain = *llama_->encode("<s>Hello</s>", false, false);
    QVERIFY(plain.size() > 3);
    for (const int32_t id : plain) QVERIFY(id != 1 && id != 2);
    QCOMPARE(llama_->decode(plain), std::string("<s>Hello</s>"));
  }

  void longTextIsEncodedInExactChunks() {
    // Long inputs are cut before spaces that no piece joins to the character before them. The ids must be those of
    // the uncut text: no extra space prefix at a cut, no merge split by one.
    std::string text;
    Ids expected;
    for (int i = 0; i < 3000; ++i) {
      text += "Hello world ";
      expected.insert(expected.end(), {15043, 3186});  // "▁Hello", "▁world"
    }
    text += "\n\n";
    expected.insert(expected.end(), {29871, 13, 13});  // "▁", "\n", "\n"
    const Ids ids = *llama_->encode(text, false, false);
    QCOMPARE(ids.size(), expected.size());
    QVERIFY(ids == expected);
    QVERIFY(llama_->decode(ids) == text);
  }

  void invalidUtf8IsAnErrorWithOffset() {
    const std::pair<std::string, int> bad[] = {
        {"ab\xC3(", 2},           // lead byte followed by a non-continuation
        {"abc\xC0\xAF", 3},       // overlong '/'
        {"x\xED\xA0\x80", 1},     // UTF-16 surrogate
        {"\xF4\x90\x80\x80", 0},  // above U+10FFFF
        {"ok\x80", 2},            // stray continuation byte
        {"end\xE2\x96", 3},       // truncated at the end
    };
    for (const auto& [text, offset] : bad) {
      auto r = llama_->encode(text, false, false);
      QVERIFY(!r.ok());
      QVERIFY2(QString::fromStdString(r.message()).contains(QStringLiteral("byte offset %1").arg(offset)),
               r.message().c_str());
    }
  }

  void fingerprintIsStableAndSensitive() {
    const std::string fp = llama_->fingerprint();
    QCOMPARE(fp.size(), size_t(32));
    QVERIFY(fp.find_first_not_of("0123456789abcdef") == std::string::npos);
    auto file = GgufFile::open(fkvtest::llamaVocabPath().toStdString());
    QVERIFY(file.ok());
    QCOMPARE((*Tokenizer::from_gguf(**file))->fingerprint(), fp);

    MiniVocab v;
    auto a = tokenizer_from(v.writer());
    QVERIFY2(a.ok(), a.message().c_str());
    v.scores[7] = -0.25f;
    auto b = tokenizer_from(v.writer());
    QVERIFY(b.ok());
    QVERIFY((*a)->fingerprint() != (*b)->fingerprint());
    QVERIFY((*a)->fingerprint() != fp);
  }

  void miniVocabularyEdgeCases() {
    MiniVocab v;
    auto t = tokenizer_from(v.writer());
    QVERIFY2(t.ok(), t.message().c_str());
    const Tokenizer& tok = **t;
    // "▁ab": the pair "ab" (-0.2) outscores "▁a" (-0.5), and "▁ab" is not a piece.
    QCOMPARE(*tok.encode("ab", false, false), (Ids{3, 7}));
    // No byte tokens, so no byte fallback: an unknown character becomes <unk>, shown as U+2047.
    QCOMPARE(*tok.encode("c", false, false), (Ids{3, 0}));
    QCOMPARE(tok.decode(Ids{3, 0}), std::string("\xE2\x81\x87"));
    // The repeated "b" keeps its first id; the repeat and the empty piece are never produced.
    QCOMPARE(tok.find_token("b"), std::optional<int32_t>(5));
    QCOMPARE(*tok.encode("bb", false, false), (Ids{3, 5, 5}));
    // User-defined pieces are whole symbols even without parse_special; control text only with it.
    QCOMPARE(*tok.encode("a[u]", false, false), (Ids{6, 11}));
    QCOMPARE(*tok.encode("a<ctl>b", false, true), (Ids{6, 10, 3, 5}));  // a space prefix after a control piece
    // A user-defined piece stored with plain spaces (as GGUF converters write them) still matches, and both modes
    // agree that no space prefix follows it.
    QCOMPARE(*tok.encode("a  b", false, false), (Ids{6, 12, 5}));
    QCOMPARE(*tok.encode("a  b", false, true), (Ids{6, 12, 5}));
    QCOMPARE(tok.decode(Ids{6, 12, 5}), std::string("a  b"));
    const Ids ctl_as_text = *tok.encode("a<ctl>", false, false);
    QVERIFY(std::find(ctl_as_text.begin(), ctl_as_text.end(), 10) == ctl_as_text.end());
  }

  void endOfGenerationTokens() {
    MiniVocab v;
    v.tokens.insert(v.tokens.end(), {"<|im_end|>", "<end_of_turn>", "<|eot_id|>"});
    v.scores.insert(v.scores.end(), {0, 0, 0});
    v.types.insert(v.types.end(), {4, 3, 1});  // user-defined, control, normal
    auto t = tokenizer_from(v.writer());
    QVERIFY2(t.ok(), t.message().c_str());
    QVERIFY((*t)->is_eog(2));   // EOS
    QVERIFY((*t)->is_eog(13));  // converters sometimes mark added chat tokens user-defined
    QVERIFY((*t)->is_eog(14));
    QVERIFY(!(*t)->is_eog(15));  // a normal piece that happens to read "<|eot_id|>" is text
    QCOMPARE((*t)->eog_ids().size(), size_t(3));
  }

  void unsupportedAndHostileVocabularies() {
    MiniVocab rwkv;
    rwkv.model = "rwkv";
    QVERIFY(load_error(rwkv.writer())
                .contains("tokenizer model 'rwkv' is not supported (supported: llama = SentencePiece, gpt2 = "
                          "byte-level BPE)"));
    // A "gpt2" vocabulary is byte-level BPE and needs its merges (test_bpe_tokenizer covers the rest).
    MiniVocab gpt2;
    gpt2.model = "gpt2";
    QVERIFY(load_error(gpt2.writer()).contains("tokenizer.ggml.merges is missing or empty"));

    GgufWriter no_model;
    no_model.set_string("general.architecture", "llama");
    QVERIFY(load_error(no_model).contains("tokenizer.ggml.model is missing"));

    MiniVocab no_tokens;
    GgufWriter w = no_tokens.writer();
    w.set_string_array("tokenizer.ggml.tokens", {});
    QVERIFY(load_error(w).contains("tokenizer.ggml.tokens is missing or empty"));

    MiniVocab short_scores;
    short_scores.scores.pop_back();
    QVERIFY2(load_error(short_scores.writer()).contains("tokenizer.ggml.scores has 12 entries, expected 13"),
             qPrintable(load_error(short_scores.writer())));

    MiniVocab long_types;
    long_types.types.push_back(1);
    QVERIFY(load_error(long_types.writer()).contains("tokenizer.ggml.token_type has 14 entries, expected 13"));

    MiniVocab bad_type;
    bad_type.types[4] = 9;
    QVERIFY(load_error(bad_type.writer()).contains("tokenizer.ggml.token_type[4] is 9"));

    MiniVocab bad_byte;
    bad_byte.types[4] = 6;  // "a" claims to be a byte token
    QVERIFY(load_error(bad_byte.writer()).contains("token 4 has type byte but its text is 'a'"));

    GgufWriter bad_bos = MiniVocab().writer();
    bad_bos.set_u32("tokenizer.ggml.bos_token_id", 99);
    QVERIFY(
        load_error(bad_bos).contains("tokenizer.ggml.bos_token_id is 99, expected an id below the vocabulary size 13"));

    GgufWriter bad_eos = MiniVocab().writer();
    bad_eos.set_i32("tokenizer.ggml.eos_token_id", -7);
    QVERIFY(load_error(bad_eos).contains("tokenizer.ggml.eos_token_id is -7"));

    GgufWriter wrong_kind = MiniVocab().writer();
    wrong_kind.set_string("tokenizer.ggml.scores", "not an array");
    QVERIFY(!load_error(wrong_kind).isEmpty());

    MiniVocab no_unk;
    no_unk.types[0] = 3;
    GgufWriter no_unk_w = no_unk.writer();
    no_unk_w.set_i32("tokenizer.ggml.unknown_token_id", -1);
    QVERIFY(load_error(no_unk_w).contains("no unknown token"));
  }

  void gemmaVocabulary() {
    const QString path = fkvtest::gemmaModelPath();
    if (path.isEmpty()) QSKIP("Gemma 3 270M GGUF not installed (run the setup script or set FKV_GEMMA_MODEL)");
    auto file = GgufFile::open(path.toStdString());
    QVERIFY2(file.ok(), file.message().c_str());
    auto t = Tokenizer::from_gguf(**file);
    QVERIFY2(t.ok(), t.message().c_str());
    const Tokenizer& g = **t;
    QCOMPARE(g.n_vocab(), 262144);
    QVERIFY(!g.add_space_prefix());
    QCOMPARE(g.bos_id(), 2);
    QCOMPARE(g.eos_id(), 1);
    QCOMPARE(g.find_token("<start_of_turn>"), std::optional<int32_t>(105));
    QCOMPARE(g.find_token("<end_of_turn>"), std::optional<int32_t>(106));
    QVERIFY(g.is_eog(1));
    QVERIFY(g.is_eog(106));
    QVERIFY(!g.is_eog(*g.find_token("</s>")));  // a user-defined HTML tag in Gemma, not an end of turn

    const std::string turn = "<start_of_turn>user\nHello<end_of_turn>\n";
    const Ids ids = *g.encode(turn, true, true);
    // <bos> <start_of_turn> "user" "\n" "Hello" <end_of_turn> "\n"
    QCOMPARE(ids, (Ids{2, 105, 2364, 107, 9259, 106, 107}));
    QCOMPARE(g.decode(ids), std::string("user\nHello\n"));
    // Without parse_special the markers are plain text.
    const Ids plain = *g.encode(turn, false, false);
    QVERIFY(std::find(plain.begin(), plain.end(), 105) == plain.end());
    QCOMPARE(g.decode(plain), turn);

    // Gemma's whitespace runs are user-defined pieces stored with plain spaces ("  " = 138); they must still match
    // (ids checked against an independent implementation of llama.cpp's SPM algorithm).
    QCOMPARE(*g.encode("Hello  world", false, false), (Ids{9259, 138, 12392}));
    QCOMPARE(*g.encode("   spaces   ", false, false), (Ids{139, 35220, 139}));

    const std::string mixed[] = {
        "Hello, world! 🦙🚀 naïve café — 東京は晴れ。 Привет, мир!",
        "int main() {\n    return 0;\t// done\n}\n\n\n",
        "   leading and trailing spaces   ",
        "😶‍🌫️ emoji ZWJ sequence and \U0001F9EA test tube",
        "tabs\t\tand\r\nCRLF and\u00a0nbsp",
        "",
    };
    for (const std::string& text : mixed) {
      auto enc = g.encode(text, false, false);
      QVERIFY2(enc.ok(), enc.message().c_str());
      QCOMPARE(g.decode(*enc), text);
    }
  }

  void utf8StreamerHoldsBackPartialCharacters() {
    fkv::Utf8Streamer s;
    QCOMPARE(s.push("a\xE2"), std::string("a"));  // '€' = E2 82 AC arrives byte by byte
    QCOMPARE(s.n_pending(), size_t(1));
    QCOMPARE(s.push("\x82"), std::string());
    QCOMPARE(s.push("\xAC!"), std::string("\xE2\x82\xAC!"));
    QCOMPARE(s.n_pending(), size_t(0));
    // A byte that can never start or continue a character comes out as U+FFFD at once.
    QCOMPARE(s.push("\xFF"
                    "b"),
             std::string("\xEF\xBF\xBD"
                         "b"));
    // A sequence broken by a new lead byte: the broken part is replaced, the new one is held.
    QCOMPARE(s.push("\xF0\x9F"), std::string());
    QCOMPARE(s.push("\xF0\x9F\xA6\x99"), std::string("\xEF\xBF\xBD\xEF\xBF\xBD\xF0\x9F\xA6\x99"));
    QCOMPARE(s.push("\xE4\xB8"), std::string());
    QCOMPARE(s.flush(), std::string("\xEF\xBF\xBD"));
    QCOMPARE(s.flush(), std::string());
  }

  void utf8StreamerOverLlamaByteTokens() {
    // "🦙" is not a piece of the Llama vocabulary: it is encoded as four byte tokens.
    const Ids ids = *llama_->encode(" this is 🦙.cpp", false, false);
    fkv::Utf8Streamer s;
    std::string streamed;
    for (const int32_t id : ids) {
      const std::string out = s.push(llama_->token_piece(id));
      QVERIFY(!fkv::utf8_first_invalid(out));
      streamed += out;
    }
    streamed += s.flush();
    QCOMPARE(streamed, std::string("  this is 🦙.cpp"));  // token_piece keeps the space prefix; decode drops it
  }
};

QTEST_APPLESS_MAIN(TestTokenizer)
#include "test_tokenizer.moc"
