// What compute backends this build and this machine offer, and which one a context runs on.
#pragma once

#include <string>
#include <string_view>

#include "fkv/options.h"
#include "fkv/status.h"

namespace fkv {

// True when the CUDA backend was compiled into this build.
bool cuda_built();

// e.g. "cpu (avx2); cuda 13.0 built, 1 device: NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" or
// "cpu (avx2); cuda 13.0 built, no usable device: cudaErrorNoDevice (...)" or "cpu (scalar); cuda not built".
std::string backend_summary();

struct BackendChoice {
  Backend kind = Backend::cpu;  // cpu or cuda, never automatic
  int device = 0;
  // Why "auto" ended on the CPU ("no usable CUDA device: ..."), so a user learns what was not used; empty otherwise.
  std::string note;
};

// Resolves a requested backend for a context running `policy` on CUDA device `device`.
// "cuda" fails with the reason and what to do instead when this build has no CUDA, no device can be used, the device
// index does not exist, or the policy needs the FreeKV pipeline, which runs on the CPU only so far (the CUDA
// backend attends to every page: policy "full"). "auto" takes CUDA when "cuda" would succeed, else the CPU with the
// reason in `note`.
Result<BackendChoice> choose_backend(Backend requested, Policy policy, int device);

}  // namespace fkv
