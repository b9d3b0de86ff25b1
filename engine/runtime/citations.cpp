#include "runtime/citations.h"

#include <algorithm>

namespace fkv {

namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }
bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The passage's words: widened to whole words (a page boundary falls inside one), whitespace collapsed, cut at a
// word near `limit` bytes.
std::string snippet_of(const std::string& text, int64_t begin, int64_t end, size_t limit) {
  constexpr int64_t kWidenBytes = 32;
  const int64_t n = static_cast<int64_t>(text.size());
  begin = std::clamp<int64_t>(begin, 0, n);
  end = std::clamp<int64_t>(end, begin, n);
  if (begin < n && !is_space(text[begin])) {
    for (int64_t k = 0; k < kWidenBytes && begin > 0 && !is_space(text[begin - 1]); ++k) --begin;
  }
  if (end > 0 && !is_space(text[end - 1])) {
    for (int64_t k = 0; k < kWidenBytes && end < n && !is_space(text[end]); ++k) ++end;
  }
  while (begin > 0 && is_continuation(text[begin])) --begin;
  while (end < n && is_continuation(text[end])) ++end;
  std::string out;
  out.reserve(std::min<size_t>(static_cast<size_t>(end - begin), limit + 8));
  for (int64_t i = begin; i < end; ++i) {
    if (!is_space(text[i])) {
      out += text[i];
    } else if (!out.empty() && out.back() != ' ') {
      out += ' ';
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() <= limit) return out;
  size_t cut = out.rfind(' ', limit);
  if (cut == std::string::npos || cut < limit / 2) {
    cut = limit;
    while (cut > 0 && is_continuation(out[cut])) --cut;
  }
  out.resize(cut);
  return out + "…";
}

// "Page 12 · Termination": the last page start and the last heading at or before `offset`.
std::string where_of(const DocumentContent& doc, int64_t offset) {
  const DocumentSection* page = nullptr;
  const DocumentSection* heading = nullptr;
  for (const DocumentSection& s : doc.sections) {
    if (s.char_offset > offset) break;
    (s.is_page ? page : heading) = &s;
  }
  std::string out = page != nullptr ? page->title : std::string();
  if (heading != nullptr) out += (out.empty() ? "" : " · ") + heading->title;
  return out;
}

struct Passage {
  int first = 0, last = 0;  // pages
  int64_t count = 0;        // of its most chosen page
};

}  // namespace

std::vector<TextRange> page_text_ranges(const DocumentContent& content, int page) {
  std::vector<TextRange> out;
  const int64_t page_size = std::max(1, content.page_size);
  const int64_t a = page * page_size, b = a + page_size;  // context positions [a, b)
  const auto& spans = content.spans;
  auto it = std::upper_bound(spans.begin(), spans.end(), a,
                             [](int64_t pos, const DocumentSpan& s) { return pos < s.token_end; });
  for (; it != spans.end() && it->token_begin < b; ++it) {
    const int64_t n = it->token_end - it->token_begin;
    if (n <= 0) continue;
    const int64_t t0 = std::max<int64_t>(a, it->token_begin) - it->token_begin;
    const int64_t t1 = std::min<int64_t>(b, it->token_end) - it->token_begin;
    const int64_t bytes = it->char_end - it->char_begin;
    const TextRange r{it->char_begin + bytes * t0 / n, it->char_begin + bytes * t1 / n};
    if (r.end > r.begin) out.push_back(r);
  }
  return out;
}

CitationTally::CitationTally(TelemetryObserver* forward, Policy policy, const Budget& budget)
    : forward_(forward),
      retrieves_(policy != Policy::full && policy != Policy::streaming),
      sink_pages_(budget.sink_pages()),
      recent_pages_(std::max(budget.recent_pages(), 1)) {}

// Retrieved pages as the desktop's panels count them (fkv/events.h).
void CitationTally::on_layer_step(const LayerStepEvent& e) {
  if (forward_ != nullptr) forward_->on_layer_step(e);
  if (!retrieves_ || e.sel_indptr == nullptr || e.sel_pages == nullptr || e.n_kv_heads <= 0) return;
  choices_ += e.n_kv_heads;
  const int end = retrievable_end(e, recent_pages_);
  if (end <= sink_pages_) return;
  if (counts_.size() < static_cast<size_t>(end)) counts_.resize(static_cast<size_t>(end), 0);
  for_each_selected_page(e, sink_pages_, end, [this](int p) { ++counts_[static_cast<size_t>(p)]; });
}

std::vector<Citation> CitationTally::citations(const DocumentContent& doc, int max_citations) const {
  std::vector<Citation> out;
  if (max_citations <= 0 || choices_ == 0) return out;
  // The document's pages that retrieval could choose; if it chose every one of them every time, it told nothing.
  std::vector<int> pages;
  bool all_always = true;
  for (int p = sink_pages_; p < static_cast<int>(counts_.size()); ++p) {
    if (page_text_ranges(doc, p).empty()) continue;
    all_always = all_always && counts_[static_cast<size_t>(p)] == choices_;
    if (counts_[static_cast<size_t>(p)] > 0) pages.push_back(p);
  }
  if (all_always) return out;
  std::stable_sort(pages.begin(), pages.end(),
                   [&](int a, int b) { return counts_[static_cast<size_t>(a)] > counts_[static_cast<size_t>(b)]; });
  const size_t scan = std::min(pages.size(), static_cast<size_t>(max_citations) * kMaxPassagePages);
  std::vector<Passage> passages;
  for (size_t i = 0; i < scan; ++i) {
    const int p = pages[i];
    auto joins = std::find_if(passages.begin(), passages.end(), [&](const Passage& s) {
      return s.last - s.first + 1 < kMaxPassagePages && (p == s.first - 1 || p == s.last + 1);
    });
    if (joins != passages.end()) {
      joins->first = std::min(joins->first, p);
      joins->last = std::max(joins->last, p);
    } else if (passages.size() < static_cast<size_t>(max_citations)) {
      passages.push_back({p, p, counts_[static_cast<size_t>(p)]});
    }
  }
  for (const Passage& s : passages) {
    const std::vector<TextRange> first = page_text_ranges(doc, s.first);
    const std::vector<TextRange> last = page_text_ranges(doc, s.last);
    Citation c;
    c.char_begin = first.front().begin;
    c.char_end = last.back().end;
    c.weight = static_cast<float>(static_cast<double>(s.count) / static_cast<double>(choices_));
    c.where = where_of(doc, c.char_begin);
    c.snippet = snippet_of(doc.text, c.char_begin, c.char_end, kSnippetBytes);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace fkv
