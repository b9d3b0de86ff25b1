// GPU suite: runs where this build has the CUDA backend and a device exists; elsewhere it skips and says why.
#include <QtTest>

#include "runtime/backend_info.h"
#ifdef FKV_HAVE_CUDA
#include "backend/cuda/cuda_util.h"
#include "backend/cuda/device.h"
#endif

class TestCudaDevice : public QObject {
  Q_OBJECT

 private slots:
  void devicesAreListed() {
#ifndef FKV_HAVE_CUDA
    QVERIFY(!fkv::cuda_built());
    QVERIFY(fkv::backend_summary().find("cuda not built") != std::string::npos);
    QSKIP("this build has no CUDA backend (FKV_CUDA=OFF or no nvcc)");
#else
    QVERIFY(fkv::cuda_built());
    auto devices = fkv::cuda::list_devices();
    const std::string summary = fkv::backend_summary();
    if (!devices.ok()) {
      // The failure must say what is missing, and the summary must carry it rather than crash.
      QVERIFY(devices.message().find("no usable CUDA device") != std::string::npos);
      QVERIFY(summary.find("no usable CUDA device") != std::string::npos);
      QSKIP(qPrintable("no CUDA device here: " + QString::fromStdString(devices.message())));
    }
    QVERIFY(!devices->empty());
    for (const auto& d : *devices) {
      QVERIFY(!d.name.empty());
      QVERIFY(d.total_bytes > 0);
      QVERIFY(d.free_bytes <= d.total_bytes);
      QVERIFY(d.cc_major >= 5);
    }
    QVERIFY(summary.find((*devices)[0].name) != std::string::npos);
#endif
  }

  // Listing must neither move the thread's current device nor query (and so create a context on) any other device.
  void listingKeepsTheCurrentDevice() {
#ifndef FKV_HAVE_CUDA
    QSKIP("this build has no CUDA backend (FKV_CUDA=OFF or no nvcc)");
#else
    auto before = fkv::cuda::list_devices();
    if (!before.ok()) QSKIP(qPrintable("no CUDA device here: " + QString::fromStdString(before.message())));
    const int last = static_cast<int>(before->size()) - 1;
    auto ctx = fkv::cuda::DeviceContext::create(last);  // makes the last device current
    QVERIFY2(ctx.ok(), ctx.message().c_str());
    auto devices = fkv::cuda::list_devices();
    QVERIFY2(devices.ok(), devices.message().c_str());
    auto current = fkv::cuda::current_device();
    QVERIFY2(current.ok(), current.message().c_str());
    QCOMPARE(*current, last);
    for (const auto& d : *devices) QCOMPARE(d.memory_queried, d.index == last);
    QVERIFY((*devices)[static_cast<size_t>(last)].free_bytes > 0);
#endif
  }
};

QTEST_APPLESS_MAIN(TestCudaDevice)
#include "test_cuda_device.moc"
