// Document ingestion: turns a file (plain text in any detectable encoding, markdown, HTML, PDF) into an
// IngestedDocument. Every input is treated as hostile: errors come back as a Result whose message names the file and
// the reason, and the text/markdown/HTML paths run in time linear in the input (they are fuzzed).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "fkv/status.h"
#include "ingest/document.h"

namespace fkv {

struct IngestOptions {
  // Larger inputs are refused before they are read: a 128k-token context holds about 0.5 MiB of text, so a file this
  // big is almost surely not a document someone means to read with a local model.
  int64_t max_bytes = int64_t{256} << 20;
};

// Reads `path` and ingests it. The format comes from the extension (.txt .text .md .markdown .htm .html .xhtml .pdf,
// any case); other extensions are sniffed ("%PDF-", "<html", "<!doctype html") and otherwise read as text unless the
// bytes look binary. Errors: missing or unreadable file, a directory, over max_bytes, empty, binary, no text after
// extraction, encrypted or broken PDF.
Result<IngestedDocument> ingest_file(const std::string& path, const IngestOptions& options = {});

// Ingests bytes already in memory. `format_or_name` is either a format ("text", "markdown", "html", "pdf", any case)
// or a file name whose extension picks the format as in ingest_file (the name also gives the fallback title).
Result<IngestedDocument> ingest_bytes(std::string_view bytes, std::string_view format_or_name,
                                      const IngestOptions& options = {});

}  // namespace fkv
