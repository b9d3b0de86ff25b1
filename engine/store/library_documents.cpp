#include "store/library_documents.h"

#include <algorithm>
#include <cstdio>

#include "store/checksum.h"

namespace fkv {

namespace {
std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::string content_hash(const IngestedDocument& d) {
  Checksum64 h(0x66726565ull);
  h.update(d.format.data(), d.format.size());
  h.update("\0", 1);
  h.update(d.text.data(), d.text.size());
  return hex64(h.digest()) + hex64(checksum64(d.text.data(), d.text.size(), 0x6b76ull));
}

Document library_document(const IngestedDocument& d) {
  Document doc;
  doc.info.path = d.path;
  doc.info.content_hash = content_hash(d);
  doc.info.title = d.title;
  doc.info.format = d.format;
  doc.info.size_bytes = d.source_bytes;
  doc.info.n_chars = static_cast<int64_t>(d.text.size());
  doc.text = d.text;
  for (const Heading& h : d.headings) doc.sections.push_back({SectionKind::heading, h.level, h.text, h.char_offset});
  for (size_t i = 0; i < d.page_offsets.size(); ++i)
    doc.sections.push_back({SectionKind::page, 0, "page " + std::to_string(i + 1), d.page_offsets[i]});
  std::stable_sort(doc.sections.begin(), doc.sections.end(),
                   [](const Section& a, const Section& b) { return a.char_offset < b.char_offset; });
  return doc;
}

// The inverse of library_document, for a document reopened by id.
IngestedDocument ingested_from(const Document& doc) {
  IngestedDocument d;
  d.path = doc.info.path;
  d.title = doc.info.title;
  d.format = doc.info.format;
  d.text = doc.text;
  d.source_bytes = doc.info.size_bytes;
  for (const Section& s : doc.sections) {
    if (s.kind == SectionKind::heading) d.headings.push_back({s.level, s.title, s.char_offset});
    if (s.kind == SectionKind::page) d.page_offsets.push_back(s.char_offset);
  }
  return d;
}

Result<int64_t> import_document(Library& lib, const IngestedDocument& d) { return lib.add_document(library_document(d)); }

}  // namespace fkv
