// libFuzzer target for the text, markdown and HTML ingesters (PDF has fuzz_pdf). The first byte picks the format; the
// rest is the file.
// Any input must either fail with a message naming the input or give a document whose every invariant holds: valid
// UTF-8, normalized (re-normalizing changes nothing), headings ordered and inside the text, no pages. Hangs show up as
// libFuzzer timeouts, so the scanners' linear time is checked too.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_checks.h"
#include "ingest/extract.h"
#include "ingest/ingest.h"

namespace {

using fuzzcheck::valid_utf8;

bool normalized(std::string_view text) {
  if (!valid_utf8(text)) return false;
  for (const char c : text) {
    if (static_cast<uint8_t>(c) < 0x20 && c != '\n' && c != '\t') return false;
  }
  if (text.starts_with('\n') || text.ends_with('\n') || text.ends_with(' ') || text.ends_with('\t')) return false;
  if (text.find("\n\n\n\n") != std::string_view::npos || text.find(" \n") != std::string_view::npos ||
      text.find("\t\n") != std::string_view::npos) {
    return false;
  }
  return fkv::ingest::normalize_text(text) == text;
}

void check_headings(const fkv::IngestedDocument& d) {
  int64_t last = 0;
  for (size_t i = 0; i < d.headings.size(); ++i) {
    const fkv::Heading& h = d.headings[i];
    if (h.char_offset < last || h.char_offset > static_cast<int64_t>(d.text.size())) __builtin_trap();
    if (h.level < 1 || h.level > 6 || h.text.empty() || h.text.size() > fkv::kMaxHeadingBytes) __builtin_trap();
    if (!valid_utf8(h.text)) __builtin_trap();
    // The last heading at or before a heading's own offset is that heading or one sharing its offset.
    if (fkv::heading_at(d, h.char_offset) < static_cast<int>(i)) __builtin_trap();
    last = h.char_offset;
  }
  if (fkv::heading_at(d, static_cast<int64_t>(d.text.size())) != static_cast<int>(d.headings.size()) - 1) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr std::string_view kFormats[] = {"text", "markdown", "html"};
  const std::string_view format = kFormats[data[0] % 3];
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto r = fkv::ingest_bytes(bytes, format);
  if (!r.ok()) {
    if (r.message().rfind(std::string(format) + " input: ", 0) != 0) __builtin_trap();  // errors name the input
    return 0;
  }
  const fkv::IngestedDocument& d = *r;
  if (d.format != format || !normalized(d.text) || d.text.empty()) __builtin_trap();
  if (!valid_utf8(d.title) || !d.page_offsets.empty() || fkv::page_at(d, 0) != 0) __builtin_trap();
  if (d.replaced_bytes < 0 || d.replaced_bytes > d.source_bytes ||
      d.source_bytes != static_cast<int64_t>(bytes.size())) {
    __builtin_trap();
  }
  check_headings(d);
  return 0;
}
