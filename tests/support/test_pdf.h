// PDFs the tests write themselves (PDF 1.4, Helvetica, a correct xref table): pages of text lines, titles,
// encryption, and pages of many overlapping text runs (the input that made poppler's layout analysis quadratic).
#pragma once

#include <string>
#include <vector>

namespace fkvtest {

using PdfPage = std::vector<std::string>;  // the lines of one page

struct PdfOptions {
  std::string title;       // Info /Title; none when empty
  bool encrypted = false;  // a Standard security handler whose user password is not empty
};

// One page per entry; each page's lines go top to bottom, 20 points apart. An empty page has an empty content stream.
std::string make_pdf(const std::vector<PdfPage>& pages, const PdfOptions& options = {});

// One page of `n_runs` runs `BT /F1 12 Tf 72 720 Td (word) Tj ET`, the words taken in turn from `words`: every run
// is drawn on the same spot, over all the others. The content stream is Flate-compressed, as real hostile
// files are: 340,000 runs make a 43 KB file.
std::string make_many_runs_pdf(int n_runs, const std::vector<std::string>& words);

}  // namespace fkvtest
