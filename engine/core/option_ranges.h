// Ranges several option structs share (the public ModelOptions, the context's, the KV cache's and the budget's), so
// each is checked in one place and refused with the same words wherever it is given.
#pragma once

#include "fkv/status.h"

namespace fkv {

Status check_page_size(int page_size);  // 1..4096 tokens
Status check_threads(int n_threads);    // 0 (automatic) or 1..1024
Status check_device(int device);        // a CUDA device index, >= 0

}  // namespace fkv
