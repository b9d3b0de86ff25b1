// The GUI-thread watchdog of the ui suites (support/watchdog.h) must see the stalls it exists to catch: work done on
// the event loop's thread and a blocking wait on it. Without this, a watchdog that measured nothing would pass every
// suite.
#include <QCoreApplication>
#include <QTest>
#include <QThread>

#include <algorithm>

#include "support/watchdog.h"

namespace {

// CPU time of the calling thread, so the spin below does its work whatever else holds the cores.
qint64 threadCpuMs() { return fkvtest::threadCpuNs() / 1000000; }

// Lets the watchdog tick a few times, so the stall below falls between ticks.
void tickAWhile() { QTest::qWait(30); }

}  // namespace

class TestWatchdog : public QObject {
  Q_OBJECT

 private slots:
  void aQuietEventLoopShowsNoStall() {
    fkvtest::Watchdog dog(5);
    dog.restart();
    tickAWhile();
    dog.stop();
    QVERIFY(dog.ticks() > 0);
    QVERIFY2(dog.maxGap() <= 50, qPrintable(QString::number(dog.maxGap())));
  }

  void workOnTheGuiThreadIsAStall() {
    fkvtest::Watchdog dog(5);
    dog.restart();
    tickAWhile();
    const qint64 until = threadCpuMs() + 120;
    volatile unsigned sink = 0;
    while (threadCpuMs() < until) sink = sink + 1;
    QCoreApplication::processEvents();
    dog.stop();
    QVERIFY2(dog.maxGap() >= 110, qPrintable(QString::number(dog.maxGap())));
  }

  // A wait on a lock or on I/O keeps no CPU busy; it must count whole. A wake-up can be preempted on a busy machine,
  // which the watchdog forgives (it then counts CPU time only), so the wait gets three tries.
  void aBlockingWaitOnTheGuiThreadIsAStall() {
    qint64 seen = 0;
    for (int attempt = 0; attempt < 3 && seen < 110; ++attempt) {
      fkvtest::Watchdog dog(5);
      dog.restart();
      tickAWhile();
      QThread::msleep(120);
      QCoreApplication::processEvents();
      dog.stop();
      QVERIFY(dog.maxWallGap() >= 120);
      seen = std::max(seen, dog.maxGap());
    }
    QVERIFY2(seen >= 110, qPrintable(QString::number(seen)));
  }

  // stop() closes the last gap: a stall right before it is not missed.
  void aStallJustBeforeStopCounts() {
    fkvtest::Watchdog dog(5);
    dog.restart();
    tickAWhile();
    QThread::msleep(80);
    dog.stop();
    QVERIFY2(dog.maxWallGap() >= 80, qPrintable(QString::number(dog.maxWallGap())));
  }
};

QTEST_MAIN(TestWatchdog)
#include "test_watchdog.moc"
