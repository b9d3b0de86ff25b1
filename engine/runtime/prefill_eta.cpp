#include "fkv/prefill_eta.h"

#include <algorithm>
#include <cmath>

namespace fkv {

void PrefillEta::add(int64_t done, double seconds) {
  const double d = double(done);
  if (!started_) {
    started_ = true;
    d0_ = d;
    last_done_ = d;
    return;
  }
  if (d <= last_done_) return;  // a repeated report says nothing new
  last_done_ = d;
  const double x1 = d - d0_, x2 = (d * d - d0_ * d0_) / 2;
  s11_ += x1 * x1;
  s12_ += x1 * x2;
  s22_ += x2 * x2;
  s1t_ += x1 * seconds;
  s2t_ += x2 * seconds;
  ++n_;
}

// Least squares for t = a * x1 + b * x2; when that gives a negative term (noise early on), the best fit with that
// term at zero.
bool PrefillEta::fit(double& a, double& b) const {
  if (n_ < 2) return false;
  const double det = s11_ * s22_ - s12_ * s12_;
  if (std::abs(det) > 1e-12 * s11_ * s22_) {
    a = (s1t_ * s22_ - s2t_ * s12_) / det;
    b = (s2t_ * s11_ - s1t_ * s12_) / det;
    if (a >= 0 && b >= 0) return true;
  }
  const double only_a = s11_ > 0 ? s1t_ / s11_ : 0;  // b = 0: a constant rate
  const double only_b = s22_ > 0 ? s2t_ / s22_ : 0;  // a = 0: all attention
  const auto residual = [&](double ca, double cb) {  // up to a constant: sum (t - ca x1 - cb x2)^2 - sum t^2
    return ca * ca * s11_ + 2 * ca * cb * s12_ + cb * cb * s22_ - 2 * ca * s1t_ - 2 * cb * s2t_;
  };
  if (residual(std::max(only_a, 0.0), 0) <= residual(0, std::max(only_b, 0.0))) {
    a = std::max(only_a, 0.0);
    b = 0;
  } else {
    a = 0;
    b = std::max(only_b, 0.0);
  }
  return a > 0 || b > 0;
}

double PrefillEta::seconds_left(int64_t total) const {
  double a = 0, b = 0;
  if (!fit(a, b)) return -1;
  const double d = last_done_, t = double(total);
  if (t <= d) return 0;
  return a * (t - d) + b * (t * t - d * d) / 2;
}

}  // namespace fkv
