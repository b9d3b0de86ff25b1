// The engine's forward pass against an independent double-precision reference (tests/support/reference_model) on
// synthetic models of every architecture: one prefill, token-by-token decode and mixed chunk sizes must all give the
// reference's logits, with pages small enough that sequences cross them; then F16 KV, quantized weights, greedy
// determinism and the errors eval() promises.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/quant.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/context.h"
#include "support/reference_model.h"
#include "support/test_paths.h"

using fkv::Arch;
using fkv::ContextParams;
using fkv::DType;
using fkv::LogitsMode;
using fkv::SyntheticModelSpec;

Q_DECLARE_METATYPE(fkv::DType)

namespace {

struct ModelCase {
  const char* name;
  SyntheticModelSpec spec;
  int n_tokens;
};

SyntheticModelSpec baseSpec(Arch arch) {
  SyntheticModelSpec s;
  s.arch = arch;
  s.vocab_path = fkvtest::llamaVocabPath().toStdString();
  s.n_ctx = 256;
  return s;
}

// The architectures of the brief, each exercising its own switches: GQA, llama3 rope divisors, qkv bias + neox rope,
// gemma3 qk-norm / post-norms / gelu / tied output / sliding window (6 layers: layer 5 global, the others local),
// qwen2 with YaRN (frequency blend and rotation magnitude, read from metadata by both sides).
std::vector<ModelCase> f32Cases() {
  std::vector<ModelCase> cases;
  SyntheticModelSpec llama = baseSpec(Arch::Llama);
  llama.n_heads = 8;
  llama.n_kv_heads = 2;
  llama.seed = 11;
  cases.push_back({"llama-gqa", llama, 40});

  SyntheticModelSpec llama3 = baseSpec(Arch::Llama);
  llama3.llama3_rope = true;
  llama3.rope_base = 500000.f;
  llama3.n_embd = 128;
  llama3.n_ff = 256;
  llama3.seed = 12;
  cases.push_back({"llama3-rope", llama3, 36});

  SyntheticModelSpec qwen = baseSpec(Arch::Qwen2);
  qwen.n_heads = 4;
  qwen.n_kv_heads = 1;
  qwen.seed = 13;
  cases.push_back({"qwen2", qwen, 33});

  SyntheticModelSpec gemma = baseSpec(Arch::Gemma3);
  gemma.n_layers = 6;
  gemma.n_heads = 2;
  gemma.n_kv_heads = 1;
  gemma.head_dim = 48;
  gemma.rope_base = 1e6f;
  gemma.sliding_window = 8;
  gemma.tied_embeddings = true;
  gemma.seed = 14;
  cases.push_back({"gemma3-swa", gemma, 24});

  // Qwen long context: YaRN over an original context of 64 tokens, run past it. head_dim 32 and base 10000 put
  // pair 0 before the ramp, pairs 1-4 on it and 5-15 past it, so every branch of the blend is used.
  SyntheticModelSpec yarn = baseSpec(Arch::Qwen2);
  yarn.yarn_rope = true;
  yarn.n_embd = 128;
  yarn.n_ff = 256;
  yarn.n_heads = 4;
  yarn.n_kv_heads = 2;
  yarn.seed = 15;
  cases.push_back({"qwen2-yarn", yarn, 80});
  return cases;
}

// Random ids in [3, n_vocab): skips <unk>, <s>, </s> only to look like text; any id is valid input.
std::vector<int32_t> randomTokens(int n, int n_vocab, uint64_t seed) {
  std::vector<int32_t> t;
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    t.push_back(3 + static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(n_vocab - 3)));
  }
  return t;
}

// max|a - b| / max|b| over rows [row0, row0 + n_rows) of `b` ((n_tok, n_vocab)) and all of `a`.
double relError(const std::vector<float>& a, const std::vector<double>& b, size_t row0 = 0, size_t n_vocab = 0) {
  const size_t off = row0 * n_vocab;
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(a[i] - b[off + i]));
    max_ref = std::max(max_ref, std::fabs(b[off + i]));
  }
  return max_diff / max_ref;
}

struct Fixture {
  std::unique_ptr<fkv::Model> model;
  std::vector<double> ref_logits;  // (n_tokens, n_vocab)
  std::vector<int32_t> tokens;     // (n_tokens)
  int n_vocab = 0;
};

// Writes the model, runs the reference once, loads it into the engine. Empty model (and *error set) on failure.
Fixture prepare(const ModelCase& c, QString* error) {
  Fixture f;
  const QString path = fkvtest::tempDir() + "/" + c.name + "-" + fkv::dtype_name(c.spec.weight_type) + ".gguf";
  const fkv::Status st = fkv::write_synthetic_model(c.spec, path.toStdString());
  if (!st.ok()) {
    *error = QString::fromStdString(st.message());
    return f;
  }
  std::unique_ptr<fkvtest::ReferenceModel> ref = fkvtest::ReferenceModel::load(path, error);
  if (!ref) return f;
  f.n_vocab = ref->n_vocab();
  f.tokens = randomTokens(c.n_tokens, f.n_vocab, c.spec.seed);
  f.ref_logits = ref->forward(f.tokens);
  auto model = fkv::Model::load(path.toStdString());
  if (!model.ok()) {
    *error = QString::fromStdString(model.message());
    return f;
  }
  f.model = std::move(model).value();
  return f;
}

// Models and reference logits are built once per process and shared by the tests that use them.
const Fixture* fixture(const ModelCase& c, QString* error) {
  static std::map<std::string, Fixture> cache;
  const std::string key = std::string(c.name) + "/" + fkv::dtype_name(c.spec.weight_type);
  if (auto it = cache.find(key); it != cache.end()) return &it->second;
  Fixture f = prepare(c, error);
  if (!f.model) return nullptr;
  return &cache.emplace(key, std::move(f)).first->second;
}

// Evaluates `tokens` in chunks whose sizes cycle through `chunks`, collecting every position's logits.
fkv::Result<std::vector<float>> runEngine(const fkv::Model& model, const ContextParams& params,
                                          const std::vector<int32_t>& tokens, const std::vector<int>& chunks) {
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<fkv::Context> ctx, fkv::Context::create(model, params));
  const size_t n_vocab = static_cast<size_t>(model.config().n_vocab);
  std::vector<float> logits(tokens.size() * n_vocab);  // (n_tokens, n_vocab)
  size_t pos = 0;
  for (size_t k = 0; pos < tokens.size(); ++k) {
    const size_t n = std::min(static_cast<size_t>(chunks[k % chunks.size()]), tokens.size() - pos);
    FKV_TRY(ctx->eval(std::span(tokens).subspan(pos, n), LogitsMode::All,
                      std::span(logits).subspan(pos * n_vocab, n * n_vocab)));
    pos += n;
    if (ctx->n_past() != static_cast<int>(pos)) return fkv::err("n_past ", ctx->n_past(), ", expected ", pos);
  }
  return logits;
}

ContextParams params(int page_size, int n_batch, DType kv_type, int n_threads = 2) {
  ContextParams p;
  p.n_ctx = 128;
  p.page_size = page_size;
  p.n_batch = n_batch;
  p.n_threads = n_threads;
  p.kv_type = kv_type;
  return p;
}

struct Schedule {
  const char* name;
  std::vector<int> chunks;
  int n_batch;
  int n_threads;  // decode runs single-threaded: its many tiny jobs crawl when a loaded machine preempts a spinning worker
};

// One prefill of everything, one token at a time, and uneven chunks (some larger than n_batch, so eval splits them).
const std::vector<Schedule>& schedules() {
  static const std::vector<Schedule> s = {
      {"prefill", {1 << 20}, 128, 2}, {"decode", {1}, 128, 1}, {"mixed", {5, 1, 7, 3, 2, 9}, 4, 2}};
  return s;
}

// Puts back the kernel set a test switched away from.
struct IsaGuard {
  fkv::cpu::Isa saved = fkv::cpu::active_isa();
  ~IsaGuard() { fkv::cpu::set_active_isa(saved); }
};

int argmax(const float* v, int n) { return static_cast<int>(std::max_element(v, v + n) - v); }

}  // namespace

class TestForward : public QObject {
  Q_OBJECT

 private slots:
  void f32MatchesReference_data();
  void f32MatchesReference();
  void f16KvMatchesReference();
  void quantizedWeights_data();
  void quantizedWeights();
  void greedyIsDeterministic();
  void evalErrorsLeaveCacheIntact();
};

void TestForward::f32MatchesReference_data() {
  QTest::addColumn<int>("index");
  const std::vector<ModelCase> cases = f32Cases();
  for (size_t i = 0; i < cases.size(); ++i) QTest::newRow(cases[i].name) << static_cast<int>(i);
}

void TestForward::f32MatchesReference() {
  QFETCH(int, index);
  const ModelCase c = f32Cases()[static_cast<size_t>(index)];
  QString error;
  const Fixture* fp = fixture(c, &error);
  QVERIFY2(fp, qPrintable(error));
  const Fixture& f = *fp;
  QCOMPARE(f.ref_logits.size(), f.tokens.size() * static_cast<size_t>(f.n_vocab));
  for (int page_size : {32, 8}) {
    for (const Schedule& s : schedules()) {
      auto logits = runEngine(*f.model, params(page_size, s.n_batch, DType::F32, s.n_threads), f.tokens, s.chunks);
      QVERIFY2(logits.ok(), logits.message().c_str());
      const double e = relError(*logits, f.ref_logits);
      // F32 everywhere: only float-vs-double rounding separates them (measured 1.5e-7 .. 4.2e-7).
      QVERIFY2(e < 1e-3, qPrintable(QString("page %1, %2: relative error %3").arg(page_size).arg(s.name).arg(e)));
    }
  }
}

void TestForward::f16KvMatchesReference() {
  for (const ModelCase& c : f32Cases()) {
    QString error;
    const Fixture* fp = fixture(c, &error);
    QVERIFY2(fp, qPrintable(error));
    const Fixture& f = *fp;
    for (const Schedule& s : schedules()) {
      auto logits = runEngine(*f.model, params(8, s.n_batch, DType::F16, s.n_threads), f.tokens, s.chunks);
      QVERIFY2(logits.ok(), logits.message().c_str());
      const double e = relError(*logits, f.ref_logits);
      // Keys and values rounded to F16 (relative 2^-11 per element); measured 1.3e-4 .. 4.6e-4, bound 5e-3.
      QVERIFY2(e < 5e-3, qPrintable(QString("%1, %2: relative error %3").arg(c.name).arg(s.name).arg(e)));
    }
  }
}

void TestForward::quantizedWeights_data() {
  QTest::addColumn<DType>("type");
  QTest::addColumn<double>("tolerance");
  // The reference decodes the same quantized file exactly, so only the engine's activation quantization (the Q8_0 / Q8_K
  // partners of the dot products, ~0.5-0.8% per product) differs. Measured on this model (seed 21, 24 tokens), the same
  // for every schedule and for the AVX2 and scalar kernels: Q8_0 1.64e-2, Q4_K 2.35e-2; the bounds leave ~2x margin.
  QTest::newRow("Q8_0") << DType::Q8_0 << 3e-2;
  QTest::newRow("Q4_K") << DType::Q4_K << 5e-2;
}

void TestForward::quantizedWeights() {
  QFETCH(DType, type);
  QFETCH(double, tolerance);
  SyntheticModelSpec spec = baseSpec(Arch::Llama);
  spec.weight_type = type;
  spec.n_embd = 256;  // rows must be whole Q4_K super-blocks
  spec.n_ff = 512;
  spec.n_heads = 4;
  spec.n_kv_heads = 2;
  spec.seed = 21;
  QString error;
  const Fixture* fp = fixture({"quant", spec, 24}, &error);
  QVERIFY2(fp, qPrintable(error));
  const Fixture& f = *fp;
  // Both kernel sets: the AVX2 ones (batched tiles for prefill, vec_dot for decode) where the CPU has them, and scalar.
  const IsaGuard restore;
  std::vector<fkv::cpu::Isa> isas = {fkv::cpu::Isa::Scalar};
  if (fkv::cpu::detected_isa() == fkv::cpu::Isa::Avx2) isas.push_back(fkv::cpu::Isa::Avx2);
  for (fkv::cpu::Isa isa : isas) {
    fkv::cpu::set_active_isa(isa);
    for (const Schedule& s : schedules()) {
      if (isa == fkv::cpu::Isa::Scalar && std::string(s.name) != "mixed") continue;  // mixed has batches and single tokens
      auto logits = runEngine(*f.model, params(8, s.n_batch, DType::F32, s.n_threads), f.tokens, s.chunks);
      QVERIFY2(logits.ok(), logits.message().c_str());
      const double e = relError(*logits, f.ref_logits);
      QVERIFY2(e < tolerance,
               qPrintable(QString("%1, %2: relative error %3").arg(fkv::cpu::isa_name(isa), s.name).arg(e)));
    }
  }
}

void TestForward::greedyIsDeterministic() {
  const ModelCase c = f32Cases()[0];
  QString error;
  const Fixture* fp = fixture(c, &error);
  QVERIFY2(fp, qPrintable(error));
  const Fixture& f = *fp;
  auto ctx = fkv::Context::create(*f.model, params(8, 16, DType::F32));
  QVERIFY2(ctx.ok(), ctx.message().c_str());
  const std::vector<int32_t> prompt(f.tokens.begin(), f.tokens.begin() + 10);
  std::vector<float> logits(static_cast<size_t>(f.n_vocab));  // (n_vocab)
  std::vector<int32_t> runs[2];
  for (std::vector<int32_t>& ids : runs) {
    (*ctx)->reset();
    QCOMPARE((*ctx)->n_past(), 0);
    QVERIFY((*ctx)->eval(prompt, LogitsMode::Last, logits).ok());
    for (int i = 0; i < 16; ++i) {
      ids.push_back(argmax(logits.data(), f.n_vocab));
      QVERIFY((*ctx)->eval(std::span(&ids.back(), 1), LogitsMode::Last, logits).ok());
    }
  }
  QCOMPARE(runs[0], runs[1]);
  // The same continuation is the reference's argmax at every step (no near-ties for this seed).
  std::unique_ptr<fkvtest::ReferenceModel> ref =
      fkvtest::ReferenceModel::load(QString::fromStdString(f.model->path()), &error);
  QVERIFY2(ref, qPrintable(error));
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), runs[0].begin(), runs[0].end() - 1);
  const std::vector<double> r = ref->forward(seq);  // (n_seq, n_vocab)
  for (size_t i = 0; i < runs[0].size(); ++i) {
    const double* row = r.data() + (prompt.size() - 1 + i) * static_cast<size_t>(f.n_vocab);
    QCOMPARE(static_cast<int32_t>(std::max_element(row, row + f.n_vocab) - row), runs[0][i]);
  }
}

void TestForward::evalErrorsLeaveCacheIntact() {
  const ModelCase c = f32Cases()[2];
  QString error;
  const Fixture* fp = fixture(c, &error);
  QVERIFY2(fp, qPrintable(error));
  const Fixture& f = *fp;
  ContextParams p = params(8, 8, DType::F32);
  p.n_ctx = 16;
  auto ctx = fkv::Context::create(*f.model, p);
  QVERIFY2(ctx.ok(), ctx.message().c_str());
  fkv::Context& x = **ctx;
  const size_t nv = static_cast<size_t>(f.n_vocab);
  std::vector<float> logits(16 * nv);  // (16, n_vocab)
  const std::span<const int32_t> toks(f.tokens);
  QVERIFY(x.eval(toks.first(10), LogitsMode::All, logits).ok());

  fkv::Status st = x.eval(toks.subspan(10, 7), LogitsMode::All, logits);  // 17 > n_ctx 16
  QVERIFY(!st.ok());
  QVERIFY2(QString::fromStdString(st.message()).contains("16"), st.message().c_str());
  QCOMPARE(x.n_past(), 10);

  std::vector<int32_t> bad = {f.tokens[10], f.n_vocab};  // id == n_vocab is one past the end
  st = x.eval(bad, LogitsMode::All, logits);
  QVERIFY(!st.ok());
  QVERIFY2(QString::fromStdString(st.message()).contains(QString::number(f.n_vocab)), st.message().c_str());
  bad[1] = -1;
  QVERIFY(!x.eval(bad, LogitsMode::All, logits).ok());
  QCOMPARE(x.n_past(), 10);

  // The failed calls changed nothing: the next 6 tokens (filling the context exactly) still match the reference.
  QVERIFY(x.eval(toks.subspan(10, 6), LogitsMode::All, logits).ok());
  QCOMPARE(x.n_past(), 16);
  const std::vector<float> got(logits.begin(), logits.begin() + static_cast<std::ptrdiff_t>(6 * nv));
  const double e = relError(got, f.ref_logits, 10, nv);
  QVERIFY2(e < 1e-3, qPrintable(QString("relative error %1 after failed evals").arg(e)));
  QVERIFY(!x.eval(toks.subspan(16, 1), LogitsMode::Last, logits).ok());
  QCOMPARE(x.n_past(), 16);
}

QTEST_APPLESS_MAIN(TestForward)
#include "test_forward.moc"
