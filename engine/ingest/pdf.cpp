// PDF text through poppler-cpp: one normalized text per page, joined by a blank line, with the offset where each page
// begins. Poppler's own diagnostics would go to stderr; they are caught instead and the first one goes into the error
// message of a PDF that fails to open. This file is left out of the fuzz build (poppler is fuzzed by its own project).
#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-page.h>

#include <climits>
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

// Appends each page's text; a page without text begins where the next page with text begins (or at the end), so
// page_at() never lands on a blank page while text follows.
void append_pages(const poppler::document& doc, Extracted& result) {
  const int n_pages = doc.pages();
  size_t n_blank_pending = 0;
  for (int i = 0; i < n_pages; ++i) {
    const std::unique_ptr<poppler::page> page(doc.create_page(i));
    // Reading order without the column padding of the physical layout: indentation spaces would only cost tokens.
    const std::string raw =
        page ? to_utf8_string(page->text(poppler::rectf(), poppler::page::non_raw_non_physical_layout)) : std::string();
    result.replaced_bytes += count_invalid_utf8(raw);
    const std::string page_text = normalize_text(raw);
    if (is_blank(page_text)) {
      ++n_blank_pending;
      continue;
    }
    if (!result.text.empty()) result.text += "\n\n";
    result.page_offsets.insert(result.page_offsets.end(), n_blank_pending + 1,
                               static_cast<int64_t>(result.text.size()));
    n_blank_pending = 0;
    result.text += page_text;
  }
  result.page_offsets.insert(result.page_offsets.end(), n_blank_pending, static_cast<int64_t>(result.text.size()));
}

Result<Extracted> extract_pdf_unguarded(std::string_view bytes) {
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
  append_pages(*doc, result);
  if (is_blank(result.text)) {
    return err("PDF without extractable text: none of its ", n_pages,
               " page(s) holds text (a scanned document? run OCR on it first)");
  }
  result.title = clean_inline(to_utf8_string(doc->info_key("Title")));
  return result;
}

}  // namespace

Result<Extracted> extract_pdf(std::string_view bytes) {
  route_poppler_errors();
  t_first_poppler_error.clear();
  try {
    return extract_pdf_unguarded(bytes);
  } catch (const std::exception& e) {  // poppler-cpp documents no exceptions, but allocation can still fail
    return err("PDF could not be read: ", e.what());
  }
}

}  // namespace fkv::ingest
