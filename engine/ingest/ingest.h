// Document ingestion: turns a file (plain text in any detectable encoding, markdown, HTML, PDF) into an
// IngestedDocument. Every input is treated as hostile: errors come back as a Result whose message names the file and
// the reason, and the text/markdown/HTML paths run in time linear in the input (they are fuzzed).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "fkv/status.h"
#include "fkv/types.h"
#include "ingest/document.h"

namespace fkv {

struct IngestOptions {
  // Larger inputs are refused before they are read: a 128k-token context holds about 0.5 MiB of text, so a file this
  // big is almost surely not a document someone means to read with a local model.
  int64_t max_bytes = int64_t{256} << 20;
  // A PDF page is refused past this many characters (counted as drawn, overlapping copies included): a dense page
  // of real text holds a few tens of thousands, and a 43 KB file of overlapping text runs can hold millions, each of
  // which costs poppler a few hundred bytes while it reads the page.
  int64_t max_page_chars = 500'000;
  // A PDF is refused when reading it has taken longer than this, checked after each page (poppler cannot be stopped
  // inside one, and max_page_chars bounds what one page costs). A 1,000-page book takes seconds.
  double max_seconds = 300;
  // PDFs report stage "ingest" with pages done and the page count after each page; returning false cancels.
  ProgressCallback progress;
};

// Reads `path` and ingests it. The format comes from the extension (.txt .text .md .markdown .htm .html .xhtml .pdf,
// any case); other extensions are sniffed ("%PDF-", "<html", "<!doctype html") and otherwise read as text unless the
// bytes look binary. Errors: missing or unreadable file, a directory, over max_bytes, empty, binary, no text after
// extraction, encrypted or broken PDF, a PDF past max_page_chars or max_seconds, cancelled through progress.
Result<IngestedDocument> ingest_file(const std::string& path, const IngestOptions& options = {});

// Ingests bytes already in memory. `format_or_name` is either a format ("text", "markdown", "html", "pdf", any case)
// or a file name whose extension picks the format as in ingest_file (the name also gives the fallback title).
Result<IngestedDocument> ingest_bytes(std::string_view bytes, std::string_view format_or_name,
                                      const IngestOptions& options = {});

}  // namespace fkv
