// Cancels work from another thread at a known point: the work calls reached() from inside (a progress callback),
// which lets a waiting thread call `cancel` and holds the work until it has, so the request lands exactly there.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <utility>

namespace fkvtest {

class CancelFromThread {
 public:
  explicit CancelFromThread(std::function<void()> cancel)
      : m_thread([this, cancel = std::move(cancel)] {
          waitFor(kReached);
          cancel();
          m_phase.store(kCancelled);
        }) {}
  // Joins the thread; one whose work never reached the point gives up after the wait's limit.
  ~CancelFromThread() { m_thread.join(); }
  CancelFromThread(const CancelFromThread&) = delete;
  CancelFromThread& operator=(const CancelFromThread&) = delete;

  // The first call wakes the thread and returns once it has cancelled (or after 60 s); later calls return at once.
  void reached() {
    int expected = kWaiting;
    if (!m_phase.compare_exchange_strong(expected, kReached)) return;
    waitFor(kCancelled);
  }

 private:
  enum Phase { kWaiting, kReached, kCancelled };

  void waitFor(int phase) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (m_phase.load() < phase && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  std::atomic<int> m_phase{kWaiting};
  std::thread m_thread;  // last: it starts once m_phase exists
};

}  // namespace fkvtest
