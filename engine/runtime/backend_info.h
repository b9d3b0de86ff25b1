// What compute backends this build and this machine offer, in one line for `freekv --version` and `freekv info`.
#pragma once

#include <string>

namespace fkv {

// True when the CUDA backend was compiled into this build.
bool cuda_built();

// e.g. "cpu (avx2); cuda 13.0 built, 1 device: NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" or
// "cpu (avx2); cuda 13.0 built, no usable device: cudaErrorNoDevice (...)" or "cpu (scalar); cuda not built".
std::string backend_summary();

}  // namespace fkv
