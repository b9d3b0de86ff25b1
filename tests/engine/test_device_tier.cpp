// Device tier (kv/device_tier.h), checked against a brute-force simulation over every small shape: sink counts 0..2,
// recent windows of 1..3 pages, 0..2 retrieved slots, page sizes 1..4, starting from prefilled states and appending
// token by token. A fake device pool holds token positions: the appended token lands in the planned slot, sealed
// pages are copied to a fake host exactly once, the slot a new page reuses holds exactly the page leaving the window
// (already on the host), planning changes nothing, and reading the CSR page table back through the pool gives the
// sink tokens, the retrieved middle pages' tokens and the recent tokens in position order (every token when the
// context fits the budget). Bad inputs are errors naming what was found.
#include <QTest>

#include <algorithm>
#include <random>
#include <vector>

#include "kv/device_tier.h"
#include "support/policy_helpers.h"

using fkv::AppendPlan;
using fkv::Budget;
using fkv::DevicePageTable;
using fkv::DeviceTier;

namespace {

constexpr int kHeads = 2;

Budget make_budget(int ps, int s, int r, int k) { return fkvtest::budget_in_pages(ps, s, r, k); }

// The split by its definition: the first S pages are sinks, the last R pages that are not sinks are recent.
struct NaiveSplit {
  std::vector<int> sink, middle, recent;
};
NaiveSplit naive_split(const Budget& b, int n_tokens) {
  NaiveSplit s;
  const int n_pages = (n_tokens + b.page_size - 1) / b.page_size;
  for (int p = n_pages - 1; p >= 0; --p) {
    if (p < b.sink_pages()) {
      s.sink.insert(s.sink.begin(), p);
    } else if (static_cast<int>(s.recent.size()) < b.recent_pages()) {
      s.recent.insert(s.recent.begin(), p);
    } else {
      s.middle.insert(s.middle.begin(), p);
    }
  }
  return s;
}

// Token positions held by a fake device pool and a fake host tier.
struct Sim {
  int ps = 0;
  int n_slots = 0;
  std::vector<int> pool;        // (n_slots, kHeads, ps) token position or -1
  std::vector<int> host;        // (n_pages_cap, ps)
  std::vector<int> host_saves;  // (n_pages_cap) times each page was copied to the host
  int& cell(int slot, int h, int row) { return pool[(static_cast<size_t>(slot) * kHeads + h) * ps + row]; }
};

Sim make_sim(const DeviceTier& t, int n_pages_cap) {
  Sim s;
  s.ps = t.budget().page_size;
  s.n_slots = t.n_slots();
  s.pool.assign(static_cast<size_t>(s.n_slots) * kHeads * s.ps, -1);
  s.host.assign(static_cast<size_t>(n_pages_cap) * s.ps, -1);
  s.host_saves.assign(static_cast<size_t>(n_pages_cap), 0);
  return s;
}

// The state a prefill of n0 tokens leaves: resident pages hold their tokens, sealed pages are on the host.
void load_prefilled(const DeviceTier& t, int n0, Sim& s) {
  for (int pos = 0; pos < n0; ++pos) {
    const int p = pos / s.ps;
    if (p < t.n_backed_up_pages()) s.host[static_cast<size_t>(p) * s.ps + pos % s.ps] = pos;
    const int slot = t.slot_of(p);
    if (slot >= 0)
      for (int h = 0; h < kHeads; ++h) s.cell(slot, h, pos % s.ps) = pos;
  }
  for (int p = 0; p < t.n_backed_up_pages(); ++p) s.host_saves[static_cast<size_t>(p)] = 1;
}

// Resident pages are exactly the naive sinks and recent pages, each in its own slot holding exactly its tokens.
void check_residency(const DeviceTier& t, Sim& s) {
  const NaiveSplit ns = naive_split(t.budget(), t.n_tokens());
  std::vector<int> seen(static_cast<size_t>(s.n_slots), 0);
  std::vector<int> resident = ns.sink;
  resident.insert(resident.end(), ns.recent.begin(), ns.recent.end());
  for (int p : resident) {
    const int slot = t.slot_of(p);
    QVERIFY(slot >= 0 && slot < t.first_retrieved_slot());
    QCOMPARE(t.page_in_slot(slot), p);
    QVERIFY(seen[static_cast<size_t>(slot)]++ == 0);
    for (int row = 0; row < s.ps; ++row) {
      const int pos = p * s.ps + row;
      QCOMPARE(s.cell(slot, 0, row), pos < t.n_tokens() ? pos : -1);
    }
  }
  for (int p : ns.middle) QCOMPARE(t.slot_of(p), -1);
}

void apply_to_sim(const DeviceTier& t, const AppendPlan& plan, Sim& s) {
  const int row = plan.pos % s.ps;
  if (row == 0) {
    // The reused slot held exactly the leaving page (or nothing), and that page is safe on the host.
    const int held = s.cell(plan.slot, 0, 0) < 0 ? -1 : s.cell(plan.slot, 0, 0) / s.ps;
    QCOMPARE(held, plan.leaving_page);
    if (plan.leaving_page >= 0) QCOMPARE(s.host_saves[static_cast<size_t>(plan.leaving_page)], 1);
    for (int h = 0; h < kHeads; ++h)
      for (int r = 0; r < s.ps; ++r) s.cell(plan.slot, h, r) = -1;
  }
  for (int h = 0; h < kHeads; ++h) s.cell(plan.slot, h, row) = plan.pos;
  if (plan.sealed_page >= 0) {
    QCOMPARE(s.host_saves[static_cast<size_t>(plan.sealed_page)]++, 0);
    for (int r = 0; r < s.ps; ++r) s.host[static_cast<size_t>(plan.sealed_page) * s.ps + r] = s.cell(plan.slot, 0, r);
  }
  (void)t;
}

// The plan against the naive split before and after the token.
void check_plan(const DeviceTier& t, const AppendPlan& plan) {
  const Budget& b = t.budget();
  QCOMPARE(plan.pos, t.n_tokens());
  QCOMPARE(plan.page, plan.pos / b.page_size);
  QCOMPARE(plan.sealed_page, (plan.pos + 1) % b.page_size == 0 ? plan.page : -1);
  const NaiveSplit before = naive_split(b, plan.pos);
  const NaiveSplit after = naive_split(b, plan.pos + 1);
  std::vector<int> left;
  for (int p : before.recent)
    if (std::find(after.recent.begin(), after.recent.end(), p) == after.recent.end()) left.push_back(p);
  QVERIFY(left.size() <= 1);
  QCOMPARE(plan.leaving_page, left.empty() ? -1 : left[0]);
  if (!left.empty()) QCOMPARE(after.middle.back(), left[0]);
  QCOMPARE(after.middle.size(), before.middle.size() + left.size());
}

// Chooses retrieved middle pages per head (all of them when the context fits), places them in shuffled working-set
// slots from the host copies, builds the table and reads every head's tokens back through the pool.
void check_page_table(const DeviceTier& t, Sim& s, std::mt19937& rng) {
  const NaiveSplit ns = naive_split(t.budget(), t.n_tokens());
  const int n_ws = t.n_retrieved_slots();
  std::vector<int32_t> indptr{0}, ws_slots;
  std::vector<std::vector<int>> chosen(kHeads);
  for (int h = 0; h < kHeads; ++h) {
    std::vector<int> pool_slots(static_cast<size_t>(n_ws));
    for (int i = 0; i < n_ws; ++i) pool_slots[static_cast<size_t>(i)] = i;
    std::shuffle(pool_slots.begin(), pool_slots.end(), rng);
    for (int p : ns.middle)
      if (t.fits() || (static_cast<int>(chosen[h].size()) < n_ws && rng() % 2)) chosen[h].push_back(p);
    QVERIFY(static_cast<int>(chosen[h].size()) <= n_ws);
    for (size_t i = 0; i < chosen[h].size(); ++i) {
      const int p = chosen[h][i];
      const int ws = pool_slots[i];
      QCOMPARE(s.host_saves[static_cast<size_t>(p)], 1);  // a middle page can be recalled from the host
      for (int r = 0; r < s.ps; ++r)
        s.cell(t.first_retrieved_slot() + ws, h, r) = s.host[static_cast<size_t>(p) * s.ps + r];
      ws_slots.push_back(ws);
    }
    indptr.push_back(static_cast<int32_t>(ws_slots.size()));
  }
  DevicePageTable table;
  QVERIFY(t.build_page_table({indptr.data(), ws_slots.data()}, table).ok());
  for (int h = 0; h < kHeads; ++h) {
    std::vector<int> expect, got;
    std::vector<int> pages = ns.sink;
    pages.insert(pages.end(), chosen[h].begin(), chosen[h].end());
    pages.insert(pages.end(), ns.recent.begin(), ns.recent.end());
    for (int p : pages)
      for (int pos = p * s.ps; pos < std::min((p + 1) * s.ps, t.n_tokens()); ++pos) expect.push_back(pos);
    for (int32_t i = table.indptr[h]; i < table.indptr[h + 1]; ++i) {
      const bool last = i + 1 == table.indptr[h + 1];
      const int len = last ? table.last_page_len[static_cast<size_t>(h)] : s.ps;
      QVERIFY(len >= 1 && len <= s.ps);
      for (int r = 0; r < len; ++r) got.push_back(s.cell(table.indices[static_cast<size_t>(i)], h, r));
    }
    QCOMPARE(got, expect);
    if (t.fits()) QCOMPARE(static_cast<int>(got.size()), t.n_tokens());
  }
}

void run_shape(const Budget& b, int n0, int n_end) {
  DeviceTier t;
  QVERIFY(t.init(b, kHeads).ok());
  QVERIFY(t.reset(n0).ok());
  Sim s = make_sim(t, n_end / b.page_size + 1);
  load_prefilled(t, n0, s);
  std::mt19937 rng(static_cast<unsigned>(n0 * 131 + b.page_size));
  check_residency(t, s);
  for (int n = n0; n < n_end; ++n) {
    if (n > 0) check_page_table(t, s, rng);
    AppendPlan plan, again;
    t.plan_append(plan);
    t.plan_append(again);
    QCOMPARE(t.n_tokens(), n);  // planning is side-effect free
    QCOMPARE(again.slot, plan.slot);
    check_plan(t, plan);
    apply_to_sim(t, plan, s);
    QVERIFY(t.apply_append(plan).ok());
    QCOMPARE(t.n_tokens(), n + 1);
    QCOMPARE(t.n_backed_up_pages(), (n + 1) / b.page_size);
    check_residency(t, s);
    if (QTest::currentTestFailed()) return;
  }
}

}  // namespace

class TestDeviceTier : public QObject {
  Q_OBJECT

 private slots:
  void layoutOfThePool() {
    DeviceTier t;
    QVERIFY(t.init(make_budget(4, 2, 3, 2), kHeads).ok());
    QCOMPARE(t.n_slots(), 7);
    QCOMPARE(t.first_ring_slot(), 2);
    QCOMPARE(t.first_retrieved_slot(), 5);
    const int expect[] = {0, 1, 2, 3, 4, 2, 3, 4, 2};  // pages 0..8: sinks, then the ring of 3
    for (int p = 0; p < 9; ++p) QCOMPARE(t.home_slot(p), expect[p]);
    QVERIFY(t.reset(4 * 9 - 1).ok());  // 9 pages, the last partial: sinks 0, 1; middle 2..5; recent 6, 7, 8
    QCOMPARE(t.slot_of(1), 1);
    QCOMPARE(t.slot_of(2), -1);
    QCOMPARE(t.slot_of(6), 3);
    QCOMPARE(t.page_in_slot(4), 7);
    QCOMPARE(t.page_in_slot(5), -1);
    QVERIFY(!t.fits());  // 35 tokens > 28
    QVERIFY(t.reset(28).ok());
    QVERIFY(t.fits());
  }

  void bruteForceOverSmallShapes() {
    for (int ps = 1; ps <= 4; ++ps)
      for (int s = 0; s <= 2; ++s)
        for (int r = 1; r <= 3; ++r)
          for (int k = 0; k <= 2; ++k)
            for (int n0 : {0, 1, 2 * ps - 1, 5 * ps + 1}) {
              run_shape(make_budget(ps, s, r, k), n0, n0 + (s + r + k + 3) * ps + 2);
              if (QTest::currentTestFailed()) qWarning("ps %d sink %d recent %d retrieved %d n0 %d", ps, s, r, k, n0);
              if (QTest::currentTestFailed()) return;
            }
  }

  void noRetrievedPagesListsSinksAndRecent() {
    DeviceTier t;
    QVERIFY(t.init(make_budget(2, 1, 2, 0), kHeads).ok());
    QVERIFY(t.reset(11).ok());  // 6 pages: sink 0, middle 1..3, recent 4, 5 (len 1)
    DevicePageTable table;
    QVERIFY(t.build_page_table({}, table).ok());
    QCOMPARE(table.indptr, (std::vector<int32_t>{0, 3, 6}));
    QCOMPARE(table.indices, (std::vector<int32_t>{0, 2, 1, 0, 2, 1}));  // page 4 -> ring 1 + (3 % 2), page 5 -> 1
    QCOMPARE(table.last_page_len, (std::vector<int32_t>{1, 1}));
  }

  void badInputsAreErrors() {
    DeviceTier t;
    fkv::Status st = t.init(make_budget(4, 1, 0, 1), kHeads);
    QVERIFY(!st.ok() && st.message().find("recent window") != std::string::npos);
    st = t.init(make_budget(4, 1, 1, 1), 0);
    QVERIFY(!st.ok() && st.message().find("found 0") != std::string::npos);
    QVERIFY(t.init(make_budget(4, 1, 1, 2), kHeads).ok());
    QVERIFY(!t.reset(-1).ok());
    DevicePageTable table;
    st = t.build_page_table({}, table);
    QVERIFY(!st.ok() && st.message().find("empty context") != std::string::npos);
    QVERIFY(t.reset(4 * 4).ok());  // 4 pages: sink 0, middle 1..2, recent 3
    const std::vector<int32_t> too_many{0, 3, 3}, ws_slots{0, 1, 0};
    st = t.build_page_table({too_many.data(), ws_slots.data()}, table);
    QVERIFY(!st.ok() && st.message().find("found 3") != std::string::npos);
    const std::vector<int32_t> indptr{0, 1, 1}, bad_slot{2};
    st = t.build_page_table({indptr.data(), bad_slot.data()}, table);
    QVERIFY(!st.ok() && st.message().find("found 2") != std::string::npos);
    AppendPlan plan;
    t.plan_append(plan);
    QVERIFY(t.apply_append(plan).ok());
    st = t.apply_append(plan);  // stale: planned one token ago
    QVERIFY(!st.ok() && st.message().find("applied at position 17") != std::string::npos);
    QCOMPARE(t.n_tokens(), 17);
    t.plan_append(plan);
    plan.slot = 0;  // tampered
    QVERIFY(!t.apply_append(plan).ok());
    QCOMPARE(t.n_tokens(), 17);
  }
};

QTEST_APPLESS_MAIN(TestDeviceTier)
#include "test_device_tier.moc"
