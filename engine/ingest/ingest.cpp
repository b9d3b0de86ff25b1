// Ingestion entry points: reading the file, choosing the format (extension, then content sniffing), running the
// extractor, the checks every document must pass, and the title fallback. Also the span-map lookups of document.h.
#include "ingest/ingest.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <system_error>

#include "ingest/extract.h"

namespace fkv {
namespace {

enum class Format { Text, Markdown, Html, Pdf };

constexpr size_t kSniffBytes = 1024;  // where "%PDF-" and "<html" must appear to count
constexpr size_t kFallbackTitleBytes = 80;

std::string_view format_name(Format f) {
  switch (f) {
    case Format::Markdown:
      return "markdown";
    case Format::Html:
      return "html";
    case Format::Pdf:
      return "pdf";
    default:
      return "text";
  }
}

std::string lower_ascii(std::string_view s) {
  std::string l(s);
  for (char& c : l) c = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  return l;
}

std::optional<Format> format_from_word(std::string_view word) {
  const std::string w = lower_ascii(word);
  if (w == "txt" || w == "text") return Format::Text;
  if (w == "md" || w == "markdown" || w == "mdown" || w == "mkd") return Format::Markdown;
  if (w == "htm" || w == "html" || w == "xhtml" || w == "xht") return Format::Html;
  if (w == "pdf") return Format::Pdf;
  return std::nullopt;
}

std::string_view base_name(std::string_view path) {
  const size_t slash = path.find_last_of("/\\");
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// The extension of the file name, without the dot; empty for "README" and for dot files such as ".notes".
std::string_view extension(std::string_view path) {
  const std::string_view base = base_name(path);
  const size_t dot = base.rfind('.');
  return dot == std::string_view::npos || dot == 0 ? std::string_view() : base.substr(dot + 1);
}

std::string stem(std::string_view path) {
  const std::string_view base = base_name(path);
  const std::string_view ext = extension(path);
  return std::string(ext.empty() ? base : base.substr(0, base.size() - ext.size() - 1));
}

Format sniff_format(std::string_view bytes) {
  const std::string_view head = bytes.substr(0, std::min(bytes.size(), kSniffBytes));
  if (head.find("%PDF-") != std::string_view::npos) return Format::Pdf;  // PDF readers allow junk before the header
  std::string_view start = head;
  if (start.starts_with("\xEF\xBB\xBF")) start.remove_prefix(3);
  while (!start.empty() &&
         (start.front() == ' ' || start.front() == '\t' || start.front() == '\n' || start.front() == '\r')) {
    start.remove_prefix(1);
  }
  const std::string lower = lower_ascii(start);
  if (lower.starts_with("<!doctype html") || lower.starts_with("<html")) return Format::Html;
  if (lower.starts_with("<?xml") && lower.find("<html") != std::string::npos) return Format::Html;
  return Format::Text;
}

// The format-specific part: text, headings, title, pages and encoding; errors carry no file name yet.
Result<IngestedDocument> extract(Format format, std::string_view bytes, const IngestOptions& options) {
  IngestedDocument doc;
  doc.format = std::string(format_name(format));
  if (format == Format::Pdf) {
    FKV_ASSIGN_OR_RETURN(ingest::Extracted pdf, ingest::extract_pdf(bytes, options));
    doc.text = std::move(pdf.text);
    doc.page_offsets = std::move(pdf.page_offsets);
    doc.title = std::move(pdf.title);
    doc.replaced_bytes = pdf.replaced_bytes;
    return doc;
  }
  const ingest::Charset declared = format == Format::Html ? ingest::sniff_html_charset(bytes) : ingest::Charset::Auto;
  FKV_ASSIGN_OR_RETURN(ingest::DecodedText decoded, ingest::decode_text(bytes, declared));
  doc.encoding = std::move(decoded.encoding);
  doc.replaced_bytes = decoded.replaced_bytes;
  ingest::Extracted extracted;
  if (format == Format::Html) {
    extracted = ingest::extract_html(decoded.text);
  } else if (format == Format::Markdown) {
    extracted = ingest::extract_markdown(ingest::normalize_text(decoded.text));
  } else {
    extracted.text = ingest::normalize_text(decoded.text);
  }
  doc.text = std::move(extracted.text);
  doc.headings = std::move(extracted.headings);
  doc.title = std::move(extracted.title);
  return doc;
}

// `label` names the input in errors; `name` (may be empty) gives the extension and the fallback title.
Result<IngestedDocument> ingest_named(std::string_view bytes, const std::string& label, std::string_view name,
                                      std::optional<Format> forced, const IngestOptions& options) {
  if (static_cast<int64_t>(bytes.size()) > options.max_bytes) {
    return err(label, ": ", bytes.size(), " bytes, over the limit of ", options.max_bytes,
               " bytes (IngestOptions::max_bytes)");
  }
  if (bytes.empty()) return err(label, ": empty file (0 bytes), expected a document");
  const Format format = forced ? *forced : format_from_word(extension(name)).value_or(sniff_format(bytes));
  auto extracted = extract(format, bytes, options);
  if (!extracted.ok()) return err(label, ": ", extracted.message());
  IngestedDocument doc = std::move(extracted).value();
  if (ingest::is_blank(doc.text)) {
    return err(label, ": empty document: no text after reading it as ", format_name(format),
               format == Format::Html ? " (only markup)" : " (only whitespace)");
  }
  doc.path = std::string(name);
  doc.source_bytes = static_cast<int64_t>(bytes.size());
  if (doc.title.empty()) {
    doc.title =
        name.empty() ? ingest::clean_inline(doc.text.substr(0, doc.text.find('\n')), kFallbackTitleBytes) : stem(name);
  }
  return doc;
}

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

std::string error_text(int error_number) { return std::error_code(error_number, std::generic_category()).message(); }

Result<std::string> read_file(const std::string& path, int64_t max_bytes) {
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (st.type() == std::filesystem::file_type::not_found) return err(path, ": file not found");
  if (ec) return err(path, ": cannot access the file: ", ec.message());
  if (std::filesystem::is_directory(st)) return err(path, ": is a directory, expected a document file");
  // Devices and pipes could block or never end.
  if (!std::filesystem::is_regular_file(st)) return err(path, ": not a regular file, expected a document file");
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return err(path, ": cannot read the file size: ", ec.message());
  if (static_cast<int64_t>(size) > max_bytes) {
    return err(path, ": ", size, " bytes, over the limit of ", max_bytes, " bytes (IngestOptions::max_bytes)");
  }
  const std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) return err(path, ": cannot open the file: ", error_text(errno));
  std::string bytes(static_cast<size_t>(size), '\0');  // (size)
  const size_t n_read = std::fread(bytes.data(), 1, bytes.size(), file.get());
  if (n_read < bytes.size() && std::ferror(file.get())) return err(path, ": cannot read the file: ", error_text(errno));
  bytes.resize(n_read);  // the file may have shrunk since its size was read
  return bytes;
}

}  // namespace

Result<IngestedDocument> ingest_file(const std::string& path, const IngestOptions& options) {
  FKV_ASSIGN_OR_RETURN(const std::string bytes, read_file(path, options.max_bytes));
  return ingest_named(bytes, path, path, std::nullopt, options);
}

Result<IngestedDocument> ingest_bytes(std::string_view bytes, std::string_view format_or_name,
                                      const IngestOptions& options) {
  if (const auto format = format_from_word(format_or_name); format && extension(format_or_name).empty()) {
    return ingest_named(bytes, std::string(format_name(*format)) + " input", {}, format, options);
  }
  const std::string label = format_or_name.empty() ? std::string("input") : std::string(format_or_name);
  return ingest_named(bytes, label, format_or_name, std::nullopt, options);
}

int page_at(const IngestedDocument& doc, int64_t char_offset) {
  const auto& pages = doc.page_offsets;
  if (pages.empty()) return 0;
  const auto after = std::upper_bound(pages.begin(), pages.end(), char_offset);
  return std::max(1, static_cast<int>(after - pages.begin()));
}

int heading_at(const IngestedDocument& doc, int64_t char_offset) {
  const auto& hs = doc.headings;
  const auto after = std::upper_bound(hs.begin(), hs.end(), char_offset,
                                      [](int64_t offset, const Heading& h) { return offset < h.char_offset; });
  return static_cast<int>(after - hs.begin()) - 1;
}

}  // namespace fkv
