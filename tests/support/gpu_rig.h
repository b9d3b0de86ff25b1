// Shared by the gpu-labelled suites: the device context, made once per process, and the skip that says why a test
// cannot run here. In a build without the CUDA backend every device test skips with that reason.
#pragma once

#include <QString>
#include <QtTest>

#ifdef FKV_HAVE_CUDA
#include <optional>

#include "backend/cuda/cuda_util.h"
#include "backend/cuda/device.h"

#define FKV_QVERIFY_OK(expr)                 \
  do {                                       \
    const ::fkv::Status s_ = (expr);         \
    QVERIFY2(s_.ok(), s_.message().c_str()); \
  } while (0)

namespace fkvtest {

// The first device's context; empty, with the reason, when this machine has no usable device.
struct Gpu {
  std::optional<fkv::cuda::DeviceContext> ctx;
  QString why_not;
};

inline Gpu& gpu() {
  static Gpu g;
  return g;
}

// For initTestCase(): finds the device and makes its context. A listed device that gives no context is an error (the
// returned Status), not a reason to skip.
inline fkv::Status initGpu() {
  auto devices = fkv::cuda::list_devices();
  if (!devices.ok()) {
    gpu().why_not = "no CUDA device here: " + QString::fromStdString(devices.message());
    return {};
  }
  auto ctx = fkv::cuda::DeviceContext::create(0);
  if (!ctx.ok()) return ctx.status();
  gpu().ctx.emplace(std::move(ctx).value());
  return {};
}

}  // namespace fkvtest

#define FKV_NEED_DEVICE() \
  if (!fkvtest::gpu().ctx) QSKIP(qPrintable(fkvtest::gpu().why_not))
#else
#define FKV_NEED_DEVICE() QSKIP("this build has no CUDA backend (FKV_CUDA=OFF or no nvcc)")
#endif
