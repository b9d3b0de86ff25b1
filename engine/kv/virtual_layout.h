// Context memory's layout (ContextParams::context_memory): a query past the model's trained window attends its sink
// pages, its retrieved pages and its local window as if they lay side by side. The local window keeps its true
// positions; every selected page before it is moved, in document order, to sit right before it, so each distance the
// query sees is at most the budget, far inside the trained window (InfiniteHiP's ordering; ../LONGDOCS.md).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace fkv {

// The first page of the local window for a context of n_pages pages under a budget of sink_pages + recent_pages
// (the same split as the sparse policies' ranges).
int local_window_begin(int n_pages, int sink_pages, int recent_pages);

// For one KV head's selected pages (ascending page ids), the entries before local_begin are the moved ones: entry j
// of m moves to page local_begin - m + j, a shift of that minus its page. Writes the shifts (in pages, >= 0) of the
// moved entries to `shift` and returns m. A selection that holds every page before local_begin shifts nothing.
int virtual_shifts(std::span<const int32_t> pages, int local_begin, std::vector<int>& shift);

// cos/sin pairs ((inv_freq.size(), 2), as cpu::rope_head takes them) of a rotation by `delta` positions. The angles
// are computed in double precision: a book's positions reach 2^20, where a float angle is off by a tenth of a radian.
void rotation_by(std::span<const float> inv_freq, int64_t delta, float* cos_sin);

}  // namespace fkv
