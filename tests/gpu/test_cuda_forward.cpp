// GPU suite for backend/cuda/forward.h: the dense CUDA forward pass against the CPU context (the reference) on
// synthetic models of each architecture (llama with GQA and llama3 rope divisors, qwen2 with qkv biases and neox
// rope, qwen2 with YaRN (frequency blend and magnitude scale), gemma3 with qk-norm, post-norms, gelu, tied output
// and a sliding window of 8 tokens over pages of 4, so the window starts inside a page; head_dim 64, 128 and 256),
// each with F32 and F16 weights, and llama with Q4_K, Q5_0, Q6_K and Q8_0 weights. Checked: the logits of a prefill
// (every token), of decode steps after it, of a mixed chunked prefill (single tokens between chunks), and of a
// 199-token prompt in chunks of 64 (dense attention past one 128-key tile) followed by decode steps over 50 pages
// (several splits per head; the first with its last page exactly full).
// Error measure: max |gpu - cpu| / max |cpu| over the compared logits. Tolerances: 1e-3 for F32 weights (F32 matmul
// on both sides; only the F16 KV cache and summation order differ), 2e-2 for F16 weights (the GPU matmul reads F16
// activations, the CPU keeps them in F32), 3e-2 for quantized weights (the CPU quantizes activations to Q8 blocks).
// Argument checks that need no device run in every CUDA build; the comparisons skip with a message without one.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#ifdef FKV_HAVE_CUDA
#include "backend/cuda/device.h"
#include "backend/cuda/forward.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/context.h"
#include "support/test_paths.h"

using fkv::Arch;
using fkv::DType;
using fkv::SyntheticModelSpec;

namespace {

constexpr int kCtx = 64;
constexpr int kPage = 4;

struct Pair {
  std::unique_ptr<fkv::Model> model;
  std::unique_ptr<fkv::Context> cpu;
  std::unique_ptr<fkv::cuda::CudaForward> gpu;
  int n_vocab = 0;
};

SyntheticModelSpec spec_for(const QString& arch, DType weights) {
  SyntheticModelSpec s;
  s.vocab_path = fkvtest::llamaVocabPath().toStdString();
  s.n_ctx = 256;
  s.weight_type = weights;
  if (arch == "llama") {
    s.n_heads = 8;
    s.n_kv_heads = 2;
    s.seed = 21;
  } else if (arch == "llama3") {
    s.llama3_rope = true;
    s.rope_base = 500000.f;
    s.seed = 22;
  } else if (arch == "qwen2") {
    s.arch = Arch::Qwen2;
    s.n_heads = 4;
    s.n_kv_heads = 1;
    s.seed = 23;
  } else if (arch == "qwen2-yarn") {
    s.arch = Arch::Qwen2;
    s.yarn_rope = true;
    s.n_embd = 128;  // head_dim 32: the blend spans several pairs
    s.seed = 25;
  } else if (arch == "llama-hd64" || arch == "llama-hd128") {
    s.n_embd = 256;
    s.n_heads = arch == "llama-hd64" ? 4 : 2;
    s.n_kv_heads = 2;
    s.n_ff = 256;
    s.seed = 26;
  } else if (arch == "llama-quant") {
    // Every matrix's rows a whole number of 256-element super-blocks, so each quant type can encode it.
    s.n_embd = 256;
    s.n_heads = 4;
    s.n_kv_heads = 2;
    s.n_ff = 512;
    s.seed = 27;
  } else {  // gemma3, gemma3-hd256
    s.arch = Arch::Gemma3;
    s.n_layers = 6;  // layers 0-4 local, 5 global
    s.n_heads = 2;
    s.n_kv_heads = 1;
    s.head_dim = arch == "gemma3-hd256" ? 256 : 48;
    s.rope_base = 1e6f;
    s.sliding_window = 8;
    s.tied_embeddings = true;
    s.seed = arch == "gemma3-hd256" ? 28 : 24;
  }
  return s;
}

fkv::Result<std::unique_ptr<fkv::Model>> write_and_load(const SyntheticModelSpec& spec, const QString& name) {
  const std::string path = (fkvtest::tempDir() + "/" + name + ".gguf").toStdString();
  FKV_TRY(fkv::write_synthetic_model(spec, path));
  return fkv::Model::load(path);
}

std::vector<int32_t> random_tokens(int n, int n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, n_vocab - 1);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& x : t) x = d(rng);
  return t;
}

double relative_error(const std::vector<float>& gpu, const std::vector<float>& cpu) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(gpu[i]) - cpu[i]));
    scale = std::max(scale, std::abs(static_cast<double>(cpu[i])));
  }
  return std::isfinite(diff) ? diff / std::max(scale, 1e-6) : INFINITY;
}

// Why this machine cannot run the comparisons, or empty when it can.
QString no_device_reason() {
  auto devices = fkv::cuda::list_devices();
  return devices.ok() ? QString() : "no CUDA device here: " + QString::fromStdString(devices.message());
}

}  // namespace
#endif

class TestCudaForward : public QObject {
  Q_OBJECT

#ifdef FKV_HAVE_CUDA
  // Loads the model of the current data row and makes both contexts of n_ctx tokens, the GPU's running prompts in
  // chunks of n_batch tokens; returns what failed, or empty.
  static QString make_pair(Pair& p, int n_ctx = kCtx, int n_batch = 128) {
    QFETCH(QString, arch);
    QFETCH(int, weights);
    const auto type = static_cast<DType>(weights);
    auto model = write_and_load(spec_for(arch, type), arch + "-" + fkv::dtype_name(type));
    if (!model.ok()) return QString::fromStdString(model.message());
    p.model = std::move(*model);
    p.n_vocab = p.model->config().n_vocab;
    fkv::ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.page_size = kPage;
    cp.n_threads = 2;
    auto cpu = fkv::Context::create(*p.model, cp);
    if (!cpu.ok()) return QString::fromStdString(cpu.message());
    p.cpu = std::move(*cpu);
    auto gpu = fkv::cuda::CudaForward::create(*p.model, 0, n_ctx, kPage, n_batch);
    if (!gpu.ok()) return QString::fromStdString(gpu.message());
    if (gpu.value()->max_batch() != std::min(n_batch, n_ctx)) return "the chunk size must be min(n_batch, n_ctx)";
    p.gpu = std::move(*gpu);
    if (p.gpu->f32_matmul() != (type == DType::F32)) return "F32 weights must choose the F32 matmul, others F16";
    return {};
  }

  // A prompt of n_prompt random tokens (every token's logits), then n_steps single-token decode steps, each compared.
  static void prompt_then_decode(Pair& p, int n_prompt, int n_steps, double tolerance) {
    const double prompt = compare(p, random_tokens(n_prompt, p.n_vocab, 1), true);
    QVERIFY2(prompt <= tolerance, qPrintable(QString("prompt relative error %1").arg(prompt)));
    const std::vector<int32_t> next = random_tokens(n_steps, p.n_vocab, 2);
    for (size_t i = 0; i < next.size(); ++i) {
      const double e = compare(p, {next[i]}, false);
      QVERIFY2(e <= tolerance, qPrintable(QString("decode step %1 relative error %2").arg(i).arg(e)));
    }
    QCOMPARE(p.gpu->n_past(), n_prompt + n_steps);
    QCOMPARE(p.gpu->n_past(), p.cpu->n_past());
  }

  // Runs `tokens` through both (all logits or the last) and returns the relative error.
  static double compare(Pair& p, const std::vector<int32_t>& tokens, bool all) {
    const size_t n_out = (all ? tokens.size() : 1) * static_cast<size_t>(p.n_vocab);
    std::vector<float> cpu(n_out), gpu(n_out);
    const fkv::Status c = p.cpu->eval(tokens, all ? fkv::LogitsMode::All : fkv::LogitsMode::Last, cpu);
    const fkv::Status g = p.gpu->eval(tokens, all, gpu);
    if (!c.ok() || !g.ok()) return INFINITY;
    return relative_error(gpu, cpu);
  }

  static void add_rows() {
    QTest::addColumn<QString>("arch");
    QTest::addColumn<int>("weights");
    QTest::addColumn<double>("tolerance");
    for (const char* arch : {"llama", "llama3", "qwen2", "qwen2-yarn", "gemma3", "llama-hd64", "llama-hd128",
                             "gemma3-hd256"}) {
      QTest::newRow((std::string(arch) + "-f32").c_str()) << QString(arch) << static_cast<int>(DType::F32) << 1e-3;
      QTest::newRow((std::string(arch) + "-f16").c_str()) << QString(arch) << static_cast<int>(DType::F16) << 2e-2;
    }
    // Quantized weights: the GPU dequantizes them to F16 and multiplies F16 activations, the CPU multiplies them
    // with activations quantized to Q8_0 / Q8_K blocks, so the two round differently on top of the F16 case.
    for (DType t : {DType::Q4_K, DType::Q5_0, DType::Q6_K, DType::Q8_0})
      QTest::newRow((std::string("llama-quant-") + fkv::dtype_name(t)).c_str())
          << QString("llama-quant") << static_cast<int>(t) << 3e-2;
  }
#endif

 private slots:
  // Needs no device: bad sizes are refused before the device is touched, and the message names what was found.
  void badArgumentsAreRefused() {
#ifndef FKV_HAVE_CUDA
    QSKIP("this build has no CUDA backend (FKV_CUDA=OFF or no nvcc)");
#else
    auto model = write_and_load(spec_for("llama", DType::F32), "args");
    QVERIFY2(model.ok(), model.message().c_str());
    auto no_ctx = fkv::cuda::CudaForward::create(**model, 0, 0, kPage, 128);
    QVERIFY(!no_ctx.ok());
    QVERIFY2(no_ctx.message().find("context size must be 1..16777216 tokens, found 0") != std::string::npos,
             no_ctx.message().c_str());
    auto no_page = fkv::cuda::CudaForward::create(**model, 0, kCtx, 0, 128);
    QVERIFY(!no_page.ok());
    QVERIFY2(no_page.message().find("page size must be 1..4096 tokens, found 0") != std::string::npos,
             no_page.message().c_str());
    auto no_batch = fkv::cuda::CudaForward::create(**model, 0, kCtx, kPage, 0);
    QVERIFY(!no_batch.ok());
    QVERIFY2(no_batch.message().find("prefill batch must be 1..8192 tokens, found 0") != std::string::npos,
             no_batch.message().c_str());
    if (!no_device_reason().isEmpty()) {
      // Without a device, creation fails with a message rather than crashing.
      auto none = fkv::cuda::CudaForward::create(**model, 0, kCtx, kPage, 128);
      QVERIFY(!none.ok());
      QVERIFY(!none.message().empty());
    }
#endif
  }

#ifdef FKV_HAVE_CUDA
  void prefillThenDecodeMatchCpu_data() { add_rows(); }
#endif
  void prefillThenDecodeMatchCpu() {
#ifndef FKV_HAVE_CUDA
    QSKIP("this build has no CUDA backend (FKV_CUDA=OFF or no nvcc)");
#else
    if (const QString why = no_device_reason(); !why.isEmpty()) QSKIP(qPrintable(why));
    QFETCH(double, tolerance);
    Pair p;
    const QString failed = make_pair(p);
    QVERIFY2(failed.isEmpty(), qPrintable(failed));
    prompt_then_decode(p, 21, 6, tolerance);  // 21 tokens: five pages and one token, past the sliding window
    if (QTest::currentTestFailed()) return;
    // eval() cuts a prompt longer than n_batch into chunks (64 tokens here: 199 = 3 full chunks and 7), each attending
    // the chunks before it through the cache, the later ones over more than one 128-key tile of dense attention (its
    // running max and sum rescaled). Then decode steps over 50 pages of 4 per KV head, so paged attention splits each
    // head's list 7 ways; the first step's last page is exactly full (200 tokens).
    Pair long_context;
    const QString failed_long = make_pair(long_context, 256, 64);
    QVERIFY2(failed_long.isEmpty(), qPrintable(failed_long));
    prompt_then_decode(long_context, 199, 5, tolerance);
#endif
  }

#ifdef FKV_HAVE_CUDA
  void chunkedPrefillMatchesCpu_data() { add_rows(); }
#endif
  void chunkedPrefillMatchesCpu() {
#ifndef FKV_HAVE_CUDA
    QSKIP("this build has no CUDA backend (FKV_CUDA=OFF or no nvcc)");
#else
    if (const QString why = no_device_reason(); !why.isEmpty()) QSKIP(qPrintable(why));
    QFETCH(double, tolerance);
    Pair p;
    const QString failed = make_pair(p);
    QVERIFY2(failed.isEmpty(), qPrintable(failed));
    // A throwaway prefix first, then reset: the second run must not see the first one's cache.
    QVERIFY(compare(p, random_tokens(9, p.n_vocab, 3), false) <= tolerance);
    p.cpu->reset();
    p.gpu->reset();
    QCOMPARE(p.gpu->n_past(), 0);
    uint32_t seed = 10;
    for (int chunk : {5, 1, 9, 1, 1, 6, 3}) {
      const double e = compare(p, random_tokens(chunk, p.n_vocab, seed++), true);
      QVERIFY2(e <= tolerance,
               qPrintable(QString("chunk of %1 at %2: relative error %3").arg(chunk).arg(p.gpu->n_past()).arg(e)));
    }
    // Errors leave the cache as it was.
    std::vector<float> logits(static_cast<size_t>(p.n_vocab) * kCtx);
    const int held = p.gpu->n_past();
    QVERIFY(!p.gpu->eval(random_tokens(kCtx, p.n_vocab, 99), true, logits).ok());
    QVERIFY(!p.gpu->eval(std::vector<int32_t>{p.n_vocab}, false, logits).ok());
    QVERIFY(!p.gpu->eval(std::vector<int32_t>{1, 2}, true, std::span<float>(logits.data(), 10)).ok());
    QCOMPARE(p.gpu->n_past(), held);
#endif
  }
};

QTEST_APPLESS_MAIN(TestCudaForward)
#include "test_cuda_forward.moc"
