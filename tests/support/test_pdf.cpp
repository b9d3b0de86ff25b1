#include "support/test_pdf.h"

#include <QByteArray>
#include <cstdio>

namespace fkvtest {
namespace {

// Writes objects in id order and remembers where each begins, for the xref table.
class PdfWriter {
 public:
  PdfWriter() { out_ = "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n"; }

  void object(const std::string& body) {
    offsets_.push_back(out_.size());
    out_ += std::to_string(offsets_.size()) + " 0 obj\n" + body + "\nendobj\n";
  }

  void stream(const std::string& dictionary_extra, const std::string& data) {
    object("<< /Length " + std::to_string(data.size()) + dictionary_extra + " >>\nstream\n" + data + "\nendstream");
  }

  std::string finish(const std::string& trailer_extra) {
    const size_t xref = out_.size();
    out_ += "xref\n0 " + std::to_string(offsets_.size() + 1) + "\n0000000000 65535 f \n";
    for (const size_t off : offsets_) {
      char entry[32];
      std::snprintf(entry, sizeof entry, "%010zu 00000 n \n", off);  // exactly 20 bytes, as the format demands
      out_ += entry;
    }
    out_ += "trailer\n<< /Size " + std::to_string(offsets_.size() + 1) + " /Root 1 0 R" + trailer_extra +
            " >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
    return out_;
  }

 private:
  std::string out_;
  std::vector<size_t> offsets_;  // (n_objects) byte offset of object id i+1
};

std::string content_stream(const PdfPage& lines) {
  std::string s = "BT /F1 14 Tf 72 720 Td";
  for (size_t i = 0; i < lines.size(); ++i) s += (i == 0 ? " (" : " 0 -20 Td (") + lines[i] + ") Tj";
  return s + " ET";
}

// Objects 1 catalog, 2 page tree, 3 font, 4 info; pages (and their contents) from object 5 on.
void write_head(PdfWriter& w, size_t n_pages, const std::string& title) {
  w.object("<< /Type /Catalog /Pages 2 0 R >>");
  std::string kids;
  for (size_t i = 0; i < n_pages; ++i) kids += std::to_string(5 + 2 * i) + " 0 R ";
  w.object("<< /Type /Pages /Kids [" + kids + "] /Count " + std::to_string(n_pages) + " >>");
  w.object("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
  w.object(title.empty() ? "<< /Producer (test) >>" : "<< /Title (" + title + ") >>");
}

// The page object whose content stream is the object right after it.
void write_page(PdfWriter& w, size_t index) {
  w.object("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents " +
           std::to_string(6 + 2 * index) + " 0 R >>");
}

// A zlib stream, as /FlateDecode reads it: qCompress's output without its 4-byte length prefix.
std::string flate(const std::string& data) {
  const QByteArray z = qCompress(QByteArray::fromStdString(data), 9);
  return z.sliced(4).toStdString();
}

}  // namespace

std::string make_pdf(const std::vector<PdfPage>& pages, const PdfOptions& o) {
  PdfWriter w;
  write_head(w, pages.size(), o.title);
  for (size_t i = 0; i < pages.size(); ++i) {
    write_page(w, i);
    w.stream("", pages[i].empty() ? std::string() : content_stream(pages[i]));
  }
  std::string trailer = " /Info 4 0 R";
  if (o.encrypted) {
    const std::string h32(64, 'A');  // 32 bytes that match no password's hash
    w.object("<< /Filter /Standard /V 1 /R 2 /O <" + h32 + "> /U <" + h32 + "> /P -44 >>");
    const std::string id = "<0123456789ABCDEF0123456789ABCDEF>";
    trailer += " /Encrypt " + std::to_string(5 + 2 * pages.size()) + " 0 R /ID [" + id + " " + id + "]";
  }
  return w.finish(trailer);
}

std::string make_many_runs_pdf(int n_runs, const std::vector<std::string>& words) {
  std::string content;
  for (int i = 0; i < n_runs; ++i) {
    content += "BT /F1 12 Tf 72 720 Td (" + words[size_t(i) % words.size()] + ") Tj ET\n";
  }
  PdfWriter w;
  write_head(w, 1, "");
  write_page(w, 0);
  w.stream(" /Filter /FlateDecode", flate(content));
  return w.finish(" /Info 4 0 R");
}

}  // namespace fkvtest
