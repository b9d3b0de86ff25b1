// GPU suite for a Context and an Engine on the CUDA backend (ContextParams::backend "cuda"): the same logits as the
// CPU context, step by step, for a prefill, decode steps fed the CPU's tokens and a truncate-and-redo on a synthetic
// model and on Gemma 3 270M (when installed); KV snapshots and documents refused with a clear error; the engine
// generating on the GPU.
// Tolerances as tests/gpu/test_cuda_forward.cpp: max |gpu - cpu| / max |cpu| <= 1e-3 with F32 weights, 2e-2 otherwise.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "fkv/engine.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/context.h"
#include "store/kv_snapshot.h"
#include "support/gpu_rig.h"
#include "support/test_paths.h"

namespace {

double relError(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(got[i] - want[i])));
    ref = std::max(ref, static_cast<double>(std::fabs(want[i])));
  }
  return diff / ref;
}

// Logits of a prefill of `tokens`, then of 4 decode steps, then of the second half of `tokens` again after truncating
// to half: (n_steps, n_vocab) each. The decode steps feed `forced` when given (teacher forcing: the GPU decodes the
// CPU's tokens, so a near-tie that the two argmaxes break differently cannot make them decode different sequences),
// else each step's argmax, which are appended to `chosen`.
fkv::Result<std::vector<std::vector<float>>> run(fkv::Context& ctx, const std::vector<int32_t>& tokens,
                                                 const std::vector<int32_t>* forced, std::vector<int32_t>& chosen) {
  const size_t n_vocab = static_cast<size_t>(ctx.model().config().n_vocab);
  std::vector<std::vector<float>> out;
  std::vector<float> logits(n_vocab);  // (n_vocab)
  FKV_TRY(ctx.eval(tokens, fkv::LogitsMode::Last, logits));
  out.push_back(logits);
  for (size_t step = 0; step < 4; ++step) {
    const int32_t next = forced != nullptr ? (*forced)[step]
                                           : static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) -
                                                                  logits.begin());
    chosen.push_back(next);
    FKV_TRY(ctx.eval(std::span(&next, 1), fkv::LogitsMode::Last, logits));
    out.push_back(logits);
  }
  const size_t half = tokens.size() / 2;
  FKV_TRY(ctx.truncate(static_cast<int>(half)));
  FKV_TRY(ctx.eval(std::span(tokens).subspan(half), fkv::LogitsMode::Last, logits));
  out.push_back(logits);
  return out;
}

}  // namespace

class TestCudaContext : public QObject {
  Q_OBJECT

 private:
  void compareOn(const QString& path, double tolerance) {
    auto model = fkv::Model::load(path.toStdString());
    QVERIFY2(model.ok(), model.message().c_str());
    fkv::ContextParams p;
    p.n_ctx = 256;
    p.page_size = 16;
    auto cpu = fkv::Context::create(**model, p);
    QVERIFY2(cpu.ok(), cpu.message().c_str());
    p.backend = fkv::Backend::cuda;
    auto gpu = fkv::Context::create(**model, p);
    QVERIFY2(gpu.ok(), gpu.message().c_str());
    QCOMPARE((*gpu)->backend().kind, fkv::Backend::cuda);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 70; ++i) tokens.push_back(2 + (i * 7919) % ((*model)->config().n_vocab - 2));
    std::vector<int32_t> cpu_tokens, gpu_tokens;
    auto want = run(**cpu, tokens, nullptr, cpu_tokens);
    QVERIFY2(want.ok(), want.message().c_str());
    auto got = run(**gpu, tokens, &cpu_tokens, gpu_tokens);
    QVERIFY2(got.ok(), got.message().c_str());
    QCOMPARE(got->size(), want->size());
    for (size_t step = 0; step < want->size(); ++step) {
      const double e = relError((*got)[step], (*want)[step]);
      QVERIFY2(e <= tolerance, qPrintable(QString("step %1: relative error %2 > %3").arg(step).arg(e).arg(tolerance)));
    }
    QVERIFY((*gpu)->save_kv(fkvtest::tempDir().toStdString() + "/x.fkvpages", {}, 0).message().find(
                "KV snapshots need the CPU backend") != std::string::npos);
    QVERIFY((*gpu)->set_policy(fkv::Policy::freekv, {}, 0.9f).message().find("needs the CPU backend") !=
            std::string::npos);
  }

 private slots:
  void initTestCase() {
#ifdef FKV_HAVE_CUDA
    FKV_QVERIFY_OK(fkvtest::initGpu());
#endif
  }

  void syntheticMatchesCpu() {
    FKV_NEED_DEVICE();
    fkv::SyntheticModelSpec s;
    s.vocab_path = fkvtest::llamaVocabPath().toStdString();
    s.n_heads = 8;
    s.n_kv_heads = 2;
    const QString path = fkvtest::tempDir() + "/ctx-f32.gguf";
    QVERIFY(fkv::write_synthetic_model(s, path.toStdString()).ok());
    compareOn(path, 1e-3);
  }

  void gemmaMatchesCpu() {
    FKV_NEED_DEVICE();
    const QString path = fkvtest::gemmaModelPath();
    if (path.isEmpty()) QSKIP("Gemma 3 270M not installed: run ./scripts/setup.sh");
    compareOn(path, 2e-2);
  }

  void engineGeneratesOnTheGpu() {
    FKV_NEED_DEVICE();
    const QString path = fkvtest::gemmaModelPath();
    if (path.isEmpty()) QSKIP("Gemma 3 270M not installed: run ./scripts/setup.sh");
    auto engine = fkv::Engine::create(fkv::EngineOptions{});
    QVERIFY(engine.ok());
    fkv::ModelOptions o;
    o.n_ctx = 512;
    o.backend = fkv::Backend::cuda;
    o.retrieval.policy = fkv::Policy::full;
    const fkv::Status loaded = (*engine)->load_model(path.toStdString(), o);
    QVERIFY2(loaded.ok(), loaded.message().c_str());
    QCOMPARE((*engine)->model_info().backend, fkv::Backend::cuda);
    fkv::GenerationOptions g;
    g.max_tokens = 16;
    g.temperature = 0.f;
    auto r = (*engine)->generate("Name three colours.", g, {});
    QVERIFY2(r.ok(), r.message().c_str());
    QVERIFY(r->n_generated >= 1);
    auto doc = (*engine)->open_document(fkvtest::samplePath("river-town.txt").toStdString(), {}, {});
    QVERIFY(!doc.ok());
    QVERIFY(doc.message().find("documents need the CPU backend") != std::string::npos);
  }
};

QTEST_APPLESS_MAIN(TestCudaContext)
#include "test_cuda_context.moc"
