// The synthetic-model writer: every architecture and weight type reads back (GgufFile, ModelConfig) with the metadata and
// tensors llama.cpp's naming implies, values follow the documented distributions, output is deterministic per seed,
// and bad specs fail with a message naming the problem and leave no file behind.
#include <QFile>
#include <QtTest>

#include <cmath>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include "backend/cpu/quant.h"
#include "core/gguf.h"
#include "model/config.h"
#include "model/gguf_writer.h"
#include "model/synthetic.h"
#include "support/test_paths.h"

using fkv::Arch;
using fkv::DType;
using fkv::GgufFile;
using fkv::SyntheticModelSpec;

Q_DECLARE_METATYPE(fkv::Arch)
Q_DECLARE_METATYPE(fkv::DType)

namespace {

constexpr int kTinyVocab = 300;

// A small vocabulary GGUF (byte tokens plus a few words and chatml markers) so that models with 256-wide rows and
// every weight type stay fast to write; the real 32000-token vocabulary is covered separately.
QString tinyVocabPath(bool chatml) {
  const QString path = fkvtest::tempDir() + (chatml ? "/tiny-chatml-vocab.gguf" : "/tiny-vocab.gguf");
  if (QFile::exists(path)) return path;
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  if (chatml) tokens.insert(tokens.end(), {"<|im_start|>", "<|im_end|>"});
  for (int b = 0; b < 256; ++b) tokens.push_back(QString::asprintf("<0x%02X>", b).toStdString());
  while (static_cast<int>(tokens.size()) < kTinyVocab) tokens.push_back("\xE2\x96\x81w" + std::to_string(tokens.size()));
  fkv::GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", std::vector<float>(tokens.size(), 0.f));
  w.set_i32_array("tokenizer.ggml.token_type", std::vector<int32_t>(tokens.size(), 1));
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  const fkv::Status s = w.write(path.toStdString());
  return s.ok() ? path : QString();
}

SyntheticModelSpec tinySpec(Arch arch, DType type) {
  SyntheticModelSpec s;
  s.arch = arch;
  s.weight_type = type;
  s.vocab_path = tinyVocabPath(false).toStdString();
  const bool k_quant = type == DType::Q4_K || type == DType::Q5_K || type == DType::Q6_K;
  s.n_embd = k_quant ? 256 : 64;
  s.n_ff = k_quant ? 256 : 128;
  if (arch == Arch::Gemma3) {
    s.n_layers = 6;
    s.sliding_window = 4;
    s.tied_embeddings = true;
  }
  return s;
}

QString writeOrFail(const SyntheticModelSpec& spec, const QString& name, QString* error) {
  const QString path = fkvtest::tempDir() + "/" + name;
  const fkv::Status s = fkv::write_synthetic_model(spec, path.toStdString());
  if (!s.ok()) *error = QString::fromStdString(s.message());
  return path;
}

QByteArray readAll(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

// Decodes a tensor to floats with the reference decoder.
std::vector<float> decode(const fkv::GgufTensor& t) {
  const int64_t n_cols = t.dims[0];
  const int64_t n_rows = t.n_elements() / n_cols;
  std::vector<float> out(static_cast<size_t>(t.n_elements()));  // (n_rows, n_cols)
  for (int64_t r = 0; r < n_rows; ++r) {
    fkv::cpu::ref::dequantize_row(t.type, t.data + static_cast<size_t>(r) * fkv::row_bytes(t.type, n_cols),
                                  out.data() + r * n_cols, n_cols);
  }
  return out;
}

void meanStd(const std::vector<float>& v, double* mean, double* std_dev) {
  double s = 0, ss = 0;
  for (float x : v) s += x;
  *mean = s / static_cast<double>(v.size());
  for (float x : v) ss += (x - *mean) * (x - *mean);
  *std_dev = std::sqrt(ss / static_cast<double>(v.size()));
}

int64_t uintKey(const GgufFile& f, const std::string& key) {
  auto r = f.get_uint(key);
  return r.ok() && r->has_value() ? static_cast<int64_t>(**r) : -1;
}

}  // namespace

class TestSynthetic : public QObject {
  Q_OBJECT

 private slots:
  void everyArchAndType_data();
  void everyArchAndType();
  void valueDistributions();
  void realVocabularyAndTemplate();
  void chatmlTemplateFollowsVocabulary();
  void llama3Rope();
  void gemmaLayerKinds();
  void deterministicPerSeed();
  void specErrors_data();
  void specErrors();
};

void TestSynthetic::everyArchAndType_data() {
  QTest::addColumn<Arch>("arch");
  QTest::addColumn<DType>("type");
  const std::pair<const char*, Arch> archs[] = {{"llama", Arch::Llama}, {"qwen2", Arch::Qwen2}, {"gemma3", Arch::Gemma3}};
  const DType types[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0,
                         DType::Q4_K, DType::Q5_K, DType::Q6_K};
  for (const auto& [name, arch] : archs) {
    for (DType t : types) QTest::newRow((std::string(name) + "/" + fkv::dtype_name(t)).c_str()) << arch << t;
  }
}

void TestSynthetic::everyArchAndType() {
  QFETCH(Arch, arch);
  QFETCH(DType, type);
  const SyntheticModelSpec spec = tinySpec(arch, type);
  QString error;
  const QString path = writeOrFail(spec, QString("m-%1-%2.gguf").arg(QLatin1String(fkv::arch_name(arch)), QLatin1String(fkv::dtype_name(type))), &error);
  QVERIFY2(error.isEmpty(), qPrintable(error));

  auto file = GgufFile::open(path.toStdString());
  QVERIFY2(file.ok(), file.message().c_str());
  const GgufFile& f = **file;
  auto config = fkv::ModelConfig::from_gguf(f);
  QVERIFY2(config.ok(), config.message().c_str());
  QCOMPARE(config->arch, arch);
  QCOMPARE(config->name, std::string("synthetic"));
  QCOMPARE(config->n_layers, spec.n_layers);
  QCOMPARE(config->n_embd, spec.n_embd);
  QCOMPARE(config->n_heads, spec.n_heads);
  QCOMPARE(config->n_kv_heads, spec.n_kv_heads);
  QCOMPARE(config->head_dim, spec.n_embd / spec.n_heads);
  QCOMPARE(config->n_ff, spec.n_ff);
  QCOMPARE(config->n_vocab, kTinyVocab);
  QCOMPARE(config->n_ctx_train, spec.n_ctx);
  QCOMPARE(config->norm_eps, arch == Arch::Gemma3 ? 1e-6f : 1e-5f);
  QCOMPARE(config->tied_output, spec.tied_embeddings);

  const int64_t head_dim = spec.n_embd / spec.n_heads;
  const int64_t n_q = spec.n_heads * head_dim, n_kv = spec.n_kv_heads * head_dim;
  struct Expect { std::string name; std::vector<int64_t> dims; bool matrix; };
  std::vector<Expect> expect = {{"token_embd.weight", {spec.n_embd, kTinyVocab}, true},
                                {"output_norm.weight", {spec.n_embd}, false},
                                {"blk.1.attn_q.weight", {spec.n_embd, n_q}, true},
                                {"blk.1.attn_k.weight", {spec.n_embd, n_kv}, true},
                                {"blk.1.attn_v.weight", {spec.n_embd, n_kv}, true},
                                {"blk.1.attn_output.weight", {n_q, spec.n_embd}, true},
                                {"blk.1.ffn_gate.weight", {spec.n_embd, spec.n_ff}, true},
                                {"blk.1.ffn_up.weight", {spec.n_embd, spec.n_ff}, true},
                                {"blk.1.ffn_down.weight", {spec.n_ff, spec.n_embd}, true},
                                {"blk.1.attn_norm.weight", {spec.n_embd}, false},
                                {"blk.1.ffn_norm.weight", {spec.n_embd}, false}};
  if (arch == Arch::Qwen2) {
    expect.push_back({"blk.1.attn_q.bias", {n_q}, false});
    expect.push_back({"blk.1.attn_k.bias", {n_kv}, false});
    expect.push_back({"blk.1.attn_v.bias", {n_kv}, false});
  }
  if (arch == Arch::Gemma3) {
    expect.push_back({"blk.1.attn_q_norm.weight", {head_dim}, false});
    expect.push_back({"blk.1.attn_k_norm.weight", {head_dim}, false});
    expect.push_back({"blk.1.post_attention_norm.weight", {spec.n_embd}, false});
    expect.push_back({"blk.1.post_ffw_norm.weight", {spec.n_embd}, false});
  } else {
    expect.push_back({"output.weight", {spec.n_embd, kTinyVocab}, true});
  }
  for (const Expect& e : expect) {
    const fkv::GgufTensor* t = f.find_tensor(e.name);
    QVERIFY2(t != nullptr, e.name.c_str());
    QCOMPARE(t->dims, e.dims);
    QCOMPARE(t->type, e.matrix ? type : DType::F32);
  }
  const size_t per_layer = arch == Arch::Llama ? 9 : arch == Arch::Qwen2 ? 12 : 13;
  const size_t top = arch == Arch::Gemma3 ? 2 : 3;
  QCOMPARE(f.tensors().size(), top + per_layer * static_cast<size_t>(spec.n_layers));
  QCOMPARE(f.find_tensor("blk.1.attn_q.bias") != nullptr, arch == Arch::Qwen2);
  QVERIFY(f.find_tensor("rope_freqs.weight") == nullptr);
}

void TestSynthetic::valueDistributions() {
  SyntheticModelSpec spec = tinySpec(Arch::Qwen2, DType::F32);
  spec.n_embd = 128;
  spec.n_ff = 256;
  QString error;
  const QString path = writeOrFail(spec, "dist.gguf", &error);
  QVERIFY2(error.isEmpty(), qPrintable(error));
  auto file = GgufFile::open(path.toStdString());
  QVERIFY2(file.ok(), file.message().c_str());
  const GgufFile& f = **file;
  struct Expect { const char* name; double mean, std_dev; };
  const Expect expect[] = {{"blk.0.ffn_down.weight", 0.0, 1.0 / 16},  // N(0, 1/fan_in), fan_in = n_ff = 256
                           {"blk.0.attn_q.weight", 0.0, 1.0 / std::sqrt(128.0)},
                           {"token_embd.weight", 0.0, 0.5},
                           {"blk.0.attn_norm.weight", 1.0, 0.1},
                           {"blk.0.attn_q.bias", 0.0, 0.1}};
  for (const Expect& e : expect) {
    const fkv::GgufTensor* t = f.find_tensor(e.name);
    QVERIFY2(t != nullptr, e.name);
    double mean = 0, std_dev = 0;
    meanStd(decode(*t), &mean, &std_dev);
    // 128+ samples: the sample mean is within ~4 standard errors, the sample std within 25%.
    const double n = static_cast<double>(t->n_elements());
    QVERIFY2(std::fabs(mean - e.mean) < 4 * e.std_dev / std::sqrt(n), e.name);
    QVERIFY2(std::fabs(std_dev / e.std_dev - 1) < 0.25, qPrintable(QString("%1: std %2").arg(e.name).arg(std_dev)));
  }
}

void TestSynthetic::realVocabularyAndTemplate() {
  SyntheticModelSpec spec;
  spec.vocab_path = fkvtest::llamaVocabPath().toStdString();
  spec.name = "llama-spm-synthetic";
  QString error;
  const QString path = writeOrFail(spec, "llama-spm.gguf", &error);
  QVERIFY2(error.isEmpty(), qPrintable(error));
  auto file = GgufFile::open(path.toStdString());
  auto vocab = GgufFile::open(spec.vocab_path);
  QVERIFY2(file.ok() && vocab.ok(), "open");
  // Every tokenizer.ggml.* key comes across unchanged.
  int n_copied = 0;
  for (const auto& [key, value] : (*vocab)->metadata()) {
    if (key.rfind("tokenizer.ggml.", 0) != 0) continue;
    const fkv::GgufValue* copy = (*file)->find(key);
    QVERIFY2(copy != nullptr, key.c_str());
    QCOMPARE(copy->type, value.type);
    QCOMPARE(copy->count, value.count);
    QVERIFY(copy->strs == value.strs);
    QCOMPARE(copy->u, value.u);
    ++n_copied;
  }
  QVERIFY(n_copied >= 5);
  QCOMPARE(uintKey(**file, "llama.vocab_size"), 32000);
  QCOMPARE((*file)->find_tensor("token_embd.weight")->dims, (std::vector<int64_t>{64, 32000}));
  auto tmpl = (*file)->get_string("tokenizer.chat_template");
  QVERIFY(tmpl.ok() && tmpl->has_value());
  QVERIFY((*tmpl)->find("[INST]") != std::string_view::npos);
  QVERIFY((*tmpl)->find("<<SYS>>") != std::string_view::npos);
  auto name = (*file)->get_string("general.name");
  QCOMPARE(std::string(**name), spec.name);
}

void TestSynthetic::chatmlTemplateFollowsVocabulary() {
  SyntheticModelSpec spec = tinySpec(Arch::Qwen2, DType::F32);
  spec.vocab_path = tinyVocabPath(true).toStdString();
  QString error;
  const QString path = writeOrFail(spec, "chatml.gguf", &error);
  QVERIFY2(error.isEmpty(), qPrintable(error));
  auto file = GgufFile::open(path.toStdString());
  QVERIFY(file.ok());
  auto tmpl = (*file)->get_string("tokenizer.chat_template");
  QVERIFY(tmpl.ok() && tmpl->has_value());
  QVERIFY((*tmpl)->find("<|im_start|>") != std::string_view::npos);
  QVERIFY((*tmpl)->find("[INST]") == std::string_view::npos);
}

void TestSynthetic::llama3Rope() {
  SyntheticModelSpec spec = tinySpec(Arch::Llama, DType::F32);
  spec.llama3_rope = true;
  spec.rope_base = 500000.f;
  QString error;
  const QString path = writeOrFail(spec, "llama3.gguf", &error);
  QVERIFY2(error.isEmpty(), qPrintable(error));
  auto file = GgufFile::open(path.toStdString());
  QVERIFY(file.ok());
  auto config = fkv::ModelConfig::from_gguf(**file);
  QVERIFY2(config.ok(), config.message().c_str());
  QCOMPARE(config->rope_scaling, fkv::RopeScaling::Llama3);
  QCOMPARE(config->rope_factor, 8.f);
  QCOMPARE(config->rope_low_freq_factor, 1.f);
  QCOMPARE(config->rope_high_freq_factor, 4.f);
  QCOMPARE(config->rope_orig_ctx, 64);
  QCOMPARE(config->rope_base, 500000.f);
  QVERIFY(config->has_rope_freqs_tensor);

  const fkv::GgufTensor* t = (*file)->find_tensor("rope_freqs.weight");
  QVERIFY(t != nullptr);
  QCOMPARE(t->type, DType::F32);
  QCOMPARE(t->dims, (std::vector<int64_t>{8}));
  const std::vector<float> d = decode(*t);
  QCOMPARE(d, fkv::llama3_rope_divisors(16, 500000.f, 8.f, 1.f, 4.f, 64));
  // Wavelengths 2*pi*500000^(i/8): pair 0 (6.3) is below the high-frequency cut (64/4 = 16) and keeps its speed,
  // pair 1 (32.4) lies between the cuts and is blended, pairs 2.. (> 64) are slowed by the full factor.
  QCOMPARE(d[0], 1.f);
  QVERIFY(d[1] > 1.f && d[1] < 8.f);
  for (size_t i = 2; i < d.size(); ++i) QCOMPARE(d[i], 8.f);
  const double smooth = (64.0 / (2 * std::numbers::pi * std::pow(500000.0, 2.0 / 16)) - 1.0) / 3.0;
  QVERIFY(std::fabs(d[1] - 1.0 / ((1 - smooth) / 8 + smooth)) < 1e-5);
}

void TestSynthetic::gemmaLayerKinds() {
  SyntheticModelSpec spec = tinySpec(Arch::Gemma3, DType::F32);
  spec.n_layers = 7;
  spec.rope_base = 1e6f;
  QString error;
  QString path = writeOrFail(spec, "gemma-swa.gguf", &error);
  QVERIFY2(error.isEmpty(), qPrintable(error));
  auto file = GgufFile::open(path.toStdString());
  QVERIFY(file.ok());
  QCOMPARE(uintKey(**file, "gemma3.attention.sliding_window"), 4);
  auto config = fkv::ModelConfig::from_gguf(**file);
  QVERIFY2(config.ok(), config.message().c_str());
  QCOMPARE(config->sliding_window, 4);
  QCOMPARE(config->layer_local, (std::vector<uint8_t>{1, 1, 1, 1, 1, 0, 1}));
  QCOMPARE(config->rope_base, 1e6f);
  QCOMPARE(config->embd_scale, 8.f);

  spec.sliding_window = 0;  // no window: no key, every layer global
  path = writeOrFail(spec, "gemma-global.gguf", &error);
  QVERIFY2(error.isEmpty(), qPrintable(error));
  file = GgufFile::open(path.toStdString());
  QVERIFY(file.ok());
  QCOMPARE(uintKey(**file, "gemma3.attention.sliding_window"), -1);
  config = fkv::ModelConfig::from_gguf(**file);
  QVERIFY2(config.ok(), config.message().c_str());
  QCOMPARE(config->layer_local, std::vector<uint8_t>(7, 0));
}

void TestSynthetic::deterministicPerSeed() {
  SyntheticModelSpec spec = tinySpec(Arch::Llama, DType::Q4_K);
  QString error;
  const QByteArray a = readAll(writeOrFail(spec, "seed-a.gguf", &error));
  const QByteArray b = readAll(writeOrFail(spec, "seed-b.gguf", &error));
  spec.seed = 2;
  const QByteArray c = readAll(writeOrFail(spec, "seed-c.gguf", &error));
  QVERIFY2(error.isEmpty(), qPrintable(error));
  QVERIFY(!a.isEmpty());
  QCOMPARE(a, b);
  QCOMPARE(c.size(), a.size());
  QVERIFY(a != c);
  // The seed changes the values, not the layout: the metadata and tensor table before the data are identical.
  auto fa = GgufFile::open(fkvtest::tempDir().toStdString() + "/seed-a.gguf");
  QVERIFY(fa.ok());
  const int64_t data_start = static_cast<int64_t>((*fa)->tensors().front().offset);
  QCOMPARE(a.left(data_start), c.left(data_start));
}

void TestSynthetic::specErrors_data() {
  QTest::addColumn<int>("which");
  QTest::addColumn<QString>("expected");
  QTest::newRow("no layers") << 0 << "n_layers must be positive, found 0";
  QTest::newRow("groups") << 1 << "n_heads (4) must be a multiple of n_kv_heads (3)";
  QTest::newRow("odd head_dim") << 2 << "head_dim must be even for RoPE, found 5";
  QTest::newRow("embd not whole heads") << 3 << "n_embd (66) is not a multiple of n_heads (4)";
  QTest::newRow("q4_k rows") << 4 << "token_embd.weight has rows of 64 values, not a multiple of the Q4_K block size 256";
  QTest::newRow("q8_0 ffn rows") << 5 << "blk.0.ffn_down.weight has rows of 100 values, not a multiple of the Q8_0 block size 32";
  QTest::newRow("q8_k weights") << 6 << "weight type Q8_K is not a weight encoding";
  QTest::newRow("window on llama") << 7 << "sliding_window is a gemma3 feature";
  QTest::newRow("llama3 on qwen2") << 8 << "llama3_rope applies to the llama architecture, found qwen2";
  QTest::newRow("no vocab") << 9 << "vocab_path is empty";
  QTest::newRow("missing vocab") << 10 << "no-such-vocab.gguf";
  QTest::newRow("vocab without tokens") << 11 << "expected a tokenizer.ggml.tokens string array, found none";
  QTest::newRow("negative head_dim") << 12 << "head_dim must be positive or 0";
}

void TestSynthetic::specErrors() {
  QFETCH(int, which);
  QFETCH(QString, expected);
  SyntheticModelSpec s = tinySpec(Arch::Llama, DType::F32);
  switch (which) {
    case 0: s.n_layers = 0; break;
    case 1: s.n_kv_heads = 3; break;
    case 2: s.head_dim = 5; break;
    case 3: s.n_embd = 66; break;
    case 4: s.weight_type = DType::Q4_K; break;
    case 5: s.weight_type = DType::Q8_0; s.n_ff = 100; break;
    case 6: s.weight_type = DType::Q8_K; break;
    case 7: s.sliding_window = 8; break;
    case 8: s.arch = Arch::Qwen2; s.llama3_rope = true; break;
    case 9: s.vocab_path.clear(); break;
    case 10: s.vocab_path = fkvtest::tempDir().toStdString() + "/no-such-vocab.gguf"; break;
    case 11: {  // a GGUF without tokenizer keys
      s.vocab_path = fkvtest::tempDir().toStdString() + "/not-a-vocab.gguf";
      fkv::GgufWriter w;
      w.set_string("general.architecture", "llama");
      QVERIFY(w.write(s.vocab_path).ok());
      break;
    }
    case 12: s.head_dim = -2; break;
    default: QFAIL("unknown case");
  }
  const QString path = fkvtest::tempDir() + QString("/bad-%1.gguf").arg(which);
  const fkv::Status st = fkv::write_synthetic_model(s, path.toStdString());
  QVERIFY(!st.ok());
  QVERIFY2(QString::fromStdString(st.message()).contains(expected), st.message().c_str());
  QVERIFY(!QFile::exists(path));
  if (which < 9) QVERIFY(!fkv::validate_synthetic_spec(s).ok());
}

QTEST_APPLESS_MAIN(TestSynthetic)
#include "test_synthetic.moc"
