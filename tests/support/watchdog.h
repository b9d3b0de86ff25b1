// Proves the GUI thread stays responsive: a precise timer ticking on the thread that runs the event loop, keeping the
// longest gap between ticks, the one from the last tick to stop() included (a stall at the end is not missed, and a
// short operation is measured whole). Pausing (stop, then start) leaves the gaps seen so far; restart() forgets them.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QTimer>

#include <algorithm>

namespace fkvtest {

class Watchdog : public QObject {
 public:
  explicit Watchdog(int interval_ms) {
    m_timer.setTimerType(Qt::PreciseTimer);
    m_timer.setInterval(interval_ms);
    connect(&m_timer, &QTimer::timeout, this, [this] {
      m_maxGap = std::max(m_maxGap, m_sinceTick.restart());
      ++m_ticks;
    });
  }
  void start() {
    m_sinceTick.start();
    m_timer.start();
  }
  void restart() {
    m_maxGap = 0;
    m_ticks = 0;
    start();
  }
  void stop() {
    if (m_timer.isActive()) m_maxGap = std::max(m_maxGap, m_sinceTick.elapsed());
    m_timer.stop();
  }
  bool isRunning() const { return m_timer.isActive(); }
  qint64 maxGap() const { return m_maxGap; }
  int ticks() const { return m_ticks; }

 private:
  QTimer m_timer;
  QElapsedTimer m_sinceTick;
  qint64 m_maxGap = 0;
  int m_ticks = 0;
};

}  // namespace fkvtest
