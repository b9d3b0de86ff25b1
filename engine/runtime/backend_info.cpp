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
  std::string s = std::string("cpu (") + cpu::active_isa_label() + ")";
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

namespace {

// Why a context with this policy cannot run on CUDA device `device`; empty when it can.
std::string cuda_unusable_reason(Policy policy, int device) {
  if (!cuda_built()) return "this build has no CUDA backend (configured with FKV_CUDA=OFF or without nvcc)";
  if (policy != Policy::full) {
    return "policy '" + std::string(policy_name(policy)) +
           "' needs the FreeKV pipeline on the GPU, which is not wired to the CUDA backend yet (it runs policy full)";
  }
#ifdef FKV_HAVE_CUDA
  auto devices = cuda::list_devices();
  if (!devices.ok()) return devices.message();  // "no usable CUDA device: ..." with the driver's reason
  if (device < 0 || static_cast<size_t>(device) >= devices->size()) {
    return "CUDA device " + std::to_string(device) + " does not exist (this machine has " +
           std::to_string(devices->size()) + ")";
  }
#else
  (void)device;
#endif
  return {};
}

}  // namespace

Result<BackendChoice> choose_backend(Backend requested, Policy policy, int device) {
  BackendChoice c;
  c.device = device;
  if (requested == Backend::cpu) return c;
  const std::string reason = cuda_unusable_reason(policy, device);
  if (reason.empty()) {
    c.kind = Backend::cuda;
    return c;
  }
  if (requested == Backend::cuda) return err("backend cuda: ", reason, "; use backend cpu (--backend cpu) instead");
  c.note = "auto: " + reason + "; running on the CPU";
  return c;
}

}  // namespace fkv
