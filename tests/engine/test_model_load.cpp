// Loading a model (runtime/model.h, model/config.h) and the errors of a run context (runtime/context.h).
// A valid synthetic GGUF is written once per architecture; each broken file is that one re-written with exactly one
// change (a dropped tensor, a wrong shape or type, an absurd dimension, a foreign architecture, a short vocabulary, a
// cut-off file). Every load must fail with a message naming what was expected and what was found, and never crash.
#include <QFile>
#include <QTest>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "core/mmap_file.h"
#include "model/gguf_writer.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/context.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"

using fkv::Arch;
using fkv::DType;
using fkv::GgufWriter;

namespace {

constexpr int kVocab = 300;

// A small SentencePiece vocabulary (unknown, BOS, EOS, the 256 byte tokens and plain words), so models stay tiny.
QString tinyVocabPath() {
  const QString path = fkvtest::tempDir() + "/load-vocab.gguf";
  if (QFile::exists(path)) return path;
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};  // unknown, control, control
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(QString::asprintf("<0x%02X>", b).toStdString());
    types.push_back(6);  // byte
  }
  while (static_cast<int>(tokens.size()) < kVocab) {
    tokens.push_back("\xE2\x96\x81w" + std::to_string(tokens.size()));
    types.push_back(1);  // normal
  }
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", std::vector<float>(tokens.size(), 0.f));
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  return w.write(path.toStdString()).ok() ? path : QString();
}

// The valid base file of an architecture: 2 layers (6 for gemma3), n_embd 64, 4 heads of 16, 2 KV heads, n_ff 128.
QString basePath(Arch arch, bool llama3_rope = false) {
  const QString path =
      fkvtest::tempDir() + QString("/base-%1%2.gguf").arg(fkv::arch_name(arch)).arg(llama3_rope ? "-l3" : "");
  if (QFile::exists(path)) return path;
  fkv::SyntheticModelSpec s;
  s.arch = arch;
  s.vocab_path = tinyVocabPath().toStdString();
  s.llama3_rope = llama3_rope;
  if (arch == Arch::Gemma3) {
    s.n_layers = 6;
    s.sliding_window = 4;
    s.tied_embeddings = true;
  }
  const fkv::Status st = fkv::write_synthetic_model(s, path.toStdString());
  return st.ok() ? path : QString();
}

// One change to a file: keys and tensors to leave out, then anything to add (set_* of an existing key replaces it).
struct Edit {
  std::set<std::string> drop_keys;
  std::set<std::string> drop_tensors;
  std::function<void(GgufWriter&, const fkv::GgufFile&)> add;
};

// Copies `base` into `name` with `edit` applied; empty on a failure (described in *error).
QString rewrite(const QString& base, const QString& name, const Edit& edit, QString* error) {
  auto f = fkv::GgufFile::open(base.toStdString());
  if (!f.ok()) {
    *error = QString::fromStdString(f.message());
    return {};
  }
  GgufWriter w;
  for (const auto& [key, value] : (*f)->metadata())
    if (!edit.drop_keys.contains(key)) w.copy_value(key, value);
  for (const fkv::GgufTensor& t : (*f)->tensors())
    if (!edit.drop_tensors.contains(t.name))
      w.add_tensor(t.name, t.dims, t.type, std::vector<uint8_t>(t.data, t.data + t.n_bytes));
  if (edit.add) edit.add(w, **f);
  const QString path = fkvtest::tempDir() + "/" + name;
  const fkv::Status s = w.write(path.toStdString());
  if (!s.ok()) {
    *error = QString::fromStdString(s.message());
    return {};
  }
  return path;
}

// Replaces tensor `name` by zeros of `dims` in `type` (F32 or F16).
Edit replace_tensor(const std::string& name, std::vector<int64_t> dims, DType type) {
  Edit e;
  e.drop_tensors = {name};
  e.add = [name, dims, type](GgufWriter& w, const fkv::GgufFile&) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    w.add_tensor(name, dims, type, std::vector<uint8_t>(static_cast<size_t>(n) * (type == DType::F32 ? 4 : 2), 0));
  };
  return e;
}

Edit set_u64(const std::string& key, uint64_t v) {
  Edit e;
  e.add = [key, v](GgufWriter& w, const fkv::GgufFile&) { w.set_u64(key, v); };
  return e;
}

// The tokenizer arrays cut to their first n entries, so the vocabulary no longer matches token_embd.
Edit short_vocabulary(size_t n) {
  Edit e;
  e.add = [n](GgufWriter& w, const fkv::GgufFile& f) {
    const auto toks = f.get_string_array("tokenizer.ggml.tokens");
    const auto scores = f.get_f32_array("tokenizer.ggml.scores");
    const auto types = f.get_int_array("tokenizer.ggml.token_type");
    if (!toks.ok() || !*toks || !scores.ok() || !*scores || !types.ok() || !*types) return;
    w.set_string_array("tokenizer.ggml.tokens",
                       std::vector<std::string>((*toks)->begin(), (*toks)->begin() + static_cast<ptrdiff_t>(n)));
    w.set_f32_array("tokenizer.ggml.scores",
                    std::vector<float>((*scores)->begin(), (*scores)->begin() + static_cast<ptrdiff_t>(n)));
    w.set_i32_array("tokenizer.ggml.token_type",
                    std::vector<int32_t>((*types)->begin(), (*types)->begin() + static_cast<ptrdiff_t>(n)));
  };
  return e;
}

struct BrokenCase {
  const char* name;
  Arch arch;
  bool llama3_rope;
  Edit edit;
  std::vector<QString> needles;  // each must appear in the error message
};

const std::vector<BrokenCase>& broken_cases() {
  static const std::vector<BrokenCase> cases = [] {
    std::vector<BrokenCase> c;
    auto add = [&c](const char* name, Edit e, std::vector<QString> needles, Arch arch = Arch::Llama, bool l3 = false) {
      c.push_back({name, arch, l3, std::move(e), std::move(needles)});
    };
    Edit drop_up;
    drop_up.drop_tensors = {"blk.1.ffn_up.weight"};
    add("missing tensor", drop_up, {"missing tensor", "'blk.1.ffn_up.weight'"});
    add("wrong matrix shape", replace_tensor("blk.0.attn_k.weight", {64, 24}, DType::F32),
        {"'blk.0.attn_k.weight'", "{64, 24}", "expected {64, 32}"});
    add("3-d matrix", replace_tensor("blk.1.ffn_down.weight", {128, 64, 1}, DType::F32),
        {"'blk.1.ffn_down.weight'", "{128, 64, 1}", "expected {128, 64}"});
    add("token_embd rows vs output", replace_tensor("output.weight", {64, 299}, DType::F32),
        {"'output.weight'", "{64, 299}", "expected {64, 300}"});
    add("norm weight F16", replace_tensor("blk.1.ffn_norm.weight", {64}, DType::F16),
        {"'blk.1.ffn_norm.weight'", "F16", "expected F32"});
    add("norm length", replace_tensor("output_norm.weight", {63}, DType::F32),
        {"'output_norm.weight'", "{63}", "expected {64}"});
    Edit phi3;
    phi3.add = [](GgufWriter& w, const fkv::GgufFile&) { w.set_string("general.architecture", "phi3"); };
    add("architecture phi3", phi3, {"unsupported architecture 'phi3'", "llama"});
    Edit no_arch;
    no_arch.drop_keys = {"general.architecture"};
    add("no architecture", no_arch, {"general.architecture"});
    Edit no_blocks;
    no_blocks.drop_keys = {"llama.block_count"};
    add("no block count", no_blocks, {"missing", "llama.block_count"});
    add("embedding_length 2^40", set_u64("llama.embedding_length", uint64_t{1} << 40),
        {"llama.embedding_length", "1099511627776", "out of range"});
    add("head_count 0", set_u64("llama.attention.head_count", 0),
        {"llama.attention.head_count", "= 0", "out of range"});
    add("kv heads do not divide heads", set_u64("llama.attention.head_count_kv", 3), {"(4)", "multiple", "(3)"});
    // Without key_length the head width is embedding_length / head_count = 10, which the query matrix contradicts.
    Edit heads6 = set_u64("llama.attention.head_count", 6);
    heads6.drop_keys = {"llama.attention.key_length", "llama.attention.value_length"};
    add("head_count does not divide embedding", heads6, {"'blk.0.attn_q.weight'", "{64, 64}", "expected {64, 60}"});
    Edit odd;
    odd.add = [](GgufWriter& w, const fkv::GgufFile&) {
      w.set_u32("llama.attention.key_length", 15);
      w.set_u32("llama.attention.value_length", 15);
    };
    add("odd head dim", odd, {"even", "15"});
    add("key and value widths differ", set_u64("llama.attention.value_length", 8), {"key length 16", "value length 8"});
    // 2^20 heads of 2^20 channels each pass every per-key bound, but their product overflows an int.
    Edit wide;
    wide.add = [](GgufWriter& w, const fkv::GgufFile&) {
      for (const char* k : {"llama.attention.head_count", "llama.attention.head_count_kv", "llama.attention.key_length",
                            "llama.attention.value_length"})
        w.set_u32(k, 1u << 20);
    };
    add("heads times head dim overflows", wide, {"1099511627776"});
    Edit longrope;
    longrope.add = [](GgufWriter& w, const fkv::GgufFile&) { w.set_string("llama.rope.scaling.type", "longrope"); };
    add("rope scaling longrope", longrope, {"'longrope'", "llama3", "yarn"});
    Edit yarn;
    yarn.add = [](GgufWriter& w, const fkv::GgufFile&) { w.set_string("llama.rope.scaling.type", "yarn"); };
    add("rope scaling yarn without factor", yarn, {"'yarn'", "'llama.rope.scaling.factor'"});
    add("vocabulary shorter than token_embd", short_vocabulary(299), {"299", "300", "token_embd.weight"});
    Edit no_tokenizer;
    no_tokenizer.drop_keys = {"tokenizer.ggml.model"};
    add("no tokenizer", no_tokenizer, {"tokenizer.ggml.model is missing"});
    Edit no_bias;
    no_bias.drop_tensors = {"blk.1.attn_v.bias"};
    add("qwen2 without a bias", no_bias, {"missing tensor", "'blk.1.attn_v.bias'"}, Arch::Qwen2);
    Edit no_knorm;
    no_knorm.drop_tensors = {"blk.3.attn_k_norm.weight"};
    add("gemma3 without k norm", no_knorm, {"missing tensor", "'blk.3.attn_k_norm.weight'"}, Arch::Gemma3);
    add("gemma3 q norm length", replace_tensor("blk.0.attn_q_norm.weight", {64}, DType::F32),
        {"'blk.0.attn_q_norm.weight'", "{64}", "expected {16}"}, Arch::Gemma3);
    add("llama3 rope_freqs length", replace_tensor("rope_freqs.weight", {7}, DType::F32),
        {"'rope_freqs.weight'", "{7}", "expected {8}"}, Arch::Llama, true);
    return c;
  }();
  return cases;
}

QString loadError(const QString& path, fkv::FileBacking backing = fkv::FileBacking::Map) {
  auto m = fkv::Model::load(path.toStdString(), {}, backing);
  return m.ok() ? QString() : QString::fromStdString(m.message());
}

std::unique_ptr<fkv::Model> loadOrNull(const QString& path, QString* error) {
  auto m = fkv::Model::load(path.toStdString());
  if (!m.ok()) {
    *error = QString::fromStdString(m.message());
    return nullptr;
  }
  return std::move(m).value();
}

fkv::ContextParams smallParams() {
  fkv::ContextParams p;
  p.n_ctx = 10;
  p.page_size = 4;
  p.n_batch = 4;
  p.n_threads = 2;
  p.kv_type = DType::F32;
  return p;
}

}  // namespace

class TestModelLoad : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() {
    QVERIFY2(!tinyVocabPath().isEmpty(), "cannot write the test vocabulary");
    for (Arch a : {Arch::Llama, Arch::Qwen2, Arch::Gemma3})
      QVERIFY2(!basePath(a).isEmpty(), qPrintable(QString("cannot write the %1 base model").arg(fkv::arch_name(a))));
    QVERIFY2(!basePath(Arch::Llama, true).isEmpty(), "cannot write the llama3-rope base model");
  }

  void baseModelsLoad() {
    for (Arch a : {Arch::Llama, Arch::Qwen2, Arch::Gemma3}) {
      QString error;
      const auto m = loadOrNull(basePath(a), &error);
      QVERIFY2(m != nullptr, qPrintable(QString("%1: %2").arg(fkv::arch_name(a), error)));
      const fkv::ModelConfig& c = m->config();
      QVERIFY2(c.arch == a && c.n_embd == 64 && c.n_heads == 4 && c.n_kv_heads == 2 && c.head_dim == 16 &&
                   c.n_ff == 128 && c.n_vocab == kVocab,
               qPrintable(QString("%1: unexpected dimensions").arg(fkv::arch_name(a))));
      QCOMPARE(m->tokenizer().n_vocab(), kVocab);
      QCOMPARE(static_cast<int>(m->weights().layers.size()), c.n_layers);
    }
  }

  // Gemma 3 27B (62 layers, n_embd 5376, 32 heads of 128) scales attention by 1/sqrt(n_embd / n_heads), other gemma3
  // sizes by 1/sqrt(head_dim); a shape where the two differ (n_embd / n_heads 32, head_dim 16) tells them apart, and
  // config.attn_scale is what both backends' attention reads.
  void gemma3_27bScalesByEmbdPerHead() {
    for (int n_layers : {62, 48}) {
      fkv::SyntheticModelSpec s;
      s.arch = Arch::Gemma3;
      s.vocab_path = tinyVocabPath().toStdString();
      s.n_layers = n_layers;
      s.n_heads = 2;
      s.n_kv_heads = 1;
      s.head_dim = 16;
      s.n_ff = 32;
      s.tied_embeddings = true;
      const QString path = fkvtest::tempDir() + QString("/gemma3-%1-layers.gguf").arg(n_layers);
      QVERIFY(fkv::write_synthetic_model(s, path.toStdString()).ok());
      QString error;
      const auto m = loadOrNull(path, &error);
      QVERIFY2(m != nullptr, qPrintable(error));
      const float want = 1.f / std::sqrt(n_layers == 62 ? 32.f : 16.f);
      QVERIFY2(m->config().attn_scale == want,
               qPrintable(QString("%1 layers: scale %2, want %3").arg(n_layers).arg(m->config().attn_scale).arg(want)));
    }
  }

  void bindsShapesAndCountsBytes() {
    QString error;
    const auto m = loadOrNull(basePath(Arch::Llama), &error);
    QVERIFY2(m != nullptr, qPrintable(error));
    const fkv::ModelWeights& w = m->weights();
    QVERIFY2(w.tok_embd.n_rows == kVocab && w.tok_embd.n_cols == 64, "token_embd binds as (n_vocab, n_embd)");
    QVERIFY2(w.output.data != w.tok_embd.data, "the base llama file has its own output.weight");
    const fkv::LayerWeights& l = w.layers[1];
    QVERIFY2(l.wq.n_rows == 64 && l.wk.n_rows == 32 && l.wv.n_rows == 32 && l.wo.n_cols == 64, "attention matrices");
    QVERIFY2(l.w_gate.n_rows == 128 && l.w_down.n_rows == 64 && l.w_down.n_cols == 128, "feed-forward matrices");
    QVERIFY2(l.bq == nullptr && l.q_norm == nullptr && l.post_attn_norm == nullptr,
             "llama has no biases or extra norms");
    // Every matrix once, F32: output (300 x 64) + 2 layers of (64 + 32 + 32 + 64 + 128 + 128 + 128) x 64.
    const size_t want = (size_t{300} * 64 + 2 * size_t{576} * 64) * 4;
    QCOMPARE(m->weight_bytes(), want);
  }

  void rewriteWithoutChangeLoads() {
    QString error;
    const QString path = rewrite(basePath(Arch::Llama), "same.gguf", Edit{}, &error);
    QVERIFY2(!path.isEmpty(), qPrintable(error));
    const QString e = loadError(path);
    QVERIFY2(e.isEmpty(), qPrintable("an unchanged copy of the base file fails to load: " + e));
  }

  void missingOutputMeansTied() {
    Edit e;
    e.drop_tensors = {"output.weight"};
    QString error;
    const QString path = rewrite(basePath(Arch::Llama), "tied.gguf", e, &error);
    QVERIFY2(!path.isEmpty(), qPrintable(error));
    const auto m = loadOrNull(path, &error);
    QVERIFY2(m != nullptr, qPrintable(error));
    QVERIFY2(m->config().tied_output && m->weights().output.data == m->weights().tok_embd.data,
             "without output.weight the output projection is the token embedding");
  }

  void brokenFilesFail_data() {
    QTest::addColumn<int>("index");
    for (size_t i = 0; i < broken_cases().size(); ++i)
      QTest::addRow("%s", broken_cases()[i].name) << static_cast<int>(i);
  }
  void brokenFilesFail() {
    QFETCH(int, index);
    const BrokenCase& bc = broken_cases()[static_cast<size_t>(index)];
    QString error;
    const QString path =
        rewrite(basePath(bc.arch, bc.llama3_rope), QString("broken-%1.gguf").arg(index), bc.edit, &error);
    QVERIFY2(!path.isEmpty(), qPrintable("cannot write the broken file: " + error));
    const QString msg = loadError(path);
    QVERIFY2(!msg.isEmpty(), "the broken file loaded");
    for (const QString& n : bc.needles)
      QVERIFY2(msg.contains(n), qPrintable(QString("message '%1' does not contain '%2'").arg(msg, n)));
    QVERIFY2(msg.count(path) == 1, qPrintable(QString("message '%1' names the file %2 times, expected once")
                                                  .arg(msg)
                                                  .arg(msg.count(path))));
  }

  // The huge-page copy is read on several threads in parts; a file of a few parts with a ragged end, holding a
  // pattern that differs at every offset, must come back byte for byte as the mapping shows it.
  void copyHoldsTheFileBytes() {
    const size_t n = (size_t{64} << 20) * 3 + 12345;
    const QString path = fkvtest::tempDir() + "/pattern.bin";
    {
      std::vector<uint32_t> words((n + 3) / 4);
      uint32_t x = 2463534242u;
      for (uint32_t& w : words) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        w = x;
      }
      QFile out(path);
      QVERIFY(out.open(QIODevice::WriteOnly));
      QCOMPARE(out.write(reinterpret_cast<const char*>(words.data()), static_cast<qint64>(n)), static_cast<qint64>(n));
    }
    auto mapped = fkv::MappedFile::open(path.toStdString(), fkv::FileBacking::Map);
    auto copied = fkv::MappedFile::open(path.toStdString(), fkv::FileBacking::HugePages);
    QVERIFY2(mapped.ok() && copied.ok(), qPrintable(QString::fromStdString(copied.message())));
    QVERIFY(!mapped->copied() && copied->copied());
    QCOMPARE(copied->size(), n);
    QVERIFY2(reinterpret_cast<uintptr_t>(copied->data()) % (size_t{2} << 20) == 0, "the copy starts on a huge page");
    QVERIFY2(std::memcmp(mapped->data(), copied->data(), n) == 0, "the copy differs from the file");
    QFile::remove(path);
    const QString empty = fkvtest::tempDir() + "/empty.bin";
    QFile e(empty);
    QVERIFY(e.open(QIODevice::WriteOnly));
    e.close();
    auto none = fkv::MappedFile::open(empty.toStdString(), fkv::FileBacking::HugePages);
    QVERIFY(none.ok() && none->size() == 0 && none->data() == nullptr);
    auto missing = fkv::MappedFile::open((fkvtest::tempDir() + "/missing.bin").toStdString(), fkv::FileBacking::HugePages);
    QVERIFY(!missing.ok() && missing.message().find("missing.bin") != std::string::npos);
  }

  // A model held as the copy computes exactly what the mapped one does.
  void copiedWeightsGiveTheSameLogits() {
    std::vector<float> logits[2];
    for (fkv::FileBacking b : {fkv::FileBacking::Map, fkv::FileBacking::HugePages}) {
      auto m = fkv::Model::load(basePath(Arch::Qwen2).toStdString(), {}, b);
      QVERIFY2(m.ok(), qPrintable(QString::fromStdString(m.message())));
      QCOMPARE((*m)->weights_copied(), b == fkv::FileBacking::HugePages);
      auto ctx = fkv::Context::create(**m, smallParams());
      QVERIFY2(ctx.ok(), qPrintable(QString::fromStdString(ctx.message())));
      std::vector<float>& out = logits[b == fkv::FileBacking::Map ? 0 : 1];
      out.resize(static_cast<size_t>(kVocab));
      const int32_t tokens[] = {1, 17, 42, 99, 5};
      QVERIFY((*ctx)->eval(tokens, fkv::LogitsMode::Last, out).ok());
    }
    QVERIFY2(logits[0] == logits[1], "the copied weights changed the logits");
  }

  void truncatedFilesFail() {
    QFile in(basePath(Arch::Llama));
    QVERIFY2(in.open(QIODevice::ReadOnly), "cannot read the base file");
    const QByteArray all = in.readAll();
    const qsizetype cuts[] = {0, 3, 4, 20, 100, 1000, all.size() / 2, all.size() - 4096, all.size() - 1};
    for (qsizetype cut : cuts) {
      const QString path = fkvtest::tempDir() + QString("/cut-%1.gguf").arg(cut);
      QFile out(path);
      QVERIFY2(out.open(QIODevice::WriteOnly) && out.write(all.left(cut)) == cut, "cannot write the truncated file");
      out.close();
      for (fkv::FileBacking b : {fkv::FileBacking::Map, fkv::FileBacking::HugePages}) {
        const QString msg = loadError(path, b);
        QVERIFY2(!msg.isEmpty(), qPrintable(QString("a file cut to %1 of %2 bytes loaded").arg(cut).arg(all.size())));
        QVERIFY2(msg.count(path) == 1, qPrintable(QString("message '%1' does not name the file once").arg(msg)));
      }
    }
    QVERIFY2(!loadError(fkvtest::tempDir() + "/does-not-exist.gguf").isEmpty(), "a missing file loaded");
  }

  void contextParamsValidate_data() {
    QTest::addColumn<QString>("field");
    QTest::addColumn<int>("value");
    QTest::addColumn<QString>("needle");
    QTest::addRow("n_ctx 0") << "n_ctx" << 0 << "context size";
    QTest::addRow("n_ctx 2^24+1") << "n_ctx" << (1 << 24) + 1 << "16777217";
    QTest::addRow("page_size 0") << "page_size" << 0 << "page size";
    QTest::addRow("page_size 5000") << "page_size" << 5000 << "5000";
    QTest::addRow("n_batch 0") << "n_batch" << 0 << "batch";
    QTest::addRow("n_threads -1") << "n_threads" << -1 << "thread";
    QTest::addRow("kv_type Q8_0") << "kv_type" << static_cast<int>(DType::Q8_0) << "Q8_0";
  }
  void contextParamsValidate() {
    QFETCH(QString, field);
    QFETCH(int, value);
    QFETCH(QString, needle);
    QVERIFY2(fkv::ContextParams().validate().ok(), "the default parameters must be valid");
    fkv::ContextParams p;
    if (field == "n_ctx") p.n_ctx = value;
    if (field == "page_size") p.page_size = value;
    if (field == "n_batch") p.n_batch = value;
    if (field == "n_threads") p.n_threads = value;
    if (field == "kv_type") p.kv_type = static_cast<DType>(value);
    const fkv::Status s = p.validate();
    const QString msg = QString::fromStdString(s.message());
    QVERIFY2(!s.ok(), "invalid parameters were accepted");
    QVERIFY2(msg.contains(needle) && (field == "kv_type" || msg.contains(QString::number(value))),
             qPrintable(QString("message '%1' should contain '%2' and the value %3").arg(msg, needle).arg(value)));

    QString error;
    const auto m = loadOrNull(basePath(Arch::Llama), &error);
    QVERIFY2(m != nullptr, qPrintable(error));
    auto ctx = fkv::Context::create(*m, p);
    QVERIFY2(!ctx.ok() && ctx.message() == s.message(), "Context::create must refuse what validate() refuses");
  }

  void evalErrorsLeaveStateUnchanged() {
    QString error;
    const auto m = loadOrNull(basePath(Arch::Llama), &error);
    QVERIFY2(m != nullptr, qPrintable(error));
    auto made = fkv::Context::create(*m, smallParams());
    QVERIFY2(made.ok(), made.message().c_str());
    fkv::Context& ctx = **made;
    std::vector<float> logits(kVocab * 10);  // (10, n_vocab)
    const std::vector<int32_t> five = {1, 10, 20, 30, 40};
    QVERIFY2(ctx.eval(five, fkv::LogitsMode::Last, logits).ok(), "evaluating 5 valid tokens failed");
    QCOMPARE(ctx.n_past(), 5);

    struct Bad {
      const char* what;
      std::vector<int32_t> tokens;
      fkv::LogitsMode mode;
      size_t n_logits;
      QString needle;
    };
    const Bad bad[] = {
        {"empty token list", {}, fkv::LogitsMode::Last, kVocab, "empty"},
        {"negative id", {5, -1}, fkv::LogitsMode::Last, kVocab, "-1"},
        {"id == n_vocab", {kVocab}, fkv::LogitsMode::Last, kVocab, "300"},
        {"overflow past n_ctx", {1, 2, 3, 4, 5, 6}, fkv::LogitsMode::Last, kVocab, "overflow"},
        {"logits too small (last)", {7}, fkv::LogitsMode::Last, kVocab - 1, "299"},
        {"logits too small (all)", {7, 8}, fkv::LogitsMode::All, 2 * kVocab - 1, "600"},
    };
    for (const Bad& b : bad) {
      const fkv::Status s = ctx.eval(b.tokens, b.mode, std::span<float>(logits.data(), b.n_logits));
      const QString msg = QString::fromStdString(s.message());
      QVERIFY2(!s.ok(), qPrintable(QString("%1: accepted").arg(b.what)));
      QVERIFY2(msg.contains(b.needle), qPrintable(QString("%1: message '%2' lacks '%3'").arg(b.what, msg, b.needle)));
      QVERIFY2(ctx.n_past() == 5, qPrintable(QString("%1: n_past moved to %2").arg(b.what).arg(ctx.n_past())));
    }

    // After the failures, the next token's logits equal those of a context that never saw them.
    auto clean = fkv::Context::create(*m, smallParams());
    QVERIFY2(clean.ok(), clean.message().c_str());
    std::vector<float> want(kVocab), got(kVocab);
    QVERIFY2((*clean)->eval(five, fkv::LogitsMode::Last, logits).ok(), "clean context: prefill failed");
    QVERIFY2((*clean)->eval(std::vector<int32_t>{7}, fkv::LogitsMode::Last, want).ok(), "clean context: decode failed");
    QVERIFY2(ctx.eval(std::vector<int32_t>{7}, fkv::LogitsMode::Last, got).ok(), "decode after failed calls failed");
    QVERIFY2(got == want, "a failed eval changed the cache: the next logits differ from a clean run");

    // Filling the context exactly is fine; one more token is not.
    QVERIFY2(ctx.eval(std::vector<int32_t>{1, 2, 3, 4}, fkv::LogitsMode::Last, logits).ok(), "filling to n_ctx failed");
    QCOMPARE(ctx.n_past(), 10);
    QVERIFY2(!ctx.eval(std::vector<int32_t>{1}, fkv::LogitsMode::Last, logits).ok(),
             "eval past a full context succeeded");
    QCOMPARE(ctx.n_past(), 10);
    ctx.reset();
    QVERIFY2(ctx.n_past() == 0 && ctx.eval(std::vector<int32_t>{1}, fkv::LogitsMode::Last, logits).ok(),
             "after reset() a token evaluates from position 0");
  }
};

QTEST_APPLESS_MAIN(TestModelLoad)
#include "test_model_load.moc"
