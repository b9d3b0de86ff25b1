// Element encodings and products (backend/cpu/quant.h): layouts checked on hand-built blocks, quantizer round trips,
// AVX2 against the scalar reference, and matmul against a plain double loop.
#include <QTest>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/quant.h"
#include "core/thread_pool.h"

using fkv::DType;
using fkv::ThreadPool;
namespace cpu = fkv::cpu;

Q_DECLARE_METATYPE(DType)
Q_DECLARE_METATYPE(fkv::cpu::Isa)

namespace {

constexpr DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q5_0,
                                  DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Forces an ISA for one scope and restores the previous one.
// Turns the AVX-512 VNNI tile kernels on or off for a scope (they serve only where the CPU has them).
class VnniScope {
 public:
  explicit VnniScope(bool on) : saved_(cpu::vnni_enabled()) { cpu::set_vnni(on); }
  ~VnniScope() { cpu::set_vnni(saved_); }
  VnniScope(const VnniScope&) = delete;
  VnniScope& operator=(const VnniScope&) = delete;

 private:
  bool saved_;
};

class IsaScope {
 public:
  explicit IsaScope(cpu::Isa isa) : saved_(cpu::active_isa()) { cpu::set_active_isa(isa); }
  ~IsaScope() { cpu::set_active_isa(saved_); }
  IsaScope(const IsaScope&) = delete;
  IsaScope& operator=(const IsaScope&) = delete;

 private:
  cpu::Isa saved_;
};

bool have_avx2() { return cpu::detected_isa() == cpu::Isa::Avx2; }

// y = x W^T, (n_tok, n_rows), through cpu::matmul on a pool of `threads`.
std::vector<float> matmulOf(DType type, const std::vector<uint8_t>& w, const std::vector<float>& x, int64_t n_rows,
                            int64_t n_cols, int64_t n_tok, int threads) {
  std::vector<uint8_t> scratch(cpu::matmul_scratch_bytes(type, n_cols, n_tok));
  std::vector<float> y(static_cast<size_t>(n_tok * n_rows));
  ThreadPool pool(threads);
  cpu::matmul(cpu::MatrixView{w.data(), type, n_rows, n_cols}, x.data(), n_tok, y.data(), n_rows, scratch.data(), pool);
  return y;
}

std::vector<float> gaussian(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// Rows (n_rows, n_cols) of x encoded as `t` by the reference quantizer.
std::vector<uint8_t> encode(DType t, const std::vector<float>& x, int64_t n_rows, int64_t n_cols) {
  const size_t rb = fkv::row_bytes(t, n_cols);
  std::vector<uint8_t> out(rb * static_cast<size_t>(n_rows));
  for (int64_t r = 0; r < n_rows; ++r) cpu::ref::quantize_row(t, x.data() + r * n_cols, out.data() + r * rb, n_cols);
  return out;
}

std::vector<float> decode(DType t, const std::vector<uint8_t>& q, int64_t n_rows, int64_t n_cols) {
  const size_t rb = fkv::row_bytes(t, n_cols);
  std::vector<float> out(static_cast<size_t>(n_rows * n_cols));
  for (int64_t r = 0; r < n_rows; ++r) cpu::ref::dequantize_row(t, q.data() + r * rb, out.data() + r * n_cols, n_cols);
  return out;
}

double norm(const float* v, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(v[i]) * v[i];
  return std::sqrt(s);
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void put_f16(uint8_t* p, float v) {
  const uint16_t h = cpu::f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// Decodes a hand-built block with the reference and through the dispatcher (every ISA) and checks each value.
void check_block(DType t, const std::vector<uint8_t>& block, const std::vector<float>& expected) {
  const auto n = static_cast<int64_t>(expected.size());
  QCOMPARE(block.size(), fkv::row_bytes(t, n));
  std::vector<float> got(expected.size());
  cpu::ref::dequantize_row(t, block.data(), got.data(), n);
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != expected[i])
      QFAIL(qPrintable(QStringLiteral("%1 element %2: expected %3, found %4")
                           .arg(fkv::dtype_name(t))
                           .arg(i)
                           .arg(expected[i])
                           .arg(got[i])));
  }
  for (cpu::Isa isa : {cpu::Isa::Scalar, cpu::Isa::Avx2}) {
    IsaScope scope(isa);
    std::vector<float> fast(expected.size());
    cpu::dequantize_row(t, block.data(), fast.data(), n);
    QCOMPARE(fast, expected);
  }
}

// The K-quant test scales: sub-block j has scale kSc[j] and min kMin[j]; kScaleBytes is their 12-byte packing,
// worked out by hand from the layout (j < 4: low 6 bits of bytes j / j+4; j >= 4: nibbles of byte j+4 and the
// top two bits of bytes j-4 / j).
constexpr uint8_t kSc[8] = {1, 2, 3, 4, 33, 45, 62, 63};
constexpr uint8_t kMin[8] = {5, 6, 7, 8, 17, 29, 40, 63};
constexpr uint8_t kScaleBytes[12] = {0x81, 0x82, 0xC3, 0xC4, 0x45, 0x46, 0x87, 0xC8, 0x11, 0xDD, 0x8E, 0xFF};

}  // namespace

class TestQuant : public QObject {
  Q_OBJECT

 private slots:
  void f16AllValuesRoundTrip();
  void f16Rounding();
  void f16FastMatchesReference();
  void bf16Conversions();
  void handBuiltQ8_0();
  void handBuiltQ4_0();
  void handBuiltQ5_0();
  void handBuiltQ4_K();
  void handBuiltQ5_K();
  void handBuiltQ6_K();
  void roundTripError_data();
  void roundTripError();
  void activationEncodersMatchReference();
  void dequantizeFastMatchesReference();
  void vecDot_data();
  void vecDot();
  void matmulMatchesDoubleLoop_data();
  void matmulMatchesDoubleLoop();
  void matmulWalksTokenChunks();
  void offsetCodesAtTheirExtremes();
  void isaSelection();
};

// ---- f16 / bf16 ----

void TestQuant::f16AllValuesRoundTrip() {
  int n_nan = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto h16 = static_cast<uint16_t>(h);
    const float f = cpu::f16_to_f32(h16);
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0) {  // NaN: stays NaN with its sign; quiet ones keep the payload
      ++n_nan;
      QVERIFY(std::isnan(f));
      QCOMPARE(std::signbit(f), (h & 0x8000) != 0);
      const uint16_t back = cpu::f32_to_f16(f);
      QVERIFY((back & 0x7C00) == 0x7C00 && (back & 0x3FF) != 0);
      if ((h & 0x200) != 0) QCOMPARE(back, h16);
      continue;
    }
    if (cpu::f32_to_f16(f) != h16) QFAIL(qPrintable(QStringLiteral("f16 0x%1 did not round-trip").arg(h, 4, 16)));
  }
  QCOMPARE(n_nan, 2 * 1023);
  QCOMPARE(cpu::f16_to_f32(0x3C00), 1.0f);
  QCOMPARE(cpu::f16_to_f32(0xC000), -2.0f);
  QCOMPARE(cpu::f16_to_f32(0x7BFF), 65504.0f);
  QCOMPARE(cpu::f16_to_f32(0x0400), std::ldexp(1.0f, -14));            // smallest normal
  QCOMPARE(cpu::f16_to_f32(0x0001), std::ldexp(1.0f, -24));            // smallest subnormal
  QCOMPARE(cpu::f16_to_f32(0x03FF), 1023.0f * std::ldexp(1.0f, -24));  // largest subnormal
  QCOMPARE(cpu::f16_to_f32(0x7C00), INFINITY);
  QCOMPARE(cpu::f16_to_f32(0xFC00), -INFINITY);
  QVERIFY(std::signbit(cpu::f16_to_f32(0x8000)) && cpu::f16_to_f32(0x8000) == 0.0f);
}

void TestQuant::f16Rounding() {
  const float u = std::ldexp(1.0f, -24);                                      // one subnormal step
  QCOMPARE(cpu::f32_to_f16(1.0f + std::ldexp(1.0f, -11)), uint16_t{0x3C00});  // tie goes to the even mantissa
  QCOMPARE(cpu::f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), uint16_t{0x3C02});
  QCOMPARE(cpu::f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), uint16_t{0x3C01});
  QCOMPARE(cpu::f32_to_f16(65519.0f), uint16_t{0x7BFF});
  QCOMPARE(cpu::f32_to_f16(65520.0f), uint16_t{0x7C00});  // halfway to 65536 rounds to even: infinity
  QCOMPARE(cpu::f32_to_f16(-1e9f), uint16_t{0xFC00});
  QCOMPARE(cpu::f32_to_f16(0.5f * u), uint16_t{0x0000});  // half a step: tie to even (zero)
  QCOMPARE(cpu::f32_to_f16(1.5f * u), uint16_t{0x0002});  // one and a half steps: tie to even (two)
  QCOMPARE(cpu::f32_to_f16(0.5f * u + std::ldexp(1.0f, -40)), uint16_t{0x0001});
  QCOMPARE(cpu::f32_to_f16(-u), uint16_t{0x8001});
  QCOMPARE(cpu::f32_to_f16(1023.5f * u), uint16_t{0x0400});  // rounds up into the normals
  QCOMPARE(cpu::f32_to_f16(1e-10f), uint16_t{0x0000});
  QCOMPARE(cpu::f32_to_f16(from_bits(0x7FC00000)), uint16_t{0x7E00});
  const uint16_t snan = cpu::f32_to_f16(from_bits(0xFF800001));  // payload only in bits f16 drops: still a NaN
  QVERIFY((snan & 0x7C00) == 0x7C00 && (snan & 0x3FF) != 0 && (snan & 0x8000) != 0);
}

void TestQuant::f16FastMatchesReference() {
  if (!have_avx2()) QSKIP("this CPU has no AVX2/FMA/F16C; only the scalar path exists");
  IsaScope scope(cpu::Isa::Avx2);
  std::vector<uint16_t> all(65536 + 5);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i * 40503u);  // a permutation, then 5 more
  std::vector<float> fast(all.size());
  cpu::f16_to_f32_row(all.data(), fast.data(), static_cast<int64_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i) QCOMPARE(bits(fast[i]), bits(cpu::f16_to_f32(all[i])));

  // f32 -> f16: every f16 value, the midpoints around each (ties), and random bit patterns (NaN, inf, subnormals)
  std::vector<float> src(fast);
  for (uint32_t h = 0; h < 0x7C00; ++h) {
    const uint32_t b = bits(cpu::f16_to_f32(static_cast<uint16_t>(h)));
    src.push_back(from_bits(b + 0x1000));
    src.push_back(from_bits(b + 0x0FFF));
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 200003; ++i) src.push_back(from_bits(rng()));
  std::vector<uint16_t> out(src.size());
  cpu::f32_to_f16_row(src.data(), out.data(), static_cast<int64_t>(src.size()));
  for (size_t i = 0; i < src.size(); ++i) {
    if (out[i] != cpu::f32_to_f16(src[i])) {
      QFAIL(qPrintable(QStringLiteral("f32 0x%1: F16C gives 0x%2, reference 0x%3")
                           .arg(bits(src[i]), 8, 16)
                           .arg(out[i], 4, 16)
                           .arg(cpu::f32_to_f16(src[i]), 4, 16)));
    }
  }
}

void TestQuant::bf16Conversions() {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto h16 = static_cast<uint16_t>(h);
    const float f = cpu::bf16_to_f32(h16);
    QCOMPARE(bits(f), h << 16);
    if (std::isnan(f)) {
      QVERIFY(std::isnan(cpu::bf16_to_f32(cpu::f32_to_bf16(f))));
    } else if (cpu::f32_to_bf16(f) != h16) {
      QFAIL(qPrintable(QStringLiteral("bf16 0x%1 did not round-trip").arg(h, 4, 16)));
    }
  }
  QCOMPARE(cpu::f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), uint16_t{0x3F80});  // tie to even
  QCOMPARE(cpu::f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), uint16_t{0x3F82});
  QCOMPARE(cpu::f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), uint16_t{0x3F81});
  QCOMPARE(cpu::f32_to_bf16(from_bits(0x7F7FFFFF)), uint16_t{0x7F80});  // FLT_MAX rounds to infinity
  QVERIFY(std::isnan(cpu::bf16_to_f32(cpu::f32_to_bf16(from_bits(0x7F800001)))));
}

// ---- hand-built blocks: the layouts, independent of the quantizers ----

void TestQuant::handBuiltQ8_0() {
  std::vector<uint8_t> blk(34);
  put_f16(blk.data(), 0.5f);
  std::vector<float> want(32);
  for (int j = 0; j < 32; ++j) {
    const int q = j == 0 ? -128 : j == 1 ? 127 : j - 16;
    blk[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
    want[j] = 0.5f * static_cast<float>(q);
  }
  check_block(DType::Q8_0, blk, want);
}

void TestQuant::handBuiltQ4_0() {
  std::vector<uint8_t> blk(18);
  put_f16(blk.data(), 2.0f);
  std::vector<float> want(32);
  for (int j = 0; j < 16; ++j) {
    blk[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    want[j] = 2.0f * static_cast<float>(j - 8);       // low nibble of qs[j]
    want[j + 16] = 2.0f * static_cast<float>(7 - j);  // high nibble of qs[j]: (15 - j) - 8
  }
  QCOMPARE(want[0], -16.0f);
  QCOMPARE(want[16], 14.0f);
  check_block(DType::Q4_0, blk, want);
}

void TestQuant::handBuiltQ5_0() {
  std::vector<uint8_t> blk(22);
  put_f16(blk.data(), 1.0f);
  const uint32_t qh = 0xA5C3F00Fu;  // bytes 0F F0 C3 A5, little-endian
  for (int k = 0; k < 4; ++k) blk[2 + k] = static_cast<uint8_t>(qh >> (8 * k));
  std::vector<float> want(32);
  for (int j = 0; j < 16; ++j) {
    blk[6 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    want[j] = static_cast<float>((j | static_cast<int>(((qh >> j) & 1) << 4)) - 16);
    want[j + 16] = static_cast<float>(((15 - j) | static_cast<int>(((qh >> (j + 16)) & 1) << 4)) - 16);
  }
  QCOMPARE(want[0], 0.0f);    // code 0 | 16
  QCOMPARE(want[4], -12.0f);  // bit 4 clear: code 4
  QCOMPARE(want[16], 15.0f);  // qh byte 2 = C3: bit 16 set, code 15 | 16
  QCOMPARE(want[31], 0.0f);   // qh byte 3 = A5: bit 31 set, high nibble of qs[15] is 0: code 16
  check_block(DType::Q5_0, blk, want);
}

void TestQuant::handBuiltQ4_K() {
  std::vector<uint8_t> blk(144);
  put_f16(blk.data(), 1.0f);      // d
  put_f16(blk.data() + 2, 0.5f);  // dmin
  std::memcpy(blk.data() + 4, kScaleBytes, 12);
  std::vector<float> want(256);
  for (int i = 0; i < 4; ++i) {
    for (int l = 0; l < 32; ++l) {
      const int lo = l & 0xF, hi = (l + i) & 0xF;
      blk[16 + 32 * i + l] = static_cast<uint8_t>(lo | (hi << 4));
      want[64 * i + l] = static_cast<float>(kSc[2 * i] * lo) - 0.5f * kMin[2 * i];
      want[64 * i + 32 + l] = static_cast<float>(kSc[2 * i + 1] * hi) - 0.5f * kMin[2 * i + 1];
    }
  }
  QCOMPARE(want[0], -2.5f);
  QCOMPARE(want[255], 94.5f);  // sub-block 7: 63 * 2 - 0.5 * 63
  check_block(DType::Q4_K, blk, want);
}

void TestQuant::handBuiltQ5_K() {
  std::vector<uint8_t> blk(176);
  put_f16(blk.data(), 0.25f);
  put_f16(blk.data() + 2, 1.0f);
  std::memcpy(blk.data() + 4, kScaleBytes, 12);
  for (int l = 0; l < 32; ++l) blk[16 + l] = static_cast<uint8_t>(l * 37 + 11);  // qh
  std::vector<float> want(256);
  for (int i = 0; i < 4; ++i) {
    for (int l = 0; l < 32; ++l) {
      const int lo = (l * 3) & 0xF, hi = (l + 5 * i) & 0xF;
      const int qh = blk[16 + l];
      blk[48 + 32 * i + l] = static_cast<uint8_t>(lo | (hi << 4));
      const int q_lo = lo + ((qh >> (2 * i)) & 1) * 16;
      const int q_hi = hi + ((qh >> (2 * i + 1)) & 1) * 16;
      want[64 * i + l] = 0.25f * static_cast<float>(kSc[2 * i] * q_lo) - static_cast<float>(kMin[2 * i]);
      want[64 * i + 32 + l] = 0.25f * static_cast<float>(kSc[2 * i + 1] * q_hi) - static_cast<float>(kMin[2 * i + 1]);
    }
  }
  QCOMPARE(want[0], 0.25f * 1 * (0 + 16) - 5);   // qh[0] = 11 = 0b1011: bit 0 set
  QCOMPARE(want[32], 0.25f * 2 * (0 + 16) - 6);  // bit 1 set
  QCOMPARE(want[64], 0.25f * 3 * 0 - 7);         // bit 2 clear
  check_block(DType::Q5_K, blk, want);
}

void TestQuant::handBuiltQ6_K() {
  std::vector<uint8_t> blk(210);
  for (int j = 0; j < 128; ++j) blk[j] = static_cast<uint8_t>(j * 7 + 3);        // ql
  for (int j = 0; j < 64; ++j) blk[128 + j] = static_cast<uint8_t>(j * 13 + 5);  // qh
  for (int k = 0; k < 16; ++k) blk[192 + k] = static_cast<uint8_t>(static_cast<int8_t>(k * 9 - 70));
  put_f16(blk.data() + 208, 0.25f);
  std::vector<float> want(256);
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = blk.data() + 64 * n;
    const uint8_t* qh = blk.data() + 128 + 32 * n;
    const int sc0 = 8 * n;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const auto sc = [&](int k) { return static_cast<float>(static_cast<int8_t>(blk[192 + sc0 + is + k])); };
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      want[128 * n + l] = 0.25f * sc(0) * static_cast<float>(q1);
      want[128 * n + l + 32] = 0.25f * sc(2) * static_cast<float>(q2);
      want[128 * n + l + 64] = 0.25f * sc(4) * static_cast<float>(q3);
      want[128 * n + l + 96] = 0.25f * sc(6) * static_cast<float>(q4);
    }
  }
  // element 0: ql[0] = 3, qh[0] = 5 -> q = 3 | (1 << 4) = 19 - 32 = -13, scale -70
  QCOMPARE(want[0], 0.25f * -70 * -13);
  check_block(DType::Q6_K, blk, want);
}

// ---- quantizers ----

void TestQuant::roundTripError_data() {
  QTest::addColumn<DType>("type");
  QTest::addColumn<double>("bound");  // rms(decoded - x) / rms(x) on unit Gaussian data
  QTest::newRow("F32") << DType::F32 << 0.0;
  QTest::newRow("F16") << DType::F16 << 5e-4;
  QTest::newRow("BF16") << DType::BF16 << 4e-3;
  QTest::newRow("Q8_0") << DType::Q8_0 << 0.01;
  QTest::newRow("Q8_K") << DType::Q8_K << 0.01;
  QTest::newRow("Q6_K") << DType::Q6_K << 0.02;
  QTest::newRow("Q5_0") << DType::Q5_0 << 0.05;
  QTest::newRow("Q5_K") << DType::Q5_K << 0.05;
  QTest::newRow("Q4_0") << DType::Q4_0 << 0.1;
  QTest::newRow("Q4_K") << DType::Q4_K << 0.1;
}

void TestQuant::roundTripError() {
  QFETCH(DType, type);
  QFETCH(double, bound);
  const int64_t n = 8192;
  std::vector<float> x = gaussian(n, 11);
  for (int i = 0; i < 256; ++i) x[i] = 0.0f;            // an all-zero block must decode to zeros
  for (int i = 256; i < 512; ++i) x[i] = 0.01f * x[i];  // and a quiet one keeps its own scale
  const std::vector<float> y = decode(type, encode(type, x, 1, n), 1, n);
  for (int i = 0; i < 256; ++i) QCOMPARE(y[i], 0.0f);
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    err += (static_cast<double>(y[i]) - x[i]) * (y[i] - x[i]);
    ref += static_cast<double>(x[i]) * x[i];
  }
  const double rel = std::sqrt(err / ref);
  qInfo("%s: rms error / rms value = %.5f (bound %.4f)", fkv::dtype_name(type), rel, bound);
  QVERIFY(rel <= bound);
}

void TestQuant::activationEncodersMatchReference() {
  if (!have_avx2()) QSKIP("this CPU has no AVX2/FMA/F16C; only the scalar path exists");
  const int64_t n = 4096;
  std::vector<float> x = gaussian(n, 5);
  for (int i = 0; i < 256; ++i) x[i] = 0.0f;
  // ties: amax 127 gives d = 1, so the .5 values round half to even in both paths
  for (int i = 256; i < 512; ++i) x[i] = i == 256 ? 127.0f : static_cast<float>(i % 253) - 126.5f;
  for (int i = 512; i < 768; ++i) x[i] *= 1e-30f;
  for (int i = 768; i < 1024; ++i) x[i] *= 1e30f;
  for (int i = 1024; i < 1280; ++i) x[i] *= 1e-40f;  // subnormal: 1/d overflows, the block encodes as zeros
  x[1280] = NAN;                                     // garbage in must give the same bytes out, without UB
  x[1600] = INFINITY;
  x[1900] = -INFINITY;
  for (DType t : {DType::Q8_0, DType::Q8_K}) {
    const std::vector<uint8_t> want = encode(t, x, 1, n);
    std::vector<uint8_t> got(want.size());
    IsaScope scope(cpu::Isa::Avx2);
    cpu::quantize_row(t, x.data(), got.data(), n);
    QVERIFY2(got == want, fkv::dtype_name(t));
  }
}

void TestQuant::dequantizeFastMatchesReference() {
  if (!have_avx2()) QSKIP("this CPU has no AVX2/FMA/F16C; only the scalar path exists");
  const int64_t n = 1024;
  const std::vector<float> x = gaussian(n, 3);
  for (DType t : kWeightTypes) {
    const std::vector<uint8_t> q = encode(t, x, 1, n);
    const std::vector<float> want = decode(t, q, 1, n);
    std::vector<float> got(static_cast<size_t>(n));
    IsaScope scope(cpu::Isa::Avx2);
    cpu::dequantize_row(t, q.data(), got.data(), n);
    QVERIFY2(got == want, fkv::dtype_name(t));
  }
}

// ---- products ----

void TestQuant::vecDot_data() {
  QTest::addColumn<DType>("type");
  for (DType t : kWeightTypes) QTest::newRow(fkv::dtype_name(t)) << t;
}

// The reference dot equals the double dot of the decoded operands (so its integer shortcuts, like the K-quant mins
// through bsums, are right), and the AVX2 dot (and the AVX-512 one, where there is one) equals the reference up to
// float summation order. Tolerance: 1e-5 * sum |w_i x_i| of the decoded operands.
void TestQuant::vecDot() {
  QFETCH(DType, type);
  const DType xt = cpu::vec_dot_type(type);
  const int64_t bs = fkv::dtype_info(type).block_size;
  const std::vector<int64_t> sizes =
      bs == 1 ? std::vector<int64_t>{7, 37, 1024} : std::vector<int64_t>{bs, 3 * bs, 8 * bs};
  for (int64_t n : sizes) {
    const std::vector<float> wf = gaussian(static_cast<size_t>(n), 21), xf = gaussian(static_cast<size_t>(n), 22);
    const std::vector<uint8_t> w = encode(type, wf, 1, n), x = encode(xt, xf, 1, n);
    const std::vector<float> wd = decode(type, w, 1, n), xd = decode(xt, x, 1, n);
    double exact = 0, scale = 0;
    for (int64_t i = 0; i < n; ++i) {
      exact += static_cast<double>(wd[i]) * xd[i];
      scale += std::fabs(static_cast<double>(wd[i]) * xd[i]);
    }
    const double tol = 1e-5 * scale;
    const float ref = cpu::ref::vec_dot(type, w.data(), x.data(), n);
    QVERIFY2(std::fabs(ref - exact) <= tol,
             qPrintable(QStringLiteral("n %1: ref %2 vs %3").arg(n).arg(ref).arg(exact)));
    if (!have_avx2()) continue;
    IsaScope scope(cpu::Isa::Avx2);
    for (bool vnni : {false, true}) {  // with AVX-512 on, Q4_K and Q6_K take their 512-bit dots
      if (vnni && !cpu::vnni_detected()) continue;
      VnniScope vnni_scope(vnni);
      const float fast = cpu::vec_dot(type, w.data(), x.data(), n);
      QVERIFY2(std::fabs(fast - ref) <= tol,
               qPrintable(QStringLiteral("n %1: %2 %3 vs ref %4").arg(n).arg(cpu::active_isa_label()).arg(fast).arg(ref)));
    }
  }
  if (!have_avx2()) QSKIP("this CPU has no AVX2/FMA/F16C; the reference was checked, the fast path does not exist");
}

void TestQuant::matmulMatchesDoubleLoop_data() {
  QTest::addColumn<DType>("type");
  QTest::addColumn<cpu::Isa>("isa");
  QTest::addColumn<bool>("vnni");
  for (cpu::Isa isa : {cpu::Isa::Scalar, cpu::Isa::Avx2}) {
    for (DType t : kWeightTypes) {
      QTest::newRow(qPrintable(QStringLiteral("%1/%2").arg(fkv::dtype_name(t), cpu::isa_name(isa)))) << t << isa
                                                                                                     << false;
    }
  }
  for (DType t : {DType::Q4_0, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K})
    QTest::newRow(qPrintable(QStringLiteral("%1/avx2+vnni").arg(fkv::dtype_name(t)))) << t << cpu::Isa::Avx2 << true;
}

// y = x W^T for n_tok in {1, 3, 6, 17, 64} on pools of 1 and 2 threads, against
//  (a) a double loop over the decoded weights and the unencoded x: |y - a| <= tol * |w_r| |x_t| with tol 1e-5 for
//      f32 partners and 3e-3 where x is encoded as Q8_0/Q8_K (its rounding error, about 2e-4 here, dominates);
//  (b) the reference vec_dot on the reference-encoded x: |y - b| <= 1e-5 * |w_r| |x_t| (only summation order differs).
// Rows are 37 (partial tiles and thread ranges), y rows are padded (ldy) and the padding must stay untouched;
// scratch is passed misaligned.
void TestQuant::matmulMatchesDoubleLoop() {
  QFETCH(DType, type);
  QFETCH(cpu::Isa, isa);
  QFETCH(bool, vnni);
  if (isa == cpu::Isa::Avx2 && !have_avx2()) QSKIP("this CPU has no AVX2/FMA/F16C");
  if (vnni && !cpu::vnni_detected()) QSKIP("this CPU has no AVX-512 VNNI");
  IsaScope scope(isa);
  VnniScope vnni_scope(vnni);
  QCOMPARE(cpu::vnni_active(), vnni);
  // f32-partnered rows get a length that is not a multiple of the vector width, to reach the kernels' tails
  const int64_t n_rows = 37, n_cols = fkv::dtype_info(type).block_size == 1 ? 517 : 512, ldy = n_rows + 3;
  const DType xt = cpu::vec_dot_type(type);
  const double tol_a = xt == DType::F32 ? 1e-5 : 3e-3;
  const std::vector<uint8_t> w = encode(type, gaussian(static_cast<size_t>(n_rows * n_cols), 31), n_rows, n_cols);
  const std::vector<float> wd = decode(type, w, n_rows, n_cols);
  const cpu::MatrixView mv{w.data(), type, n_rows, n_cols};
  const size_t rb = fkv::row_bytes(type, n_cols);
  ThreadPool pool1(1), pool2(2);
  for (int64_t n_tok : {1, 3, 6, 17, 64}) {
    const std::vector<float> x = gaussian(static_cast<size_t>(n_tok * n_cols), 40 + static_cast<uint32_t>(n_tok));
    const std::vector<uint8_t> xq = encode(xt, x, n_tok, n_cols);
    for (ThreadPool* pool : {&pool1, &pool2}) {
      std::vector<uint8_t> scratch(cpu::matmul_scratch_bytes(type, n_cols, n_tok) + 1);
      std::vector<float> y(static_cast<size_t>(n_tok * ldy), 12345.0f);
      cpu::matmul(mv, x.data(), n_tok, y.data(), ldy, scratch.data() + 1, *pool);  // misaligned on purpose
      for (int64_t t = 0; t < n_tok; ++t) {
        const float* xr = x.data() + t * n_cols;
        for (int64_t r = 0; r < n_rows; ++r) {
          const float* wr = wd.data() + r * n_cols;
          double a = 0;
          for (int64_t i = 0; i < n_cols; ++i) a += static_cast<double>(wr[i]) * xr[i];
          const double b =
              cpu::ref::vec_dot(type, w.data() + r * rb, xq.data() + t * fkv::row_bytes(xt, n_cols), n_cols);
          const double nn = norm(wr, n_cols) * norm(xr, n_cols);
          const double got = y[static_cast<size_t>(t * ldy + r)];
          if (std::fabs(got - a) > tol_a * nn || std::fabs(got - b) > 1e-5 * nn) {
            QFAIL(qPrintable(QStringLiteral("n_tok %1, %2 threads, y[%3][%4] = %5; double loop %6, vec_dot %7")
                                 .arg(n_tok)
                                 .arg(pool->size())
                                 .arg(t)
                                 .arg(r)
                                 .arg(got)
                                 .arg(a)
                                 .arg(b)));
          }
        }
        for (int64_t r = n_rows; r < ldy; ++r) QCOMPARE(y[static_cast<size_t>(t * ldy + r)], 12345.0f);
      }
    }
  }
}

void TestQuant::matmulWalksTokenChunks() {
  if (!have_avx2()) QSKIP("this CPU has no AVX2/FMA/F16C");
  IsaScope scope(cpu::Isa::Avx2);
  // Wide rows make the encoded activations larger than one L2-sized chunk, so the tiled walk splits the tokens.
  const int64_t n_rows = 21, n_cols = 32768, n_tok = 40;
  for (DType type : {DType::F32, DType::Q8_0, DType::Q5_0}) {
    const DType xt = cpu::vec_dot_type(type);
    const std::vector<uint8_t> w = encode(type, gaussian(static_cast<size_t>(n_rows * n_cols), 51), n_rows, n_cols);
    const std::vector<float> wd = decode(type, w, n_rows, n_cols);
    const std::vector<float> x = gaussian(static_cast<size_t>(n_tok * n_cols), 52);
    const std::vector<uint8_t> xq = encode(xt, x, n_tok, n_cols);
    const size_t rb = fkv::row_bytes(type, n_cols), xb = fkv::row_bytes(xt, n_cols);
    const std::vector<float> y = matmulOf(type, w, x, n_rows, n_cols, n_tok, 2);
    for (int64_t t = 0; t < n_tok; ++t) {
      for (int64_t r = 0; r < n_rows; ++r) {
        const float b = cpu::ref::vec_dot(type, w.data() + r * rb, xq.data() + t * xb, n_cols);
        const double nn = norm(wd.data() + r * n_cols, n_cols) * norm(x.data() + t * n_cols, n_cols);
        QVERIFY(std::fabs(y[static_cast<size_t>(t * n_rows + r)] - b) <= 1e-5 * nn);
      }
    }
  }
}

// Q4_0/Q5_0 codes are multiplied unsigned by the tiled kernels (offset subtracted per block): the largest codes
// against the largest activation codes, of both signs, must come out exact (no int16 saturation in the pair sums).
void TestQuant::offsetCodesAtTheirExtremes() {
  if (!have_avx2()) QSKIP("this CPU has no AVX2/FMA/F16C");
  IsaScope scope(cpu::Isa::Avx2);
  const int64_t n_rows = 4, n_cols = 256, n_tok = 5;
  for (DType type : {DType::Q4_0, DType::Q5_0}) {
    for (bool vnni : {false, true}) {
      if (vnni && !cpu::vnni_detected()) continue;
      VnniScope vnni_scope(vnni);
      // Each block's first weight (-1) sets the scale; the others then take the largest code.
      std::vector<float> wf(static_cast<size_t>(n_rows * n_cols), type == DType::Q4_0 ? 0.875f : 0.9375f);
      for (size_t i = 0; i < wf.size(); i += 32) wf[i] = -1.0f;
      const std::vector<uint8_t> w = encode(type, wf, n_rows, n_cols);
      const std::vector<float> wd = decode(type, w, n_rows, n_cols);
      std::vector<float> x(static_cast<size_t>(n_tok * n_cols));
      for (size_t i = 0; i < x.size(); ++i) x[i] = (i / n_cols) % 2 == 0 ? 3.0f : -3.0f;
      const std::vector<float> y = matmulOf(type, w, x, n_rows, n_cols, n_tok, 1);
      for (int64_t t = 0; t < n_tok; ++t) {
        for (int64_t r = 0; r < n_rows; ++r) {
          double want = 0;
          for (int64_t i = 0; i < n_cols; ++i) want += static_cast<double>(wd[r * n_cols + i]) * x[t * n_cols + i];
          QVERIFY2(std::fabs(y[static_cast<size_t>(t * n_rows + r)] - want) <= 1e-4 * std::fabs(want),
                   qPrintable(QStringLiteral("%1 vnni %2: y[%3][%4] = %5, want %6")
                                  .arg(fkv::dtype_name(type))
                                  .arg(vnni)
                                  .arg(t)
                                  .arg(r)
                                  .arg(y[static_cast<size_t>(t * n_rows + r)])
                                  .arg(want)));
        }
      }
    }
  }
}

void TestQuant::isaSelection() {
  const cpu::Isa saved = cpu::active_isa();
  cpu::set_active_isa(cpu::Isa::Scalar);
  QCOMPARE(cpu::active_isa(), cpu::Isa::Scalar);
  cpu::set_active_isa(cpu::Isa::Avx2);
  QCOMPARE(cpu::active_isa(), cpu::detected_isa());  // asking for AVX2 without it keeps Scalar
  cpu::set_active_isa(saved);
  QCOMPARE(QString(cpu::isa_name(cpu::Isa::Scalar)), QStringLiteral("scalar"));
  QCOMPARE(QString(cpu::isa_name(cpu::Isa::Avx2)), QStringLiteral("avx2"));
  QCOMPARE(cpu::vec_dot_type(DType::F16), DType::F32);
  QCOMPARE(cpu::vec_dot_type(DType::BF16), DType::F32);
  QCOMPARE(cpu::vec_dot_type(DType::Q5_0), DType::Q8_0);
  QCOMPARE(cpu::vec_dot_type(DType::Q6_K), DType::Q8_K);
  QCOMPARE(cpu::matmul_scratch_bytes(DType::F32, 64, 4), size_t{0});
  QVERIFY(cpu::matmul_scratch_bytes(DType::Q4_K, 512, 3) >= 3 * fkv::row_bytes(DType::Q8_K, 512));
}

QTEST_APPLESS_MAIN(TestQuant)
#include "test_quant.moc"
