// CUDA device discovery. Compiled only when the CUDA toolkit is found (FKV_HAVE_CUDA); the runtime asks
// backend_summary() (runtime/backend_info.h), which works in every build.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "fkv/status.h"

namespace fkv::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0;  // compute capability
  int cc_minor = 0;
  size_t total_bytes = 0;
  size_t free_bytes = 0;
};

// The CUDA devices this process can use. No driver or no device is an error whose message says which.
Result<std::vector<DeviceInfo>> list_devices();

// Version of the CUDA runtime this build links, e.g. "13.0".
std::string runtime_version();

}  // namespace fkv::cuda
