// Wall time for the timings the engine reports (prefill_s, decode_s, select_s, ...): a steady clock, so a clock
// change during a long prefill cannot make a duration negative.
#pragma once

#include <chrono>

namespace fkv {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Seconds on the steady clock's own scale, for code that subtracts two readings.
inline double now_seconds() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

}  // namespace fkv
