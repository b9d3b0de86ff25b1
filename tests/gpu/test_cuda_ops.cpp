// GPU suite for backend/cuda/ops.h and cuda_util.h: every op against the CPU op on seeded random data.
// Tolerances: rms_norm 1e-5 relative; rope (plain, YaRN and llama3 frequencies) 1e-5 absolute on O(1) values;
// silu/gelu 1e-5 relative (absolute below 1, where gelu's 1 + tanh cancels); add, conversions and embedding gathers
// bit-exact; matmul f32 1e-4 and f16 2e-3 relative to sum |a_i w_i| (the scale of the rounding error a dot product
// can carry), also for the row-scaled f16 matmul with activations past F16's range (a down projection's input), which
// must stay finite.
// Error paths that need no device (status text, host-side argument checks, failed allocation) run in every CUDA
// build; the op comparisons skip with a message where no device exists.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <vector>

#include "model/config.h"
#include "support/gpu_rig.h"

#ifdef FKV_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"
#include "backend/cuda/cuda_util.h"
#include "backend/cuda/device.h"
#include "backend/cuda/ops.h"
#include "model/rope.h"

namespace cu = fkv::cuda;

namespace {

std::vector<float> random_floats(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

template <class T>
fkv::Result<cu::DeviceBuffer> to_device(const std::vector<T>& v) {
  FKV_ASSIGN_OR_RETURN(cu::DeviceBuffer b, cu::DeviceBuffer::allocate(v.size() * sizeof(T)));
  FKV_TRY(b.upload(v.data(), v.size() * sizeof(T), nullptr));
  // A copy from pageable memory may still be in flight when it returns; the ops run on other streams.
  FKV_CUDA_TRY(cudaDeviceSynchronize());
  return fkv::Result<cu::DeviceBuffer>(std::move(b));
}

// Waits for the context's stream, then copies the buffer back (the legacy stream orders the copy after nothing else).
template <class T>
fkv::Result<std::vector<T>> to_host(const cu::DeviceBuffer& b) {
  FKV_CUDA_TRY(cudaDeviceSynchronize());
  std::vector<T> v(b.count<T>());
  FKV_TRY(b.download(v.data(), v.size() * sizeof(T), nullptr));
  FKV_CUDA_TRY(cudaDeviceSynchronize());
  return v;
}

// Bit-for-bit equality (QCOMPARE on floats is fuzzy, and would not tell -0 from 0).
bool same_bits(float a, float b) {
  uint32_t ua = 0, ub = 0;
  std::memcpy(&ua, &a, sizeof a);
  std::memcpy(&ub, &b, sizeof b);
  return ua == ub;
}

#define FKV_QVERIFY_SAME(got, want) \
  QVERIFY2(same_bits(got, want), qPrintable(QString("got %1, want %2").arg(got, 0, 'g', 9).arg(want, 0, 'g', 9)))

// |got - want| <= tol * max(|want|, floor), reported with the first offending index.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, float tol, float floor) {
  QCOMPARE(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const float bound = tol * std::max(std::fabs(want[i]), floor);
    if (!(std::fabs(got[i] - want[i]) <= bound))
      QFAIL(qPrintable(QString("index %1: got %2, want %3 (bound %4)")
                           .arg(i)
                           .arg(got[i], 0, 'g', 9)
                           .arg(want[i], 0, 'g', 9)
                           .arg(bound)));
  }
}

// out = a . w^T in double, and the scale sum_i |a_i w_i| of each output.   a (rows, k), w (n, k) -> (rows, n)
void reference_matmul(const std::vector<float>& a, const std::vector<float>& w, int rows, int k, int n,
                      std::vector<double>& out, std::vector<double>& scale) {
  out.assign(static_cast<size_t>(rows) * n, 0.0);
  scale.assign(out.size(), 0.0);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < k; ++i) {
        const double p = static_cast<double>(a[static_cast<size_t>(r) * k + i]) * w[static_cast<size_t>(j) * k + i];
        out[static_cast<size_t>(r) * n + j] += p;
        scale[static_cast<size_t>(r) * n + j] += std::fabs(p);
      }
}

void expect_matmul(const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& scale,
                   double tol) {
  QCOMPARE(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= tol * scale[i] + 1e-30))
      QFAIL(qPrintable(QString("output %1: got %2, want %3").arg(i).arg(got[i]).arg(want[i])));
}

}  // namespace

#endif

class TestCudaOps : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase();
  void errorsNameTheCall();
  void argumentsAreCheckedOnTheHost();
  void hugeAllocationIsAStatus();
  void buffersStreamsAndEvents();
  void rmsNormMatchesCpu();
  void ropeMatchesCpu_data();
  void ropeMatchesCpu();
  void activationsMatchCpu();
  void addAndConversionsAreExact();
  void embeddingGatherIsExact();
  void matmulF32MatchesReference();
  void matmulF16MatchesReference();
  void matmulF16ScaledKeepsLargeActivations();
};

void TestCudaOps::initTestCase() {
#ifdef FKV_HAVE_CUDA
  FKV_QVERIFY_OK(fkvtest::initGpu());  // a listed device must give a context
#endif
}

void TestCudaOps::errorsNameTheCall() {
#ifndef FKV_HAVE_CUDA
  FKV_NEED_DEVICE();
#else
  QVERIFY(cu::cuda_status(cudaSuccess, "cudaFree(p)").ok());
  const fkv::Status s = cu::cuda_status(cudaErrorMemoryAllocation, "cudaMalloc(64 bytes)");
  QVERIFY(!s.ok());
  QVERIFY2(s.message().find("cudaMalloc(64 bytes)") != std::string::npos, s.message().c_str());
  QVERIFY2(s.message().find("cudaErrorMemoryAllocation") != std::string::npos, s.message().c_str());
  const fkv::Status b = cu::cublas_status(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSgemm");
  QVERIFY2(b.message().find("cublasSgemm") != std::string::npos, b.message().c_str());
  QVERIFY2(b.message().find("CUBLAS_STATUS_NOT_INITIALIZED") != std::string::npos, b.message().c_str());
  QVERIFY(cu::cublas_status(CUBLAS_STATUS_SUCCESS, "cublasCreate").ok());
#endif
}

void TestCudaOps::argumentsAreCheckedOnTheHost() {
#ifndef FKV_HAVE_CUDA
  FKV_NEED_DEVICE();
#else
  // None of these reaches the device: each is refused, or is empty and launches nothing.
  float f = 0.f;
  int32_t pos = 0;
  const fkv::Status odd = cu::rope(&f, &pos, &f, 1, 1, 7, true, 1.f, nullptr);
  QVERIFY2(odd.message().find("even head_dim") != std::string::npos, odd.message().c_str());
  const fkv::Status scale = cu::rope(&f, &pos, &f, 1, 1, 8, true, 0.f, nullptr);
  QVERIFY2(scale.message().find("finite scale > 0, found 0") != std::string::npos, scale.message().c_str());
  const fkv::Status neg = cu::rms_norm(&f, &f, &f, -1, 8, 1e-6f, nullptr);
  QVERIFY2(neg.message().find("n_rows >= 0, found -1") != std::string::npos, neg.message().c_str());
  const fkv::Status null = cu::silu_mul(nullptr, &f, 4, nullptr);
  QVERIFY2(null.message().find("null pointer") != std::string::npos, null.message().c_str());
  cu::DeviceContext empty;
  const fkv::Status mm = cu::matmul_f32(empty, &f, &f, &f, 1, 1, 1, nullptr);
  QVERIFY2(mm.message().find("created DeviceContext") != std::string::npos, mm.message().c_str());
  const fkv::Status vocab = cu::embed_f32(&f, 0, 4, &pos, 1, 1.f, &f, nullptr);
  QVERIFY2(vocab.message().find("n_vocab = 0") != std::string::npos, vocab.message().c_str());
  FKV_QVERIFY_OK(cu::add_inplace(nullptr, nullptr, 0, nullptr));
  FKV_QVERIFY_OK(cu::rope(nullptr, nullptr, nullptr, 0, 4, 64, false, 1.f, nullptr));
  FKV_QVERIFY_OK(cu::rms_norm(nullptr, nullptr, nullptr, 0, 64, 1e-6f, nullptr));
  cu::DeviceBuffer none;
  const fkv::Status past = none.upload(&f, sizeof f, nullptr);
  QVERIFY2(past.message().find("to fit in a buffer of 0 bytes") != std::string::npos, past.message().c_str());
  const auto bad = cu::DeviceContext::create(1 << 20);
  QVERIFY(!bad.ok());
#endif
}

void TestCudaOps::hugeAllocationIsAStatus() {
#ifndef FKV_HAVE_CUDA
  FKV_NEED_DEVICE();
#else
  // 1 PB: out of memory on any device, "no device" where there is none; either way a Status that names the call.
  auto huge = cu::DeviceBuffer::allocate(size_t{1} << 50);
  QVERIFY(!huge.ok());
  QVERIFY2(huge.message().find("cudaMalloc(1125899906842624 bytes)") != std::string::npos, huge.message().c_str());
  auto empty = cu::DeviceBuffer::allocate(0);
  QVERIFY(empty.ok());
  QVERIFY(empty->data() == nullptr);
  if (fkvtest::gpu().ctx) {
    // The failure was cleared: the next launch check must not report it again.
    FKV_QVERIFY_OK(cu::launch_status("after a failed cudaMalloc"));
    auto small = cu::DeviceBuffer::allocate(4096);
    QVERIFY2(small.ok(), small.message().c_str());
  }
#endif
}

void TestCudaOps::buffersStreamsAndEvents() {
  FKV_NEED_DEVICE();
#ifdef FKV_HAVE_CUDA
  auto stream = cu::Stream::create();
  auto start = cu::Event::create(true);
  auto end = cu::Event::create(true);
  auto pinned = cu::PinnedBuffer::allocate(1000 * sizeof(float));
  auto dev = cu::DeviceBuffer::allocate(1000 * sizeof(float));
  QVERIFY(stream.ok() && start.ok() && end.ok() && pinned.ok() && dev.ok());
  for (size_t i = 0; i < pinned->count<float>(); ++i) pinned->as<float>()[i] = static_cast<float>(i) * 0.5f;
  const cu::StreamHandle s = stream->handle();
  FKV_QVERIFY_OK(start->record(s));
  FKV_QVERIFY_OK(dev->upload(pinned->data(), pinned->bytes(), s));
  FKV_QVERIFY_OK(dev->zero(s));
  FKV_QVERIFY_OK(dev->upload(pinned->data(), 400 * sizeof(float), s, 600 * sizeof(float)));
  FKV_QVERIFY_OK(end->record(s));
  std::vector<float> back(1000, -1.f);
  FKV_QVERIFY_OK(end->wait_on(fkvtest::gpu().ctx->stream()));
  FKV_QVERIFY_OK(dev->download(back.data(), back.size() * sizeof(float), s));
  FKV_QVERIFY_OK(stream->synchronize());
  for (size_t i = 0; i < 600; ++i) FKV_QVERIFY_SAME(back[i], 0.f);
  for (size_t i = 600; i < 1000; ++i) FKV_QVERIFY_SAME(back[i], static_cast<float>(i - 600) * 0.5f);
  auto ms = cu::Event::elapsed_ms(*start, *end);
  QVERIFY2(ms.ok(), ms.message().c_str());
  QVERIFY(*ms >= 0.f);
  QVERIFY(!dev->upload(pinned->data(), sizeof(float), s, dev->bytes()).ok());  // one float past the end
#endif
}

void TestCudaOps::rmsNormMatchesCpu() {
  FKV_NEED_DEVICE();
#ifdef FKV_HAVE_CUDA
  const int rows = 5, n = 1000;  // n not a multiple of the block: the tail threads must sit out
  const auto x = random_floats(static_cast<size_t>(rows) * n, -2.f, 2.f, 1);
  const auto w = random_floats(static_cast<size_t>(n), 0.5f, 1.5f, 2);
  std::vector<float> want(x.size());
  for (int r = 0; r < rows; ++r) fkv::cpu::rms_norm(&x[r * n], w.data(), &want[r * n], n, 1e-6f);
  auto dx = to_device(x), dw = to_device(w), dy = to_device(std::vector<float>(x.size()));
  QVERIFY(dx.ok() && dw.ok() && dy.ok());
  FKV_QVERIFY_OK(cu::rms_norm(dx->as<float>(), dw->as<float>(), dy->as<float>(), rows, n, 1e-6f, nullptr));
  auto got = to_host<float>(*dy);
  QVERIFY2(got.ok(), got.message().c_str());
  expect_close(*got, want, 1e-5f, 1e-30f);
  // In place, as the forward pass uses it for per-head norms.
  FKV_QVERIFY_OK(cu::rms_norm(dx->as<float>(), dw->as<float>(), dx->as<float>(), rows, n, 1e-6f, nullptr));
  auto in_place = to_host<float>(*dx);
  QVERIFY2(in_place.ok(), in_place.message().c_str());
  expect_close(*in_place, want, 1e-5f, 1e-30f);
#endif
}

void TestCudaOps::ropeMatchesCpu_data() {
  QTest::addColumn<bool>("neox");
  QTest::addColumn<int>("scaling");  // fkv::RopeScaling: frequencies and magnitude from model/rope.h, as the forward
  QTest::newRow("neox") << true << static_cast<int>(fkv::RopeScaling::None);
  QTest::newRow("normal") << false << static_cast<int>(fkv::RopeScaling::None);
  QTest::newRow("neox-yarn") << true << static_cast<int>(fkv::RopeScaling::Yarn);
  QTest::newRow("normal-llama3") << false << static_cast<int>(fkv::RopeScaling::Llama3);
}

void TestCudaOps::ropeMatchesCpu() {
  FKV_NEED_DEVICE();
#ifdef FKV_HAVE_CUDA
  QFETCH(bool, neox);
  QFETCH(int, scaling);
  const int n_tokens = 7, n_heads = 3, hd = 64, half = hd / 2;
  const std::vector<int32_t> positions = {0, 1, 2, 31, 1000, 32767, 131071};  // long contexts: large angles
  // YaRN (factor 4) blends interpolated and kept pairs and scales the magnitude; llama3 (factor 8, low 1, high 4)
  // divides the low frequencies; both with an original context of 64 so every regime has pairs here.
  fkv::ModelConfig c;
  c.head_dim = hd;
  c.rope_scaling = static_cast<fkv::RopeScaling>(scaling);
  c.rope_factor = c.rope_scaling == fkv::RopeScaling::Yarn ? 4.f : 8.f;
  c.rope_orig_ctx = 64;
  const std::vector<float> inv_freq = fkv::rope_inv_freq(c, nullptr, 10000.f, true);
  const float scale = fkv::rope_mscale(c, true);
  if (c.rope_scaling == fkv::RopeScaling::Yarn) QVERIFY(scale > 1.f);
  const auto x = random_floats(static_cast<size_t>(n_tokens) * n_heads * hd, -1.f, 1.f, 3);
  std::vector<float> want = x;
  std::vector<float> cos_sin(static_cast<size_t>(hd));  // (half, 2), as Context::fill_rope builds it
  for (int t = 0; t < n_tokens; ++t) {
    for (int i = 0; i < half; ++i) {
      const float a = static_cast<float>(positions[static_cast<size_t>(t)]) * inv_freq[static_cast<size_t>(i)];
      cos_sin[2 * i] = std::cos(a) * scale;
      cos_sin[2 * i + 1] = std::sin(a) * scale;
    }
    for (int h = 0; h < n_heads; ++h) fkv::cpu::rope_head(&want[(t * n_heads + h) * hd], cos_sin.data(), hd, neox);
  }
  auto dx = to_device(x), dp = to_device(positions), df = to_device(inv_freq);
  QVERIFY(dx.ok() && dp.ok() && df.ok());
  FKV_QVERIFY_OK(cu::rope(dx->as<float>(), dp->as<int32_t>(), df->as<float>(), n_tokens, n_heads, hd, neox, scale,
                                 nullptr));
  auto got = to_host<float>(*dx);
  QVERIFY2(got.ok(), got.message().c_str());
  expect_close(*got, want, 1e-5f, 1.f);
#endif
}

void TestCudaOps::activationsMatchCpu() {
  FKV_NEED_DEVICE();
#ifdef FKV_HAVE_CUDA
  const size_t n = 100003;  // odd: grid-stride tails
  const auto g = random_floats(n, -8.f, 8.f, 4);
  const auto x = random_floats(n, -1.f, 1.f, 5);
  auto dg = to_device(g);
  QVERIFY(dg.ok());
  for (const bool gelu : {false, true}) {
    std::vector<float> want = x;
    gelu ? fkv::cpu::gelu_mul(g.data(), want.data(), static_cast<int64_t>(n))
         : fkv::cpu::silu_mul(g.data(), want.data(), static_cast<int64_t>(n));
    auto dx = to_device(x);
    QVERIFY(dx.ok());
    const auto n64 = static_cast<int64_t>(n);
    FKV_QVERIFY_OK(gelu ? cu::gelu_mul(dg->as<float>(), dx->as<float>(), n64, nullptr)
                        : cu::silu_mul(dg->as<float>(), dx->as<float>(), n64, nullptr));
    auto got = to_host<float>(*dx);
    QVERIFY2(got.ok(), got.message().c_str());
    expect_close(*got, want, 1e-5f, 1.f);
  }
#endif
}

void TestCudaOps::addAndConversionsAreExact() {
  FKV_NEED_DEVICE();
#ifdef FKV_HAVE_CUDA
  // Every finite and infinite half (NaN payloads are not compared), then floats across the half range and beyond.
  std::vector<uint16_t> halves;
  for (uint32_t h = 0; h < 0x10000; ++h)
    if ((h & 0x7C00) != 0x7C00 || (h & 0x3FF) == 0) halves.push_back(static_cast<uint16_t>(h));
  std::vector<float> floats = random_floats(50000, -70000.f, 70000.f, 6);
  for (float& v : random_floats(50000, -1.f, 1.f, 7)) floats.push_back(v * 1e-6f);  // half subnormals
  floats.insert(floats.end(), {0.f, -0.f, 65504.f, 65519.f, 65520.f, 1e-8f, 2.98e-8f, 5.96e-8f, INFINITY, -INFINITY});
  auto dh = to_device(halves), dhf = to_device(std::vector<float>(halves.size()));
  auto df = to_device(floats), dfh = to_device(std::vector<uint16_t>(floats.size()));
  QVERIFY(dh.ok() && dhf.ok() && df.ok() && dfh.ok());
  FKV_QVERIFY_OK(cu::f16_to_f32(dh->as<uint16_t>(), dhf->as<float>(), static_cast<int64_t>(halves.size()), nullptr));
  FKV_QVERIFY_OK(cu::f32_to_f16(df->as<float>(), dfh->as<uint16_t>(), static_cast<int64_t>(floats.size()), nullptr));
  auto widened = to_host<float>(*dhf);
  auto narrowed = to_host<uint16_t>(*dfh);
  QVERIFY(widened.ok() && narrowed.ok());
  for (size_t i = 0; i < halves.size(); ++i) FKV_QVERIFY_SAME((*widened)[i], fkv::cpu::f16_to_f32(halves[i]));
  for (size_t i = 0; i < floats.size(); ++i) QCOMPARE((*narrowed)[i], fkv::cpu::f32_to_f16(floats[i]));

  const auto y = random_floats(floats.size(), -3.f, 3.f, 8);
  auto dy = to_device(y);
  QVERIFY(dy.ok());
  FKV_QVERIFY_OK(cu::add_inplace(df->as<float>(), dy->as<float>(), static_cast<int64_t>(y.size()), nullptr));
  auto sum = to_host<float>(*df);
  QVERIFY(sum.ok());
  for (size_t i = 0; i < y.size(); ++i) FKV_QVERIFY_SAME((*sum)[i], floats[i] + y[i]);
#endif
}

void TestCudaOps::embeddingGatherIsExact() {
  FKV_NEED_DEVICE();
#ifdef FKV_HAVE_CUDA
  const int n_vocab = 50, n_embd = 300;
  const float scale = 17.320508f;  // gemma-style sqrt(n_embd)
  const auto table = random_floats(static_cast<size_t>(n_vocab) * n_embd, -1.f, 1.f, 9);
  std::vector<uint16_t> table_f16(table.size());
  fkv::cpu::f32_to_f16_row(table.data(), table_f16.data(), static_cast<int64_t>(table.size()));
  const std::vector<int32_t> tokens = {0, 49, 7, 7, 23, 50, -1};  // the last two are out of range: zero rows
  const int n_tokens = static_cast<int>(tokens.size());
  auto dt = to_device(table), dt16 = to_device(table_f16), dtok = to_device(tokens);
  auto out = to_device(std::vector<float>(tokens.size() * n_embd, 9.f));
  QVERIFY(dt.ok() && dt16.ok() && dtok.ok() && out.ok());
  for (const bool f16 : {false, true}) {
    const int32_t* tok = dtok->as<int32_t>();
    FKV_QVERIFY_OK(
        f16 ? cu::embed_f16(dt16->as<uint16_t>(), n_vocab, n_embd, tok, n_tokens, scale, out->as<float>(), nullptr)
            : cu::embed_f32(dt->as<float>(), n_vocab, n_embd, tok, n_tokens, scale, out->as<float>(), nullptr));
    auto got = to_host<float>(*out);
    QVERIFY(got.ok());
    std::vector<float> row(static_cast<size_t>(n_embd));
    for (int t = 0; t < n_tokens; ++t) {
      const int id = tokens[static_cast<size_t>(t)];
      const bool valid = id >= 0 && id < n_vocab;
      if (valid) {
        const fkv::DType type = f16 ? fkv::DType::F16 : fkv::DType::F32;
        const void* src = f16 ? static_cast<const void*>(&table_f16[static_cast<size_t>(id) * n_embd])
                              : static_cast<const void*>(&table[static_cast<size_t>(id) * n_embd]);
        fkv::cpu::dequantize_row(type, src, row.data(), n_embd);
      }
      for (int j = 0; j < n_embd; ++j)
        FKV_QVERIFY_SAME((*got)[static_cast<size_t>(t) * n_embd + j],
                         valid ? row[static_cast<size_t>(j)] * scale : 0.f);
    }
  }
#endif
}

void TestCudaOps::matmulF32MatchesReference() {
  FKV_NEED_DEVICE();
#ifdef FKV_HAVE_CUDA
  const int k = 300, n = 77;
  for (const int rows : {1, 5}) {  // decode (one row) and a prefill chunk
    const auto a = random_floats(static_cast<size_t>(rows) * k, -1.f, 1.f, 10);
    const auto w = random_floats(static_cast<size_t>(n) * k, -1.f, 1.f, 11);
    std::vector<double> want, scale;
    reference_matmul(a, w, rows, k, n, want, scale);
    auto da = to_device(a), dw = to_device(w), dout = to_device(std::vector<float>(static_cast<size_t>(rows) * n));
    QVERIFY(da.ok() && dw.ok() && dout.ok());
    cu::DeviceContext& ctx = *fkvtest::gpu().ctx;
    FKV_QVERIFY_OK(cu::matmul_f32(ctx, da->as<float>(), dw->as<float>(), dout->as<float>(), rows, k, n, ctx.stream()));
    auto got = to_host<float>(*dout);
    QVERIFY2(got.ok(), got.message().c_str());
    expect_matmul(*got, want, scale, 1e-4);
  }
#endif
}

void TestCudaOps::matmulF16MatchesReference() {
  FKV_NEED_DEVICE();
#ifdef FKV_HAVE_CUDA
  const int rows = 6, k = 512, n = 130;
  const auto a = random_floats(static_cast<size_t>(rows) * k, -1.f, 1.f, 12);
  const auto w = random_floats(static_cast<size_t>(n) * k, -1.f, 1.f, 13);
  std::vector<uint16_t> w16(w.size());
  fkv::cpu::f32_to_f16_row(w.data(), w16.data(), static_cast<int64_t>(w.size()));
  std::vector<double> want, scale;
  reference_matmul(a, w, rows, k, n, want, scale);  // unrounded: the bound covers both f16 roundings
  auto da = to_device(a), da16 = to_device(std::vector<uint16_t>(a.size())), dw16 = to_device(w16);
  auto dout = to_device(std::vector<float>(static_cast<size_t>(rows) * n));
  QVERIFY(da.ok() && da16.ok() && dw16.ok() && dout.ok());
  cu::DeviceContext& ctx = *fkvtest::gpu().ctx;
  FKV_QVERIFY_OK(cu::f32_to_f16(da->as<float>(), da16->as<uint16_t>(), static_cast<int64_t>(a.size()), ctx.stream()));
  FKV_QVERIFY_OK(
      cu::matmul_f16(ctx, da16->as<uint16_t>(), dw16->as<uint16_t>(), dout->as<float>(), rows, k, n, ctx.stream()));
  auto got = to_host<float>(*dout);
  QVERIFY2(got.ok(), got.message().c_str());
  expect_matmul(*got, want, scale, 2e-3);
#endif
}

// A down projection (k = n_ff 512 -> n = n_embd 96) whose input rows reach past F16's 65504, as a gated FFN's can
// while the CPU keeps them in F32: a row at 1e5..3e5, one just past the limit, one of +-1 with a single 1e7, and a
// plain +-1 row (left unscaled). Every output must be finite and within 2e-3 of sum |a_i w_i| of the exact product.
void TestCudaOps::matmulF16ScaledKeepsLargeActivations() {
  FKV_NEED_DEVICE();
#ifdef FKV_HAVE_CUDA
  const int rows = 4, k = 512, n = 96;
  std::vector<float> a = random_floats(static_cast<size_t>(rows) * k, -1.f, 1.f, 14);  // (rows, k)
  const auto big = random_floats(static_cast<size_t>(k), 1e5f, 3e5f, 15);
  for (int i = 0; i < k; ++i) {
    const float sign = i % 3 == 0 ? -1.f : 1.f;
    a[static_cast<size_t>(i)] = sign * big[static_cast<size_t>(i)];  // row 0
    a[static_cast<size_t>(k + i)] = sign * (65504.f + static_cast<float>(i));  // row 1
  }
  a[static_cast<size_t>(2 * k + 7)] = 1e7f;  // row 2: one outlier; row 3 stays in +-1
  const auto w = random_floats(static_cast<size_t>(n) * k, -1.f, 1.f, 16);
  std::vector<uint16_t> w16(w.size());
  fkv::cpu::f32_to_f16_row(w.data(), w16.data(), static_cast<int64_t>(w.size()));
  std::vector<double> want, scale;
  reference_matmul(a, w, rows, k, n, want, scale);
  auto da = to_device(a), da16 = to_device(std::vector<uint16_t>(a.size())), dw16 = to_device(w16);
  auto dscale = to_device(std::vector<float>(static_cast<size_t>(rows)));
  auto dout = to_device(std::vector<float>(static_cast<size_t>(rows) * n));
  QVERIFY(da.ok() && da16.ok() && dw16.ok() && dscale.ok() && dout.ok());
  cu::DeviceContext& ctx = *fkvtest::gpu().ctx;
  // The hazard itself: the plain conversion of row 0 holds infinities.
  FKV_QVERIFY_OK(cu::f32_to_f16(da->as<float>(), da16->as<uint16_t>(), k, ctx.stream()));
  auto plain = to_host<uint16_t>(*da16);
  QVERIFY2(plain.ok(), plain.message().c_str());
  QVERIFY(std::count(plain->begin(), plain->begin() + k, uint16_t{0x7C00}) > 0);
  const cu::F16Staging staging{da16->as<uint16_t>(), dscale->as<float>()};
  FKV_QVERIFY_OK(cu::matmul_f16_scaled(ctx, da->as<float>(), dw16->as<uint16_t>(), dout->as<float>(), rows, k, n,
                                       staging, ctx.stream()));
  auto got = to_host<float>(*dout);
  QVERIFY2(got.ok(), got.message().c_str());
  for (float x : *got) QVERIFY(std::isfinite(x));
  expect_matmul(*got, want, scale, 2e-3);
  auto scales = to_host<float>(*dscale);
  QVERIFY2(scales.ok(), scales.message().c_str());
  QCOMPARE((*scales)[3], 1.f);  // a row inside F16's range converts unscaled
  QVERIFY((*scales)[0] > 1.f && (*scales)[1] > 1.f && (*scales)[2] > 1.f);
#endif
}

QTEST_APPLESS_MAIN(TestCudaOps)
#include "test_cuda_ops.moc"
