#include "core/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FKV_PAUSE() _mm_pause()
#else
#define FKV_PAUSE() ((void)0)
#endif

namespace fkv {

namespace {
constexpr unsigned kSpinIterations = 1u << 14;  // about 100 us of spinning before a worker sleeps

// With more threads than free cores (a busy desktop, n_threads > cores), a spinning thread can hold the core that the
// thread it waits for needs; pure spinning then costs a whole time slice per job (measured on 2 busy cores: ~10 ms per
// job, 100x slower). Yielding every 64 pauses hands the core over; with free cores it is one cheap syscall.
void spin_pause(unsigned spin) {
  if ((spin & 63) == 63) {
    std::this_thread::yield();
  } else {
    FKV_PAUSE();
  }
}
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

int ThreadPool::default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void ThreadPool::worker_loop(int ith) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (unsigned spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      spin_pause(spin);
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = gen;
    if (stop_.load()) return;
    (*job_)(ith, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (n_threads_ == 1) {
    fn(0, 1);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  fn(0, n_threads_);
  for (unsigned spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) spin_pause(spin);
  job_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_grains = (n + grain - 1) / grain;
  const int nth = static_cast<int>(std::min<int64_t>(n_threads_, n_grains));
  if (nth == 1) {
    fn(0, n);
    return;
  }
  // One pointer captured: std::function stores it inline, so a job costs no allocation.
  struct Split {
    const std::function<void(int64_t, int64_t)>* fn;
    int64_t n, grain, n_grains;
    int nth;
  } split{&fn, n, grain, n_grains, nth};
  run([sp = &split](int ith, int) {
    if (ith >= sp->nth) return;
    const int64_t g0 = sp->n_grains * ith / sp->nth;
    const int64_t g1 = sp->n_grains * (ith + 1) / sp->nth;
    const int64_t begin = g0 * sp->grain;
    const int64_t end = std::min(sp->n, g1 * sp->grain);
    if (begin < end) (*sp->fn)(begin, end);
  });
}

}  // namespace fkv
