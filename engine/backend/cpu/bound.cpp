#include <algorithm>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"

namespace fkv::cpu {

namespace avx2 {
float page_bound(const float* q, int group, const float* mn, const float* mx, int head_dim);
}

namespace ref {
float page_bound(const float* q, int group, const float* mn, const float* mx, int head_dim) {
  float s = 0.f;
  for (int g = 0; g < group; ++g)
    for (int c = 0; c < head_dim; ++c) {
      const float qc = q[g * head_dim + c];
      s += std::max(qc * mn[c], qc * mx[c]);
    }
  return s;
}
}  // namespace ref

float page_bound(const float* q, int group, const float* mn, const float* mx, int head_dim) {
  if (active_isa() == Isa::Avx2) return avx2::page_bound(q, group, mn, mx, head_dim);
  return ref::page_bound(q, group, mn, mx, head_dim);
}

}  // namespace fkv::cpu
