// Internals of ingestion shared by the format extractors: decoding bytes to UTF-8, normalizing text while keeping
// offsets meaningful, and the per-format extractors. Not part of the public API (see ingest.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fkv/status.h"
#include "ingest/document.h"
#include "ingest/ingest.h"

namespace fkv::ingest {

// ---- UTF-8 (text.cpp) ----

// Length of the strictly valid (RFC 3629) UTF-8 sequence at s[pos], 1..4; 0 when the bytes there are not one.
size_t utf8_sequence_length(std::string_view s, size_t pos);
// Appends code point `cp` as UTF-8; anything that is not a Unicode scalar value becomes U+FFFD.
void append_utf8(std::string& out, uint32_t cp);
// The longest prefix of `s` no longer than `max_bytes` that does not end inside a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, size_t max_bytes);
// What windows-1252 byte `b` means; the five undefined bytes of 0x80..0x9F map to themselves (C1 controls).
uint32_t windows1252_code_point(uint8_t b);

// ---- Decoding (text.cpp) ----

// A charset a document declares for itself (HTML <meta charset>); Auto detects from the bytes.
enum class Charset { Auto, Utf8, Windows1252, Latin9 };

// Maps a charset label ("windows-1252", "ISO-8859-1", "latin1", "utf-8"...) to a Charset; Auto when unknown.
Charset charset_from_label(std::string_view label);

struct DecodedText {
  std::string text;            // valid UTF-8, not yet normalized
  std::string encoding;        // what the bytes were decoded as (see IngestedDocument::encoding)
  int64_t replaced_bytes = 0;  // input bytes that became U+FFFD
};

// Decodes `bytes`: a BOM decides first (UTF-8, UTF-16LE/BE); then a declared non-UTF-8 charset; then valid UTF-8;
// then UTF-8 with a few invalid bytes (each becomes U+FFFD) or, when invalid bytes outnumber the bytes of valid
// multi-byte sequences, windows-1252. Binary input is an error whose message says why (no file name: the caller adds
// it).
Result<DecodedText> decode_text(std::string_view bytes, Charset declared = Charset::Auto);

// ---- Normalization (normalize.cpp) ----

// CRLF and CR -> LF, form feed and vertical tab -> LF, drops the other C0/C1 controls and DEL, trims trailing spaces
// and tabs of each line, keeps at most 2 blank lines in a row, drops leading blank lines and trailing whitespace.
// Invalid UTF-8 becomes U+FFFD. `offsets` (sorted, into `in`) are rewritten to offsets into the result: each goes to
// the first visible (non-whitespace) character that comes from at or after it, or to the end of the result.
std::string normalize_text(std::string_view in, std::span<int64_t> offsets = {});

// One line for a label (heading, title): every run of whitespace or controls becomes one space, trimmed, and cut to
// at most `max_bytes` at a UTF-8 boundary.
std::string clean_inline(std::string_view s, size_t max_bytes = kMaxHeadingBytes);

// True when `s` holds nothing but whitespace (ASCII, U+00A0, U+FEFF) and controls.
bool is_blank(std::string_view s);

// ---- Extractors ----

struct Extracted {
  std::string text;                   // normalized UTF-8
  std::vector<Heading> headings;      // (n_headings) sorted by char_offset
  std::vector<int64_t> page_offsets;  // (n_pages) PDF only
  std::string title;                  // empty when the format holds none
  int64_t replaced_bytes = 0;         // PDF: invalid UTF-8 bytes from the extractor that became U+FFFD
};

// Markdown (markdown.cpp): `text` is decoded and normalized (LF line ends); headings are ATX and setext, none inside
// fenced code.
Extracted extract_markdown(std::string_view text);

// HTML (html.cpp): `text` is already decoded; tags dropped, entities decoded, h1-h6 recorded, <title> taken.
Extracted extract_html(std::string_view text);
// The charset an HTML or XHTML document declares in its first few KiB (<meta charset>, http-equiv, <?xml encoding>).
Charset sniff_html_charset(std::string_view bytes);
// Decodes the character reference at text[pos] == '&' into `out` and returns the bytes it spans; 0 when there is no
// valid reference there (the '&' is then literal text). (html_entities.cpp)
size_t decode_entity(std::string_view text, size_t pos, std::string& out);
// The first position >= from where `hay` holds `lower_needle` (lowercase ASCII) in any case; npos when none.
// Linear in the bytes it passes for the short needles tag names make.
size_t find_ci(std::string_view hay, std::string_view lower_needle, size_t from);
// Whether hay[pos..] starts with `lower_needle` in any case.
bool starts_with_ci(std::string_view hay, size_t pos, std::string_view lower_needle);

// PDF (pdf.cpp, through poppler-cpp): the page budget, the time budget and the progress come from `options`.
Result<Extracted> extract_pdf(std::string_view bytes, const IngestOptions& options);

}  // namespace fkv::ingest
