#include "kv/virtual_layout.h"

#include <algorithm>
#include <cmath>

namespace fkv {

int local_window_begin(int n_pages, int sink_pages, int recent_pages) {
  const int sink_end = std::min(n_pages, sink_pages);
  return std::max(sink_end, n_pages - recent_pages);
}

int virtual_shifts(std::span<const int32_t> pages, int local_begin, std::vector<int>& shift) {
  const auto end = std::lower_bound(pages.begin(), pages.end(), local_begin);
  const int m = static_cast<int>(end - pages.begin());
  shift.resize(static_cast<size_t>(m));
  for (int j = 0; j < m; ++j) shift[static_cast<size_t>(j)] = local_begin - m + j - pages[static_cast<size_t>(j)];
  return m;
}

void rotation_by(std::span<const float> inv_freq, int64_t delta, float* cos_sin) {
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const double a = static_cast<double>(delta) * static_cast<double>(inv_freq[i]);
    cos_sin[2 * i] = static_cast<float>(std::cos(a));
    cos_sin[2 * i + 1] = static_cast<float>(std::sin(a));
  }
}

}  // namespace fkv
