// Backend selection (runtime/backend_info.h choose_backend) and what a Context and the Engine do with it: "cpu" is the
// CPU; "cuda" is the GPU or a clear error saying why not and what to use instead; "auto" is the GPU where "cuda" would
// work, else the CPU with the reason in the note. Every outcome depends on the machine (CUDA built? a device?), so
// each check states what this machine must give. Nothing here may abort.
#include <QtTest>

#include <memory>
#include <string>
#include <vector>

#include "fkv/engine.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/backend_info.h"
#include "runtime/context.h"
#include "runtime/gpu_context.h"
#include "support/test_models.h"
#include "support/test_paths.h"

#ifdef FKV_HAVE_CUDA
#include "backend/cuda/device.h"
#endif

using fkv::Backend;
using fkv::Policy;

namespace {

// Why "cuda" cannot run a full-attention context on device 0 here; empty when it can.
std::string expectedCudaObstacle() {
  if (!fkv::cuda_built()) return "this build has no CUDA backend";
#ifdef FKV_HAVE_CUDA
  auto devices = fkv::cuda::list_devices();
  if (!devices.ok()) return devices.message();  // "no usable CUDA device: ..." with the driver's reason
#endif
  return {};
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

class TestBackendChoice : public QObject {
  Q_OBJECT

 private:
  QString m_model;

 private slots:
  void initTestCase() {
    m_model = fkvtest::tempDir() + "/backend.gguf";
    const QString written = fkvtest::writeModel(fkvtest::llamaSpec(1, 256), m_model);
    QVERIFY2(written.isEmpty(), qPrintable(written));
  }

  void cpuIsAlwaysTheCpu() {
    for (Policy policy : {Policy::full, Policy::freekv}) {
      auto c = fkv::choose_backend(Backend::cpu, policy, 0);
      QVERIFY(c.ok());
      QCOMPARE(c->kind, Backend::cpu);
      QVERIFY(c->note.empty());
    }
  }

  void unknownNamesAreErrors() {
    auto c = fkv::parse_backend("vulkan");
    QVERIFY(!c.ok());
    QCOMPARE(c.message(), std::string("unknown backend 'vulkan' (expected auto, cpu or cuda)"));
    QVERIFY(contains(fkv::parse_backend("gpu").message(), "unknown backend 'gpu' (expected auto, cpu or cuda)"));
    QCOMPARE(*fkv::parse_backend("auto"), Backend::automatic);
    fkv::ContextParams p;
    p.backend = Backend::cuda;
    p.device = -1;
    QVERIFY(contains(p.validate().message(), "CUDA device index must be >= 0"));
  }

  void cudaSaysWhyNot() {
    const std::string obstacle = expectedCudaObstacle();
    auto full = fkv::choose_backend(Backend::cuda, Policy::full, 0);
    if (obstacle.empty()) {
      QVERIFY(full.ok());
      QCOMPARE(full->kind, Backend::cuda);
    } else {
      QVERIFY(!full.ok());
      QVERIFY2(contains(full.message(), "backend cuda: " + obstacle), full.message().c_str());
      QVERIFY(contains(full.message(), "use backend cpu"));
    }
    // Retrieval policies run on the CPU only so far; a build without CUDA says that first.
    auto freekv = fkv::choose_backend(Backend::cuda, Policy::freekv, 0);
    QVERIFY(!freekv.ok());
    const std::string why = fkv::cuda_built() ? "policy 'freekv' needs the FreeKV pipeline on the GPU" : obstacle;
    QVERIFY2(contains(freekv.message(), why), freekv.message().c_str());
    if (fkv::cuda_built() && obstacle.empty()) {
      auto missing = fkv::choose_backend(Backend::cuda, Policy::full, 1000);
      QVERIFY(!missing.ok());
      QVERIFY(contains(missing.message(), "CUDA device 1000 does not exist"));
    }
  }

  void autoFallsBackWithTheReason() {
    const std::string obstacle = expectedCudaObstacle();
    auto c = fkv::choose_backend(Backend::automatic, Policy::full, 0);
    QVERIFY(c.ok());
    QCOMPARE(c->kind, obstacle.empty() ? Backend::cuda : Backend::cpu);
    if (!obstacle.empty()) {
      QVERIFY2(contains(c->note, "auto: " + obstacle), c->note.c_str());
      QVERIFY(contains(c->note, "running on the CPU"));
    }
    auto freekv = fkv::choose_backend(Backend::automatic, Policy::freekv, 0);
    QVERIFY(freekv.ok());
    QCOMPARE(freekv->kind, Backend::cpu);
    QVERIFY(contains(freekv->note, "auto: "));
  }

  // A context asked for "auto" computes exactly what a CPU context does when it stays on the CPU; "cuda" is either a
  // working context or an error, never an abort.
  void contextHonoursTheChoice() {
    auto model = fkv::Model::load(m_model.toStdString());
    QVERIFY2(model.ok(), model.message().c_str());
    fkv::ContextParams p;
    p.n_ctx = 64;
    p.n_threads = 2;
    const std::vector<int32_t> tokens = {1, 15, 300, 7, 99, 1024, 5};
    std::vector<float> want(static_cast<size_t>((*model)->config().n_vocab));  // (n_vocab)
    auto cpu = fkv::Context::create(**model, p);
    QVERIFY(cpu.ok());
    QVERIFY((*cpu)->eval(tokens, fkv::LogitsMode::Last, want).ok());

    p.backend = Backend::automatic;
    p.policy = Policy::freekv;  // always the CPU: the note says why
    auto automatic = fkv::Context::create(**model, p);
    QVERIFY2(automatic.ok(), automatic.message().c_str());
    QCOMPARE((*automatic)->backend().kind, Backend::cpu);
    QVERIFY(!(*automatic)->backend().note.empty());
    std::vector<float> got(want.size());
    QVERIFY((*automatic)->eval(tokens, fkv::LogitsMode::Last, got).ok());
    QCOMPARE(got, want);

    p.backend = Backend::cuda;
    p.policy = Policy::full;
    auto cuda = fkv::Context::create(**model, p);
    if (!expectedCudaObstacle().empty()) {
      QVERIFY(!cuda.ok());
      QVERIFY2(contains(cuda.message(), "backend cuda: "), cuda.message().c_str());
    } else {
      QVERIFY2(cuda.ok(), cuda.message().c_str());
      QCOMPARE((*cuda)->backend().kind, Backend::cuda);
    }
  }

  // The GPU's KV cache is F16 only: a BF16 or F32 cache is refused with that reason before any device is touched,
  // so the refusal reads the same in every build and on every machine; F16 goes on to the device (or its absence).
  void gpuRefusesKvTypesOtherThanF16() {
    auto model = fkv::Model::load(m_model.toStdString());
    QVERIFY2(model.ok(), model.message().c_str());
    fkv::ContextParams p;
    p.n_ctx = 64;
    for (fkv::DType t : {fkv::DType::BF16, fkv::DType::F32}) {
      p.kv_type = t;
      auto gpu = fkv::GpuContext::create(**model, p);
      QVERIFY(!gpu.ok());
      QVERIFY2(contains(gpu.message(), "the CUDA backend keeps its KV cache in F16"), gpu.message().c_str());
      QVERIFY2(contains(gpu.message(), std::string("found KV type ") + fkv::dtype_name(t)), gpu.message().c_str());
    }
    p.kv_type = fkv::DType::F16;
    auto f16 = fkv::GpuContext::create(**model, p);
    if (!expectedCudaObstacle().empty()) {
      QVERIFY(!f16.ok());
      QVERIFY2(!contains(f16.message(), "KV cache in F16"), f16.message().c_str());
    } else {
      QVERIFY2(f16.ok(), f16.message().c_str());
      QCOMPARE((*f16)->n_batch(), 64);  // n_batch 128 capped at the context's 64 tokens, as on the CPU
    }
  }

  void engineReportsTheBackend() {
    auto engine = fkv::Engine::create(fkv::EngineOptions{});
    QVERIFY(engine.ok());
    fkv::ModelOptions o;
    o.n_ctx = 128;
    o.n_threads = 2;
    o.backend = Backend::automatic;
    o.retrieval.policy = Policy::freekv;
    QVERIFY((*engine)->load_model(m_model.toStdString(), o).ok());
    QCOMPARE((*engine)->model_info().backend, Backend::cpu);
    QVERIFY(contains((*engine)->model_info().backend_note, "auto: "));
    o.backend = Backend::cuda;
    o.device = -1;
    const fkv::Status bad = (*engine)->load_model(m_model.toStdString(), o);
    QVERIFY(contains(bad.message(), "CUDA device index must be >= 0, found -1"));
    QCOMPARE((*engine)->model_info().backend, Backend::cpu);  // the loaded model stays
  }
};

QTEST_APPLESS_MAIN(TestBackendChoice)
#include "test_backend_choice.moc"
