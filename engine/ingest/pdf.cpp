// PDF text through poppler-cpp: one normalized text per page, joined by a blank line, with the offset where each page
// begins. Poppler's own diagnostics would go to stderr; they are caught instead and the first one goes into the error
// message of a PDF that fails to open.
//
// Reading order costs: poppler's layout analysis (the non-raw modes, text_list() too) removes overlapping duplicate
// words in time quadratic in the words that share a baseline, so a 43 KB page of 340,000 overlapping runs would take
// minutes. Each page is therefore first read in drawing order, which is linear, and that count decides: past
// max_page_chars the PDF is refused, past kMaxLayoutChars the drawing order is the page's text, else the layout
// analysis runs on a page small enough that its worst case stays a fraction of a second.
#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-page.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>

#include "ingest/extract.h"

namespace fkv::ingest {
namespace {

thread_local std::string t_first_poppler_error;  // the first diagnostic of the current extraction on this thread

void keep_poppler_error(const std::string& message, void* /*closure*/) {
  if (t_first_poppler_error.empty()) t_first_poppler_error = message;
}

void route_poppler_errors() {
  static std::once_flag once;
  std::call_once(once, [] { poppler::set_debug_error_function(keep_poppler_error, nullptr); });
}

std::string poppler_detail() {
  return t_first_poppler_error.empty() ? std::string() : " (poppler: " + t_first_poppler_error + ")";
}

std::string to_utf8_string(const poppler::ustring& s) {
  const poppler::byte_array bytes = s.to_utf8();
  return std::string(bytes.begin(), bytes.end());
}

int64_t count_invalid_utf8(std::string_view s) {
  int64_t n_invalid = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_sequence_length(s, i);
    n_invalid += len == 0 ? 1 : 0;
    i += len == 0 ? 1 : len;
  }
  return n_invalid;
}

// Pages with more characters than this skip the layout analysis: at this size its worst case (every word on one
// baseline, all overlapping) is about 0.4 s, and a real page of text holds a tenth of it.
constexpr int64_t kMaxLayoutChars = 50'000;

// What reading a document has cost so far, against IngestOptions' budget.
class PageBudget {
 public:
  PageBudget(const IngestOptions& options, int n_pages) : options_(options), n_pages_(n_pages) {}

  // A page of `n_chars` characters (as drawn), the `index`-th (0-based), may be read on.
  Status check_page(int index, int64_t n_chars) const {
    if (n_chars <= options_.max_page_chars) return Status();
    return err("PDF page ", index + 1, " of ", n_pages_, " holds ", n_chars, " characters, over the limit of ",
               options_.max_page_chars,
               " for one page (IngestOptions::max_page_chars); a page of real text holds a few tens of thousands, so "
               "this one is most likely made of overlapping copies of its text");
  }

  // After page `n_done` of n_pages: reports progress and checks the time spent.
  Status after_page(int n_done) const {
    if (options_.progress && !options_.progress(Progress{Stage::ingest, n_done, n_pages_})) {
      return err("PDF reading cancelled after ", n_done, " of ", n_pages_, " pages");
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    if (n_done == n_pages_ || seconds <= options_.max_seconds) return Status();
    char spent[32];
    std::snprintf(spent, sizeof spent, "%.1f", seconds);
    return err("PDF reading took ", spent, " s for ", n_done, " of ", n_pages_, " pages, over the limit of ",
               options_.max_seconds, " s (IngestOptions::max_seconds)");
  }

 private:
  using Clock = std::chrono::steady_clock;
  const IngestOptions& options_;
  int n_pages_;
  Clock::time_point start_ = Clock::now();
};

// The text of page `index` in reading order, or in drawing order when the page is too big for the layout analysis.
Result<std::string> page_text(const poppler::document& doc, int index, const PageBudget& budget) {
  const std::unique_ptr<poppler::page> page(doc.create_page(index));
  if (!page) return std::string();
  const poppler::ustring drawn = page->text(poppler::rectf(), poppler::page::raw_order_layout);
  const auto n_chars = static_cast<int64_t>(drawn.size());
  FKV_TRY(budget.check_page(index, n_chars));
  if (n_chars > kMaxLayoutChars) return to_utf8_string(drawn);
  // Reading order without the column padding of the physical layout: indentation spaces would only cost tokens.
  return to_utf8_string(page->text(poppler::rectf(), poppler::page::non_raw_non_physical_layout));
}

// Appends each page's text; a page without text begins where the next page with text begins (or at the end), so
// page_at() never lands on a blank page while text follows.
Status append_pages(const poppler::document& doc, const IngestOptions& options, Extracted& result) {
  const int n_pages = doc.pages();
  const PageBudget budget(options, n_pages);
  size_t n_blank_pending = 0;
  for (int i = 0; i < n_pages; ++i) {
    FKV_ASSIGN_OR_RETURN(const std::string raw, page_text(doc, i, budget));
    result.replaced_bytes += count_invalid_utf8(raw);
    const std::string text = normalize_text(raw);
    if (is_blank(text)) {
      ++n_blank_pending;
    } else {
      if (!result.text.empty()) result.text += "\n\n";
      result.page_offsets.insert(result.page_offsets.end(), n_blank_pending + 1,
                                 static_cast<int64_t>(result.text.size()));
      n_blank_pending = 0;
      result.text += text;
    }
    FKV_TRY(budget.after_page(i + 1));
  }
  result.page_offsets.insert(result.page_offsets.end(), n_blank_pending, static_cast<int64_t>(result.text.size()));
  return Status();
}

Result<Extracted> extract_pdf_unguarded(std::string_view bytes, const IngestOptions& options) {
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    return err("PDF of ", bytes.size(), " bytes, expected at most ", INT_MAX, " (the most poppler can load)");
  }
  // load_from_raw_data reads `bytes` in place; they outlive `doc`.
  const std::unique_ptr<poppler::document> doc(
      poppler::document::load_from_raw_data(bytes.data(), static_cast<int>(bytes.size())));
  if (!doc) return err("broken PDF: poppler could not open it", poppler_detail());
  if (doc->is_locked()) {
    return err("encrypted PDF: it needs a password to open, and password-protected documents are not supported");
  }
  const int n_pages = doc->pages();
  if (n_pages <= 0) return err("broken PDF: expected at least one page, found ", n_pages, poppler_detail());
  Extracted result;
  FKV_TRY(append_pages(*doc, options, result));
  if (is_blank(result.text)) {
    return err("PDF without extractable text: none of its ", n_pages,
               " page(s) holds text (a scanned document? run OCR on it first)");
  }
  result.title = clean_inline(to_utf8_string(doc->info_key("Title")));
  return result;
}

}  // namespace

Result<Extracted> extract_pdf(std::string_view bytes, const IngestOptions& options) {
  route_poppler_errors();
  t_first_poppler_error.clear();
  try {
    return extract_pdf_unguarded(bytes, options);
  } catch (const std::exception& e) {  // poppler-cpp documents no exceptions, but allocation can still fail
    return err("PDF could not be read: ", e.what());
  }
}

}  // namespace fkv::ingest
