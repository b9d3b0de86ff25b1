#include "prefill_eta.h"

#include <algorithm>
#include <cmath>

void PrefillEta::add(int64_t done, double seconds) {
  const double d = double(done);
  if (!m_started) {
    m_started = true;
    m_d0 = d;
    m_lastDone = d;
    return;
  }
  if (d <= m_lastDone) return;  // a repeated report says nothing new
  m_lastDone = d;
  const double x1 = d - m_d0, x2 = (d * d - m_d0 * m_d0) / 2;
  m_s11 += x1 * x1;
  m_s12 += x1 * x2;
  m_s22 += x2 * x2;
  m_s1t += x1 * seconds;
  m_s2t += x2 * seconds;
  ++m_n;
}

// Least squares for t = a * x1 + b * x2; when that gives a negative term (noise early on), the best fit with that
// term at zero.
bool PrefillEta::fit(double& a, double& b) const {
  if (m_n < 2) return false;
  const double det = m_s11 * m_s22 - m_s12 * m_s12;
  if (std::abs(det) > 1e-12 * m_s11 * m_s22) {
    a = (m_s1t * m_s22 - m_s2t * m_s12) / det;
    b = (m_s2t * m_s11 - m_s1t * m_s12) / det;
    if (a >= 0 && b >= 0) return true;
  }
  const double onlyA = m_s11 > 0 ? m_s1t / m_s11 : 0;  // b = 0: a constant rate
  const double onlyB = m_s22 > 0 ? m_s2t / m_s22 : 0;  // a = 0: all attention
  const auto residual = [&](double ca, double cb) {  // up to a constant: sum (t - ca x1 - cb x2)^2 - sum t^2
    return ca * ca * m_s11 + 2 * ca * cb * m_s12 + cb * cb * m_s22 - 2 * ca * m_s1t - 2 * cb * m_s2t;
  };
  if (residual(std::max(onlyA, 0.0), 0) <= residual(0, std::max(onlyB, 0.0))) {
    a = std::max(onlyA, 0.0);
    b = 0;
  } else {
    a = 0;
    b = std::max(onlyB, 0.0);
  }
  return a > 0 || b > 0;
}

double PrefillEta::secondsLeft(int64_t total) const {
  double a = 0, b = 0;
  if (!fit(a, b)) return -1;
  const double d = m_lastDone, t = double(total);
  if (t <= d) return 0;
  return a * (t - d) + b * (t * t - d * d) / 2;
}
