// The working set (kv/working_set.h): plan() reuses resident pages in their slots, gives free slots to the missing
// pages and lists only those, without touching the set; apply() copies exactly the planned host blocks (byte compared
// with the cache) and records residency; replacing a subset keeps the bookkeeping right, checked against a model of
// slots over many random plans; other (layer, head) pairs are never touched.
#include <QTest>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "kv/kv_cache.h"
#include "kv/working_set.h"
#include "support/policy_helpers.h"

using fkv::DType;
using fkv::KvCache;
using fkv::KvGeometry;
using fkv::RecallPlan;
using fkv::WorkingSet;

Q_DECLARE_METATYPE(DType)

using fkvtest::list;

namespace {

// A cache whose every K and V element is random, so equal bytes mean the right block was copied.
bool make_cache(const KvGeometry& g, int n_pages, uint64_t seed, KvCache& out, QString* error) {
  auto cache = KvCache::create(g, n_pages * g.page_size);
  if (!cache.ok()) {
    *error = QString::fromStdString(cache.message());
    return false;
  }
  out = std::move(*cache);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-4.f, 4.f);
  const int n_tok = n_pages * g.page_size;
  std::vector<float> k(static_cast<size_t>(n_tok) * g.n_kv_heads * g.head_dim);  // (n_tok, n_kv_heads, head_dim)
  std::vector<float> v(k.size());                                                // (n_tok, n_kv_heads, head_dim)
  for (int l = 0; l < g.n_layers; ++l) {
    for (float& x : k) x = u(rng);
    for (float& x : v) x = u(rng);
    out.write(l, 0, n_tok, k.data(), v.data());
  }
  out.set_n_tokens(n_tok);
  return true;
}

// Every slot of (l, h) that holds a page holds exactly that page's K and V blocks; resident pages are unique.
QString check_slots(const WorkingSet& ws, const KvCache& cache, int l, int h) {
  const size_t blk = cache.geometry().head_block_bytes();
  std::set<int32_t> seen;
  for (int s = 0; s < ws.n_slots(); ++s) {
    const int32_t p = ws.page_in_slot(l, h, s);
    if (p < 0) continue;
    if (!seen.insert(p).second) return QString("page %1 is resident twice (slot %2)").arg(p).arg(s);
    if (std::memcmp(ws.k_slot(l, h, s), cache.k_block(l, p, h), blk) != 0)
      return QString("slot %1 K differs from page %2 (layer %3 head %4)").arg(s).arg(p).arg(l).arg(h);
    if (std::memcmp(ws.v_slot(l, h, s), cache.v_block(l, p, h), blk) != 0)
      return QString("slot %1 V differs from page %2 (layer %3 head %4)").arg(s).arg(p).arg(l).arg(h);
  }
  return {};
}

std::vector<int32_t> residency(const WorkingSet& ws, int l, int h) {
  std::vector<int32_t> r(static_cast<size_t>(ws.n_slots()));
  for (int s = 0; s < ws.n_slots(); ++s) r[static_cast<size_t>(s)] = ws.page_in_slot(l, h, s);
  return r;
}

}  // namespace

class TestWorkingSet : public QObject {
  Q_OBJECT

 private slots:
  void initValidates() {
    WorkingSet ws;
    fkv::Status st = ws.init(KvGeometry{2, 2, 8, 4, DType::F16}, -1);
    QVERIFY(!st.ok());
    QVERIFY2(QString::fromStdString(st.message()).contains("-1"), st.message().c_str());
    st = ws.init(KvGeometry{2, 0, 8, 4, DType::F16}, 4);
    QVERIFY(!st.ok());
    st = ws.init(KvGeometry{2, 3, 8, 4, DType::F32}, 5);
    QVERIFY2(st.ok(), st.message().c_str());
    QCOMPARE(ws.n_slots(), 5);
    QCOMPARE(ws.bytes(), static_cast<size_t>(2 * 3 * 5 * 2 * 4 * 8 * 4));
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 3; ++h) QCOMPARE(residency(ws, l, h), std::vector<int32_t>(5, -1));
    // No slots: nothing to plan, nothing to copy.
    QVERIFY(ws.init(KvGeometry{1, 1, 8, 4, DType::F16}, 0).ok());
    RecallPlan plan;
    ws.plan(0, 0, nullptr, 0, plan);
    QVERIFY(plan.items.empty() && plan.page_slots.empty() && plan.reused == 0);
  }

  void planThenApply_data() {
    QTest::addColumn<DType>("dtype");
    QTest::addRow("f16") << DType::F16;
    QTest::addRow("f32") << DType::F32;
  }

  // The scripted sequence of the brief: fill, re-plan the same pages, replace a subset, shrink, reset.
  void planThenApply() {
    QFETCH(DType, dtype);
    const KvGeometry g{2, 2, 8, 4, dtype};
    KvCache cache;
    QString error;
    QVERIFY2(make_cache(g, 12, 3, cache, &error), qPrintable(error));
    WorkingSet ws;
    QVERIFY(ws.init(g, 4).ok());
    const uint64_t blk = g.head_block_bytes();
    const int l = 1, h = 0;
    RecallPlan plan;

    // 1. Empty set: every page is new and takes the free slots in order; plan() changes nothing.
    const int32_t first[] = {2, 5, 7};
    ws.plan(l, h, first, 3, plan);
    QCOMPARE(plan.reused, 0);
    QCOMPARE(plan.page_slots, (std::vector<int32_t>{0, 1, 2}));
    QCOMPARE(static_cast<int>(plan.items.size()), 3);
    for (int i = 0; i < 3; ++i) {
      QCOMPARE(plan.items[static_cast<size_t>(i)].page, first[i]);
      QCOMPARE(plan.items[static_cast<size_t>(i)].slot, i);
    }
    QCOMPARE(residency(ws, l, h), std::vector<int32_t>(4, -1));
    QCOMPARE(ws.apply(l, h, plan, cache), 3 * 2 * blk);
    QCOMPARE(residency(ws, l, h), (std::vector<int32_t>{2, 5, 7, -1}));
    QString bad = check_slots(ws, cache, l, h);
    QVERIFY2(bad.isEmpty(), qPrintable(bad));

    // 2. The same pages again: all reused in place, nothing to copy.
    ws.plan(l, h, first, 3, plan);
    QCOMPARE(plan.reused, 3);
    QVERIFY(plan.items.empty());
    QCOMPARE(plan.page_slots, (std::vector<int32_t>{0, 1, 2}));
    QCOMPARE(ws.apply(l, h, plan, cache), uint64_t{0});

    // 3. Replace a subset: 5 stays in slot 1; 2 and 7 are evicted; 1, 9, 10 fill slots 0, 2, 3 in page order.
    const int32_t second[] = {1, 5, 9, 10};
    ws.plan(l, h, second, 4, plan);
    QCOMPARE(plan.reused, 1);
    QCOMPARE(plan.page_slots, (std::vector<int32_t>{0, 1, 2, 3}));
    QCOMPARE(static_cast<int>(plan.items.size()), 3);
    const int32_t want_items[][2] = {{1, 0}, {9, 2}, {10, 3}};
    for (int i = 0; i < 3; ++i) {
      QCOMPARE(plan.items[static_cast<size_t>(i)].page, want_items[i][0]);
      QCOMPARE(plan.items[static_cast<size_t>(i)].slot, want_items[i][1]);
    }
    QCOMPARE(ws.apply(l, h, plan, cache), 3 * 2 * blk);
    QCOMPARE(residency(ws, l, h), (std::vector<int32_t>{1, 5, 9, 10}));
    bad = check_slots(ws, cache, l, h);
    QVERIFY2(bad.isEmpty(), qPrintable(bad));

    // 4. Fewer pages, one of them new: 9 and 10 keep slots 2 and 3; 0 takes slot 0 (the first slot nobody keeps).
    const int32_t third[] = {0, 9, 10};
    ws.plan(l, h, third, 3, plan);
    QCOMPARE(plan.reused, 2);
    QCOMPARE(plan.page_slots, (std::vector<int32_t>{0, 2, 3}));
    QCOMPARE(static_cast<int>(plan.items.size()), 1);
    QCOMPARE(plan.items[0].page, 0);
    QCOMPARE(plan.items[0].slot, 0);
    QCOMPARE(ws.apply(l, h, plan, cache), 2 * blk);
    // Slot 1 still holds page 5: not wanted this step, but resident for a later one.
    QCOMPARE(residency(ws, l, h), (std::vector<int32_t>{0, 5, 9, 10}));
    bad = check_slots(ws, cache, l, h);
    QVERIFY2(bad.isEmpty(), qPrintable(bad));

    // 5. Other (layer, head) pairs were never touched.
    for (int ol = 0; ol < 2; ++ol)
      for (int oh = 0; oh < 2; ++oh)
        if (ol != l || oh != h) QCOMPARE(residency(ws, ol, oh), std::vector<int32_t>(4, -1));

    // 6. reset() forgets everything: the same pages are recalled again.
    ws.reset();
    ws.plan(l, h, third, 3, plan);
    QCOMPARE(plan.reused, 0);
    QCOMPARE(static_cast<int>(plan.items.size()), 3);
  }

  // Random plans on every (layer, head) against a model: reused = wanted pages already resident, which keep their slot;
  // items = the missing pages ascending, in slots nobody keeps; slots distinct; after apply every slot's bytes match
  // its page and pairs not planned stay as they were.
  void randomPlansAgainstModel() {
    const KvGeometry g{2, 3, 8, 4, DType::F16};
    const int n_pages = 20;
    const int n_slots = 6;
    KvCache cache;
    QString error;
    QVERIFY2(make_cache(g, n_pages, 29, cache, &error), qPrintable(error));
    WorkingSet ws;
    QVERIFY(ws.init(g, n_slots).ok());
    std::mt19937_64 rng(31);
    RecallPlan plan;
    int n_reused_total = 0, n_recalled_total = 0;
    for (int trial = 0; trial < 400; ++trial) {
      const int l = static_cast<int>(rng() % 2);
      const int h = static_cast<int>(rng() % 3);
      // A random ascending subset of at most n_slots pages; with 20 pages and 6 slots, overlaps with the resident ones
      // are common.
      std::vector<int32_t> pages(static_cast<size_t>(n_pages));
      std::iota(pages.begin(), pages.end(), 0);
      std::shuffle(pages.begin(), pages.end(), rng);
      pages.resize(static_cast<size_t>(rng() % (n_slots + 1)));
      std::sort(pages.begin(), pages.end());
      const std::vector<int32_t> before = residency(ws, l, h);
      std::vector<std::vector<int32_t>> others;
      for (int ol = 0; ol < 2; ++ol)
        for (int oh = 0; oh < 3; ++oh) others.push_back(residency(ws, ol, oh));

      ws.plan(l, h, pages.data(), static_cast<int>(pages.size()), plan);
      const QString where = QString("trial %1 (layer %2 head %3) wanted %4, resident %5")
                                .arg(trial)
                                .arg(l)
                                .arg(h)
                                .arg(list(pages), list(before));
      QVERIFY2(residency(ws, l, h) == before, qPrintable(where + ": plan() changed the set"));
      QCOMPARE(plan.page_slots.size(), pages.size());
      int reused = 0;
      std::vector<int32_t> missing;
      for (size_t i = 0; i < pages.size(); ++i) {
        const auto it = std::find(before.begin(), before.end(), pages[i]);
        if (it != before.end()) {
          ++reused;
          QVERIFY2(plan.page_slots[i] == static_cast<int32_t>(it - before.begin()),
                   qPrintable(where + QString(": resident page %1 moved").arg(pages[i])));
        } else {
          missing.push_back(pages[i]);
        }
      }
      QVERIFY2(plan.reused == reused,
               qPrintable(where + QString(": reused %1, expected %2").arg(plan.reused).arg(reused)));
      std::vector<int32_t> item_pages;
      for (const auto& it : plan.items) {
        item_pages.push_back(it.page);
        const auto pos = std::find(pages.begin(), pages.end(), it.page) - pages.begin();
        QVERIFY2(plan.page_slots[static_cast<size_t>(pos)] == it.slot,
                 qPrintable(where + ": item slot differs from slots[]"));
      }
      QVERIFY2(item_pages == missing, qPrintable(where + ": items " + list(item_pages) + ", missing " + list(missing)));
      std::set<int32_t> distinct(plan.page_slots.begin(), plan.page_slots.end());
      QVERIFY2(distinct.size() == pages.size() &&
                   (pages.empty() || (*distinct.begin() >= 0 && *distinct.rbegin() < n_slots)),
               qPrintable(where + ": slots " + list(plan.page_slots)));

      QCOMPARE(ws.apply(l, h, plan, cache), missing.size() * 2 * g.head_block_bytes());
      for (size_t i = 0; i < pages.size(); ++i)
        QVERIFY2(ws.page_in_slot(l, h, plan.page_slots[i]) == pages[i], qPrintable(where + ": residency after apply"));
      const QString bad = check_slots(ws, cache, l, h);
      QVERIFY2(bad.isEmpty(), qPrintable(where + ": " + bad));
      for (int ol = 0, i = 0; ol < 2; ++ol)
        for (int oh = 0; oh < 3; ++oh, ++i)
          if (ol != l || oh != h) QVERIFY2(residency(ws, ol, oh) == others[static_cast<size_t>(i)], qPrintable(where));
      n_reused_total += reused;
      n_recalled_total += static_cast<int>(missing.size());
    }
    QVERIFY2(n_reused_total > 50 && n_recalled_total > 50, "the random plans should both reuse and recall often");
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 3; ++h) {
        const QString bad = check_slots(ws, cache, l, h);
        QVERIFY2(bad.isEmpty(), qPrintable(bad));
      }
  }
};

QTEST_APPLESS_MAIN(TestWorkingSet)
#include "test_working_set.moc"
