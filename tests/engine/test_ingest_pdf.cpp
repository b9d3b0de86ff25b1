// PDF ingestion through poppler-cpp on PDFs the test writes itself (support/test_pdf.h): text and page offsets, blank
// pages, titles, sniffing, the errors for scanned, broken, truncated and encrypted files, pages of many overlapping
// runs read in linear work, the page and time budgets, and progress with cancel.
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
#include "support/test_pdf.h"
#include "tokenizer/utf8.h"

using fkv::IngestedDocument;
using fkvtest::make_many_runs_pdf;
using fkvtest::make_pdf;
using Page = fkvtest::PdfPage;

namespace {

QString qs(std::string_view s) { return QString::fromUtf8(s.data(), static_cast<qsizetype>(s.size())); }

const std::vector<Page> kThreePages = {{"First page opening line", "First page closing line"},
                                       {"Second page text"},
                                       {"Third page words", "and more words"}};

const std::vector<std::string> kRunWords = {"alpha", "beta", "gamma"};

int64_t count_of(std::string_view text, std::string_view word) {
  int64_t n = 0;
  for (size_t at = text.find(word); at != std::string_view::npos; at = text.find(word, at + word.size())) ++n;
  return n;
}

}  // namespace

class TestIngestPdf : public QObject {
  Q_OBJECT

 private slots:
  void textAndPageOffsets() {
    INGEST_OK(d, fkv::ingest_bytes(make_pdf(kThreePages, {.title = "Hand Made Report"}), "report.pdf"));
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
    INGEST_FAILS(fkv::ingest_bytes(make_pdf(kThreePages, {.encrypted = true}), "locked.pdf"),
                 "locked.pdf: encrypted PDF");
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

  // Poppler's layout analysis drops overlapping copies of a word in time quadratic in the copies; a page too dense
  // for it is read in drawing order instead, where each run costs the same. Work is counted in runs read: with
  // twice the runs the text is exactly the first text twice, every run once, where the layout analysis keeps one.
  void manyOverlappingRunsAreReadInLinearWork() {
    INGEST_OK(small, fkv::ingest_bytes(make_many_runs_pdf(300, kRunWords), "few.pdf"));
    QCOMPARE(count_of(small.text, "alpha"), int64_t{1});  // small enough for the layout analysis
    constexpr int kRuns = 12'000;                         // 68,001 characters as drawn, one line a run
    INGEST_OK(once, fkv::ingest_bytes(make_many_runs_pdf(kRuns, kRunWords), "many.pdf"));
    QCOMPARE(count_of(once.text, "alpha"), int64_t{kRuns / 3});
    QCOMPARE(count_of(once.text, "gamma"), int64_t{kRuns / 3});
    QVERIFY2(once.text.starts_with("alpha\nbeta\ngamma\nalpha"), once.text.substr(0, 80).c_str());
    INGEST_OK(twice, fkv::ingest_bytes(make_many_runs_pdf(2 * kRuns, kRunWords), "more.pdf"));
    QCOMPARE(twice.text, once.text + "\n" + once.text);
    QCOMPARE(twice.page_offsets, std::vector<int64_t>{0});
  }

  void pagePastTheCharacterBudgetIsRefused() {
    fkv::IngestOptions o;
    o.max_page_chars = 50'000;
    INGEST_FAILS(fkv::ingest_bytes(make_many_runs_pdf(12'000, kRunWords), "dense.pdf", o),
                 "dense.pdf: PDF page 1 of 1 holds 68001 characters, over the limit of 50000 for one page "
                 "(IngestOptions::max_page_chars)");
  }

  void pdfPastTheTimeBudgetIsRefusedBetweenPages() {
    fkv::IngestOptions o;
    o.max_seconds = 1e-9;
    INGEST_FAILS(fkv::ingest_bytes(make_pdf(kThreePages), "slow.pdf", o), "slow.pdf: PDF reading took ");
    INGEST_FAILS(fkv::ingest_bytes(make_pdf(kThreePages), "slow.pdf", o),
                 " s for 1 of 3 pages, over the limit of 1e-09 s (IngestOptions::max_seconds)");
    INGEST_OK(one, fkv::ingest_bytes(make_pdf({{"A single page is read whole"}}), "one.pdf", o));
    QCOMPARE(qs(one.text), QString("A single page is read whole"));
  }

  void progressCountsPagesAndCancels() {
    std::vector<fkv::Progress> seen;
    fkv::IngestOptions o;
    o.progress = [&seen](const fkv::Progress& p) {
      seen.push_back(p);
      return true;
    };
    INGEST_OK(d, fkv::ingest_bytes(make_pdf(kThreePages), "p.pdf", o));
    QCOMPARE(d.page_offsets.size(), size_t{3});
    QCOMPARE(seen.size(), size_t{3});
    for (size_t i = 0; i < seen.size(); ++i) {
      QCOMPARE(seen[i].stage, fkv::Stage::ingest);
      QCOMPARE(seen[i].done, static_cast<int64_t>(i + 1));
      QCOMPARE(seen[i].total, int64_t{3});
    }
    seen.clear();
    o.progress = [&seen](const fkv::Progress& p) {
      seen.push_back(p);
      return p.done < 2;
    };
    INGEST_FAILS(fkv::ingest_bytes(make_pdf(kThreePages), "p.pdf", o),
                 "p.pdf: PDF reading cancelled after 2 of 3 pages");
    QCOMPARE(seen.size(), size_t{2});
  }
};

QTEST_APPLESS_MAIN(TestIngestPdf)
#include "test_ingest_pdf.moc"
