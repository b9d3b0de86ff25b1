// The fork-join pool (core/thread_pool.h): run() reaches every thread exactly once per job, parallel_for covers [0, n)
// exactly once in grain-aligned ranges for many (n, grain, threads) shapes, thousands of back-to-back jobs finish, and
// pools are destroyed cleanly whether they never ran, ran and went to sleep, or were busy a moment before.
#include <QTest>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/thread_pool.h"

using fkv::ThreadPool;

namespace {

// One parallel_for call as seen by the body: the range it got and how often each index was visited.
struct Coverage {
  std::vector<std::atomic<int>> hits;  // (n) visits per index
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> ranges;  // (calls) [begin, end) handed to the body

  explicit Coverage(int64_t n) : hits(static_cast<size_t>(n)) {}
};

// Empty when parallel_for(n, grain) on `pool` visited every index once in grain-aligned, non-empty ranges, at most one
// per thread; otherwise what went wrong.
QString check_parallel_for(ThreadPool& pool, int64_t n, int64_t grain) {
  Coverage cov(n);
  pool.parallel_for(n, grain, [&cov](int64_t begin, int64_t end) {
    {
      const std::lock_guard<std::mutex> lock(cov.mu);
      cov.ranges.emplace_back(begin, end);
    }
    for (int64_t i = begin; i < end; ++i) {
      if (i >= 0 && i < static_cast<int64_t>(cov.hits.size())) cov.hits[static_cast<size_t>(i)].fetch_add(1);
    }
  });
  const int64_t g = grain < 1 ? 1 : grain;
  const int64_t n_grains = n <= 0 ? 0 : (n + g - 1) / g;
  const int64_t max_calls = std::min<int64_t>(pool.size(), n_grains);
  if (static_cast<int64_t>(cov.ranges.size()) > max_calls)
    return QString("%1 calls, expected at most %2").arg(cov.ranges.size()).arg(max_calls);
  if (n > 0 && cov.ranges.empty()) return QString("no call at all for n = %1").arg(n);
  for (const auto& [b, e] : cov.ranges) {
    if (b < 0 || e > n || b >= e) return QString("range [%1, %2) is empty or outside [0, %3)").arg(b).arg(e).arg(n);
    if (b % g != 0) return QString("range [%1, %2) does not start on a multiple of grain %3").arg(b).arg(e).arg(g);
  }
  for (int64_t i = 0; i < n; ++i) {
    const int h = cov.hits[static_cast<size_t>(i)].load();
    if (h != 1) return QString("index %1 visited %2 times, expected once").arg(i).arg(h);
  }
  return {};
}

}  // namespace

class TestThreadPool : public QObject {
  Q_OBJECT

 private slots:
  void sizeIsAtLeastOne() {
    QCOMPARE(ThreadPool(0).size(), 1);
    QCOMPARE(ThreadPool(-3).size(), 1);
    QCOMPARE(ThreadPool(3).size(), 3);
    QVERIFY2(ThreadPool::default_threads() >= 1, "default_threads() must report at least one thread");
  }

  void runCallsEveryThreadOnce_data() {
    QTest::addColumn<int>("n_threads");
    for (int n : {1, 2, 3, 4, 7}) QTest::addRow("threads=%d", n) << n;
  }
  void runCallsEveryThreadOnce() {
    QFETCH(int, n_threads);
    ThreadPool pool(n_threads);
    for (int job = 0; job < 50; ++job) {
      std::vector<std::atomic<int>> calls(static_cast<size_t>(n_threads));  // (n_threads) calls per ith
      std::atomic<int> bad_nth{0};
      std::vector<int> written(static_cast<size_t>(n_threads), -1);  // plain writes: run() must publish them
      pool.run([&](int ith, int nth) {
        if (nth != n_threads || ith < 0 || ith >= nth) {
          bad_nth.fetch_add(1);
          return;
        }
        calls[static_cast<size_t>(ith)].fetch_add(1);
        written[static_cast<size_t>(ith)] = job * 100 + ith;
      });
      QVERIFY2(bad_nth.load() == 0, qPrintable(QString("job %1: a call got a wrong (ith, nth)").arg(job)));
      for (int i = 0; i < n_threads; ++i) {
        QVERIFY2(calls[static_cast<size_t>(i)].load() == 1,
                 qPrintable(
                     QString("job %1: ith %2 ran %3 times").arg(job).arg(i).arg(calls[static_cast<size_t>(i)].load())));
        QVERIFY2(written[static_cast<size_t>(i)] == job * 100 + i,
                 qPrintable(QString("job %1: the write of ith %2 is not visible after run()").arg(job).arg(i)));
      }
    }
  }

  void runCallerIsThreadZero() {
    ThreadPool pool(3);
    const std::thread::id me = std::this_thread::get_id();
    std::vector<std::thread::id> ids(3);
    pool.run([&](int ith, int) { ids[static_cast<size_t>(ith)] = std::this_thread::get_id(); });
    QVERIFY2(ids[0] == me, "ith 0 must run on the calling thread");
    QVERIFY2(ids[1] != me && ids[2] != me && ids[1] != ids[2], "ith 1 and 2 must run on two distinct worker threads");
  }

  void parallelForCoversRangeOnce_data() {
    QTest::addColumn<int>("n_threads");
    for (int n : {1, 2, 3, 4, 7}) QTest::addRow("threads=%d", n) << n;
  }
  void parallelForCoversRangeOnce() {
    QFETCH(int, n_threads);
    ThreadPool pool(n_threads);
    const int64_t sizes[] = {0, 1, 2, 3, 5, 6, 7, 8, 16, 31, 100, 1000, 1023, 4097};
    const int64_t grains[] = {0, 1, 2, 3, 7, 16, 64, 1000, 5000};
    for (int64_t n : sizes) {
      for (int64_t grain : grains) {
        const QString why = check_parallel_for(pool, n, grain);
        QVERIFY2(why.isEmpty(),
                 qPrintable(QString("threads %1, n %2, grain %3: %4").arg(n_threads).arg(n).arg(grain).arg(why)));
      }
    }
  }

  void parallelForNegativeOrZeroNIsNoop() {
    ThreadPool pool(3);
    std::atomic<int> calls{0};
    pool.parallel_for(0, 1, [&](int64_t, int64_t) { calls.fetch_add(1); });
    pool.parallel_for(-5, 1, [&](int64_t, int64_t) { calls.fetch_add(1); });
    QVERIFY2(calls.load() == 0, "parallel_for over an empty range must not call the body");
  }

  void parallelForFewerItemsThanThreads() {
    ThreadPool pool(7);
    std::vector<std::atomic<int>> hits(3);  // (n)
    std::atomic<int> calls{0};
    pool.parallel_for(3, 1, [&](int64_t b, int64_t e) {
      calls.fetch_add(1);
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
    });
    QVERIFY2(calls.load() == 3, qPrintable(QString("3 items on 7 threads: %1 calls, expected 3").arg(calls.load())));
    for (int i = 0; i < 3; ++i) QVERIFY2(hits[static_cast<size_t>(i)].load() == 1, "each of 3 items exactly once");
  }

  void manyTinyJobsFinish() {
    ThreadPool pool(2);
    std::atomic<int64_t> sum{0};
    constexpr int kJobs = 10000;
    for (int j = 0; j < kJobs; ++j)
      pool.run([&sum](int ith, int) { sum.fetch_add(ith + 1, std::memory_order_relaxed); });
    QVERIFY2(sum.load() == int64_t{kJobs} * 3,
             qPrintable(QString("sum %1, expected %2").arg(sum.load()).arg(kJobs * 3)));

    ThreadPool wide(4);  // more threads than this machine may have cores: workers get descheduled mid-job
    std::atomic<int64_t> covered{0};
    for (int j = 0; j < 2000; ++j) wide.parallel_for(10, 1, [&](int64_t b, int64_t e) { covered.fetch_add(e - b); });
    QVERIFY2(covered.load() == 20000, qPrintable(QString("covered %1 items, expected 20000").arg(covered.load())));
  }

  void jobsAfterWorkersSlept() {
    ThreadPool pool(3);
    for (int round = 0; round < 3; ++round) {
      // Long enough for the workers to stop spinning and block on the generation counter.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      std::atomic<int> calls{0};
      pool.run([&](int, int) { calls.fetch_add(1); });
      QVERIFY2(calls.load() == 3,
               qPrintable(QString("round %1: %2 calls after sleeping, expected 3").arg(round).arg(calls.load())));
    }
  }

  void destructionWhileIdle() {
    // Never used: the workers may not even have started their loop.
    for (int i = 0; i < 20; ++i) {
      ThreadPool pool(4);
    }
    // Used, then idle long enough to sleep.
    {
      ThreadPool pool(4);
      pool.run([](int, int) {});
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // Destroyed right after a job, while the workers are still spinning.
    for (int i = 0; i < 20; ++i) {
      ThreadPool pool(3);
      std::atomic<int> calls{0};
      pool.run([&](int, int) { calls.fetch_add(1); });
      QVERIFY2(calls.load() == 3, "a job before destruction runs on every thread");
    }
  }
};

QTEST_APPLESS_MAIN(TestThreadPool)
#include "test_thread_pool.moc"
