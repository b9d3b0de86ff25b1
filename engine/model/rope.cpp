#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace fkv {

namespace {

// YaRN (Peng et al., "YaRN: Efficient Context Window Extension of Large Language Models", arXiv 2309.00071).
//
// Pair i rotates at freq_i = base^(-2i/d), so its wavelength is 2*pi / freq_i tokens and it completes
// L / wavelength turns over the original training context L. Pairs that turn many times within L (high
// frequencies) have seen every angle during training and carry fine local position: stretching them would blur
// neighbouring tokens, so they keep their frequency (extrapolation). Pairs that turn less than once within L have
// never seen the angles a longer context produces: they are interpolated, freq / factor, so positions up to
// factor * L map into angles they know. Between the two, the paper blends linearly in the pair index, between the
// pair that turns beta_fast times and the one that turns beta_slow times over L.
//
// Solving L / (2*pi * base^(2i/d)) = n for i gives the pair that turns n times:
//   i(n) = d * ln(L / (2*pi * n)) / (2 * ln(base)).
// Published implementations round the range outwards (floor of i(beta_fast), ceil of i(beta_slow)) and clamp it to
// [0, d - 1]; models fine-tuned with YaRN were trained with those boundaries, so they are kept exactly.
double yarn_pair_for_turns(double n_turns, int head_dim, double base, int orig_ctx) {
  return head_dim * std::log(orig_ctx / (2.0 * std::numbers::pi * n_turns)) / (2.0 * std::log(base));
}

// Weight of the interpolated frequency for pair i: 0 at or below ramp.low, 1 at or above ramp.high.
double yarn_interp_weight(const YarnRamp& ramp, int i) {
  const double span = std::max(ramp.high - ramp.low, 1e-3);  // equal bounds: a step instead of a division by 0
  return std::clamp((i - ramp.low) / span, 0.0, 1.0);
}

double llama3_scaled(const ModelConfig& c, double freq) {
  const double wavelen = 2.0 * M_PI / freq;
  const double lo_wavelen = c.rope_orig_ctx / c.rope_low_freq_factor;
  const double hi_wavelen = c.rope_orig_ctx / c.rope_high_freq_factor;
  if (wavelen > lo_wavelen) return freq / c.rope_factor;
  if (wavelen < hi_wavelen) return freq;
  const double smooth =
      (c.rope_orig_ctx / wavelen - c.rope_low_freq_factor) / (c.rope_high_freq_factor - c.rope_low_freq_factor);
  return (1.0 - smooth) * freq / c.rope_factor + smooth * freq;
}

}  // namespace

YarnRamp yarn_ramp(const ModelConfig& c, float base) {
  const double low = std::floor(yarn_pair_for_turns(c.rope_yarn_beta_fast, c.head_dim, base, c.rope_orig_ctx));
  const double high = std::ceil(yarn_pair_for_turns(c.rope_yarn_beta_slow, c.head_dim, base, c.rope_orig_ctx));
  return {std::max(low, 0.0), std::min(high, static_cast<double>(c.head_dim - 1))};
}

std::vector<float> rope_inv_freq(const ModelConfig& c, const float* divisors, float base, bool scaled) {
  const int half = c.head_dim / 2;
  const YarnRamp ramp = c.rope_scaling == RopeScaling::Yarn ? yarn_ramp(c, base) : YarnRamp{};
  std::vector<float> f(static_cast<size_t>(half));  // (head_dim / 2)
  for (int i = 0; i < half; ++i) {
    double freq = std::pow(static_cast<double>(base), -2.0 * i / c.head_dim);
    if (scaled && divisors != nullptr) {
      freq /= divisors[i];  // llama3 files carry the per-pair divisors as a tensor
    } else if (scaled && c.rope_scaling == RopeScaling::Linear) {
      freq /= c.rope_factor;
    } else if (scaled && c.rope_scaling == RopeScaling::Llama3) {
      freq = llama3_scaled(c, freq);
    } else if (scaled && c.rope_scaling == RopeScaling::Yarn) {
      // (1 - w) * freq + w * freq / factor, written so that w = 0 or factor = 1 leaves freq exactly as it was.
      freq *= 1.0 - yarn_interp_weight(ramp, i) * (1.0 - 1.0 / c.rope_factor);
    }
    f[static_cast<size_t>(i)] = static_cast<float>(freq);
  }
  return f;
}

float rope_mscale(const ModelConfig& c, bool scaled) {
  if (!scaled || c.rope_scaling != RopeScaling::Yarn) return 1.f;
  // Stretched positions flatten attention (its entropy grows with the context); the paper restores the softmax
  // temperature by scaling q and k each by sqrt(1/t) = 0.1 ln(factor) + 1, fitted on LLaMA models. No stretch
  // (factor <= 1) needs no correction.
  const double mscale = c.rope_factor > 1.f ? 0.1 * std::log(static_cast<double>(c.rope_factor)) + 1.0 : 1.0;
  return static_cast<float>(mscale * c.rope_attn_factor);
}

}  // namespace fkv
