// Proves the GUI thread stays responsive: a precise timer ticking on the thread that runs the event loop, keeping the
// longest gap between ticks, the one from the last tick to stop() included (a stall at the end is not missed, and a
// short operation is measured whole). Pausing (stop, then start) leaves the gaps seen so far; restart() forgets them.
//
// A gap in which the kernel preempted the thread (an involuntary context switch: another process, or another of our
// threads, took the core) counts only the CPU time the thread spent in it. Otherwise a machine that something else
// keeps busy fails the test for the scheduler's choices, not the app's. A gap with no preemption counts whole, so
// work done on the GUI thread and waits on a lock or on I/O from it are caught as before.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QTimer>

#include <algorithm>
#include <cstdint>

#ifdef __linux__
#include <sys/resource.h>
#include <time.h>
#endif

namespace fkvtest {

// CPU time the calling thread has used, in ns (0 where the platform cannot tell).
inline std::int64_t threadCpuNs() {
#ifdef __linux__
  timespec ts{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
#endif
  return 0;
}

class Watchdog : public QObject {
 public:
  explicit Watchdog(int interval_ms) {
    m_timer.setTimerType(Qt::PreciseTimer);
    m_timer.setInterval(interval_ms);
    connect(&m_timer, &QTimer::timeout, this, [this] {
      closeGap();
      ++m_ticks;
    });
  }
  void start() {
    m_sinceTick.start();
    m_mark = ThreadMark::now();
    m_timer.start();
  }
  void restart() {
    m_maxGap = 0;
    m_maxWallGap = 0;
    m_ticks = 0;
    start();
  }
  void stop() {
    if (m_timer.isActive()) closeGap();
    m_timer.stop();
  }
  bool isRunning() const { return m_timer.isActive(); }
  // The longest stall the GUI thread caused, in ms (the rule above).
  qint64 maxGap() const { return m_maxGap; }
  // The longest gap on the wall clock, preemption included, for messages.
  qint64 maxWallGap() const { return m_maxWallGap; }
  int ticks() const { return m_ticks; }

 private:
  // The thread's own CPU time and how often the kernel has preempted it so far.
  struct ThreadMark {
    std::int64_t cpu_ns = 0;
    long preempted = 0;
    bool known = false;
    static ThreadMark now() {
      ThreadMark m;
#ifdef __linux__
      rusage ru{};
      if (getrusage(RUSAGE_THREAD, &ru) == 0) {
        m.cpu_ns = threadCpuNs();
        m.preempted = ru.ru_nivcsw;
        m.known = true;
      }
#endif
      return m;
    }
  };

  void closeGap() {
    const qint64 wall = m_sinceTick.restart();
    const ThreadMark mark = ThreadMark::now();
    qint64 gap = wall;
    if (mark.known && m_mark.known && mark.preempted != m_mark.preempted)
      gap = std::min(wall, qint64((mark.cpu_ns - m_mark.cpu_ns) / 1000000));
    m_mark = mark;
    m_maxGap = std::max(m_maxGap, gap);
    m_maxWallGap = std::max(m_maxWallGap, wall);
  }

  QTimer m_timer;
  QElapsedTimer m_sinceTick;
  ThreadMark m_mark;
  qint64 m_maxGap = 0;
  qint64 m_maxWallGap = 0;
  int m_ticks = 0;
};

}  // namespace fkvtest
