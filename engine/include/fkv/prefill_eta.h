// The time left of a prefill, from a model of its cost rather than its average rate. Each token's forward pass costs
// the same weights but attends to every token before it, so a token at position p takes about a + b * p seconds and
// the rate falls as the context grows: an average over the first part of a long prefill promises too little time
// (a 4.5-minute prefill was shown as 2:21 left). The model is fitted by least squares to the (tokens done, seconds)
// reports so far: cumulative time t(d) = a * (d - d0) + b * (d^2 - d0^2) / 2, with a, b >= 0 (b is about 0 for a
// retrieval prefill, whose cost per token is flat). The desktop's progress bar and the CLI's progress line use it.
#pragma once

#include <cstdint>

namespace fkv {

class PrefillEta {
 public:
  // A report: `done` tokens after `seconds` since the prefill started (its first report is the origin d0, 0 s).
  void add(int64_t done, double seconds);
  // Seconds left to reach `total` tokens; negative when there is not enough to go on yet (fewer than two reports past
  // the origin).
  double seconds_left(int64_t total) const;
  void reset() { *this = PrefillEta{}; }

 private:
  bool fit(double& a, double& b) const;

  bool started_ = false;
  double d0_ = 0;
  int n_ = 0;
  // Sums of the normal equations over the reports: x1 = d - d0, x2 = (d^2 - d0^2) / 2, t = seconds.
  double s11_ = 0, s12_ = 0, s22_ = 0, s1t_ = 0, s2t_ = 0;
  double last_done_ = 0;
};

}  // namespace fkv
