// Attention policies (kv/policy.h) driven directly on a cache of random keys with chosen queries, where the expected
// pages are computed exactly: sink + brute-force top-k by the summary bound + recent for quest and arkvale; for freekv
// the top-k of the previous query unless the cosine rule corrects the head, and no check without a speculation made
// for that very step. (test_policies.cpp drives the same policies through Context on synthetic models.)
#include <QTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kv/budget.h"
#include "kv/kv_cache.h"
#include "kv/page_summary.h"
#include "kv/policy.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/context.h"
#include "support/policy_helpers.h"
#include "support/test_paths.h"

using fkv::Budget;
using fkv::DType;
using fkv::KvGeometry;
using fkv::PageSelection;
using fkv::SelectCounters;
using fkv::SelectionQuery;
using Pages = std::vector<int32_t>;
using fkvtest::list;
using fkvtest::make_budget;

namespace {

// The pages a sparse policy attends when the context holds n_pages: all of them if they fit the budget, else the sink
// pages, the top-k middle pages by `score` (sorted by score desc, page asc), and the recent pages.
template <typename Score>
Pages expected_pages(const Budget& b, int n_pages, bool retrieve, Score score) {
  Pages out(static_cast<size_t>(n_pages));
  std::iota(out.begin(), out.end(), 0);
  if (n_pages * b.page_size <= b.total_tokens()) return out;
  const int sink_end = std::min(n_pages, b.sink_pages());
  const int recent_begin = std::max(sink_end, n_pages - b.recent_pages());
  Pages mid(out.begin() + sink_end, out.begin() + recent_begin);
  std::vector<float> s;
  for (int32_t p : mid) s.push_back(score(p));
  std::stable_sort(mid.begin(), mid.end(), [&](int32_t a, int32_t c) {
    return s[static_cast<size_t>(a - sink_end)] > s[static_cast<size_t>(c - sink_end)];
  });
  mid.resize(retrieve ? std::min(mid.size(), static_cast<size_t>(b.retrieved_pages())) : 0);
  std::sort(mid.begin(), mid.end());
  Pages want(out.begin(), out.begin() + sink_end);
  want.insert(want.end(), mid.begin(), mid.end());
  want.insert(want.end(), out.begin() + recent_begin, out.end());
  return want;
}

// ---- direct rig: random keys, chosen queries ------------------------------------------------------------------------

// n_pages_cap (20 unless set before init) full pages of random K and V in 2 layers, summarised, and the
// PolicyContext over them (4 query heads, 2 KV heads). Not copyable: the context points at the cache and the
// summaries.
struct Rig {
  static constexpr int kHeads = 4;
  KvGeometry g{2, 2, 8, 4, DType::F32};
  int n_pages_cap = 20;
  fkv::KvCache cache;
  fkv::PageSummaries summaries;
  fkv::PolicyContext pc;

  Rig() = default;
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;
  int group() const { return kHeads / g.n_kv_heads; }

  // codes: the summaries also get their 8-bit codes, as a context-memory context's do.
  QString init(const Budget& b, float tau, bool codes = false) {
    auto c = fkv::KvCache::create(g, n_pages_cap * g.page_size);
    if (!c.ok()) return QString::fromStdString(c.message());
    cache = std::move(*c);
    std::mt19937_64 rng(3);
    std::normal_distribution<float> nd(0.f, 1.f);
    const int n_tok = n_pages_cap * g.page_size;
    std::vector<float> k(static_cast<size_t>(n_tok) * g.n_kv_heads * g.head_dim);  // (n_tok, n_kv_heads, head_dim)
    std::vector<float> v(k.size());                                                // (n_tok, n_kv_heads, head_dim)
    for (int l = 0; l < g.n_layers; ++l) {
      for (float& x : k) x = nd(rng);
      for (float& x : v) x = nd(rng);
      cache.write(l, 0, n_tok, k.data(), v.data());
    }
    cache.set_n_tokens(n_tok);
    if (const fkv::Status st = summaries.init(g, n_pages_cap); !st.ok()) return QString::fromStdString(st.message());
    for (int l = 0; l < g.n_layers; ++l)
      for (int p = 0; p < n_pages_cap; ++p) summaries.build(l, p, cache);
    if (codes) {
      if (const fkv::Status st = summaries.enable_codes(); !st.ok()) return QString::fromStdString(st.message());
      for (int l = 0; l < g.n_layers; ++l) {
        summaries.set_n_built(l, n_pages_cap);
        summaries.update_codes(l);
      }
    }
    pc = fkv::PolicyContext{&cache, &summaries, b, tau, g.n_layers, g.n_kv_heads, kHeads, g.head_dim, n_pages_cap};
    return {};
  }

  SelectionQuery query(int l, int pos, const float* q) const {
    return SelectionQuery{l, g.n_kv_heads, group(), g.head_dim, pos, pos / g.page_size + 1, 0, false, q};
  }
  bool fits(int pos) const { return (pos / g.page_size + 1) * g.page_size <= pc.budget.total_tokens(); }

  // Head h's expected pages at position pos when retrieval uses query `q` (n_heads, head_dim).
  Pages expected(int l, int h, int pos, const float* q, bool retrieve = true) const {
    const float* qg = q + static_cast<size_t>(h) * group() * g.head_dim;
    return expected_pages(pc.budget, pos / g.page_size + 1, retrieve,
                          [&](int p) { return summaries.score(l, p, h, qg, group()); });
  }

  // Every head lists `want[h]` and every entry's K and V blocks hold that page's bytes. `host`: every block must be
  // read in place from the cache; otherwise the retrieved (middle) pages must come from working-set copies.
  QString check(int l, const PageSelection& sel, const std::vector<Pages>& want, bool host) const {
    const size_t blk = g.head_block_bytes();
    for (int h = 0; h < g.n_kv_heads; ++h) {
      const Pages got(sel.indices.begin() + sel.indptr[static_cast<size_t>(h)],
                      sel.indices.begin() + sel.indptr[static_cast<size_t>(h) + 1]);
      if (got != want[static_cast<size_t>(h)])
        return QString("head %1: pages %2, expected %3").arg(h).arg(list(got), list(want[static_cast<size_t>(h)]));
      const int n_pages = got.empty() ? 0 : got.back() + 1;
      const bool sparse = n_pages * g.page_size > pc.budget.total_tokens();
      for (int i = sel.indptr[static_cast<size_t>(h)]; i < sel.indptr[static_cast<size_t>(h) + 1]; ++i) {
        const int p = sel.indices[static_cast<size_t>(i)];
        const uint8_t* kb = sel.k_blocks[static_cast<size_t>(i)];
        const uint8_t* vb = sel.v_blocks[static_cast<size_t>(i)];
        if (std::memcmp(kb, cache.k_block(l, p, h), blk) != 0 || std::memcmp(vb, cache.v_block(l, p, h), blk) != 0)
          return QString("head %1 page %2: K or V bytes differ from the cache").arg(h).arg(p);
        const bool middle = sparse && p >= pc.budget.sink_pages() && p < n_pages - pc.budget.recent_pages();
        const bool in_place = kb == cache.k_block(l, p, h) && vb == cache.v_block(l, p, h);
        if (in_place != (host || !middle))
          return QString::asprintf("head %d page %d is read from the %s", h, p,
                                   in_place ? "host cache" : "working set");
      }
    }
    return {};
  }
};

std::vector<float> random_q(std::mt19937_64& rng, size_t n) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> q(n);
  for (float& x : q) x = nd(rng);
  return q;
}

double group_cosine(const float* a, const float* b, int group, int hd) {
  double sum = 0;
  for (int g = 0; g < group; ++g) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < hd; ++i) {
      const size_t j = static_cast<size_t>(g) * hd + i;
      ab += static_cast<double>(a[j]) * b[j];
      aa += static_cast<double>(a[j]) * a[j];
      bb += static_cast<double>(b[j]) * b[j];
    }
    sum += ab / std::sqrt(aa * bb);
  }
  return sum / group;
}

enum class Motion { Jump, Mixed };  // Jump: every query fresh each step; Mixed: KV head 0's group drifts, head 1 jumps

struct Tally {
  int checked = 0, corrected = 0, spec_differs = 0;
};

// Runs freekv from position pos0 to the end of the cache in Context's order (select, attention reads, after_attention)
// on both layers and checks every step: no check without a speculation for this step; cosine = the test's group mean;
// corrected exactly below tau; corrected heads attend the top-k of q_t, the others that of q_{t-1}.
void drive_freekv(const Rig& r, fkv::AttentionPolicy& pol, Motion motion, int pos0, Tally& t) {
  std::mt19937_64 rng(77);
  std::normal_distribution<float> nd(0.f, 1.f);
  const size_t nq = static_cast<size_t>(Rig::kHeads) * r.g.head_dim;
  const size_t per_kv = nq / static_cast<size_t>(r.g.n_kv_heads);
  std::vector<std::vector<float>> prev(2, random_q(rng, nq));  // (n_layers) (n_heads, head_dim)
  const int k = r.pc.budget.retrieved_pages();
  PageSelection sel;
  for (int pos = pos0; pos < r.n_pages_cap * r.g.page_size; ++pos)
    for (int l = 0; l < 2; ++l) {
      std::vector<float> q = random_q(rng, nq);
      if (motion == Motion::Mixed)
        for (size_t i = 0; i < per_kv; ++i) q[i] = prev[static_cast<size_t>(l)][i] + 0.05f * nd(rng);
      const std::vector<float>& qp = prev[static_cast<size_t>(l)];
      const SelectionQuery in = r.query(l, pos, q.data());
      SelectCounters c;
      pol.select(in, sel, c);
      const QString where = QString::asprintf("pos %d layer %d", pos, l);
      const bool spec = pos > pos0 && !r.fits(pos);
      QVERIFY2((c.cosine != nullptr) == spec && (c.corrected != nullptr) == spec && c.heads_checked == (spec ? 2 : 0),
               qPrintable(where + QString::asprintf(": %lld heads checked", static_cast<long long>(c.heads_checked))));
      std::vector<Pages> want;
      int n_corr = 0;
      for (int h = 0; h < 2; ++h) {
        const Pages now = r.expected(l, h, pos, q.data());
        if (!spec) {
          want.push_back(now);
          continue;
        }
        const float* qh = q.data() + h * per_kv;
        const double cos = group_cosine(qh, qp.data() + h * per_kv, r.group(), r.g.head_dim);
        QVERIFY2(std::fabs(cos - c.cosine[h]) < 1e-5,
                 qPrintable(where + QString(": cosine %1, expected %2").arg(c.cosine[h]).arg(cos)));
        const bool corr = c.cosine[h] < r.pc.tau;
        QVERIFY2(c.corrected[h] == (corr ? 1 : 0), qPrintable(where + QString(": head %1 corrected flag").arg(h)));
        n_corr += corr;
        const Pages old = r.expected(l, h, pos, qp.data());
        t.spec_differs += !corr && old != now;
        want.push_back(corr ? now : old);
      }
      QCOMPARE(c.heads_corrected, n_corr);
      t.checked += c.heads_checked;
      t.corrected += c.heads_corrected;
      const QString bad = r.check(l, sel, want, false);
      QVERIFY2(bad.isEmpty(), qPrintable(where + ": " + bad));
      // The background recall of the step plus the corrected heads' synchronous recalls.
      const int moved = r.fits(pos) ? 0 : k * (spec ? 2 + n_corr : 2);
      QVERIFY2(c.pages_reused + c.pages_recalled == moved,
               qPrintable(where + QString::asprintf(": %lld reused + %lld recalled, expected %d pages",
                                                    static_cast<long long>(c.pages_reused),
                                                    static_cast<long long>(c.pages_recalled), moved)));
      QCOMPARE(c.bytes_recalled, static_cast<uint64_t>(c.pages_recalled) * 2 * r.g.head_block_bytes());
      pol.after_attention(in);
      prev[static_cast<size_t>(l)] = q;
    }
}

}  // namespace

class TestPolicyDirect : public QObject {
  Q_OBJECT

 private slots:

  void directSelectionsMatchBruteForce_data() {
    QTest::addColumn<QString>("policy");
    for (fkv::Policy p : {fkv::Policy::streaming, fkv::Policy::quest, fkv::Policy::arkvale})
      QTest::newRow(fkv::policy_name(p)) << QString(fkv::policy_name(p));
  }

  void directSelectionsMatchBruteForce() {
    QFETCH(QString, policy);
    Rig r;
    const QString e = r.init(make_budget(4, 8, 12, 4), 0.9f);
    QVERIFY2(e.isEmpty(), qPrintable(e));
    const fkv::Policy kind = *fkv::parse_policy(policy.toStdString());
    auto made = fkv::make_policy(kind, r.pc);
    QVERIFY2(made.ok(), made.message().c_str());
    fkv::AttentionPolicy& pol = **made;
    QCOMPARE(QString(fkv::policy_name(pol.kind())), policy);
    const bool recalls = kind == fkv::Policy::arkvale;
    const int k = r.pc.budget.retrieved_pages();
    std::mt19937_64 rng(9);
    PageSelection sel;
    for (int pos = 0; pos < r.n_pages_cap * r.g.page_size; ++pos)
      for (int l = 0; l < 2; ++l) {
        const std::vector<float> q = random_q(rng, static_cast<size_t>(Rig::kHeads) * r.g.head_dim);
        const std::vector<Pages> want{r.expected(l, 0, pos, q.data(), kind != fkv::Policy::streaming),
                                      r.expected(l, 1, pos, q.data(), kind != fkv::Policy::streaming)};
        // Twice with the same query: arkvale's second pass finds every page resident.
        for (int pass = 0; pass < 2; ++pass) {
          SelectCounters c;
          pol.select(r.query(l, pos, q.data()), sel, c);
          const QString where = QString("pos %1 layer %2 pass %3").arg(pos).arg(l).arg(pass);
          const QString bad = r.check(l, sel, want, !recalls);
          QVERIFY2(bad.isEmpty(), qPrintable(where + ": " + bad));
          QVERIFY2(c.heads_checked == 0 && c.cosine == nullptr && c.corrected == nullptr, qPrintable(where));
          const int moved = recalls && !r.fits(pos) ? 2 * k : 0;
          QVERIFY2(c.pages_reused + c.pages_recalled == moved, qPrintable(where));
          QVERIFY2(pass == 0 || c.pages_recalled == 0, qPrintable(where + ": recalled a resident page"));
          QCOMPARE(c.bytes_recalled, static_cast<uint64_t>(c.pages_recalled) * 2 * r.g.head_block_bytes());
        }
      }
  }

  void directFreeKvFollowsTheCosineRule_data() {
    QTest::addColumn<float>("tau");
    QTest::addColumn<int>("motion");
    QTest::newRow("tau -1, queries jump") << -1.f << static_cast<int>(Motion::Jump);
    QTest::newRow("tau 1, queries jump") << 1.f << static_cast<int>(Motion::Jump);
    QTest::newRow("tau 0.5, head 0 drifts") << 0.5f << static_cast<int>(Motion::Mixed);
  }

  void directFreeKvFollowsTheCosineRule() {
    QFETCH(float, tau);
    QFETCH(int, motion);
    Rig r;
    const QString e = r.init(make_budget(4, 8, 12, 4), tau);
    QVERIFY2(e.isEmpty(), qPrintable(e));
    auto made = fkv::make_policy(fkv::Policy::freekv, r.pc);
    QVERIFY2(made.ok(), made.message().c_str());
    Tally t;
    drive_freekv(r, **made, static_cast<Motion>(motion), 20, t);  // pages fit until position 24
    if (QTest::currentTestFailed()) return;
    QCOMPARE(t.checked, 2 * 2 * (80 - 24));
    if (tau == -1.f) {
      QCOMPARE(t.corrected, 0);
      QVERIFY2(t.spec_differs > 20, "speculative and current selections should differ often when queries jump");
    } else if (tau == 1.f) {
      QCOMPARE(t.corrected, t.checked);
    } else {
      QVERIFY2(t.corrected > 0 && t.corrected <= t.checked / 2,
               qPrintable(QString("%1 of %2 heads corrected; only head 1 jumps").arg(t.corrected).arg(t.checked)));
    }
    // After reset() nothing is speculative and nothing is resident: the next step selects and recalls every page.
    (*made)->reset();
    std::mt19937_64 rng(5);
    const std::vector<float> q = random_q(rng, static_cast<size_t>(Rig::kHeads) * r.g.head_dim);
    PageSelection sel;
    SelectCounters c;
    (*made)->select(r.query(0, 50, q.data()), sel, c);
    QCOMPARE(c.heads_checked, 0);
    QCOMPARE(c.pages_reused, 0);
    QCOMPARE(c.pages_recalled, 2 * r.pc.budget.retrieved_pages());
    const QString bad = r.check(0, sel, {r.expected(0, 0, 50, q.data()), r.expected(0, 1, 50, q.data())}, false);
    QVERIFY2(bad.isEmpty(), qPrintable(bad));
  }

  // A speculation made for position p is not used at a later position (tokens were prefilled in between), whether or
  // not the page count changed: the step selects synchronously with its own query.
  void directFreeKvDropsStaleSpeculation() {
    Rig r;
    const QString e = r.init(make_budget(4, 8, 12, 4), -1.f);  // tau -1: a used speculation is never corrected
    QVERIFY2(e.isEmpty(), qPrintable(e));
    auto made = fkv::make_policy(fkv::Policy::freekv, r.pc);
    QVERIFY2(made.ok(), made.message().c_str());
    fkv::AttentionPolicy& pol = **made;
    std::mt19937_64 rng(21);
    const size_t nq = static_cast<size_t>(Rig::kHeads) * r.g.head_dim;
    PageSelection sel;
    for (const int skip : {2, 3, 6}) {  // 42 and 43 share page 10 with the speculation's 41; 46 is on page 11
      for (int pos : {40 + 0, 40 + skip})
        for (int l = 0; l < 2; ++l) {
          const std::vector<float> q = random_q(rng, nq);
          SelectCounters c;
          pol.select(r.query(l, pos, q.data()), sel, c);
          const QString where = QString("skip %1 pos %2 layer %3").arg(skip).arg(pos).arg(l);
          QVERIFY2(c.heads_checked == 0 && c.cosine == nullptr,
                   qPrintable(where + QString(": %1 heads checked against a stale speculation").arg(c.heads_checked)));
          const QString bad =
              r.check(l, sel, {r.expected(l, 0, pos, q.data()), r.expected(l, 1, pos, q.data())}, false);
          QVERIFY2(bad.isEmpty(), qPrintable(where + ": " + bad));
          pol.after_attention(r.query(l, pos, q.data()));
        }
      pol.reset();
    }
  }

  // Over a range scored from the 8-bit codes, with a pool of two threads, each KV head is selected, planned and
  // recalled on a thread of its own (one fork-join round a layer) wherever every head is re-selected (arkvale;
  // freekv's first step, its speculation with tau -1, its corrections with tau 1). Its pages and counters must be
  // those of the same policy without a pool, step by step, also where one head is corrected and the other not
  // (tau 0.5, head 0 drifts).
  void directLongRangesSelectOneHeadPerThread_data() {
    QTest::addColumn<QString>("policy");
    QTest::addColumn<float>("tau");
    QTest::addColumn<int>("motion");
    QTest::newRow("arkvale") << "arkvale" << 0.9f << static_cast<int>(Motion::Jump);
    QTest::newRow("freekv, tau -1") << "freekv" << -1.f << static_cast<int>(Motion::Jump);
    QTest::newRow("freekv, tau 1") << "freekv" << 1.f << static_cast<int>(Motion::Jump);
    QTest::newRow("freekv, tau 0.5, head 0 drifts") << "freekv" << 0.5f << static_cast<int>(Motion::Mixed);
  }

  void directLongRangesSelectOneHeadPerThread() {
    QFETCH(QString, policy);
    QFETCH(float, tau);
    QFETCH(int, motion);
    fkv::ThreadPool pool(2);
    Rig on_pool, alone;  // the same keys
    std::unique_ptr<fkv::AttentionPolicy> pols[2];
    for (int i = 0; i < 2; ++i) {
      Rig& r = i == 0 ? on_pool : alone;
      r.n_pages_cap = fkv::kCodedRangePages + 64;
      const QString e = r.init(make_budget(4, 8, 12, 4), tau, /*codes=*/true);
      QVERIFY2(e.isEmpty(), qPrintable(e));
      r.pc.pool = i == 0 ? &pool : nullptr;
      r.pc.speculate_inline = true;
      auto made = fkv::make_policy(*fkv::parse_policy(policy.toStdString()), r.pc);
      QVERIFY2(made.ok(), made.message().c_str());
      pols[i] = std::move(*made);
    }
    const int end = on_pool.n_pages_cap * on_pool.g.page_size;
    QVERIFY(fkv::scored_from_codes(on_pool.summaries, 0, 1, end / on_pool.g.page_size - 2,
                                   on_pool.pc.budget.retrieved_pages()));
    std::mt19937_64 rng(31);
    std::normal_distribution<float> nd(0.f, 1.f);
    const size_t nq = static_cast<size_t>(Rig::kHeads) * on_pool.g.head_dim;
    std::vector<std::vector<float>> prev(2, random_q(rng, nq));
    PageSelection sel[2];
    int corrected = 0, checked = 0;
    for (int pos = end - 24; pos < end; ++pos)
      for (int l = 0; l < 2; ++l) {
        std::vector<float> q = random_q(rng, nq);
        if (static_cast<Motion>(motion) == Motion::Mixed)
          for (size_t i = 0; i < nq / 2; ++i) q[i] = prev[static_cast<size_t>(l)][i] + 0.05f * nd(rng);
        prev[static_cast<size_t>(l)] = q;
        SelectCounters c[2];
        for (int i = 0; i < 2; ++i) pols[i]->select((i == 0 ? on_pool : alone).query(l, pos, q.data()), sel[i], c[i]);
        const QString where = QString("pos %1 layer %2").arg(pos).arg(l);
        QVERIFY2(sel[0].indptr == sel[1].indptr && sel[0].indices == sel[1].indices,
                 qPrintable(where + ": pages " + list(sel[0].indices) + ", without a pool " + list(sel[1].indices)));
        std::vector<Pages> want;
        for (size_t h = 0; h < 2; ++h)
          want.emplace_back(sel[1].indices.begin() + sel[1].indptr[h], sel[1].indices.begin() + sel[1].indptr[h + 1]);
        const QString bad = on_pool.check(l, sel[0], want, false);
        QVERIFY2(bad.isEmpty(), qPrintable(where + ": " + bad));
        QCOMPARE(c[0].heads_checked, c[1].heads_checked);
        QCOMPARE(c[0].heads_corrected, c[1].heads_corrected);
        QCOMPARE(c[0].pages_reused, c[1].pages_reused);
        QCOMPARE(c[0].pages_recalled, c[1].pages_recalled);
        QCOMPARE(c[0].bytes_recalled, c[1].bytes_recalled);
        checked += c[0].heads_checked;
        corrected += c[0].heads_corrected;
        // Once attention has read the pages: freekv's speculation recalls the next step's into the working set.
        for (int i = 0; i < 2; ++i) pols[i]->after_attention((i == 0 ? on_pool : alone).query(l, pos, q.data()));
      }
    if (tau == 0.5f) QVERIFY2(corrected > 0 && corrected < checked, "one head corrected, the other not");
  }

  // ---- through Context ----
};

QTEST_APPLESS_MAIN(TestPolicyDirect)
#include "test_policy_direct.moc"
