#include "runtime/rope.h"

#include <cmath>

namespace fkv {

std::vector<float> rope_inv_freq(const ModelConfig& c, const float* divisors, float base, bool scaled) {
  const int half = c.head_dim / 2;
  std::vector<float> f(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    double freq = std::pow(static_cast<double>(base), -2.0 * i / c.head_dim);
    if (scaled && divisors != nullptr) {
      freq /= divisors[i];  // llama3 files carry the per-pair divisors as a tensor
    } else if (scaled && c.rope_scaling == RopeScaling::Linear) {
      freq /= c.rope_factor;
    } else if (scaled && c.rope_scaling == RopeScaling::Llama3) {
      const double wavelen = 2.0 * M_PI / freq;
      const double lo_wavelen = c.rope_orig_ctx / c.rope_low_freq_factor;
      const double hi_wavelen = c.rope_orig_ctx / c.rope_high_freq_factor;
      if (wavelen > lo_wavelen) {
        freq /= c.rope_factor;
      } else if (wavelen >= hi_wavelen) {
        const double smooth = (c.rope_orig_ctx / wavelen - c.rope_low_freq_factor) /
                              (c.rope_high_freq_factor - c.rope_low_freq_factor);
        freq = (1.0 - smooth) * freq / c.rope_factor + smooth * freq;
      }
    }
    f[static_cast<size_t>(i)] = static_cast<float>(freq);
  }
  return f;
}

}  // namespace fkv
