// PDF ingestion through poppler-cpp on PDFs the test writes itself (PDF 1.4, Helvetica, a correct xref table): text and
// page offsets, blank pages, titles, sniffing, and the errors for scanned, broken, truncated and encrypted files.
#include <QtTest>

#include <QFile>
#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "ingest/ingest.h"
#include "support/ingest_checks.h"
#include "support/test_paths.h"
#include "tokenizer/utf8.h"

using fkv::IngestedDocument;
using Page = std::vector<std::string>;  // the lines of one page

namespace {

QString qs(std::string_view s) { return QString::fromUtf8(s.data(), static_cast<qsizetype>(s.size())); }

struct PdfOptions {
  std::string title;       // Info /Title; none when empty
  bool encrypted = false;  // a Standard security handler whose user password is not empty
};

// Writes objects in id order and remembers where each begins, for the xref table.
class PdfWriter {
 public:
  PdfWriter() { out_ = "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n"; }

  void object(const std::string& body) {
    offsets_.push_back(out_.size());
    out_ += std::to_string(offsets_.size()) + " 0 obj\n" + body + "\nendobj\n";
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

std::string content_stream(const Page& lines) {
  std::string s = "BT /F1 14 Tf 72 720 Td";
  for (size_t i = 0; i < lines.size(); ++i) s += (i == 0 ? " (" : " 0 -20 Td (") + lines[i] + ") Tj";
  return s + " ET";
}

// Objects: 1 catalog, 2 page tree, 3 font, 4 info, then a page and its content per page, then the encryption dict.
std::string make_pdf(const std::vector<Page>& pages, const PdfOptions& o = {}) {
  PdfWriter w;
  w.object("<< /Type /Catalog /Pages 2 0 R >>");
  std::string kids;
  for (size_t i = 0; i < pages.size(); ++i) kids += std::to_string(5 + 2 * i) + " 0 R ";
  w.object("<< /Type /Pages /Kids [" + kids + "] /Count " + std::to_string(pages.size()) + " >>");
  w.object("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
  w.object(o.title.empty() ? "<< /Producer (test) >>" : "<< /Title (" + o.title + ") >>");
  for (size_t i = 0; i < pages.size(); ++i) {
    w.object(
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
        "/Contents " +
        std::to_string(6 + 2 * i) + " 0 R >>");
    const std::string stream = pages[i].empty() ? std::string() : content_stream(pages[i]);
    w.object("<< /Length " + std::to_string(stream.size()) + " >>\nstream\n" + stream + "\nendstream");
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

const std::vector<Page> kThreePages = {{"First page opening line", "First page closing line"},
                                       {"Second page text"},
                                       {"Third page words", "and more words"}};

}  // namespace

class TestIngestPdf : public QObject {
  Q_OBJECT

 private slots:
  void textAndPageOffsets() {
    INGEST_OK(d, fkv::ingest_bytes(make_pdf(kThreePages, {"Hand Made Report", false}), "report.pdf"));
    QCOMPARE(qs(d.format), QString("pdf"));
    QCOMPARE(qs(d.title), QString("Hand Made Report"));
    QVERIFY(d.encoding.empty());
    QVERIFY(!fkv::utf8_first_invalid(d.text));
    QCOMPARE(d.page_offsets.size(), size_t{3});
    QCOMPARE(d.page_offsets[0], int64_t{0});
    const std::string_view text = d.text;
    QVERIFY2(text.starts_with("First page opening line"), d.text.c_str());
    QVERIFY2(text.substr(static_cast<size_t>(d.page_offsets[1])).starts_with("Second page text"), d.text.c_str());
    QVERIFY2(text.substr(static_cast<size_t>(d.page_offsets[2])).starts_with("Third page words"), d.text.c_str());
    QVERIFY(d.text.find("First page closing line") < static_cast<size_t>(d.page_offsets[1]));
    QVERIFY(d.text.find("and more words") != std::string::npos);
    QCOMPARE(fkv::page_at(d, static_cast<int64_t>(d.text.find("closing"))), 1);
    QCOMPARE(fkv::page_at(d, static_cast<int64_t>(d.text.find("Second"))), 2);
    QCOMPARE(fkv::page_at(d, static_cast<int64_t>(d.text.find("more words"))), 3);
    QVERIFY(d.headings.empty());
    QCOMPARE(d.replaced_bytes, int64_t{0});
  }

  void readsFromDiskAndSniffsWithoutExtension() {
    const std::string bytes = make_pdf(kThreePages);
    const QString path = fkvtest::tempDir() + "/Annual Summary.PDF";
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(bytes.data(), static_cast<qint64>(bytes.size()));
    f.close();
    INGEST_OK(d, fkv::ingest_file(path.toStdString()));
    QCOMPARE(qs(d.title), QString("Annual Summary"));  // no Title in the Info dictionary
    QCOMPARE(d.source_bytes, static_cast<int64_t>(bytes.size()));
    INGEST_OK(sniffed, fkv::ingest_bytes(bytes, "download"));
    QCOMPARE(qs(sniffed.format), QString("pdf"));
    QCOMPARE(sniffed.text, d.text);
  }

  void blankPagesBeginWhereTheNextTextBegins() {
    INGEST_OK(d, fkv::ingest_bytes(make_pdf({{"Alpha"}, {}, {"Gamma"}, {}}), "gaps.pdf"));
    QCOMPARE(d.page_offsets.size(), size_t{4});
    QCOMPARE(d.page_offsets[1], d.page_offsets[2]);
    QCOMPARE(d.page_offsets[3], static_cast<int64_t>(d.text.size()));
    QVERIFY2(std::string_view(d.text).substr(static_cast<size_t>(d.page_offsets[2])).starts_with("Gamma"),
             d.text.c_str());
    QCOMPARE(fkv::page_at(d, d.page_offsets[2]), 3);
  }

  void pdfWithoutTextIsRefused() {
    INGEST_FAILS(fkv::ingest_bytes(make_pdf({{}, {}}), "scan.pdf"), "scan.pdf: PDF without extractable text");
    INGEST_FAILS(fkv::ingest_bytes(make_pdf({{}, {}}), "scan.pdf"), "2 page(s)");
  }

  void brokenPdfsAreRefused() {
    const std::string good = make_pdf(kThreePages);
    INGEST_FAILS(fkv::ingest_bytes(good.substr(0, 40), "cut.pdf"), "cut.pdf: broken PDF");
    std::mt19937 rng(3);
    std::string garbage = "%PDF-1.4\n";
    for (int i = 0; i < 4000; ++i) garbage.push_back(static_cast<char>(rng()));
    INGEST_FAILS(fkv::ingest_bytes(garbage, "garbage.pdf"), "garbage.pdf: broken PDF");
    INGEST_FAILS(fkv::ingest_bytes("just some text, not a PDF", "renamed.pdf"), "renamed.pdf: broken PDF");
    INGEST_FAILS(fkv::ingest_bytes(make_pdf(kThreePages, {"", true}), "locked.pdf"), "locked.pdf: encrypted PDF");
  }

  // Cut anywhere, a PDF either fails with a message that names it or yields only valid text with ordered pages.
  void truncatedPdfsNeverYieldGarbage() {
    const std::string good = make_pdf(kThreePages);
    for (size_t cut = 0; cut < good.size(); cut += 37) {
      const auto r = fkv::ingest_bytes(good.substr(0, cut), "t.pdf");
      if (!r.ok()) {
        QVERIFY2(r.message().rfind("t.pdf: ", 0) == 0, r.message().c_str());
        continue;
      }
      QVERIFY(!fkv::utf8_first_invalid(r->text));
      QVERIFY(std::is_sorted(r->page_offsets.begin(), r->page_offsets.end()));
      QVERIFY(r->page_offsets.empty() || r->page_offsets.back() <= static_cast<int64_t>(r->text.size()));
    }
  }
};

QTEST_APPLESS_MAIN(TestIngestPdf)
#include "test_ingest_pdf.moc"
