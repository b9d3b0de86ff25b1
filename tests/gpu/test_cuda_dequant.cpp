// GPU suite for backend/cuda/dequant.h and device_weights.h.
// Every weight type is decoded on the device and compared bit for bit with the CPU reference dequantization
// (cpu::ref::dequantize_row) rounded to F16 by cpu::f32_to_f16 (both round to nearest even), on blocks made two ways:
// by the CPU quantizer from random data, and from random bytes with finite F16 scales (which reach scale and code bit
// patterns no quantizer writes), and on a matrix of more 256-column tiles than one grid holds. Then synthetic models of
// every weight type are uploaded through a small staging buffer (many pieces per matrix) and every row of every
// matrix, and every vector, is compared with the CPU.
// Host-side checks (arguments, chunk planning, upload sizes) run in every CUDA build; the rest skips without a device.
#include <QtTest>

#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <vector>

#include "backend/cpu/quant.h"
#include "core/dtype.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "support/gpu_rig.h"
#include "support/test_paths.h"

namespace {

constexpr fkv::DType kTypes[] = {fkv::DType::F32,  fkv::DType::F16,  fkv::DType::BF16,
                                 fkv::DType::Q4_0, fkv::DType::Q5_0, fkv::DType::Q8_0,
                                 fkv::DType::Q4_K, fkv::DType::Q5_K, fkv::DType::Q6_K};

}  // namespace

#ifdef FKV_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_util.h"
#include "backend/cuda/dequant.h"
#include "backend/cuda/device.h"
#include "backend/cuda/device_weights.h"

namespace cu = fkv::cuda;

namespace {

// Columns for a test matrix of `t`: three blocks plus, for small blocks, a partial 256-column tile at the row's end.
int64_t test_cols(fkv::DType t) {
  const int64_t block = fkv::dtype_info(t).block_size;
  return block == 1 ? 300 : block == 32 ? 352 : 768;
}

// Floats spread over many binades (F16 subnormals up to values past F16's range) so the rounding is exercised.
std::vector<float> spread_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mant(0.5f, 1.f);
  std::uniform_int_distribution<int> exp(-26, 18);
  std::vector<float> v(n);
  for (float& x : v) x = std::ldexp(mant(rng), exp(rng)) * (rng() % 2 ? 1.f : -1.f);
  return v;
}

// Byte offsets of the F16 scale fields of one block of `t` (none for the plain float types).
std::vector<size_t> scale_offsets(fkv::DType t) {
  switch (t) {
    case fkv::DType::Q4_0:
    case fkv::DType::Q5_0:
    case fkv::DType::Q8_0:
      return {0};
    case fkv::DType::Q4_K:
    case fkv::DType::Q5_K:
      return {0, 2};
    case fkv::DType::Q6_K:
      return {208};
    default:
      return {};
  }
}

// (n_rows, row_bytes) raw rows of `t`: quantized random data, or random bytes whose F16 scales are finite.
std::vector<uint8_t> make_rows(fkv::DType t, int64_t n_rows, int64_t n_cols, bool random_bytes, uint32_t seed) {
  const size_t rb = fkv::row_bytes(t, n_cols);
  std::vector<uint8_t> raw(rb * static_cast<size_t>(n_rows));
  std::mt19937 rng(seed);
  if (random_bytes && !scale_offsets(t).empty()) {
    for (uint8_t& b : raw) b = static_cast<uint8_t>(rng());
    std::uniform_real_distribution<float> d(-2.f, 2.f);
    const size_t bytes = fkv::dtype_info(t).type_size;
    for (size_t blk = 0; blk < raw.size() / bytes; ++blk)
      for (size_t off : scale_offsets(t)) {
        const uint16_t h = fkv::cpu::f32_to_f16(d(rng));
        std::memcpy(&raw[blk * bytes + off], &h, sizeof h);
      }
    return raw;
  }
  // Plain float types have no scale to pick: their "random bytes" case is another draw of spread values.
  const std::vector<float> x = spread_floats(static_cast<size_t>(n_rows * n_cols), seed);
  for (int64_t r = 0; r < n_rows; ++r)
    fkv::cpu::ref::quantize_row(t, x.data() + r * n_cols, raw.data() + static_cast<size_t>(r) * rb, n_cols);
  return raw;
}

// The CPU's answer for one row: reference dequantization, then f32 -> f16.   raw row (row_bytes) -> out (n_cols)
void cpu_row_f16(fkv::DType t, const void* raw_row, int64_t n_cols, uint16_t* out) {
  std::vector<float> f(static_cast<size_t>(n_cols));
  fkv::cpu::ref::dequantize_row(t, raw_row, f.data(), n_cols);
  for (int64_t i = 0; i < n_cols; ++i) out[i] = fkv::cpu::f32_to_f16(f[static_cast<size_t>(i)]);
}

// Every row of a device matrix against the CPU decoding of the host rows; the first difference fails with its place.
void expect_matrix(const char* name, const fkv::cpu::MatrixView& host, const cu::DeviceMatrix& dev) {
  QVERIFY2(dev.data != nullptr, name);
  QCOMPARE(dev.n_rows, host.n_rows);
  QCOMPARE(dev.n_cols, host.n_cols);
  std::vector<uint16_t> got(static_cast<size_t>(dev.n_rows * dev.n_cols));
  FKV_QVERIFY_OK(
      cu::cuda_status(cudaMemcpy(got.data(), dev.data, got.size() * 2, cudaMemcpyDeviceToHost), "cudaMemcpy"));
  std::vector<uint16_t> want(static_cast<size_t>(host.n_cols));
  const size_t rb = fkv::row_bytes(host.type, host.n_cols);
  for (int64_t r = 0; r < host.n_rows; ++r) {
    cpu_row_f16(host.type, static_cast<const uint8_t*>(host.data) + static_cast<size_t>(r) * rb, host.n_cols,
                want.data());
    const uint16_t* row = got.data() + r * host.n_cols;
    for (int64_t c = 0; c < host.n_cols; ++c)
      if (row[c] != want[static_cast<size_t>(c)])
        QFAIL(qPrintable(QString("%1 row %2 col %3: got f16 0x%4, want 0x%5")
                             .arg(QString::fromLatin1(name))
                             .arg(r)
                             .arg(c)
                             .arg(row[c], 4, 16, QChar('0'))
                             .arg(want[static_cast<size_t>(c)], 4, 16, QChar('0'))));
  }
}

void expect_vector(const char* name, const float* host, const float* dev, int n) {
  QCOMPARE(host == nullptr, dev == nullptr);
  if (host == nullptr) return;
  std::vector<float> got(static_cast<size_t>(n));
  FKV_QVERIFY_OK(cu::cuda_status(cudaMemcpy(got.data(), dev, got.size() * 4, cudaMemcpyDeviceToHost), "cudaMemcpy"));
  QVERIFY2(std::memcmp(got.data(), host, got.size() * 4) == 0, name);
}

// A small model of `t` (n_embd 256: rows of whole K-quant super-blocks) loaded from a fresh file, or null.
std::unique_ptr<fkv::Model> synthetic_model(fkv::DType t, bool tied, QString* why) {
  fkv::SyntheticModelSpec s;
  s.weight_type = t;
  s.n_embd = 256;
  s.n_ff = 512;
  s.tied_embeddings = tied;
  s.seed = 7;
  s.vocab_path = fkvtest::llamaVocabPath().toStdString();
  const std::string path = (fkvtest::tempDir() + "/weights-" + fkv::dtype_name(t) + ".gguf").toStdString();
  if (fkv::Status st = fkv::write_synthetic_model(s, path); !st.ok()) {
    *why = QString::fromStdString(st.message());
    return nullptr;
  }
  auto m = fkv::Model::load(path);
  if (!m.ok()) {
    *why = QString::fromStdString(m.message());
    return nullptr;
  }
  return std::move(m).value();
}

}  // namespace

#endif

class TestCudaDequant : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase();
  void argumentsAreCheckedOnTheHost();
  void rowsPerChunk();
  void planCountsEveryTensorOnce();
  void dequantMatchesCpu_data();
  void dequantMatchesCpu();
  void modelUploadMatchesCpu_data();
  void modelUploadMatchesCpu();
  void uploadCanBeCancelled();
};

void TestCudaDequant::initTestCase() {
#ifdef FKV_HAVE_CUDA
  FKV_QVERIFY_OK(fkvtest::initGpu());  // a listed device must give a context
#endif
}

void TestCudaDequant::argumentsAreCheckedOnTheHost() {
#ifndef FKV_HAVE_CUDA
  FKV_NEED_DEVICE();
#else
  for (fkv::DType t : kTypes) QVERIFY2(cu::dequant_supported(t), fkv::dtype_name(t));
  QVERIFY(!cu::dequant_supported(fkv::DType::Q8_K));  // activations only
  uint8_t raw[4] = {};
  uint16_t out[4] = {};
  const fkv::Status q8k = cu::dequantize_to_f16(fkv::DType::Q8_K, raw, 1, 256, out, nullptr);
  QVERIFY2(q8k.message().find("expected a weight type") != std::string::npos, q8k.message().c_str());
  QVERIFY2(q8k.message().find("Q8_K") != std::string::npos, q8k.message().c_str());
  const fkv::Status cols = cu::dequantize_to_f16(fkv::DType::Q4_K, raw, 1, 100, out, nullptr);
  QVERIFY2(cols.message().find("multiple of Q4_K's block size 256, found 100") != std::string::npos,
           cols.message().c_str());
  const fkv::Status neg = cu::dequantize_to_f16(fkv::DType::F32, raw, -1, 4, out, nullptr);
  QVERIFY2(neg.message().find("found -1 x 4") != std::string::npos, neg.message().c_str());
  const fkv::Status null = cu::dequantize_to_f16(fkv::DType::Q8_0, nullptr, 2, 32, out, nullptr);
  QVERIFY2(null.message().find("null pointer") != std::string::npos, null.message().c_str());
  // Empty matrices are valid and launch nothing (so they succeed even without a device).
  FKV_QVERIFY_OK(cu::dequantize_to_f16(fkv::DType::Q6_K, nullptr, 0, 256, nullptr, nullptr));
  FKV_QVERIFY_OK(cu::dequantize_to_f16(fkv::DType::F16, nullptr, 5, 0, nullptr, nullptr));
#endif
}

void TestCudaDequant::rowsPerChunk() {
#ifndef FKV_HAVE_CUDA
  FKV_NEED_DEVICE();
#else
  QCOMPARE(cu::rows_per_chunk(0, 144, 4096), int64_t{0});
  QCOMPARE(cu::rows_per_chunk(100, 144, 4096), int64_t{28});  // 4096 / 144 = 28 whole rows
  QCOMPARE(cu::rows_per_chunk(10, 144, 4096), int64_t{10});   // never more rows than the matrix has
  QCOMPARE(cu::rows_per_chunk(100, 8192, 4096), int64_t{1});  // a row larger than the chunk still moves
  QCOMPARE(cu::rows_per_chunk(100, 4096, 4096), int64_t{1});
  QCOMPARE(cu::rows_per_chunk(7, 0, 4096), int64_t{7});
#endif
}

void TestCudaDequant::planCountsEveryTensorOnce() {
#ifndef FKV_HAVE_CUDA
  FKV_NEED_DEVICE();
#else
  for (bool tied : {false, true}) {
    QString why;
    auto model = synthetic_model(fkv::DType::Q4_K, tied, &why);
    QVERIFY2(model, qPrintable(why));
    const fkv::ModelWeights& w = model->weights();
    const fkv::ModelConfig& c = model->config();
    // Counted here from the views, independently of the uploader's job list.
    size_t raw = 0, resident = 0;
    auto matrix = [&](const fkv::cpu::MatrixView& m) {
      raw += static_cast<size_t>(m.n_rows) * fkv::row_bytes(m.type, m.n_cols);
      resident += static_cast<size_t>(m.n_rows * m.n_cols) * 2;
    };
    matrix(w.tok_embd);
    if (!tied) matrix(w.output);
    for (const auto& l : w.layers)
      for (const auto* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) matrix(*m);
    const size_t vectors = (static_cast<size_t>(c.n_layers) * 2 + 1) * static_cast<size_t>(c.n_embd) * 4;
    const cu::UploadPlan plan = cu::plan_upload(*model);
    QCOMPARE(plan.raw_bytes, raw + vectors);
    QCOMPARE(plan.resident_bytes, resident + vectors);
    QCOMPARE(plan.n_tensors, 2 + (tied ? 0 : 1) + c.n_layers * 9);           // embd, norm, output; 2 norms + 7 matrices
    QCOMPARE(plan.max_row_bytes, fkv::row_bytes(fkv::DType::Q4_K, c.n_ff));  // w_down rows are n_ff long
    QCOMPARE(plan.max_tensor_bytes, static_cast<size_t>(c.n_vocab) * fkv::row_bytes(fkv::DType::Q4_K, c.n_embd));
  }
#endif
}

void TestCudaDequant::dequantMatchesCpu_data() {
  QTest::addColumn<int>("type");
  QTest::addColumn<bool>("random_bytes");
  QTest::addColumn<bool>("past_one_grid");
  for (fkv::DType t : kTypes) {
    const auto id = static_cast<int>(t);
    const std::string name = fkv::dtype_name(t);
    QTest::newRow((name + " quantized").c_str()) << id << false << false;
    QTest::newRow((name + " random bytes").c_str()) << id << true << false;
    // More 256-column tiles than one grid's 65,535 blocks: the grid-stride loop must cover the rest.
    QTest::newRow((name + " past one grid").c_str()) << id << false << true;
  }
}

void TestCudaDequant::dequantMatchesCpu() {
  FKV_NEED_DEVICE();
#ifdef FKV_HAVE_CUDA
  QFETCH(int, type);
  QFETCH(bool, random_bytes);
  QFETCH(bool, past_one_grid);
  const auto t = static_cast<fkv::DType>(type);
  const int64_t n_cols = test_cols(t), tiles_per_row = (n_cols + 255) / 256;
  const int64_t n_rows = past_one_grid ? 65535 / tiles_per_row + 2 : 5;
  const std::vector<uint8_t> raw = make_rows(t, n_rows, n_cols, random_bytes, 1000u + static_cast<uint32_t>(type));
  // One byte past an aligned start: the kernels must not assume aligned blocks.
  auto dev_raw = cu::DeviceBuffer::allocate(raw.size() + 1);
  auto dev_out = cu::DeviceBuffer::allocate(static_cast<size_t>(n_rows * n_cols) * 2);
  QVERIFY(dev_raw.ok() && dev_out.ok());
  const cu::StreamHandle s = fkvtest::gpu().ctx->stream();
  FKV_QVERIFY_OK(dev_raw->upload(raw.data(), raw.size(), s, 1));
  FKV_QVERIFY_OK(cu::dequantize_to_f16(t, dev_raw->as<uint8_t>() + 1, n_rows, n_cols, dev_out->as<uint16_t>(), s));
  FKV_QVERIFY_OK(cu::cuda_status(cudaStreamSynchronize(s), "cudaStreamSynchronize"));
  const fkv::cpu::MatrixView host{raw.data(), t, n_rows, n_cols};
  expect_matrix(fkv::dtype_name(t), host, cu::DeviceMatrix{dev_out->as<const uint16_t>(), n_rows, n_cols});
#endif
}

void TestCudaDequant::modelUploadMatchesCpu_data() {
  QTest::addColumn<int>("type");
  QTest::addColumn<bool>("tied");
  for (fkv::DType t : kTypes) {
    const bool tied = t == fkv::DType::Q4_K;  // one tied model: the output shares the embedding's upload
    QTest::newRow((std::string(fkv::dtype_name(t)) + (tied ? " tied" : "")).c_str()) << static_cast<int>(t) << tied;
  }
}

void TestCudaDequant::modelUploadMatchesCpu() {
  FKV_NEED_DEVICE();
#ifdef FKV_HAVE_CUDA
  QFETCH(int, type);
  QFETCH(bool, tied);
  QString why;
  auto model = synthetic_model(static_cast<fkv::DType>(type), tied, &why);
  QVERIFY2(model, qPrintable(why));
  cu::UploadOptions opt;
  opt.staging_bytes = 8192;  // many pieces per matrix: chunk boundaries are exercised
  size_t last = 0, calls = 0;
  opt.progress = [&](size_t done, size_t) {
    if (done <= last) return false;  // progress must advance
    last = done;
    ++calls;
    return true;
  };
  auto dw = cu::DeviceWeights::upload(*model, *fkvtest::gpu().ctx, opt);
  QVERIFY2(dw.ok(), dw.message().c_str());
  const cu::UploadPlan plan = cu::plan_upload(*model);
  QCOMPARE(dw->bytes_uploaded(), plan.raw_bytes);
  QCOMPARE(dw->resident_bytes(), plan.resident_bytes);
  QCOMPARE(last, plan.raw_bytes);
  QVERIFY(calls > static_cast<size_t>(plan.n_tensors));
  const fkv::ModelWeights& w = model->weights();
  const cu::DeviceModelWeights& d = dw->weights();
  const fkv::ModelConfig& c = model->config();
  expect_matrix("token_embd", w.tok_embd, d.tok_embd);
  expect_matrix("output", w.output, d.output);
  QCOMPARE(d.output.data == d.tok_embd.data, tied);
  expect_vector("output_norm", w.output_norm, d.output_norm, c.n_embd);
  QCOMPARE(d.layers.size(), w.layers.size());
  for (size_t il = 0; il < w.layers.size(); ++il) {
    const auto& h = w.layers[il];
    const auto& g = d.layers[il];
    expect_matrix("wq", h.wq, g.wq);
    expect_matrix("wk", h.wk, g.wk);
    expect_matrix("wv", h.wv, g.wv);
    expect_matrix("wo", h.wo, g.wo);
    expect_matrix("w_gate", h.w_gate, g.w_gate);
    expect_matrix("w_up", h.w_up, g.w_up);
    expect_matrix("w_down", h.w_down, g.w_down);
    expect_vector("attn_norm", h.attn_norm, g.attn_norm, c.n_embd);
    expect_vector("ffn_norm", h.ffn_norm, g.ffn_norm, c.n_embd);
    QVERIFY(g.bq == nullptr && g.q_norm == nullptr && g.post_attn_norm == nullptr);  // llama has none of these
  }
#endif
}

void TestCudaDequant::uploadCanBeCancelled() {
  FKV_NEED_DEVICE();
#ifdef FKV_HAVE_CUDA
  QString why;
  auto model = synthetic_model(fkv::DType::Q8_0, false, &why);
  QVERIFY2(model, qPrintable(why));
  cu::UploadOptions opt;
  opt.staging_bytes = 8192;
  int calls = 0;
  opt.progress = [&](size_t, size_t) { return ++calls < 3; };
  auto dw = cu::DeviceWeights::upload(*model, *fkvtest::gpu().ctx, opt);
  QVERIFY(!dw.ok());
  QVERIFY2(dw.message().find("cancelled") != std::string::npos, dw.message().c_str());
  QVERIFY2(dw.message().find("token_embd.weight") != std::string::npos, dw.message().c_str());  // the first tensor
  QCOMPARE(calls, 3);
#endif
}

QTEST_APPLESS_MAIN(TestCudaDequant)
#include "test_cuda_dequant.moc"
