// A document after ingestion: its plain text (always valid UTF-8, normalized) and the span map that ties byte offsets
// in that text back to the source: headings (markdown, HTML) and pages (PDF). Offsets are byte offsets into `text`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fkv {

struct Heading {
  int level = 1;            // 1..6 (markdown '#' count or setext 1/2; HTML h1..h6)
  std::string text;         // one line, whitespace collapsed, at most kMaxHeadingBytes
  int64_t char_offset = 0;  // byte offset in IngestedDocument::text of the heading's first visible character
};

// Longer heading texts are cut (at a UTF-8 boundary): a heading is a label for the outline, not content.
inline constexpr size_t kMaxHeadingBytes = 256;

struct IngestedDocument {
  std::string path;      // the file as given to ingest_file; for ingest_bytes, the name it was given (may be empty)
  std::string title;     // markdown front-matter title or first heading, HTML <title>, PDF Title; else the file stem
  std::string format;    // "text", "markdown", "html" or "pdf"
  std::string encoding;  // "UTF-8", "UTF-8 (BOM)", "UTF-16LE", "UTF-16BE", "windows-1252", "ISO-8859-15"; "" for PDF
  std::string text;      // (n_bytes) normalized UTF-8: LF line ends, no C0/C1 controls but \n and \t, <= 2 blank lines
  std::vector<Heading> headings;      // (n_headings) sorted by char_offset
  std::vector<int64_t> page_offsets;  // (n_pages) PDF only: byte offset where page i+1 begins; non-decreasing
  int64_t replaced_bytes = 0;         // source bytes (or UTF-16 units' bytes) replaced by U+FFFD while decoding
  int64_t source_bytes = 0;           // size of the input
};

// The 1-based page holding byte `char_offset` of doc.text; 0 when the document has no pages (not a PDF).
// Offsets before the first page map to page 1, offsets past the end to the last page.
int page_at(const IngestedDocument& doc, int64_t char_offset);

// Index into doc.headings of the last heading at or before `char_offset`; -1 when there is none.
int heading_at(const IngestedDocument& doc, int64_t char_offset);

}  // namespace fkv
