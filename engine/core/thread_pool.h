// A fork-join pool for compute kernels. The calling thread takes part, so a pool of n threads runs n-1 workers.
// Workers spin briefly between jobs (a decode step issues hundreds of short jobs) and then sleep.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace fkv {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(ith, nth) once on every thread (the caller is ith 0) and returns when all are done.
  void run(const std::function<void(int ith, int nth)>& fn);

  // Splits [0, n) into one contiguous range per thread, aligned to `grain`; fn(begin, end) per non-empty range.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

  // A sensible default: the hardware's thread count, at least 1.
  static int default_threads();

 private:
  void worker_loop(int ith);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace fkv
