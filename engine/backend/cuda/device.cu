#include <cuda_runtime.h>

#include "backend/cuda/device.h"

namespace fkv::cuda {

Result<std::vector<DeviceInfo>> list_devices() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return err("no usable CUDA device: ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
  }
  FKV_ASSIGN_OR_RETURN(const int current, current_device());
  std::vector<DeviceInfo> out;
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if ((e = cudaGetDeviceProperties(&p, i)) != cudaSuccess)
      return err("cannot read the properties of CUDA device ", i, ": ", cudaGetErrorString(e));
    DeviceInfo d;
    d.index = i;
    d.name = p.name;
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    d.total_bytes = p.totalGlobalMem;
    // cudaMemGetInfo reads the current device, so no other device is made current (nor given a context) for it.
    size_t free_b = 0, total_b = 0;
    if (i == current) {
      d.memory_queried = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
      if (d.memory_queried) {
        d.free_bytes = free_b;
      } else {
        cudaGetLastError();  // free memory stays unknown; the error must not surface at the next launch check
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

Result<int> current_device() {
  int device = 0;
  const cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return err("cudaGetDevice: ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
  }
  return device;
}

std::string runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

}  // namespace fkv::cuda
