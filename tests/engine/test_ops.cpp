// CPU element-wise and attention kernels (backend/cpu/ops.h) against plain double formulas: RMSNorm, the gated
// activations, RoPE in both pairings, and paged attention (AVX2 and scalar dispatch and the reference) for every KV
// element type, several head widths, partial pages, windows that cut pages, nothing visible and huge scores.
#include <QTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"

using fkv::DType;
namespace cpu = fkv::cpu;

Q_DECLARE_METATYPE(DType)

namespace {

enum class Impl { FastAvx2, FastAvx512, FastScalar, Ref };

const char* impl_name(Impl i) {
  switch (i) {
    case Impl::FastAvx2:
      return "avx2";
    case Impl::FastAvx512:
      return "avx512";
    case Impl::FastScalar:
      return "scalar";
    case Impl::Ref:
      return "ref";
  }
  return "?";
}

// Forces an ISA for one scope and restores the previous one.
class IsaScope {
 public:
  explicit IsaScope(cpu::Isa isa) : saved_(cpu::active_isa()) { cpu::set_active_isa(isa); }
  ~IsaScope() { cpu::set_active_isa(saved_); }
  IsaScope(const IsaScope&) = delete;
  IsaScope& operator=(const IsaScope&) = delete;

 private:
  cpu::Isa saved_;
};

// The kernels of one fast implementation for one scope: the ISA, and the AVX-512 ones on or off.
class ImplScope {
 public:
  explicit ImplScope(Impl im)
      : isa_(im == Impl::FastScalar ? cpu::Isa::Scalar : cpu::Isa::Avx2), saved_vnni_(cpu::vnni_enabled()) {
    cpu::set_vnni(im == Impl::FastAvx512);
  }
  ~ImplScope() { cpu::set_vnni(saved_vnni_); }
  ImplScope(const ImplScope&) = delete;
  ImplScope& operator=(const ImplScope&) = delete;

 private:
  IsaScope isa_;
  bool saved_vnni_;
};

// Why this CPU cannot run `im`, or nullptr.
const char* missing(Impl im) {
  if ((im == Impl::FastAvx2 || im == Impl::FastAvx512) && cpu::detected_isa() != cpu::Isa::Avx2)
    return "this CPU has no AVX2/FMA/F16C";
  if (im == Impl::FastAvx512 && !cpu::vnni_detected()) return "this CPU has no AVX-512 (F, VL, BW, VNNI)";
  return nullptr;
}

std::vector<float> uniform(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// Page summaries as the kernels read them: F16 codes (the values are made F16-exact first where a float reference is
// computed from them).
std::vector<uint16_t> to_f16(const std::vector<float>& x) {
  std::vector<uint16_t> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = cpu::f32_to_f16(x[i]);
  return y;
}
void round_to_f16(std::vector<float>& x) {
  for (float& v : x) v = cpu::f16_to_f32(cpu::f32_to_f16(v));
}

// Small integers in [lo, hi]: exactly representable in every KV type, so products and sums of a few hundred are exact.
std::vector<float> integers(size_t n, int lo, int hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = static_cast<float>(dist(rng));
  return v;
}

size_t elem_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

void encode(DType t, const float* x, uint8_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (t == DType::F32) {
      std::memcpy(out + 4 * i, &x[i], 4);
    } else {
      const uint16_t h = t == DType::F16 ? cpu::f32_to_f16(x[i]) : cpu::f32_to_bf16(x[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
  }
}

double decode(DType t, const uint8_t* row, int i) {
  if (t == DType::F32) {
    float f;
    std::memcpy(&f, row + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, row + 2 * i, 2);
  return t == DType::F16 ? cpu::f16_to_f32(h) : cpu::bf16_to_f32(h);
}

// Pages of encoded keys and values, and the views attention takes.
struct Pages {
  DType type = DType::F32;
  int head_dim = 0;
  std::vector<std::vector<uint8_t>> k, v;  // (n_pages) each (len, head_dim) encoded
  std::vector<cpu::AttnPage> views;        // (n_pages)
};

// One page per (pos0, len); key and value values come from `kf` and `vf` (each called with a count).
template <class KeyFn, class ValFn>
Pages make_pages(DType t, int hd, const std::vector<int>& pos0, const std::vector<int>& len, KeyFn kf, ValFn vf) {
  Pages p;
  p.type = t;
  p.head_dim = hd;
  for (size_t i = 0; i < pos0.size(); ++i) {
    const size_t n = static_cast<size_t>(len[i]) * hd;
    const std::vector<float> kx = kf(n, static_cast<uint32_t>(i));
    const std::vector<float> vx = vf(n, static_cast<uint32_t>(i));
    p.k.emplace_back(n * elem_bytes(t));
    p.v.emplace_back(n * elem_bytes(t));
    encode(t, kx.data(), p.k.back().data(), n);
    encode(t, vx.data(), p.v.back().data(), n);
  }
  for (size_t i = 0; i < pos0.size(); ++i) p.views.push_back({p.k[i].data(), p.v[i].data(), pos0[i], len[i]});
  return p;
}

// softmax(scale q.K^T) V over the visible keys, in double with the maximum subtracted; zeros when nothing is visible.
std::vector<double> attend_double(const std::vector<float>& q, const Pages& p, double scale, int lo, int hi) {
  const int hd = p.head_dim;
  const size_t row = static_cast<size_t>(hd) * elem_bytes(p.type);
  std::vector<double> s;             // (n_visible)
  std::vector<const uint8_t*> vrow;  // (n_visible)
  for (const cpu::AttnPage& pg : p.views) {
    for (int j = 0; j < pg.len; ++j) {
      const int pos = pg.pos0 + j;
      if (pos < lo || pos > hi) continue;
      double d = 0;
      for (int i = 0; i < hd; ++i)
        d += static_cast<double>(q[static_cast<size_t>(i)]) * decode(p.type, pg.k + j * row, i);
      s.push_back(d * scale);
      vrow.push_back(pg.v + j * row);
    }
  }
  std::vector<double> out(static_cast<size_t>(hd), 0.0);
  if (s.empty()) return out;
  double m = -std::numeric_limits<double>::infinity();
  for (double x : s) m = std::max(m, x);
  double l = 0;
  for (size_t j = 0; j < s.size(); ++j) {
    const double w = std::exp(s[j] - m);
    l += w;
    for (int i = 0; i < hd; ++i) out[static_cast<size_t>(i)] += w * decode(p.type, vrow[j], i);
  }
  for (double& o : out) o /= l;
  return out;
}

// Runs one implementation; `out` starts as NaN so an output it forgets to write shows.
std::vector<float> attend_with(Impl impl, const std::vector<float>& q, const Pages& p, float scale, int lo, int hi) {
  std::vector<float> out(static_cast<size_t>(p.head_dim), std::numeric_limits<float>::quiet_NaN());
  const int n = static_cast<int>(p.views.size());
  if (impl == Impl::Ref) {
    cpu::ref::attend(q.data(), p.views.data(), n, p.type, p.head_dim, scale, lo, hi, out.data());
  } else {
    const ImplScope scope(impl);
    cpu::attend(q.data(), p.views.data(), n, p.type, p.head_dim, scale, lo, hi, out.data());
  }
  return out;
}

// Largest |got - want| over the head; infinity for a NaN or infinity.
double max_error(const std::vector<float>& got, const std::vector<double>& want) {
  double e = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    e = std::max(e, std::abs(got[i] - want[i]));
  }
  return e;
}

// One scenario of pages and window bounds.
struct Scenario {
  const char* name;
  std::vector<int> pos0, len;
  int lo, hi;
};

const std::vector<Scenario>& scenarios() {
  static const std::vector<Scenario> s = {
      {"all pages, partial last", {0, 32, 64, 96}, {32, 32, 32, 17}, 0, 112},
      {"window cuts pages 1 and 2", {0, 32, 64, 96}, {32, 32, 32, 17}, 40, 75},
      {"window inside one page", {0, 32, 64, 96}, {32, 32, 32, 17}, 70, 71},
      {"selected pages with gaps", {0, 64, 160}, {32, 32, 9}, 10, 165},
      {"hi cuts the partial page", {0, 32}, {32, 20}, 0, 40},
      {"one key", {0}, {5}, 3, 3},
      {"max page first, then more", {96, 0, 32}, {32, 32, 32}, 0, 127},
  };
  return s;
}

}  // namespace

class TestOps : public QObject {
  Q_OBJECT

  // Data rows of the attention tests: every KV type and head dim (the AVX2 widths, and two with tails) for `impls`.
  static void attendRows(std::initializer_list<Impl> impls) {
    QTest::addColumn<DType>("kv");
    QTest::addColumn<int>("head_dim");
    QTest::addColumn<int>("impl");
    for (DType t : {DType::F32, DType::F16, DType::BF16})
      for (int hd : {64, 128, 256, 6, 72})
        for (Impl i : impls)
          QTest::addRow("%s hd=%d %s", fkv::dtype_name(t), hd, impl_name(i)) << t << hd << static_cast<int>(i);
  }

 private slots:
  void rmsNormMatchesDouble() {
    for (int n : {1, 3, 64, 1000}) {
      for (float mag : {1e-3f, 1.f, 1e3f}) {
        const std::vector<float> x0 = uniform(static_cast<size_t>(n), -mag, mag, static_cast<uint32_t>(n));
        const std::vector<float> w = uniform(static_cast<size_t>(n), -2.f, 2.f, 7);
        const float eps = 1e-6f;
        double ss = 0;
        for (float v : x0) ss += static_cast<double>(v) * v;
        const double r = 1.0 / std::sqrt(ss / n + eps);
        std::vector<float> y(static_cast<size_t>(n));
        std::vector<float> x = x0;
        cpu::rms_norm(x.data(), w.data(), y.data(), n, eps);
        cpu::rms_norm(x.data(), w.data(), x.data(), n, eps);  // in place must give the same
        for (int i = 0; i < n; ++i) {
          const size_t u = static_cast<size_t>(i);
          const double want = x0[u] * r * w[u];
          // Tolerance: 4 float ulps of each element (one sqrt, one division, two products).
          QVERIFY2(
              std::abs(y[u] - want) <= 4.8e-7 * std::abs(want) + 1e-30,
              qPrintable(
                  QString("n %1, magnitude %2, i %3: got %4, want %5").arg(n).arg(mag).arg(i).arg(y[u]).arg(want)));
          QVERIFY2(x[u] == y[u], "rms_norm in place differs from out of place");
        }
      }
    }
  }

  void gatedActivationsMatchDouble() {
    std::vector<float> g;
    for (int i = -400; i <= 400; ++i) g.push_back(static_cast<float>(i) * 0.05f);
    for (float e : {-100.f, -88.f, -30.f, 30.f, 88.f, 100.f}) g.push_back(e);
    const std::vector<float> x = uniform(g.size(), -3.f, 3.f, 11);
    std::vector<float> ys = x, yg = x;
    cpu::silu_mul(g.data(), ys.data(), static_cast<int64_t>(g.size()));
    cpu::gelu_mul(g.data(), yg.data(), static_cast<int64_t>(g.size()));
    const double k = std::sqrt(2.0 / M_PI);
    for (size_t i = 0; i < g.size(); ++i) {
      const double gi = g[i], xi = x[i];
      const double silu = xi * gi / (1.0 + std::exp(-gi));
      const double gelu = xi * 0.5 * gi * (1.0 + std::tanh(k * (gi + 0.044715 * gi * gi * gi)));
      // silu: a few ulps relative. gelu: float tanh near -1 loses relative precision in (1 + tanh), so the bound is
      // absolute, 1e-6 per unit of |x| * max(1, |g|), plus a few ulps relative.
      QVERIFY2(std::abs(ys[i] - silu) <= 1e-6 * std::abs(silu) + 1e-30,
               qPrintable(QString("silu_mul g %1 x %2: got %3, want %4").arg(gi).arg(xi).arg(ys[i]).arg(silu)));
      QVERIFY2(std::abs(yg[i] - gelu) <= 1e-6 * std::abs(gelu) + 1e-6 * std::abs(xi) * std::max(1.0, std::abs(gi)),
               qPrintable(QString("gelu_mul g %1 x %2: got %3, want %4").arg(gi).arg(xi).arg(yg[i]).arg(gelu)));
    }
  }

  void ropeMatchesExplicitRotation_data() {
    QTest::addColumn<bool>("neox");
    QTest::addRow("norm") << false;
    QTest::addRow("neox") << true;
  }
  void ropeMatchesExplicitRotation() {
    QFETCH(bool, neox);
    for (int hd : {2, 8, 64, 128, 256}) {
      for (int pos : {0, 1, 7, 1000, 32767}) {
        const int half = hd / 2;
        std::vector<float> cs(static_cast<size_t>(hd));  // (half, 2)
        std::vector<double> ang(static_cast<size_t>(half));
        for (int i = 0; i < half; ++i) {
          ang[static_cast<size_t>(i)] = pos * std::pow(10000.0, -2.0 * i / hd);
          cs[static_cast<size_t>(2 * i)] = static_cast<float>(std::cos(ang[static_cast<size_t>(i)]));
          cs[static_cast<size_t>(2 * i + 1)] = static_cast<float>(std::sin(ang[static_cast<size_t>(i)]));
        }
        const std::vector<float> x0 = uniform(static_cast<size_t>(hd), -1.f, 1.f, static_cast<uint32_t>(hd + pos));
        std::vector<float> x = x0;
        cpu::rope_head(x.data(), cs.data(), hd, neox);
        for (int i = 0; i < half; ++i) {
          // Pair i as a complex number a + ib, multiplied by e^{i angle}.
          const int a = neox ? i : 2 * i;
          const int b = neox ? i + half : 2 * i + 1;
          const double c = std::cos(ang[static_cast<size_t>(i)]), s = std::sin(ang[static_cast<size_t>(i)]);
          const double ra = x0[static_cast<size_t>(a)] * c - x0[static_cast<size_t>(b)] * s;
          const double rb = x0[static_cast<size_t>(a)] * s + x0[static_cast<size_t>(b)] * c;
          // Tolerance: float rounding of cos/sin and of two products and a sum on values of magnitude <= 1.
          QVERIFY2(std::abs(x[static_cast<size_t>(a)] - ra) < 1e-6 && std::abs(x[static_cast<size_t>(b)] - rb) < 1e-6,
                   qPrintable(QString("head_dim %1 pos %2 pair %3: got (%4, %5), want (%6, %7)")
                                  .arg(hd)
                                  .arg(pos)
                                  .arg(i)
                                  .arg(x[static_cast<size_t>(a)])
                                  .arg(x[static_cast<size_t>(b)])
                                  .arg(ra)
                                  .arg(rb)));
        }
      }
    }
  }

  // q.k after RoPE depends only on the distance between the two positions, for either pairing.
  void ropeIsRelative() {
    const int hd = 64, half = hd / 2;
    auto rotate = [&](std::vector<float> x, int pos, bool neox) {
      std::vector<float> cs(static_cast<size_t>(hd));  // (half, 2)
      for (int i = 0; i < half; ++i) {
        const double a = pos * std::pow(10000.0, -2.0 * i / hd);
        cs[static_cast<size_t>(2 * i)] = static_cast<float>(std::cos(a));
        cs[static_cast<size_t>(2 * i + 1)] = static_cast<float>(std::sin(a));
      }
      cpu::rope_head(x.data(), cs.data(), hd, neox);
      return x;
    };
    auto dot = [](const std::vector<float>& a, const std::vector<float>& b) {
      double s = 0;
      for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
      return s;
    };
    const std::vector<float> q = uniform(hd, -1.f, 1.f, 1), k = uniform(hd, -1.f, 1.f, 2);
    for (bool neox : {false, true}) {
      const double d0 = dot(rotate(q, 10, neox), rotate(k, 3, neox));
      const double d1 = dot(rotate(q, 510, neox), rotate(k, 503, neox));
      QVERIFY2(
          std::abs(d0 - d1) < 1e-4,
          qPrintable(QString("neox %1: q.k at distance 7 is %2 at 10/3 but %3 at 510/503").arg(neox).arg(d0).arg(d1)));
    }
  }

  void attendMatchesDouble_data() { attendRows({Impl::FastAvx2, Impl::FastAvx512, Impl::FastScalar, Impl::Ref}); }
  void attendMatchesDouble() {
    QFETCH(DType, kv);
    QFETCH(int, head_dim);
    QFETCH(int, impl);
    const Impl im = static_cast<Impl>(impl);
    if (missing(im) != nullptr) QSKIP(missing(im));
    const float scale = 1.f / std::sqrt(static_cast<float>(head_dim));
    const std::vector<float> q = uniform(static_cast<size_t>(head_dim), -2.f, 2.f, 99);
    for (const Scenario& sc : scenarios()) {
      const Pages p = make_pages(
          kv, head_dim, sc.pos0, sc.len, [](size_t n, uint32_t s) { return uniform(n, -1.f, 1.f, 1000 + s); },
          [](size_t n, uint32_t s) { return uniform(n, -1.f, 1.f, 2000 + s); });
      const std::vector<double> want = attend_double(q, p, scale, sc.lo, sc.hi);
      const std::vector<float> got = attend_with(im, q, p, scale, sc.lo, sc.hi);
      // Tolerance 2e-6: outputs are convex mixes of values in [-1, 1] from O(1) scores; float accumulation over <= 256
      // channels and <= 113 keys was measured at <= 2e-7 (the stored K/V rounding is in the reference too).
      const double e = max_error(got, want);
      QVERIFY2(e <= 2e-6, qPrintable(QString("%1: max error %2 > 2e-6").arg(sc.name).arg(e)));
    }
  }

  // The prefill's tiled attention: n_tok consecutive tokens of a GQA group at once, each against the keys up to its
  // own position (and inside its sliding window), over contiguous pages, partial last pages and selected pages with
  // gaps; each output row against the double reference of that token and head alone.
  void attendCausalMatchesDouble_data() { attendRows({Impl::FastAvx2, Impl::FastAvx512, Impl::FastScalar}); }
  void attendCausalMatchesDouble() {
    QFETCH(DType, kv);
    QFETCH(int, head_dim);
    QFETCH(int, impl);
    const Impl im = static_cast<Impl>(impl);
    if (missing(im) != nullptr) QSKIP(missing(im));
    const ImplScope scope(im);
    const float scale = 1.f / std::sqrt(static_cast<float>(head_dim));
    struct Case {
      const char* name;
      std::vector<int> pos0, len;
      int first, n_tok, n_q, window;  // the tile's first position
    };
    const std::vector<Case> cases = {
        {"contiguous, tile ends the partial page", {0, 32, 64, 96}, {32, 32, 32, 17}, 105, 8, 7, 0},
        {"tile across a page boundary", {0, 32, 64}, {32, 32, 20}, 60, 8, 7, 0},
        {"first tokens of the document", {0}, {9}, 0, 9, 7, 0},
        {"one query head, 64 tokens", {0, 32, 64, 96}, {32, 32, 32, 32}, 64, 64, 1, 0},
        {"sliding window of 40", {0, 32, 64, 96}, {32, 32, 32, 17}, 100, 8, 4, 40},
        {"window of 1", {0, 32}, {32, 20}, 44, 8, 2, 1},
        {"selected pages with gaps", {0, 64, 160}, {32, 32, 9}, 161, 8, 7, 0},
        {"window before every key but its own", {0, 160}, {32, 9}, 161, 8, 7, 2},
        {"no key visible to the first tokens", {0, 64}, {32, 9}, 60, 8, 7, 1},
    };
    for (const Case& c : cases) {
      const Pages p = make_pages(
          kv, head_dim, c.pos0, c.len, [](size_t n, uint32_t s) { return uniform(n, -1.f, 1.f, 1000 + s); },
          [](size_t n, uint32_t s) { return uniform(n, -1.f, 1.f, 2000 + s); });
      const size_t row = static_cast<size_t>(c.n_q) * head_dim;
      const std::vector<float> q = uniform(row * c.n_tok, -2.f, 2.f, 99);
      std::vector<float> out(q.size(), std::numeric_limits<float>::quiet_NaN());
      cpu::attend_causal(q.data(), static_cast<int64_t>(row), c.n_tok, c.n_q, p.views.data(),
                         static_cast<int>(p.views.size()), kv, head_dim, scale, c.first, c.window, out.data(),
                         static_cast<int64_t>(row));
      for (int t = 0; t < c.n_tok; ++t) {
        const int pos = c.first + t;
        const int lo = c.window > 0 ? std::max(0, pos - c.window + 1) : 0;
        for (int g = 0; g < c.n_q; ++g) {
          const size_t at = t * row + static_cast<size_t>(g) * head_dim;
          const std::vector<float> qg(q.begin() + static_cast<std::ptrdiff_t>(at),
                                      q.begin() + static_cast<std::ptrdiff_t>(at + head_dim));
          const std::vector<double> want = attend_double(qg, p, scale, lo, pos);
          const std::vector<float> got(out.begin() + static_cast<std::ptrdiff_t>(at),
                                       out.begin() + static_cast<std::ptrdiff_t>(at + head_dim));
          const double e = max_error(got, want);
          QVERIFY2(e <= 2e-6,
                   qPrintable(QString("%1, token %2, head %3: max error %4").arg(c.name).arg(t).arg(g).arg(e)));
        }
      }
    }
  }

  void attendNothingVisibleGivesZeros_data() { attendMatchesDouble_data(); }
  void attendNothingVisibleGivesZeros() {
    QFETCH(DType, kv);
    QFETCH(int, head_dim);
    QFETCH(int, impl);
    const Impl im = static_cast<Impl>(impl);
    if (missing(im) != nullptr) QSKIP(missing(im));
    const std::vector<float> q = uniform(static_cast<size_t>(head_dim), -2.f, 2.f, 5);
    const Pages p = make_pages(
        kv, head_dim, {0, 32}, {32, 10}, [](size_t n, uint32_t s) { return uniform(n, -1.f, 1.f, s); },
        [](size_t n, uint32_t s) { return uniform(n, -1.f, 1.f, 50 + s); });
    const std::pair<int, int> bounds[] = {{42, 100}, {20, 10}, {-10, -1}, {1000, 2000}};
    for (const auto& [lo, hi] : bounds) {
      const std::vector<float> out = attend_with(im, q, p, 0.125f, lo, hi);
      for (float o : out)
        QVERIFY2(o == 0.f, qPrintable(QString("window [%1, %2] sees no key, yet out holds %3").arg(lo).arg(hi).arg(o)));
    }
    Pages none = p;
    none.views.clear();
    for (float o : attend_with(im, q, none, 0.125f, 0, 100)) QVERIFY2(o == 0.f, "no pages: out must be all zeros");
  }

  // Scores of +-30000 overflow exp() in float unless the running maximum is subtracted (online softmax). Integer keys
  // and queries make every score exact, so all implementations agree with double to rounding of the final mix.
  void attendHugeScoresDoNotOverflow_data() {
    QTest::addColumn<DType>("kv");
    QTest::addColumn<int>("sign");
    QTest::addColumn<int>("impl");
    for (DType t : {DType::F32, DType::F16, DType::BF16})
      for (int sign : {-1, 0, 1})
        for (Impl i : {Impl::FastAvx2, Impl::FastAvx512, Impl::FastScalar, Impl::Ref})
          QTest::addRow("%s sign=%d %s", fkv::dtype_name(t), sign, impl_name(i)) << t << sign << static_cast<int>(i);
  }
  void attendHugeScoresDoNotOverflow() {
    QFETCH(DType, kv);
    QFETCH(int, sign);
    QFETCH(int, impl);
    const Impl im = static_cast<Impl>(impl);
    if (missing(im) != nullptr) QSKIP(missing(im));
    const int hd = 128;
    // sign +1: every score large positive; -1: every score large negative; 0: both.
    const std::vector<float> q =
        sign == 0 ? integers(hd, -2, 2, 3) : integers(hd, sign > 0 ? 1 : -2, sign > 0 ? 2 : -1, 3);
    const int k_lo = sign == 0 ? -2 : 1;
    const Pages p = make_pages(
        kv, hd, {64, 0, 32, 96}, {32, 32, 32, 7}, [k_lo](size_t n, uint32_t s) { return integers(n, k_lo, 2, 40 + s); },
        [](size_t n, uint32_t s) { return uniform(n, -1.f, 1.f, 60 + s); });
    const float scale = 64.f;  // |scores| up to 2 * 2 * 128 * 64 = 32768
    const std::vector<double> want = attend_double(q, p, scale, 5, 100);
    const std::vector<float> got = attend_with(im, q, p, scale, 5, 100);
    const double e = max_error(got, want);
    // Tolerance 1e-6: only the final mix of a handful of tied keys rounds (measured 0).
    QVERIFY2(e <= 1e-6, qPrintable(QString("max error %1 > 1e-6 (infinite means NaN/inf in the output)").arg(e)));
  }

  // The fast kernel keeps one page of scores on the stack: the largest page the cache allows must work.
  void attendLargestPage() {
    const int hd = 16, len = 4096;
    const std::vector<float> q = uniform(hd, -1.f, 1.f, 8);
    const Pages p = make_pages(
        DType::F16, hd, {0}, {len}, [](size_t n, uint32_t) { return uniform(n, -1.f, 1.f, 81); },
        [](size_t n, uint32_t) { return uniform(n, -1.f, 1.f, 82); });
    const std::vector<double> want = attend_double(q, p, 0.25, 0, len - 1);
    for (Impl im : {Impl::FastAvx2, Impl::FastAvx512, Impl::FastScalar, Impl::Ref}) {
      if (missing(im) != nullptr) continue;
      const double e = max_error(attend_with(im, q, p, 0.25f, 0, len - 1), want);
      // Tolerance 2e-6 as above; 4096 keys of O(1) scores average out, so the error does not grow with the page.
      QVERIFY2(e <= 2e-6,
               qPrintable(QString("%1, page of %2 tokens: max error %3 > 2e-6").arg(impl_name(im)).arg(len).arg(e)));
    }
  }

  // Several heads' bounds in one pass over pages whose blocks sit side by side (with a gap after them) equal
  // page_bounds for each head on its own, bit for bit, scalar and AVX2: the one-pass selection picks the same pages.
  void pageBoundsOfSeveralHeadsMatchOneHeadEach() {
    for (int hd : {4, 64, 72}) {
      for (int n_heads : {1, 2, 3}) {
        const int n_pages = 7;
        const size_t len = 2 * static_cast<size_t>(hd), stride = n_heads * len + 5;
        const std::vector<uint16_t> sums = to_f16(uniform(n_pages * stride, -1.f, 1.f, 95 + hd));
        const std::vector<float> q_splits = uniform(n_heads * len, -2.f, 2.f, 96 + n_heads);
        for (cpu::Isa isa : {cpu::Isa::Scalar, cpu::detected_isa()}) {
          cpu::set_active_isa(isa);
          std::vector<float> all(static_cast<size_t>(n_heads) * n_pages, -7.f), one(n_pages);
          cpu::page_bounds_heads(q_splits.data(), sums.data(), stride, n_pages, n_heads, hd, all.data(),
                                 static_cast<size_t>(n_pages));
          // The same rows filled in two runs of pages, each writing its part (how threads split a long range).
          std::vector<float> runs(all.size(), -7.f);
          const int cut = 3;
          cpu::page_bounds_heads(q_splits.data(), sums.data(), stride, cut, n_heads, hd, runs.data(),
                                 static_cast<size_t>(n_pages));
          cpu::page_bounds_heads(q_splits.data(), sums.data() + cut * stride, stride, n_pages - cut, n_heads, hd,
                                 runs.data() + cut, static_cast<size_t>(n_pages));
          QVERIFY2(runs == all, qPrintable(QString("%1, head dim %2, %3 heads: two runs differ from one")
                                               .arg(cpu::isa_name(isa))
                                               .arg(hd)
                                               .arg(n_heads)));
          for (int h = 0; h < n_heads; ++h) {
            cpu::page_bounds(q_splits.data() + h * len, sums.data() + h * len, stride, n_pages, hd, one.data());
            for (int p = 0; p < n_pages; ++p)
              QVERIFY2(all[static_cast<size_t>(h) * n_pages + p] == one[static_cast<size_t>(p)],
                       qPrintable(QString("%1, head dim %2, head %3 of %4, page %5: %6 against %7")
                                      .arg(cpu::isa_name(isa))
                                      .arg(hd)
                                      .arg(h)
                                      .arg(n_heads)
                                      .arg(p)
                                      .arg(all[static_cast<size_t>(h) * n_pages + p])
                                      .arg(one[static_cast<size_t>(p)])));
          }
        }
        cpu::set_active_isa(cpu::detected_isa());
      }
    }
  }

  // 8-bit code scores equal the integer sum of q times the codes, for every implementation, over ranges that start
  // and end inside blocks (a thread's run of pages), with codes at both ends of their range and odd numbers of quads.
  void codeScoresMatchTheirDefinition() {
    constexpr int kB = cpu::kCodeBlockPages;
    for (int cols : {8, 12, 128, 144, 256}) {
      const int n_blocks = 5;
      std::mt19937 rng(static_cast<uint32_t>(cols));
      std::uniform_int_distribution<int> code(0, 255), qd(-128, 127);
      std::vector<uint8_t> blocks(static_cast<size_t>(n_blocks) * kB * cols);
      for (uint8_t& c : blocks) c = static_cast<uint8_t>(code(rng));
      blocks[0] = 255;  // the extremes, against the extreme query bytes
      std::vector<int8_t> q(static_cast<size_t>(cols));
      for (int8_t& x : q) x = static_cast<int8_t>(qd(rng));
      q[0] = -128;
      q[1] = 127;
      const auto expected = [&](int p) {
        int64_t sum = 0;
        for (int c = 0; c < cols; ++c)
          sum += q[static_cast<size_t>(c)] * blocks[static_cast<size_t>(p / kB) * kB * cols +
                                                    static_cast<size_t>(c / 4) * kB * 4 + (p % kB) * 4 + c % 4];
        return static_cast<float>(sum);
      };
      for (Impl im : {Impl::Ref, Impl::FastScalar, Impl::FastAvx2, Impl::FastAvx512}) {
        if (missing(im) != nullptr) continue;
        ImplScope scope(im);
        for (const auto& [first, n] : std::vector<std::pair<int, int>>{
                 {0, n_blocks * kB}, {3, 1}, {5, 40}, {16, 16}, {17, 0}, {31, 2}, {1, n_blocks * kB - 1}}) {
          std::vector<float> out(static_cast<size_t>(n) + 1, -7.f);
          if (im == Impl::Ref)
            cpu::ref::code_scores(q.data(), blocks.data(), cols, first, n, out.data());
          else
            cpu::code_scores(q.data(), blocks.data(), cols, first, n, out.data());
          for (int i = 0; i < n; ++i)
            QVERIFY2(out[static_cast<size_t>(i)] == expected(first + i),
                     qPrintable(QString("%1, %2 codes, pages [%3, %4): page %5 scored %6, expected %7")
                                    .arg(impl_name(im))
                                    .arg(cols)
                                    .arg(first)
                                    .arg(first + n)
                                    .arg(first + i)
                                    .arg(out[static_cast<size_t>(i)])
                                    .arg(expected(first + i))));
          QCOMPARE(out[static_cast<size_t>(n)], -7.f);  // nothing past the range
        }
      }
    }
  }

  // Summaries are stored as F16 rounded outward: the minimum to the largest F16 value at or below it, the maximum to
  // the smallest at or above it (past F16's range: the largest finite value or an infinity), the same bits in the
  // scalar and AVX2 conversions, for head dims with and without a tail.
  void summaryToF16RoundsOutward() {
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> specials{0.f, -0.f, 1.f, -1.f, 1e-9f, -1e-9f, 6e-8f, -6e-8f, 65504.f, -65504.f, 65519.f,
                                -65519.f, 70000.f, -70000.f, inf, -inf, 0.1f, -0.1f, 3.14159f, -2.71828f};
    std::vector<float> all;  // every F16 value but NaN, ascending
    for (uint32_t h = 0; h < 0x10000; ++h) {
      const float v = cpu::f16_to_f32(static_cast<uint16_t>(h));
      if (!std::isnan(v)) all.push_back(v);
    }
    std::sort(all.begin(), all.end());
    for (int hd : {8, 20, 64}) {
      std::vector<float> mn_mx = uniform(2 * static_cast<size_t>(hd), -300.f, 300.f, 97 + hd);
      for (size_t i = 0; i < mn_mx.size(); ++i)
        if (i % 3 == 0) mn_mx[i] = specials[(i / 3 + static_cast<size_t>(hd)) % specials.size()];
      std::vector<uint16_t> got_ref(mn_mx.size()), got(mn_mx.size());
      cpu::ref::summary_to_f16(mn_mx.data(), got_ref.data(), hd);
      cpu::set_active_isa(cpu::detected_isa());
      cpu::summary_to_f16(mn_mx.data(), got.data(), hd);
      for (int c = 0; c < 2 * hd; ++c) {
        const float x = mn_mx[static_cast<size_t>(c)];
        const bool down = c < hd;
        const uint16_t h = got_ref[static_cast<size_t>(c)];
        const float v = cpu::f16_to_f32(h);
        const QString where = QString("head dim %1, %2 %3 -> %4").arg(hd).arg(down ? "min" : "max").arg(x).arg(v);
        QVERIFY2(got[static_cast<size_t>(c)] == h, qPrintable(where + QString(": fast code %1, scalar %2")
                                                                      .arg(got[static_cast<size_t>(c)])
                                                                      .arg(h)));
        QVERIFY2(down ? v <= x : v >= x, qPrintable(where));
        // ... and the nearest such F16 value, found among all of them.
        const float want = down ? *(std::upper_bound(all.begin(), all.end(), x) - 1)
                                : *std::lower_bound(all.begin(), all.end(), x);
        QVERIFY2(v == want, qPrintable(where + QString(", expected %1").arg(want)));
      }
    }
    cpu::set_active_isa(cpu::detected_isa());
  }

  // The page-summary bound: the term-by-term reference against a double loop; the split form (one dot product per
  // page), scalar and AVX2, against the same loop for several pages at a stride (head dims with and without a tail of
  // fewer than 16 channels); and the bound really bounds q.k for keys inside [mn, mx].
  void pageBoundMatchesReferenceAndBounds() {
    for (int hd : {4, 8, 64, 72, 256}) {
      for (int group : {1, 3, 8}) {
        const int n_pages = 5;
        const size_t stride = 3 * static_cast<size_t>(hd);  // (min, max) plus a gap the kernel must skip
        const std::vector<float> q = uniform(static_cast<size_t>(group) * hd, -2.f, 2.f, 90 + hd + group);
        std::vector<float> sums = uniform(n_pages * stride, -1.f, 1.f, 91 + hd);
        round_to_f16(sums);
        std::vector<double> want(n_pages, 0.0);
        for (int p = 0; p < n_pages; ++p) {
          float* mn = sums.data() + p * stride;
          float* mx = mn + hd;
          for (int c = 0; c < hd; ++c)
            if (mn[c] > mx[c]) std::swap(mn[c], mx[c]);
          for (int g = 0; g < group; ++g)
            for (int c = 0; c < hd; ++c) {
              const double qc = q[static_cast<size_t>(g * hd + c)];
              want[p] += std::max(qc * mn[c], qc * mx[c]);
            }
          const float r = cpu::ref::page_bound(q.data(), group, mn, mx, hd);
          QVERIFY2(std::fabs(r - want[p]) <= 1e-4 * std::max(1.0, std::fabs(want[p])),
                   qPrintable(QString::number(r - want[p])));
        }
        const std::vector<uint16_t> sums16 = to_f16(sums);  // min and max put in order above
        std::vector<float> q_split(2 * static_cast<size_t>(hd));
        cpu::split_group_query(q.data(), group, hd, q_split.data());
        std::vector<float> got_ref(n_pages), got(n_pages);
        cpu::ref::page_bounds(q_split.data(), sums16.data(), stride, n_pages, hd, got_ref.data());
        cpu::set_active_isa(cpu::detected_isa());
        cpu::page_bounds(q_split.data(), sums16.data(), stride, n_pages, hd, got.data());
        for (int p = 0; p < n_pages; ++p) {
          const double tol = 1e-4 * std::max(1.0, std::fabs(want[p]));
          QVERIFY2(std::fabs(got_ref[p] - want[p]) <= tol,
                   qPrintable(QString("ref page %1: %2").arg(p).arg(got_ref[p] - want[p])));
          QVERIFY2(std::fabs(got[p] - want[p]) <= tol,
                   qPrintable(QString("fast page %1: %2").arg(p).arg(got[p] - want[p])));
        }
        // Any key inside the box scores at most the bound, for the summed group.
        const float* mn = sums.data();
        const float* mx = mn + hd;
        const std::vector<float> t = uniform(hd, 0.f, 1.f, 93 + hd);
        double qk = 0.0;
        for (int g = 0; g < group; ++g)
          for (int c = 0; c < hd; ++c) {
            const float k = mn[c] + t[static_cast<size_t>(c)] * (mx[c] - mn[c]);
            qk += static_cast<double>(q[static_cast<size_t>(g * hd + c)]) * k;
          }
        QVERIFY(qk <= want[0] + 1e-4);
      }
    }
  }
};

QTEST_APPLESS_MAIN(TestOps)
#include "test_ops.moc"
