// The token budget (kv/budget.h) and page summaries (kv/page_summary.h): validation errors that name the field, min/max
// against a brute-force scan of the stored keys for each KV cache type, the bound q.k <= score for every key of a page
// (summed over a GQA group), and select_top_k against a sort of every page by (score desc, page asc).
#include <QTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"
#include "core/thread_pool.h"
#include "kv/budget.h"
#include "kv/kv_cache.h"
#include "kv/page_summary.h"
#include "kv/policy.h"
#include "support/policy_helpers.h"

using fkv::Budget;
using fkv::DType;
using fkv::KvCache;
using fkv::KvGeometry;
using fkv::PageSummaries;

Q_DECLARE_METATYPE(DType)

using fkvtest::list;
using fkvtest::read_elem;

namespace {

// Stored key channel c of token j (within the page) of KV head h, page p, layer l.
float stored_key(const KvCache& cache, int l, int p, int h, int j, int c) {
  const KvGeometry& g = cache.geometry();
  return read_elem(g.dtype, cache.k_block(l, p, h) + (static_cast<size_t>(j) * g.head_dim + c) * g.elem_bytes());
}

// A cache of n_pages full pages of random keys and values in [-2, 2), with every page summarised.
struct SummaryRig {
  KvCache cache;
  PageSummaries summaries;
};

bool make_rig(const KvGeometry& g, int n_pages, uint64_t seed, SummaryRig& rig, QString* error) {
  auto cache = KvCache::create(g, n_pages * g.page_size);
  if (!cache.ok()) {
    *error = QString::fromStdString(cache.message());
    return false;
  }
  rig.cache = std::move(*cache);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  const int n_tok = n_pages * g.page_size;
  std::vector<float> k(static_cast<size_t>(n_tok) * g.n_kv_heads * g.head_dim);  // (n_tok, n_kv_heads, head_dim)
  std::vector<float> v(k.size());                                                // (n_tok, n_kv_heads, head_dim)
  for (int l = 0; l < g.n_layers; ++l) {
    for (float& x : k) x = u(rng);
    for (float& x : v) x = u(rng);
    rig.cache.write(l, 0, n_tok, k.data(), v.data());
  }
  rig.cache.set_n_tokens(n_tok);
  const fkv::Status st = rig.summaries.init(g, n_pages);
  if (!st.ok()) {
    *error = QString::fromStdString(st.message());
    return false;
  }
  for (int l = 0; l < g.n_layers; ++l) {
    for (int p = 0; p < n_pages; ++p) rig.summaries.build(l, p, rig.cache);
    rig.summaries.set_n_built(l, n_pages);
  }
  return true;
}

float f16(uint16_t h) { return fkv::cpu::f16_to_f32(h); }

// Empty when outs (from select_top_k_heads) holds, for every head with want[h] != 0 (want null: all), exactly what
// select_top_k chooses for that head alone; otherwise which head differs and how.
QString differs_from_one_head_each(const PageSummaries& s, int l, const std::vector<float>& q, int group, int lo,
                                   int hi, int k, const std::vector<std::vector<int32_t>>& outs, const uint8_t* want) {
  std::vector<float> scratch;
  std::vector<int32_t> one;
  const int hd = s.head_dim();
  for (int h = 0; h < s.geometry().n_kv_heads; ++h) {
    if (want != nullptr && want[h] == 0) continue;
    fkv::select_top_k(s, l, h, q.data() + static_cast<size_t>(h) * group * hd, group, lo, hi, k, one, scratch);
    const auto& got = outs[static_cast<size_t>(h)];
    if (got != one) {
      return QString("head %1, [%2, %3) k %4: got %5, expected %6")
          .arg(h)
          .arg(lo)
          .arg(hi)
          .arg(k)
          .arg(fkvtest::list(got), fkvtest::list(one));
    }
  }
  return {};
}

std::vector<float> random_q(std::mt19937_64& rng, size_t n) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> q(n);
  for (float& x : q) x = nd(rng);
  return q;
}

// The brute-force reference: every page of [lo, hi) sorted by (score desc, page asc), NaN last, the first k, ascending.
std::vector<int32_t> reference_top_k(const PageSummaries& s, int l, int h, const float* q, int group, int lo, int hi,
                                     int k) {
  std::vector<int32_t> all;
  std::vector<float> score;
  for (int p = lo; p < hi; ++p) {
    all.push_back(p);
    score.push_back(s.score(l, p, h, q, group));
  }
  std::sort(all.begin(), all.end(), [&](int32_t a, int32_t b) {
    const float sa = score[static_cast<size_t>(a - lo)];
    const float sb = score[static_cast<size_t>(b - lo)];
    if (std::isnan(sa) != std::isnan(sb)) return std::isnan(sb);
    if (!std::isnan(sa) && sa != sb) return sa > sb;
    return a < b;
  });
  all.resize(static_cast<size_t>(std::clamp(k, 0, static_cast<int>(all.size()))));
  std::sort(all.begin(), all.end());
  return all;
}

// make_rig, with 8-bit codes of every layer's pages.
bool make_coded_rig(const KvGeometry& g, int n_pages, uint64_t seed, SummaryRig& rig, QString* error) {
  if (!make_rig(g, n_pages, seed, rig, error)) return false;
  if (const fkv::Status st = rig.summaries.enable_codes(); !st.ok() || !rig.summaries.codes_enabled()) {
    *error = st.ok() ? QString("no codes for head size %1").arg(g.head_dim) : QString::fromStdString(st.message());
    return false;
  }
  for (int l = 0; l < g.n_layers; ++l) rig.summaries.update_codes(l);
  return true;
}

// Page p's code for column col (min: col < head_dim, max: head_dim + channel) of KV head h, layer l.
int code_of(const PageSummaries& s, int l, int p, int h, int col) {
  constexpr int kB = fkv::cpu::kCodeBlockPages;
  const size_t block = 2 * static_cast<size_t>(s.head_dim()) * kB;
  return s.code_blocks(
      l, h)[static_cast<size_t>(p / kB) * block + static_cast<size_t>(col / 4) * kB * 4 + (p % kB) * 4 + col % 4];
}

// Empty when every coded page's codes bound its F16 extremes outward: lo + step * code <= min, >= max.
QString codes_bound_outward(const PageSummaries& s, int l) {
  const int hd = s.head_dim();
  std::vector<float> mm(2 * static_cast<size_t>(hd));
  for (int h = 0; h < s.geometry().n_kv_heads; ++h) {
    const float* lo = s.code_lo(l, h);
    const float* step = s.code_step(l, h);
    for (int p = 0; p < s.n_coded(l); ++p) {
      s.load(l, p, h, mm.data());
      for (int col = 0; col < 2 * hd; ++col) {
        const int c = col % hd;
        const double v = static_cast<double>(lo[c]) + static_cast<double>(step[c]) * code_of(s, l, p, h, col);
        const double x = mm[static_cast<size_t>(col)];
        const double slack = 1e-4 * static_cast<double>(step[c]);  // float rounding of (x - lo) / step
        if (col < hd ? v > x + slack : v < x - slack)
          return QString("layer %1 head %2 page %3 column %4: %5 codes as %6")
              .arg(l)
              .arg(h)
              .arg(p)
              .arg(col)
              .arg(x)
              .arg(v);
      }
    }
  }
  return {};
}

// What select_top_k_heads chooses from the codes for head h, computed the long way: the split query times the
// channels' steps, quantized to int8 over its largest magnitude, summed against every page's codes, then the
// brute-force order of reference_top_k.
std::vector<int32_t> coded_top_k(const PageSummaries& s, int l, int h, const float* q, int group, int lo, int hi,
                                 int k) {
  const int hd = s.head_dim();
  std::vector<float> split(2 * static_cast<size_t>(hd));
  fkv::cpu::split_group_query(q, group, hd, split.data());
  float m = 0.f;
  for (int col = 0; col < 2 * hd; ++col) {
    split[static_cast<size_t>(col)] *= s.code_step(l, h)[col % hd];
    m = std::max(m, std::fabs(split[static_cast<size_t>(col)]));
  }
  std::vector<int32_t> all;
  std::vector<double> score;
  for (int p = lo; p < hi; ++p) {
    double sum = 0;
    for (int col = 0; col < 2 * hd; ++col)
      sum += static_cast<double>(std::lrint(split[static_cast<size_t>(col)] * (127.f / m))) * code_of(s, l, p, h, col);
    all.push_back(p);
    score.push_back(sum);
  }
  std::stable_sort(all.begin(), all.end(), [&](int32_t a, int32_t b) {
    return score[static_cast<size_t>(a - lo)] > score[static_cast<size_t>(b - lo)];
  });
  all.resize(static_cast<size_t>(std::min(k, hi - lo)));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace

class TestPageSummary : public QObject {
  Q_OBJECT

 private slots:
  void budgetValidation_data() {
    QTest::addColumn<int>("sink");
    QTest::addColumn<int>("recent");
    QTest::addColumn<int>("retrieved");
    QTest::addColumn<int>("page_size");
    QTest::addColumn<QString>("field");  // what the message must name; empty when valid
    QTest::addColumn<int>("found");      // the offending value the message must quote
    QTest::addRow("defaults") << 512 << 512 << 1024 << 32 << "" << 0;
    QTest::addRow("no sink, no retrieval") << 0 << 4 << 0 << 4 << "" << 0;
    QTest::addRow("page 1") << 3 << 1 << 5 << 1 << "" << 0;
    QTest::addRow("page 0") << 8 << 8 << 8 << 0 << "page size" << 0;
    QTest::addRow("page too large") << 8192 << 8192 << 0 << 8192 << "page size" << 8192;
    QTest::addRow("negative sink") << -4 << 8 << 8 << 4 << "sink" << -4;
    QTest::addRow("negative recent") << 4 << -8 << 8 << 4 << "recent" << -8;
    QTest::addRow("negative retrieved") << 4 << 8 << -12 << 4 << "retrieved" << -12;
    QTest::addRow("sink not whole pages") << 6 << 8 << 8 << 4 << "sink" << 6;
    QTest::addRow("recent not whole pages") << 4 << 10 << 8 << 4 << "recent" << 10;
    QTest::addRow("retrieved not whole pages") << 32 << 32 << 33 << 32 << "retrieved" << 33;
    QTest::addRow("no recent window") << 8 << 0 << 8 << 4 << "recent" << 0;
    QTest::addRow("largest parts") << (1 << 24) << (1 << 24) << (1 << 24) << 32 << "" << 0;
    QTest::addRow("retrieved beyond 2^24") << 32 << 32 << (1 << 24) + 32 << 32 << "retrieved" << 16777248;
    // Accepted once, and then total_tokens() overflowed int.
    QTest::addRow("sink near INT_MAX") << 2147483616 << 512 << 1024 << 32 << "sink" << 2147483616;
  }

  void budgetValidation() {
    QFETCH(int, sink);
    QFETCH(int, recent);
    QFETCH(int, retrieved);
    QFETCH(int, page_size);
    QFETCH(QString, field);
    QFETCH(int, found);
    const Budget b = fkvtest::make_budget(sink, recent, retrieved, page_size);
    const fkv::Status st = b.validate();
    const QString msg = QString::fromStdString(st.message());
    if (field.isEmpty()) {
      QVERIFY2(st.ok(), qPrintable("a valid budget was refused: " + msg));
      QCOMPARE(b.total_tokens(), sink + recent + retrieved);
      QCOMPARE(b.sink_pages() * page_size, sink);
      QCOMPARE(b.recent_pages() * page_size, recent);
      QCOMPARE(b.retrieved_pages() * page_size, retrieved);
      return;
    }
    QVERIFY2(!st.ok(), "an invalid budget was accepted");
    QVERIFY2(msg.contains(field) && msg.contains(QString::number(found)),
             qPrintable(QString("message should name '%1' and quote %2: %3").arg(field).arg(found).arg(msg)));
    // make_policy refuses the same budget for the sparse policies with the same message; `full` ignores it.
    fkv::PolicyContext pc;
    pc.budget = b;
    for (fkv::Policy name : {fkv::Policy::streaming, fkv::Policy::quest, fkv::Policy::arkvale, fkv::Policy::freekv}) {
      auto p = fkv::make_policy(name, pc);
      QVERIFY2(!p.ok(), fkv::policy_name(name));
      QCOMPARE(QString::fromStdString(p.message()), msg);
    }
    QVERIFY(fkv::make_policy(fkv::Policy::full, pc).ok());
  }

  void policyRefusesTauOutsideCosineRange() {
    fkv::PolicyContext pc;
    pc.budget = fkvtest::make_budget(4, 4, 4, 4);
    for (float tau : {-1.5f, 1.01f, std::numeric_limits<float>::quiet_NaN()}) {
      pc.tau = tau;
      auto p = fkv::make_policy(fkv::Policy::freekv, pc);
      QVERIFY2(!p.ok(), qPrintable(QString("tau %1 accepted").arg(tau)));
      QVERIFY2(QString::fromStdString(p.message()).contains("tau"), p.message().c_str());
    }
  }

  void initRefusesBadGeometry() {
    PageSummaries s;
    const fkv::Status st = s.init(KvGeometry{0, 2, 8, 4, DType::F16}, 4);
    QVERIFY(!st.ok());
    QVERIFY2(QString::fromStdString(st.message()).contains("layers"), st.message().c_str());
  }

  void minMaxMatchStoredKeys_data() {
    QTest::addColumn<DType>("dtype");
    QTest::addRow("f16") << DType::F16;
    QTest::addRow("f32") << DType::F32;
    QTest::addRow("bf16") << DType::BF16;
  }

  // Per channel, kmin/kmax are the extremes of the stored (rounded) keys as F16, the minimum rounded down and the
  // maximum up (exactly the extremes for an F16 cache); bytes() follows the geometry.
  void minMaxMatchStoredKeys() {
    QFETCH(DType, dtype);
    const KvGeometry g{2, 3, 16, 4, dtype};
    const int n_pages = 6;
    SummaryRig rig;
    QString error;
    QVERIFY2(make_rig(g, n_pages, 7, rig, &error), qPrintable(error));
    QCOMPARE(rig.summaries.bytes(), static_cast<size_t>(2 * n_pages * 3 * 2 * 16) * sizeof(uint16_t));
    for (int l = 0; l < g.n_layers; ++l)
      for (int p = 0; p < n_pages; ++p)
        for (int h = 0; h < g.n_kv_heads; ++h)
          for (int c = 0; c < g.head_dim; ++c) {
            float mn = std::numeric_limits<float>::infinity();
            float mx = -mn;
            for (int j = 0; j < g.page_size; ++j) {
              mn = std::min(mn, stored_key(rig.cache, l, p, h, j, c));
              mx = std::max(mx, stored_key(rig.cache, l, p, h, j, c));
            }
            const QString where = QString("layer %1 page %2 head %3 channel %4").arg(l).arg(p).arg(h).arg(c);
            const float got_mn = f16(rig.summaries.kmin(l, p, h)[c]);
            const float got_mx = f16(rig.summaries.kmax(l, p, h)[c]);
            QVERIFY2(got_mn <= mn && rig.summaries.kmin(l, p, h)[c] == fkv::cpu::f16_round_down(mn),
                     qPrintable(where + QString(": min %1, scan %2").arg(got_mn).arg(mn)));
            QVERIFY2(got_mx >= mx && rig.summaries.kmax(l, p, h)[c] == fkv::cpu::f16_round_up(mx),
                     qPrintable(where + QString(": max %1, scan %2").arg(got_mx).arg(mx)));
            if (dtype == DType::F16) QVERIFY2(got_mn == mn && got_mx == mx, qPrintable(where));
          }
  }

  // Rebuilding a page after its keys changed forgets the old extremes (a reused page must not keep stale bounds).
  void rebuildReplacesOldExtremes() {
    const KvGeometry g{1, 1, 4, 2, DType::F32};
    SummaryRig rig;
    QString error;
    QVERIFY2(make_rig(g, 2, 3, rig, &error), qPrintable(error));
    const float k[] = {0.5f, 0.5f, 0.5f, 0.5f, 0.25f, 0.25f, 0.25f, 0.25f};  // (2 tokens, 1 head, 4)
    rig.cache.write(0, 2, 2, k, k);
    rig.summaries.build(0, 1, rig.cache);
    for (int c = 0; c < 4; ++c) {
      QCOMPARE(f16(rig.summaries.kmin(0, 1, 0)[c]), 0.25f);
      QCOMPARE(f16(rig.summaries.kmax(0, 1, 0)[c]), 0.5f);
    }
    rig.summaries.reset();
    QCOMPARE(rig.summaries.n_built(0), 0);
  }

  void boundHoldsForEveryKey_data() {
    QTest::addColumn<DType>("dtype");
    QTest::addColumn<int>("group");
    QTest::addRow("f16 group 1") << DType::F16 << 1;
    QTest::addRow("f16 group 4") << DType::F16 << 4;
    QTest::addRow("f32 group 3") << DType::F32 << 3;
  }

  // score(q) >= sum over the group's heads of q_g.k for every key k of the page. Both sides are summed in float in the
  // same order (head, then channel), and every term of the bound is >= the matching term of the dot product, so the
  // inequality holds exactly despite rounding.
  void boundHoldsForEveryKey() {
    QFETCH(DType, dtype);
    QFETCH(int, group);
    const KvGeometry g{1, 2, 16, 8, dtype};
    const int n_pages = 5;
    SummaryRig rig;
    QString error;
    QVERIFY2(make_rig(g, n_pages, 11, rig, &error), qPrintable(error));
    std::mt19937_64 rng(5);
    int n_checked = 0;
    for (int trial = 0; trial < 20; ++trial) {
      const std::vector<float> q = random_q(rng, static_cast<size_t>(group) * g.head_dim);  // (group, head_dim)
      for (int p = 0; p < n_pages; ++p)
        for (int h = 0; h < g.n_kv_heads; ++h) {
          const float bound = rig.summaries.score(0, p, h, q.data(), group);
          float best = -std::numeric_limits<float>::infinity();
          for (int j = 0; j < g.page_size; ++j) {
            float dot = 0.f;
            for (int gi = 0; gi < group; ++gi)
              for (int c = 0; c < g.head_dim; ++c)
                dot += q[static_cast<size_t>(gi) * g.head_dim + c] * stored_key(rig.cache, 0, p, h, j, c);
            best = std::max(best, dot);
            ++n_checked;
          }
          QVERIFY2(bound >= best, qPrintable(QString("trial %1 page %2 head %3: bound %4 < q.k %5")
                                                 .arg(trial)
                                                 .arg(p)
                                                 .arg(h)
                                                 .arg(bound)
                                                 .arg(best)));
        }
    }
    QCOMPARE(n_checked, 20 * n_pages * g.n_kv_heads * g.page_size);
  }

  // The bound is the formula, not just some upper bound: a unit query on channel c scores max_c, its negation -min_c.
  void boundOfUnitQueriesIsTheExtreme() {
    const KvGeometry g{1, 2, 8, 4, DType::F32};
    SummaryRig rig;
    QString error;
    QVERIFY2(make_rig(g, 3, 2, rig, &error), qPrintable(error));
    for (int p = 0; p < 3; ++p)
      for (int h = 0; h < 2; ++h)
        for (int c = 0; c < g.head_dim; ++c) {
          std::vector<float> q(static_cast<size_t>(g.head_dim), 0.f);
          q[static_cast<size_t>(c)] = 1.f;
          QCOMPARE(rig.summaries.score(0, p, h, q.data(), 1), f16(rig.summaries.kmax(0, p, h)[c]));
          q[static_cast<size_t>(c)] = -1.f;
          QCOMPARE(rig.summaries.score(0, p, h, q.data(), 1), -f16(rig.summaries.kmin(0, p, h)[c]));
          // Two heads in the group, the same unit query: the group's bound is the sum.
          std::vector<float> q2(2 * static_cast<size_t>(g.head_dim), 0.f);
          q2[static_cast<size_t>(c)] = 1.f;
          q2[static_cast<size_t>(g.head_dim) + c] = 1.f;
          QCOMPARE(rig.summaries.score(0, p, h, q2.data(), 2), 2.f * f16(rig.summaries.kmax(0, p, h)[c]));
        }
  }

  // Random queries and ranges; pages repeat their keys every 3 pages, so exact score ties are common and the tie rule
  // (lower page first) is exercised.
  void topKMatchesBruteForce() {
    const KvGeometry g{2, 2, 8, 4, DType::F16};
    const int n_pages = 24;
    SummaryRig rig;
    QString error;
    QVERIFY2(make_rig(g, n_pages, 13, rig, &error), qPrintable(error));
    for (int l = 0; l < 2; ++l)
      for (int p = 3; p < n_pages; ++p)
        for (int h = 0; h < 2; ++h) {
          std::memcpy(rig.cache.k_block(l, p, h), rig.cache.k_block(l, p % 3, h), g.head_block_bytes());
          rig.summaries.build(l, p, rig.cache);
        }
    std::mt19937_64 rng(17);
    std::vector<int32_t> out{99, 98};  // stale content select_top_k must replace
    std::vector<float> scratch;
    int n_ties_broken = 0;
    for (int trial = 0; trial < 300; ++trial) {
      const int group = 1 + static_cast<int>(rng() % 3);
      const int l = static_cast<int>(rng() % 2);
      const int h = static_cast<int>(rng() % 2);
      const int lo = static_cast<int>(rng() % n_pages);
      const int hi = lo + static_cast<int>(rng() % static_cast<uint64_t>(n_pages - lo + 1));
      const int k = static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 2));
      const std::vector<float> q = random_q(rng, static_cast<size_t>(group) * g.head_dim);
      fkv::select_top_k(rig.summaries, l, h, q.data(), group, lo, hi, k, out, scratch);
      const std::vector<int32_t> ref = reference_top_k(rig.summaries, l, h, q.data(), group, lo, hi, k);
      QVERIFY2(out == ref, qPrintable(QString("trial %1 [%2, %3) k %4: got %5, expected %6")
                                          .arg(trial)
                                          .arg(lo)
                                          .arg(hi)
                                          .arg(k)
                                          .arg(list(out), list(ref))));
      if (k > 0 && k < hi - lo && hi - lo > 3) ++n_ties_broken;
    }
    QVERIFY2(n_ties_broken > 50, "too few trials cut a range with repeated pages");
  }

  // All KV heads in one pass choose exactly what select_top_k chooses for each head; heads not wanted keep what
  // their output held.
  void topKOfSeveralHeadsMatchesOneHeadEach() {
    const KvGeometry g{2, 3, 8, 4, DType::F16};
    const int n_pages = 24;
    SummaryRig rig;
    QString error;
    QVERIFY2(make_rig(g, n_pages, 29, rig, &error), qPrintable(error));
    std::mt19937_64 rng(31);
    std::vector<float> scratch;
    for (int trial = 0; trial < 200; ++trial) {
      const int group = 1 + static_cast<int>(rng() % 3);
      const int l = static_cast<int>(rng() % 2);
      const int lo = static_cast<int>(rng() % n_pages);
      const int hi = lo + static_cast<int>(rng() % static_cast<uint64_t>(n_pages - lo + 1));
      const int k = static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 2));
      const std::vector<float> q = random_q(rng, static_cast<size_t>(g.n_kv_heads) * group * g.head_dim);
      std::vector<uint8_t> want(static_cast<size_t>(g.n_kv_heads));
      for (auto& w : want) w = static_cast<uint8_t>(rng() % 2);
      const bool all = trial % 4 == 0;
      std::vector<std::vector<int32_t>> outs(static_cast<size_t>(g.n_kv_heads), std::vector<int32_t>{99, 98});
      fkv::select_top_k_heads(rig.summaries, l, q.data(), group, lo, hi, k, all ? nullptr : want.data(), outs, scratch);
      for (int h = 0; h < g.n_kv_heads; ++h)
        if (!all && want[static_cast<size_t>(h)] == 0)
          QCOMPARE(outs[static_cast<size_t>(h)], (std::vector<int32_t>{99, 98}));
      const QString d =
          differs_from_one_head_each(rig.summaries, l, q, group, lo, hi, k, outs, all ? nullptr : want.data());
      QVERIFY2(d.isEmpty(), qPrintable(QString("trial %1, %2").arg(trial).arg(d)));
    }
  }

  // Scored on a thread pool, a long range's pages are split between the threads and the heads' top k too: the same
  // pages as one thread.
  void topKOnAPoolMatchesOneThread() {
    const KvGeometry g{1, 2, 16, 4, DType::F16};
    const int n_pages = 3001;
    SummaryRig rig;
    QString error;
    QVERIFY2(make_rig(g, n_pages, 61, rig, &error), qPrintable(error));
    std::mt19937_64 rng(67);
    std::vector<float> scratch;
    for (int threads : {2, 3}) {
      fkv::ThreadPool pool(threads);
      for (int trial = 0; trial < 20; ++trial) {
        const int group = 1 + static_cast<int>(rng() % 3);
        const int lo = static_cast<int>(rng() % 200);
        const int hi = n_pages - static_cast<int>(rng() % 200);
        const int k = 1 + static_cast<int>(rng() % 64);
        const std::vector<float> q = random_q(rng, static_cast<size_t>(g.n_kv_heads) * group * g.head_dim);
        // Every head, or one of them as a correction asks (its pages alone are read then).
        const std::vector<uint8_t> wants[] = {{1, 1}, {1, 0}, {0, 1}};
        const uint8_t* want = trial % 3 == 0 ? nullptr : wants[trial % 3].data();
        std::vector<std::vector<int32_t>> outs(static_cast<size_t>(g.n_kv_heads));
        fkv::select_top_k_heads(rig.summaries, 0, q.data(), group, lo, hi, k, want, outs, scratch, &pool);
        for (int h = 0; h < g.n_kv_heads; ++h)
          if (want != nullptr && want[h] == 0) QVERIFY(outs[static_cast<size_t>(h)].empty());
        const QString d = differs_from_one_head_each(rig.summaries, 0, q, group, lo, hi, k, outs, want);
        QVERIFY2(d.isEmpty(), qPrintable(QString("%1 threads, %2").arg(threads).arg(d)));
      }
    }
  }

  // top_k_of on long score rows against a sort, scores drawn from a few values (ties everywhere) with NaNs and
  // infinities mixed in: rows of many runs take the threshold path, short ones or small k the heap scan, and rows
  // whose runs are mostly NaN fall back from the first to the second.
  void topKOfMatchesASort() {
    std::mt19937_64 rng(23);
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    int n_threshold = 0;
    std::vector<int32_t> out;
    for (int trial = 0; trial < 400; ++trial) {
      const int n = 2 + static_cast<int>(rng() % (trial % 4 == 0 ? 60 : 5000));
      const int k = 1 + static_cast<int>(rng() % static_cast<uint64_t>(trial % 2 == 0 ? std::min(n - 1, 40) : n - 1));
      const int kind = trial % 5;  // 0: ties only; 1: NaNs; 2: infinities; 3: mostly NaN; 4: all equal
      std::vector<float> scores(static_cast<size_t>(n));
      for (float& v : scores) {
        v = static_cast<float>(rng() % 40);
        const uint64_t r = rng() % 100;
        if (kind == 1 && r < 10) v = nan;
        if (kind == 2 && r < 5) v = r % 2 == 0 ? inf : -inf;
        if (kind == 3 && r < 97) v = nan;
        if (kind == 4) v = 1.f;
      }
      const int lo = static_cast<int>(rng() % 1000);
      fkv::top_k_of(scores.data(), lo, n, k, out);
      std::vector<int32_t> ref(static_cast<size_t>(n));
      std::iota(ref.begin(), ref.end(), lo);
      const auto rank = [&](int32_t p) {
        const float v = scores[static_cast<size_t>(p - lo)];
        return std::isnan(v) ? -inf : v;
      };
      std::stable_sort(ref.begin(), ref.end(), [&](int32_t a, int32_t b) { return rank(a) > rank(b); });
      ref.resize(static_cast<size_t>(k));
      std::sort(ref.begin(), ref.end());
      QVERIFY2(out == ref, qPrintable(QString("trial %1, n %2, k %3, kind %4: got %5, expected %6")
                                          .arg(trial)
                                          .arg(n)
                                          .arg(k)
                                          .arg(kind)
                                          .arg(list(out), list(ref))));
      if (n / 16 >= 4 * k && kind != 3) ++n_threshold;
    }
    QVERIFY2(n_threshold > 50, qPrintable(QString("only %1 rows long enough for the threshold").arg(n_threshold)));
  }

  void topKEdgeCases() {
    const KvGeometry g{1, 1, 4, 2, DType::F32};
    SummaryRig rig;
    QString error;
    QVERIFY2(make_rig(g, 8, 19, rig, &error), qPrintable(error));
    const float q[] = {1.f, -0.5f, 0.25f, 2.f};
    std::vector<int32_t> out{7};
    std::vector<float> scratch;
    fkv::select_top_k(rig.summaries, 0, 0, q, 1, 2, 6, 4, out, scratch);
    QCOMPARE(out, (std::vector<int32_t>{2, 3, 4, 5}));  // k == range
    fkv::select_top_k(rig.summaries, 0, 0, q, 1, 2, 6, 100, out, scratch);
    QCOMPARE(out, (std::vector<int32_t>{2, 3, 4, 5}));  // k > range
    fkv::select_top_k(rig.summaries, 0, 0, q, 1, 2, 6, 0, out, scratch);
    QVERIFY(out.empty());  // k == 0
    out = {1};
    fkv::select_top_k(rig.summaries, 0, 0, q, 1, 3, 3, 2, out, scratch);
    QVERIFY(out.empty());  // empty range
    out = {1};
    fkv::select_top_k(rig.summaries, 0, 0, q, 1, 5, 3, 2, out, scratch);
    QVERIFY(out.empty());  // reversed range
    out = {1};
    fkv::select_top_k(rig.summaries, 0, 0, q, 1, 0, 8, -1, out, scratch);
    QVERIFY(out.empty());  // negative k
    fkv::select_top_k(rig.summaries, 0, 0, q, 1, 0, 8, 1, out, scratch);
    QCOMPARE(out, reference_top_k(rig.summaries, 0, 0, q, 1, 0, 8, 1));
  }

  // 8-bit codes bound each page's F16 extremes outward, and a page past a channel's range widens it and recodes the
  // layer; truncating and resetting forget the coded pages.
  void codesBoundTheSummaries() {
    const KvGeometry g{2, 2, 8, 4, DType::F16};
    SummaryRig rig;
    QString error;
    QVERIFY2(make_rig(g, 40, 71, rig, &error), qPrintable(error));
    PageSummaries& s = rig.summaries;
    QVERIFY(!s.codes_enabled());
    QCOMPARE(s.n_coded(0), 0);
    QVERIFY(s.enable_codes().ok());
    for (int l = 0; l < g.n_layers; ++l) {
      s.update_codes(l);
      QCOMPARE(s.n_coded(l), 40);
      const QString d = codes_bound_outward(s, l);
      QVERIFY2(d.isEmpty(), qPrintable(d));
    }
    // Layer 0 channel 3's codes span its range: some page's minimum codes as 0 and some page's maximum as 255.
    int lowest = 255, highest = 0;
    for (int p = 0; p < 40; ++p) {
      lowest = std::min(lowest, code_of(s, 0, p, 0, 3));
      highest = std::max(highest, code_of(s, 0, p, 0, 8 + 3));
    }
    QCOMPARE(lowest, 0);
    QCOMPARE(highest, 255);

    // A page far outside the keys so far (the cache's keys lie in [-2, 2)).
    const float old_top = s.code_lo(0, 1)[5] + 255.f * s.code_step(0, 1)[5];
    std::vector<float> mm(16, 0.5f);
    mm[8 + 5] = 40.f;
    s.store(0, 40 - 1, 1, mm.data());
    s.set_n_built(0, 39);
    QCOMPARE(s.n_coded(0), 39);
    s.set_n_built(0, 40);
    s.update_codes(0);
    QVERIFY(s.code_lo(0, 1)[5] + 255.f * s.code_step(0, 1)[5] >= 40.f);
    QVERIFY(old_top < 40.f);
    // With an eighth of the span spare on each side, 40 sits at 9/10 of the range: ceil(0.9 * 255) (the step is
    // 1.0001 times a 255th, so the top of the range is not below 40).
    QCOMPARE(code_of(s, 0, 39, 1, 8 + 5), 230);
    const QString d = codes_bound_outward(s, 0);
    QVERIFY2(d.isEmpty(), qPrintable(d));

    // Non-finite extremes take the loosest codes (an F16 cache stores a key past its range as an infinity), and leave
    // the ranges as they were.
    const float inf = std::numeric_limits<float>::infinity();
    mm.assign(16, 0.5f);
    mm[1] = -inf;
    mm[2] = std::numeric_limits<float>::quiet_NaN();
    mm[8 + 1] = inf;
    mm[8 + 2] = std::numeric_limits<float>::quiet_NaN();
    s.store(1, 39, 0, mm.data());
    s.set_n_built(1, 39);
    s.set_n_built(1, 40);
    const float step_before = s.code_step(1, 0)[1];
    s.update_codes(1);
    QCOMPARE(s.code_step(1, 0)[1], step_before);
    QCOMPARE(code_of(s, 1, 39, 0, 1), 0);
    QCOMPARE(code_of(s, 1, 39, 0, 2), 0);
    QCOMPARE(code_of(s, 1, 39, 0, 8 + 1), 255);
    QCOMPARE(code_of(s, 1, 39, 0, 8 + 2), 255);

    s.reset();
    QCOMPARE(s.n_coded(0), 0);
    QCOMPARE(s.n_coded(1), 0);
  }

  // A range of kCodedRangePages or more pages is scored from the codes first: exactly the pages the long-way reference
  // picks, for every head or some, on one thread or a pool; a shorter range keeps the F16 bound. On these random keys
  // the codes' candidates hold nearly every page the F16 bound chooses.
  void longRangesSelectFromTheCodes() {
    const KvGeometry g{1, 2, 16, 4, DType::F16};
    const int n_pages = fkv::kCodedRangePages + 300;
    SummaryRig rig;
    QString error;
    QVERIFY2(make_coded_rig(g, n_pages, 73, rig, &error), qPrintable(error));
    PageSummaries& s = rig.summaries;
    std::mt19937_64 rng(79);
    std::vector<float> scratch;
    fkv::ThreadPool pool(2);
    int shared = 0, total = 0;
    for (int trial = 0; trial < 24; ++trial) {
      const int group = 1 + static_cast<int>(rng() % 3);
      const int lo = static_cast<int>(rng() % 200);
      const int hi = trial % 6 == 5 ? lo + fkv::kCodedRangePages - 1 : n_pages - static_cast<int>(rng() % 60);
      const int k = 1 + static_cast<int>(rng() % 64);
      const std::vector<float> q = random_q(rng, static_cast<size_t>(g.n_kv_heads) * group * g.head_dim);
      const std::vector<uint8_t> wants[] = {{1, 1}, {1, 0}, {0, 1}};
      const uint8_t* want = trial % 3 == 0 ? nullptr : wants[trial % 3].data();
      std::vector<std::vector<int32_t>> outs(static_cast<size_t>(g.n_kv_heads));
      fkv::select_top_k_heads(s, 0, q.data(), group, lo, hi, k, want, outs, scratch, trial % 2 == 0 ? &pool : nullptr);
      if (hi - lo < fkv::kCodedRangePages) {
        const QString d = differs_from_one_head_each(s, 0, q, group, lo, hi, k, outs, want);
        QVERIFY2(d.isEmpty(), qPrintable(QString("trial %1 (short range), %2").arg(trial).arg(d)));
        continue;
      }
      for (int h = 0; h < g.n_kv_heads; ++h) {
        if (want != nullptr && want[h] == 0) {
          QVERIFY(outs[static_cast<size_t>(h)].empty());
          continue;
        }
        const float* qh = q.data() + static_cast<size_t>(h) * group * g.head_dim;
        // The codes' best 2k, then the F16 bound's best k of those (ties to the lower page).
        const std::vector<int32_t> cand = coded_top_k(s, 0, h, qh, group, lo, hi, fkv::kCodedCandidates * k);
        std::vector<int32_t> expected = cand;
        std::stable_sort(expected.begin(), expected.end(), [&](int32_t a, int32_t b) {
          return s.score(0, a, h, qh, group) > s.score(0, b, h, qh, group);
        });
        expected.resize(static_cast<size_t>(k));
        std::sort(expected.begin(), expected.end());
        QVERIFY2(outs[static_cast<size_t>(h)] == expected,
                 qPrintable(QString("trial %1 head %2: got %3, expected %4")
                                .arg(trial)
                                .arg(h)
                                .arg(fkvtest::list(outs[static_cast<size_t>(h)]), fkvtest::list(expected))));
        const std::vector<int32_t> exact = reference_top_k(s, 0, h, qh, group, lo, hi, k);
        std::vector<int32_t> both;
        std::set_intersection(expected.begin(), expected.end(), exact.begin(), exact.end(), std::back_inserter(both));
        shared += static_cast<int>(both.size());
        total += k;
      }
    }
    QVERIFY2(shared >= 0.98 * total,
             qPrintable(QString("the codes chose %1 of the F16 bound's %2 pages").arg(shared).arg(total)));
    qInfo("codes chose %d of the F16 bound's %d pages", shared, total);
  }

  // The codes, not the F16 values, choose the candidates: a page whose F16 summary was raised after it was coded
  // (standing in for any page the codes rank low) is not chosen while the codes cover the range, and is once the
  // range runs past the coded pages (the F16 pass).
  void theCodesChooseTheCandidates() {
    const KvGeometry g{1, 2, 16, 4, DType::F16};
    const int n_pages = fkv::kCodedRangePages + 40;
    SummaryRig rig;
    QString error;
    QVERIFY2(make_coded_rig(g, n_pages, 83, rig, &error), qPrintable(error));
    PageSummaries& s = rig.summaries;
    std::vector<float> mm(2 * 16);
    s.load(0, 500, 0, mm.data());
    for (int c = 0; c < 16; ++c) {
      mm[static_cast<size_t>(c)] = -1000.f;
      mm[static_cast<size_t>(16 + c)] = 1000.f;
    }
    s.store(0, 500, 0, mm.data());  // codes left as they were
    const std::vector<float> q(2 * 16, 1.f);  // (n_kv_heads, group 1, head_dim): both heads split, head 0 chosen
    std::vector<float> scratch;
    std::vector<std::vector<int32_t>> outs(2);
    const uint8_t want[] = {1, 0};
    fkv::select_top_k_heads(s, 0, q.data(), 1, 0, n_pages, 8, want, outs, scratch);
    QVERIFY2(!std::binary_search(outs[0].begin(), outs[0].end(), 500), qPrintable(fkvtest::list(outs[0])));
    // One more page, stored but not coded: the range is scored from F16, where page 500's bound is the largest.
    s.set_n_built(0, n_pages - 1);
    QCOMPARE(s.n_coded(0), n_pages - 1);
    fkv::select_top_k_heads(s, 0, q.data(), 1, 0, n_pages - 1, 8, want, outs, scratch);
    QVERIFY2(!std::binary_search(outs[0].begin(), outs[0].end(), 500), qPrintable(fkvtest::list(outs[0])));
    s.set_n_built(0, n_pages);
    fkv::select_top_k_heads(s, 0, q.data(), 1, 0, n_pages, 8, want, outs, scratch);
    QVERIFY2(std::binary_search(outs[0].begin(), outs[0].end(), 500), qPrintable(fkvtest::list(outs[0])));
  }

  // Pages whose channel 0 keys are all +inf score NaN against a query with q_0 = 0 (0 * inf); they rank after every
  // finite score, even a very negative one, and among themselves by page.
  void nanScoresRankLast() {
    const KvGeometry g{1, 1, 4, 2, DType::F32};
    const int n_pages = 8;
    SummaryRig rig;
    QString error;
    QVERIFY2(make_rig(g, n_pages, 23, rig, &error), qPrintable(error));
    const float inf = std::numeric_limits<float>::infinity();
    for (int p : {1, 4, 6}) {
      auto* k = reinterpret_cast<float*>(rig.cache.k_block(0, p, 0));  // (page_size, head_dim)
      for (int j = 0; j < g.page_size; ++j) k[j * g.head_dim] = inf;
      rig.summaries.build(0, p, rig.cache);
    }
    const float q[] = {0.f, 1.f, 1.f, 1.f};
    for (int p = 0; p < n_pages; ++p) {
      const bool nan_page = p == 1 || p == 4 || p == 6;
      QVERIFY2(std::isnan(rig.summaries.score(0, p, 0, q, 1)) == nan_page,
               qPrintable(QString("page %1 score %2").arg(p).arg(rig.summaries.score(0, p, 0, q, 1))));
    }
    std::vector<int32_t> out;
    std::vector<float> scratch;
    fkv::select_top_k(rig.summaries, 0, 0, q, 1, 0, n_pages, 5, out, scratch);
    QCOMPARE(out, (std::vector<int32_t>{0, 2, 3, 5, 7}));
    fkv::select_top_k(rig.summaries, 0, 0, q, 1, 0, n_pages, 6, out, scratch);
    QCOMPARE(out, (std::vector<int32_t>{0, 1, 2, 3, 5, 7}));  // the first NaN page by page order
    for (int k = 1; k < n_pages; ++k) {
      fkv::select_top_k(rig.summaries, 0, 0, q, 1, 0, n_pages, k, out, scratch);
      QCOMPARE(out, reference_top_k(rig.summaries, 0, 0, q, 1, 0, n_pages, k));
    }
  }
};

QTEST_APPLESS_MAIN(TestPageSummary)
#include "test_page_summary.moc"
