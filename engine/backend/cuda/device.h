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
  size_t free_bytes = 0;  // known only where memory_queried
  // Set for the calling thread's current device only: asking any other device for its free memory would create a
  // CUDA context there (hundreds of MiB of device memory) on a GPU this process may never use.
  bool memory_queried = false;
};

// The CUDA devices this process can use. No driver or no device is an error whose message says which. The calling
// thread's current device stays as it was.
Result<std::vector<DeviceInfo>> list_devices();

// The calling thread's current CUDA device (0 until something makes another current).
Result<int> current_device();

// Version of the CUDA runtime this build links, e.g. "13.0".
std::string runtime_version();

}  // namespace fkv::cuda
