#include "runtime/backend_info.h"

#include <cstdio>

#include "backend/cpu/quant.h"

#ifdef FKV_HAVE_CUDA
#include "backend/cuda/device.h"
#endif

namespace fkv {

bool cuda_built() {
#ifdef FKV_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

std::string backend_summary() {
  std::string s = std::string("cpu (") + cpu::isa_name(cpu::active_isa()) + ")";
#ifdef FKV_HAVE_CUDA
  s += "; cuda " + cuda::runtime_version() + " built, ";
  auto devices = cuda::list_devices();
  if (!devices.ok()) return s + devices.message();
  s += std::to_string(devices->size()) + (devices->size() == 1 ? " device" : " devices");
  for (size_t i = 0; i < devices->size(); ++i) {
    const cuda::DeviceInfo& d = (*devices)[i];
    char mem[32];
    std::snprintf(mem, sizeof mem, "%.1f GiB", static_cast<double>(d.total_bytes) / (1u << 30));
    s += (i == 0 ? ": " : ", ") + d.name + " (sm_" + std::to_string(d.cc_major) + std::to_string(d.cc_minor) + ", " + mem + ")";
  }
  return s;
#else
  return s + "; cuda not built";
#endif
}

}  // namespace fkv
