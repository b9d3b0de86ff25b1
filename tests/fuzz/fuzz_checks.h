// Invariant checks shared by the ingest fuzz targets (fuzz_ingest, fuzz_pdf).
#pragma once

#include <cstddef>
#include <string_view>

#include "ingest/extract.h"

namespace fuzzcheck {

// Every byte of `s` belongs to a strictly valid UTF-8 sequence (the ingesters' own definition).
inline bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = fkv::ingest::utf8_sequence_length(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

}  // namespace fuzzcheck
