// Layer-wise prefill offload (kv/prefill_offload.h), checked by executing the schedule on a per-page brute-force
// simulation over every small shape (page sizes 1..4, 0..2 sink pages, 1..3 recent pages, chunks of 1..13 tokens,
// fresh and continued prefills): chunks tile the tokens, each writes exactly its tokens' pages, only sealed pages that
// are neither sinks nor recent leave, after the chunk that completed them, every sealed page reaches the host exactly
// once, the device never holds more than sink + recent + chunk pages per layer, and the end state is DeviceTier's.
// Every length 1..100k tokens of a default-sized budget is checked with page counts against the same bound.
#include <QTest>

#include <algorithm>
#include <vector>

#include "kv/device_tier.h"
#include "kv/prefill_offload.h"
#include "support/policy_helpers.h"

using fkv::Budget;
using fkv::PrefillChunk;
using fkv::PrefillSchedule;

namespace {

constexpr int kLayers = 2;

Budget make_budget(int ps, int s, int r) { return fkvtest::budget_in_pages(ps, s, r, 2); }

// Resting residency by definition: the first S pages, and the last R pages that are not sinks.
std::vector<int> naive_resident(const Budget& b, int n_tokens) {
  const int n_pages = (n_tokens + b.page_size - 1) / b.page_size;
  std::vector<int> out(static_cast<size_t>(n_pages), 0);
  int recent = 0;
  for (int p = n_pages - 1; p >= 0; --p) {
    if (p < b.sink_pages()) {
      out[static_cast<size_t>(p)] = 1;
    } else if (recent < b.recent_pages()) {
      out[static_cast<size_t>(p)] = 1;
      ++recent;
    }
  }
  return out;
}

struct PageState {
  int written = 0;   // tokens written
  int resident = 0;  // on the device
  int saves = 0;     // copies on the host
};

// Starts from the tier's state at n0 (DeviceTier::reset), so the two agree on residency and host copies.
std::vector<PageState> start_state(const Budget& b, int n0, int n_pages_cap) {
  fkv::DeviceTier t;
  if (!t.init(b, 1).ok() || !t.reset(n0).ok()) qFatal("device tier init failed");
  std::vector<PageState> st(static_cast<size_t>(n_pages_cap));
  for (int p = 0; p < n_pages_cap; ++p) {
    auto& s = st[static_cast<size_t>(p)];
    s.written = std::clamp(n0 - p * b.page_size, 0, b.page_size);
    s.resident = t.slot_of(p) >= 0;
    s.saves = p < t.n_backed_up_pages();
  }
  return st;
}

void run_chunk(const Budget& b, const PrefillChunk& c, std::vector<PageState>& st, int bound) {
  const int ps = b.page_size;
  QCOMPARE(c.first_page, c.first_token / ps);
  QCOMPARE(c.end_page, (c.end_token + ps - 1) / ps);
  int resident = 0;
  for (int p = c.first_page; p < c.end_page; ++p) {
    auto& s = st[static_cast<size_t>(p)];
    QCOMPARE(s.resident, p < c.first_new_page ? 1 : 0);  // a continued page is still there; new ones are not
    QVERIFY(s.saves == 0);
    s.resident = 1;
    s.written = std::min(ps, c.end_token - p * ps);
  }
  for (const auto& s : st) resident += s.resident;
  QCOMPARE(c.peak_pages, resident);
  QVERIFY(resident <= bound);
  const std::vector<int> rest = naive_resident(b, c.end_token);
  QVERIFY(c.offload_begin <= c.copy_begin && c.copy_begin <= c.offload_end);
  for (int p = c.offload_begin; p < c.offload_end; ++p) {
    auto& s = st[static_cast<size_t>(p)];
    QVERIFY(s.resident && !rest[static_cast<size_t>(p)]);
    QCOMPARE(s.written, ps);  // completed by this chunk or an earlier one
    QCOMPARE(s.saves, p >= c.copy_begin ? 0 : 1);
    s.saves = 1;
    s.resident = 0;
  }
  // Offload is eager: after the chunk exactly the resting pages remain, which is what bounds the next chunk.
  for (size_t p = 0; p < rest.size(); ++p) QCOMPARE(st[p].resident, rest[p]);
}

void run_schedule(const Budget& b, int n0, int n, int chunk) {
  PrefillSchedule sch;
  QVERIFY(fkv::plan_prefill_offload(b, n0, n, chunk, sch).ok());
  QCOMPARE(sch.bound_pages, b.sink_pages() + b.recent_pages() + (chunk + b.page_size - 1) / b.page_size);
  const int n_pages = (n + b.page_size - 1) / b.page_size;
  // Layers are independent and run the same schedule; two of them show it does not matter which.
  for (int l = 0; l < kLayers; ++l) {
    std::vector<PageState> st = start_state(b, n0, n_pages);
    int next = n0;
    for (const PrefillChunk& c : sch.chunks) {
      QCOMPARE(c.first_token, next);
      QVERIFY(c.end_token - c.first_token == chunk || (c.end_token == n && c.end_token > c.first_token));
      next = c.end_token;
      run_chunk(b, c, st, sch.bound_pages);
      if (QTest::currentTestFailed()) return;
    }
    QCOMPARE(next, n);
    for (int p : sch.backup_pages) {
      auto& s = st[static_cast<size_t>(p)];
      QVERIFY(s.resident && s.written == b.page_size);
      QCOMPARE(s.saves++, 0);
    }
    const std::vector<PageState> end = start_state(b, n, n_pages);
    for (int p = 0; p < n_pages; ++p) {
      QCOMPARE(st[static_cast<size_t>(p)].resident, end[static_cast<size_t>(p)].resident);
      QCOMPARE(st[static_cast<size_t>(p)].saves, end[static_cast<size_t>(p)].saves);  // sealed: exactly once
    }
  }
}

}  // namespace

class TestPrefillOffload : public QObject {
  Q_OBJECT

 private slots:
  void bruteForceOverSmallShapes() {
    for (int ps = 1; ps <= 4; ++ps)
      for (int s = 0; s <= 2; ++s)
        for (int r = 1; r <= 3; ++r)
          for (int chunk : {1, 2, 3, 5, 8, 13})
            for (int n0 : {0, 1, 3 * ps, 4 * ps + 1})
              for (int n = n0; n <= n0 + 50; ++n) {
                run_schedule(make_budget(ps, s, r), n0, n, chunk);
                if (QTest::currentTestFailed()) {
                  qWarning("ps %d sink %d recent %d chunk %d n0 %d n %d", ps, s, r, chunk, n0, n);
                  return;
                }
              }
  }

  // Every length 1..100k with the default budget (16 + 16 pages of 32) and chunks that are not whole pages: page
  // counts only, so each length costs one pass over its chunks.
  void peakIsBoundedForEveryLengthTo100k() {
    const Budget b = make_budget(32, 16, 16);
    const int chunk = 1000;
    PrefillSchedule sch;
    for (int n = 1; n <= 100000; ++n) {
      QVERIFY(fkv::plan_prefill_offload(b, 0, n, chunk, sch).ok());
      int resident = 0, offloaded_end = b.sink_pages();
      for (const PrefillChunk& c : sch.chunks) {
        resident += c.end_page - c.first_new_page;
        if (c.peak_pages != resident || resident > sch.bound_pages) QFAIL(qPrintable(QString("n %1").arg(n)));
        if (c.offload_begin != offloaded_end || (c.offload_end > c.offload_begin && c.offload_end * 32 > c.end_token) ||
            c.copy_begin != c.offload_begin)
          QFAIL(qPrintable(QString("offload range at n %1").arg(n)));
        resident -= c.offload_end - c.offload_begin;
        offloaded_end = c.offload_end;
      }
      const int n_pages = (n + 31) / 32;
      const int rest = std::min(n_pages, 16) + std::min(16, std::max(0, n_pages - 16));
      if (resident != rest || (offloaded_end - 16) + rest != n_pages)
        QFAIL(qPrintable(QString("end state at n %1").arg(n)));
      if (static_cast<int>(sch.backup_pages.size()) != rest - (n % 32 != 0))
        QFAIL(qPrintable(QString("backups at n %1").arg(n)));
    }
  }

  void badArgumentsAreErrors() {
    PrefillSchedule sch;
    fkv::Status st = fkv::plan_prefill_offload(make_budget(4, 1, 1), 0, 10, 0, sch);
    QVERIFY(!st.ok() && st.message().find("found 0") != std::string::npos);
    st = fkv::plan_prefill_offload(make_budget(4, 1, 1), 11, 10, 4, sch);
    QVERIFY(!st.ok() && st.message().find("0..10, found 11") != std::string::npos);
    st = fkv::plan_prefill_offload(make_budget(4, 1, 0), 0, 10, 4, sch);
    QVERIFY(!st.ok() && st.message().find("recent window") != std::string::npos);
    QVERIFY(fkv::plan_prefill_offload(make_budget(4, 1, 1), 10, 10, 4, sch).ok());
    QVERIFY(sch.chunks.empty() && sch.backup_pages.empty());
  }
};

QTEST_APPLESS_MAIN(TestPrefillOffload)
#include "test_prefill_offload.moc"
