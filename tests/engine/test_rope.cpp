// RoPE scaling as runtime/rope.h hands it to the CPU and CUDA forward passes: unscaled, linear and llama3 models keep
// a magnitude of exactly 1; YaRN keeps high-frequency pairs, divides low-frequency ones by the factor, blends
// monotonically in between and scales the magnitude by 0.1 ln(factor) + 1. Then how ModelConfig reads YaRN from GGUF
// metadata: defaults for the optional keys, and errors that name the offending key. (End to end against the
// double-precision reference: test_forward's qwen2-yarn case.)
#include <QtTest>

#include <cmath>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/gguf.h"
#include "model/config.h"
#include "model/gguf_writer.h"
#include "model/model.h"
#include "model/rope.h"
#include "model/synthetic.h"
#include "runtime/context.h"
#include "support/test_paths.h"

using fkv::GgufWriter;
using fkv::ModelConfig;
using fkv::RopeScaling;

namespace {

// A Qwen-like head: 64 pairs at base 10000, YaRN over an original context of 4096 tokens.
ModelConfig yarnConfig(float factor) {
  ModelConfig c;
  c.arch = fkv::Arch::Qwen2;
  c.head_dim = 128;
  c.rope_base = 10000.f;
  c.rope_scaling = RopeScaling::Yarn;
  c.rope_factor = factor;
  c.rope_orig_ctx = 4096;
  return c;
}

std::vector<float> unscaledFreqs(int head_dim, double base) {
  std::vector<float> f(static_cast<size_t>(head_dim / 2));  // (head_dim / 2)
  for (int i = 0; i < head_dim / 2; ++i)
    f[static_cast<size_t>(i)] = static_cast<float>(std::pow(base, -2.0 * i / head_dim));
  return f;
}

// The keys ModelConfig::from_gguf requires of a qwen2 file, a 4-token embedding, and YaRN's two required keys.
GgufWriter yarnHeader() {
  GgufWriter w;
  w.set_string("general.architecture", "qwen2");
  w.set_u32("qwen2.block_count", 1);
  w.set_u32("qwen2.embedding_length", 64);
  w.set_u32("qwen2.feed_forward_length", 128);
  w.set_u32("qwen2.attention.head_count", 4);
  w.set_string("qwen2.rope.scaling.type", "yarn");
  w.set_f32("qwen2.rope.scaling.factor", 4.f);
  w.set_u32("qwen2.rope.scaling.original_context_length", 32768);
  w.add_tensor("token_embd.weight", {64, 4}, fkv::DType::F32, std::vector<uint8_t>(64 * 4 * sizeof(float), 0));
  return w;
}

fkv::Result<ModelConfig> readConfig(const GgufWriter& w) {
  const std::vector<uint8_t> bytes = w.to_bytes();
  FKV_ASSIGN_OR_RETURN(auto file, fkv::GgufFile::parse(bytes.data(), bytes.size(), "yarn.gguf"));
  return ModelConfig::from_gguf(*file);
}

using Edit = std::function<void(GgufWriter&)>;

}  // namespace

Q_DECLARE_METATYPE(Edit)

class TestRope : public QObject {
  Q_OBJECT

 private slots:
  void unscaledModelsKeepMagnitudeOne() {
    ModelConfig c = yarnConfig(4.f);
    for (const RopeScaling s : {RopeScaling::None, RopeScaling::Linear, RopeScaling::Llama3}) {
      c.rope_scaling = s;
      QCOMPARE(fkv::rope_mscale(c, true), 1.f);  // exactly: cos and sin stay bit for bit what they were
    }
    c.rope_scaling = RopeScaling::None;
    QCOMPARE(fkv::rope_inv_freq(c, nullptr, c.rope_base, true), unscaledFreqs(128, 10000.0));
    c.rope_scaling = RopeScaling::Linear;
    const std::vector<float> linear = fkv::rope_inv_freq(c, nullptr, c.rope_base, true);
    const std::vector<float> plain = unscaledFreqs(128, 10000.0);
    for (size_t i = 0; i < plain.size(); ++i)
      QCOMPARE(linear[i], static_cast<float>(std::pow(1e4, -2.0 * i / 128) / 4));
  }

  // Llama3 scaling from the metadata gives what the divisors of a llama3 file's rope_freqs.weight give.
  void llama3MetadataMatchesItsDivisors() {
    ModelConfig c = yarnConfig(8.f);
    c.rope_scaling = RopeScaling::Llama3;
    c.rope_base = 500000.f;
    c.rope_orig_ctx = 64;
    const std::vector<float> divisors = fkv::llama3_rope_divisors(128, 500000.f, 8.f, 1.f, 4.f, 64);
    const std::vector<float> from_meta = fkv::rope_inv_freq(c, nullptr, c.rope_base, true);
    const std::vector<float> from_tensor = fkv::rope_inv_freq(c, divisors.data(), c.rope_base, true);
    for (size_t i = 0; i < from_meta.size(); ++i)
      QVERIFY2(std::fabs(from_meta[i] - from_tensor[i]) <= 1e-6f * from_tensor[i], qPrintable(QString::number(i)));
  }

  void yarnFactorOneIsUnscaled() {
    const ModelConfig c = yarnConfig(1.f);
    QCOMPARE(fkv::rope_inv_freq(c, nullptr, c.rope_base, true), unscaledFreqs(128, 10000.0));
    QCOMPARE(fkv::rope_mscale(c, true), 1.f);
  }

  // The ramp runs from the pair turning 32 times over 4096 tokens (128 ln(4096 / 64 pi) / 2 ln 10^4 = 20.94, rounded
  // down) to the pair turning once (45.03, rounded up).
  void yarnRampBoundaries() {
    const fkv::YarnRamp r = fkv::yarn_ramp(yarnConfig(4.f), 10000.f);
    QCOMPARE(r.low, 20.0);
    QCOMPARE(r.high, 46.0);
  }

  void yarnBlendsHighAndLowFrequencies() {
    const ModelConfig c = yarnConfig(4.f);
    const std::vector<float> f = fkv::rope_inv_freq(c, nullptr, c.rope_base, true);
    const std::vector<float> u = unscaledFreqs(128, 10000.0);
    for (size_t i = 0; i <= 20; ++i) QCOMPARE(f[i], u[i]);  // high frequencies: untouched, bit for bit
    for (size_t i = 46; i < 64; ++i)                        // low frequencies: divided by the factor
      QVERIFY2(std::fabs(f[i] - u[i] / 4) <= 1e-6f * u[i], qPrintable(QString("pair %1").arg(i)));
    double prev_ratio = 1.0;
    for (size_t i = 21; i < 46; ++i) {
      const double ratio = static_cast<double>(f[i]) / u[i];
      const double expected = 1.0 - (static_cast<double>(i) - 20.0) / 26.0 * 0.75;  // linear in the pair index
      QVERIFY2(std::fabs(ratio - expected) < 1e-6,
               qPrintable(QString("pair %1: %2 vs %3").arg(i).arg(ratio).arg(expected)));
      QVERIFY2(ratio < prev_ratio && ratio > 0.25, qPrintable(QString("pair %1 breaks the monotonic blend").arg(i)));
      prev_ratio = ratio;
    }
  }

  void yarnMagnitude() {
    ModelConfig c = yarnConfig(4.f);
    QVERIFY(std::fabs(fkv::rope_mscale(c, true) - 1.1386294f) < 1e-6f);  // 0.1 ln 4 + 1
    QCOMPARE(fkv::rope_mscale(c, false), 1.f);                           // gemma3's local layers are not scaled
    c.rope_attn_factor = 0.5f;
    QVERIFY(std::fabs(fkv::rope_mscale(c, true) - 0.5693147f) < 1e-6f);
    c.rope_factor = 0.5f;  // no stretch, no correction: attn_factor alone
    QCOMPARE(fkv::rope_mscale(c, true), 0.5f);
  }

  void yarnOptionalKeysDefault() {
    auto c = readConfig(yarnHeader());
    QVERIFY2(c.ok(), c.message().c_str());
    QCOMPARE(c->rope_scaling, RopeScaling::Yarn);
    QCOMPARE(c->rope_factor, 4.f);
    QCOMPARE(c->rope_orig_ctx, 32768);
    QCOMPARE(c->rope_yarn_beta_fast, 32.f);
    QCOMPARE(c->rope_yarn_beta_slow, 1.f);
    QCOMPARE(c->rope_attn_factor, 1.f);
  }

  void yarnOptionalKeysAreRead() {
    GgufWriter w = yarnHeader();
    w.set_f32("qwen2.rope.scaling.yarn_beta_fast", 16.f);
    w.set_f32("qwen2.rope.scaling.yarn_beta_slow", 2.f);
    w.set_f32("qwen2.rope.scaling.attn_factor", 0.75f);
    auto c = readConfig(w);
    QVERIFY2(c.ok(), c.message().c_str());
    QCOMPARE(c->rope_yarn_beta_fast, 16.f);
    QCOMPARE(c->rope_yarn_beta_slow, 2.f);
    QCOMPARE(c->rope_attn_factor, 0.75f);
  }

  void syntheticYarnModel() {
    fkv::SyntheticModelSpec s;
    s.arch = fkv::Arch::Qwen2;
    s.yarn_rope = true;
    s.vocab_path = fkvtest::llamaVocabPath().toStdString();
    const std::string path = (fkvtest::tempDir() + "/rope-yarn.gguf").toStdString();
    const fkv::Status st = fkv::write_synthetic_model(s, path);
    QVERIFY2(st.ok(), st.message().c_str());
    auto file = fkv::GgufFile::open(path);
    QVERIFY2(file.ok(), file.message().c_str());
    auto c = ModelConfig::from_gguf(**file);
    QVERIFY2(c.ok(), c.message().c_str());
    using Y = fkv::SyntheticYarnRope;
    QCOMPARE(c->rope_scaling, RopeScaling::Yarn);
    QCOMPARE(c->rope_factor, Y::factor);
    QCOMPARE(c->rope_orig_ctx, Y::original_context);
    QCOMPARE(c->rope_yarn_beta_fast, Y::beta_fast);
    QCOMPARE(c->rope_yarn_beta_slow, Y::beta_slow);
    QCOMPARE(c->rope_attn_factor, Y::attn_factor);
    QVERIFY(!c->has_rope_freqs_tensor);

    s.arch = fkv::Arch::Llama;  // where llama3_rope is allowed, so the clash is what is refused
    s.llama3_rope = true;
    const fkv::Status both = fkv::validate_synthetic_spec(s);
    QVERIFY2(QString::fromStdString(both.message()).contains("exclusive"), both.message().c_str());
  }

  // --rope-scaling yarn on a file without it is the file that carries it: same config, same logits; "none" on the
  // YaRN file is the plain file. The trained window becomes orig x factor.
  void yarnOverrideMatchesAFileThatCarriesIt() {
    fkv::SyntheticModelSpec s;
    s.arch = fkv::Arch::Qwen2;
    s.n_ctx = 512;
    s.vocab_path = fkvtest::llamaVocabPath().toStdString();
    const std::string plain = (fkvtest::tempDir() + "/rope-plain.gguf").toStdString();
    const std::string yarn = (fkvtest::tempDir() + "/rope-yarn-file.gguf").toStdString();
    QVERIFY(fkv::write_synthetic_model(s, plain).ok());
    s.yarn_rope = true;
    QVERIFY(fkv::write_synthetic_model(s, yarn).ok());
    using Y = fkv::SyntheticYarnRope;
    fkv::RopeOverride o;
    o.scaling = fkv::RopeScalingMode::yarn;
    o.scale = Y::factor;
    o.orig_ctx = Y::original_context;
    auto over = fkv::Model::load(plain, o);
    QVERIFY2(over.ok(), over.message().c_str());
    auto file = fkv::Model::load(yarn);
    QVERIFY2(file.ok(), file.message().c_str());
    QCOMPARE((*over)->config().rope_scaling, RopeScaling::Yarn);
    QCOMPARE((*over)->config().n_ctx_train, Y::original_context * 4);
    const auto logits = [](const fkv::Model& m) {
      fkv::ContextParams p;
      p.n_ctx = 256;
      p.n_threads = 1;
      auto ctx = fkv::Context::create(m, p);
      if (!ctx.ok()) qFatal("%s", ctx.message().c_str());
      std::vector<int32_t> tokens(200);
      for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(3 + (i * 131) % 500);
      std::vector<float> out(static_cast<size_t>(m.config().n_vocab));
      if (!(*ctx)->eval(tokens, fkv::LogitsMode::Last, out).ok()) qFatal("eval");
      return out;
    };
    const std::vector<float> with_yarn = logits(**file);
    QCOMPARE(logits(**over), with_yarn);
    fkv::RopeOverride none;
    none.scaling = fkv::RopeScalingMode::none;
    auto unscaled = fkv::Model::load(yarn, none);
    QVERIFY2(unscaled.ok(), unscaled.message().c_str());
    auto plain_model = fkv::Model::load(plain);
    QVERIFY(plain_model.ok());
    const std::vector<float> without = logits(**plain_model);
    QCOMPARE(logits(**unscaled), without);
    QVERIFY(without != with_yarn);  // the scaling matters at 200 tokens over an original context of 64

    fkv::RopeOverride no_factor;
    no_factor.scaling = fkv::RopeScalingMode::yarn;
    auto refused = fkv::Model::load(plain, no_factor);
    QVERIFY(!refused.ok() && refused.message().find("--rope-scale") != std::string::npos);
    fkv::RopeOverride stray;
    stray.orig_ctx = 4096;
    refused = fkv::Model::load(plain, stray);
    QVERIFY(!refused.ok() && refused.message().find("--rope-scaling") != std::string::npos);
  }

  void badYarnMetadataNamesTheKey_data() {
    QTest::addColumn<Edit>("edit");
    QTest::addColumn<QString>("needle");
    const auto f32 = [](const char* key, float v) { return Edit([=](GgufWriter& w) { w.set_f32(key, v); }); };
    const char* factor = "qwen2.rope.scaling.factor";
    const char* ctx = "qwen2.rope.scaling.original_context_length";
    QTest::newRow("factor 0") << f32(factor, 0.f) << "'qwen2.rope.scaling.factor' must be a finite value > 0, found 0";
    QTest::newRow("factor -2") << f32(factor, -2.f)
                               << "'qwen2.rope.scaling.factor' must be a finite value > 0, found -2";
    QTest::newRow("factor nan") << f32(factor, NAN) << "'qwen2.rope.scaling.factor' must be a finite value > 0";
    QTest::newRow("context 0") << Edit([=](GgufWriter& w) { w.set_u32(ctx, 0); })
                               << "'qwen2.rope.scaling.original_context_length' = 0 is out of range";
    QTest::newRow("context -8") << Edit([=](GgufWriter& w) { w.set_i32(ctx, -8); })
                                << "'qwen2.rope.scaling.original_context_length' is -8, expected a non-negative";
    QTest::newRow("beta_fast = beta_slow") << f32("qwen2.rope.scaling.yarn_beta_fast", 1.f)
                                           << "'qwen2.rope.scaling.yarn_beta_fast' (1) must be greater than "
                                              "'qwen2.rope.scaling.yarn_beta_slow' (1)";
    QTest::newRow("beta_slow 64") << f32("qwen2.rope.scaling.yarn_beta_slow", 64.f)
                                  << "'qwen2.rope.scaling.yarn_beta_fast' (32) must be greater than "
                                     "'qwen2.rope.scaling.yarn_beta_slow' (64)";
    QTest::newRow("beta_slow 0") << f32("qwen2.rope.scaling.yarn_beta_slow", 0.f)
                                 << "'qwen2.rope.scaling.yarn_beta_slow' must be > 0, found 0";
    QTest::newRow("beta_fast inf") << f32("qwen2.rope.scaling.yarn_beta_fast", INFINITY)
                                   << "'qwen2.rope.scaling.yarn_beta_fast' must be finite, found inf";
    QTest::newRow("attn_factor 0") << f32("qwen2.rope.scaling.attn_factor", 0.f)
                                   << "'qwen2.rope.scaling.attn_factor' must be a finite value > 0, found 0";
  }

  void badYarnMetadataNamesTheKey() {
    QFETCH(Edit, edit);
    QFETCH(QString, needle);
    GgufWriter w = yarnHeader();
    edit(w);
    auto c = readConfig(w);
    QVERIFY(!c.ok());
    QVERIFY2(QString::fromStdString(c.message()).contains(needle), c.message().c_str());
  }

  // YaRN has no safe default for its factor or its original context: a file without them is refused.
  void yarnRequiredKeys() {
    for (const std::string_view key : {"qwen2.rope.scaling.factor", "qwen2.rope.scaling.original_context_length"}) {
      const GgufWriter full = yarnHeader();
      const std::vector<uint8_t> bytes = full.to_bytes();
      auto file = fkv::GgufFile::parse(bytes.data(), bytes.size(), "yarn.gguf");
      QVERIFY2(file.ok(), file.message().c_str());
      GgufWriter w;
      for (const auto& [k, v] : (*file)->metadata())
        if (k != key) w.copy_value(k, v);
      w.add_tensor("token_embd.weight", {64, 4}, fkv::DType::F32, std::vector<uint8_t>(64 * 4 * sizeof(float), 0));
      auto c = readConfig(w);
      QVERIFY(!c.ok());
      const QString needle = QString("needs metadata '%1'").arg(QString::fromUtf8(key.data(), key.size()));
      QVERIFY2(QString::fromStdString(c.message()).contains(needle), c.message().c_str());
    }
  }

  void unknownScalingTypeListsYarn() {
    GgufWriter w = yarnHeader();
    w.set_string("qwen2.rope.scaling.type", "longrope");
    auto c = readConfig(w);
    QVERIFY(!c.ok());
    QVERIFY2(QString::fromStdString(c.message())
                 .contains("unsupported rope scaling type 'longrope' (supported: none, linear, llama3, yarn)"),
             c.message().c_str());
  }
};

QTEST_APPLESS_MAIN(TestRope)
#include "test_rope.moc"
