// Documents as the library stores them: the row made from an ingested file (identified by a hash of its content),
// and the ingested form rebuilt from a row, so a library document reopens without reading its file again.
#pragma once

#include <cstdint>
#include <string>

#include "fkv/status.h"
#include "ingest/document.h"
#include "store/library.h"

namespace fkv {

// Identity of a document: its format and normalized text, so the same words saved again with other line ends or in
// another encoding are the same document. 32 hex digits.
std::string content_hash(const IngestedDocument& d);

Document library_document(const IngestedDocument& d);
IngestedDocument ingested_from(const Document& doc);

// Records `d` in the library (or finds it there) and returns its id.
Result<int64_t> import_document(Library& lib, const IngestedDocument& d);

}  // namespace fkv
