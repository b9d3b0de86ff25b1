// libFuzzer target for PDF ingestion: our use of poppler-cpp (its diagnostics, its text in both reading modes, the
// page loop), the page and time budgets and the progress reports. Poppler itself is a system library without
// instrumentation here (it is fuzzed by its own project), so coverage guides the fuzzer through pdf.cpp and the
// text normalization behind it; sanitizers still check every byte our code touches.
//
// Any input must either fail with a message naming the input or give a document whose invariants hold: valid,
// normalized UTF-8 text, one page offset per page in order and inside the text, and a progress report per page, in
// order, the last one for the last page. Budgets are tight so a dense input is refused instead of stalling the run.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_checks.h"
#include "ingest/extract.h"
#include "ingest/ingest.h"

namespace {

using fuzzcheck::valid_utf8;

struct ProgressLog {
  int64_t n_reports = 0;
  int64_t last_done = 0;
  int64_t total = -1;  // the page count every report must repeat
};

void check_pages(const fkv::IngestedDocument& d, const ProgressLog& log) {
  if (d.page_offsets.empty() || static_cast<int64_t>(d.page_offsets.size()) != log.total) __builtin_trap();
  if (log.n_reports != log.total || log.last_done != log.total) __builtin_trap();
  int64_t last = 0;
  for (const int64_t offset : d.page_offsets) {
    if (offset < last || offset > static_cast<int64_t>(d.text.size())) __builtin_trap();
    last = offset;
  }
  if (d.page_offsets.front() != 0) __builtin_trap();  // the first page with text begins the text
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  ProgressLog log;
  fkv::IngestOptions options;
  options.max_page_chars = 20'000;
  options.max_seconds = 2;
  options.progress = [&log](const fkv::Progress& p) {
    if (p.stage != fkv::Stage::ingest || p.done != log.last_done + 1 || p.done > p.total) __builtin_trap();
    if (log.total >= 0 && p.total != log.total) __builtin_trap();
    log.total = p.total;
    log.last_done = p.done;
    ++log.n_reports;
    return true;
  };
  const auto r = fkv::ingest_bytes(bytes, "pdf", options);
  if (!r.ok()) {
    if (r.message().rfind("pdf input: ", 0) != 0) __builtin_trap();  // errors name the input
    return 0;
  }
  const fkv::IngestedDocument& d = *r;
  if (d.format != "pdf" || d.text.empty() || !valid_utf8(d.text) || !valid_utf8(d.title)) __builtin_trap();
  if (fkv::ingest::normalize_text(d.text) != d.text) __builtin_trap();
  if (d.replaced_bytes < 0 || d.source_bytes != static_cast<int64_t>(size)) __builtin_trap();
  check_pages(d, log);
  return 0;
}
