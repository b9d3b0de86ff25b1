// Document ingestion of text, markdown and HTML: encodings, normalization, headings, entities, dropped markup, format
// dispatch, titles, the errors every hostile or useless input must produce, and invariants under adversarial input.
// PDF lives in test_ingest_pdf.cpp.
#include <QtTest>

#include <QDir>
#include <QFile>
#include <random>
#include <string>
#include <vector>

#include "ingest/ingest.h"
#include "support/ingest_checks.h"
#include "support/test_paths.h"
#include "tokenizer/utf8.h"

using fkv::IngestedDocument;
using fkv::IngestOptions;

namespace {

QString qs(std::string_view s) { return QString::fromUtf8(s.data(), static_cast<qsizetype>(s.size())); }

std::string write_temp(const QString& name, std::string_view bytes) {
  const QString path = fkvtest::tempDir() + "/" + name;
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly)) return {};
  f.write(bytes.data(), static_cast<qint64>(bytes.size()));
  return path.toStdString();
}

std::string utf16(std::u16string_view s, bool little_endian, bool bom) {
  std::string out;
  auto put = [&](char16_t u) {
    const char lo = static_cast<char>(u & 0xFF), hi = static_cast<char>(u >> 8);
    out += little_endian ? std::string{lo, hi} : std::string{hi, lo};
  };
  if (bom) put(0xFEFF);
  for (const char16_t u : s) put(u);
  return out;
}

std::string repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// What every ingested document must satisfy; an empty string when it does.
std::string broken_invariant(const IngestedDocument& d) {
  if (fkv::utf8_first_invalid(d.text)) return "text is not valid UTF-8";
  for (const char c : d.text) {
    if (static_cast<uint8_t>(c) < 0x20 && c != '\n' && c != '\t') return "text holds a control character";
  }
  if (d.text.find("\n\n\n\n") != std::string::npos) return "more than 2 blank lines in a row";
  int64_t last = 0;
  for (const fkv::Heading& h : d.headings) {
    if (h.char_offset < last || h.char_offset > static_cast<int64_t>(d.text.size()))
      return "heading offset out of order";
    if (h.text.empty() || h.level < 1 || h.level > 6 || fkv::utf8_first_invalid(h.text)) return "bad heading";
    last = h.char_offset;
  }
  return {};
}

// Each heading's offset must point at its own text in the document.
bool headings_point_at_their_text(const IngestedDocument& d) {
  for (const fkv::Heading& h : d.headings) {
    if (d.text.compare(static_cast<size_t>(h.char_offset), h.text.size(), h.text) != 0) return false;
  }
  return true;
}

}  // namespace

class TestIngest : public QObject {
  Q_OBJECT

 private slots:
  void textIsNormalized() {
    const std::string in =
        "  \r\n\r\nFirst line   \r\nsecond\tline\t \rthird\x01\x07 line\x7f\n\n\n\n\n\nafter gap\f"
        "x\xC2\x85y\n\t\n   \n";
    INGEST_OK(d, fkv::ingest_bytes(in, "notes.txt"));
    QCOMPARE(qs(d.text), qs("First line\nsecond\tline\nthird line\n\n\nafter gap\nxy"));
    QCOMPARE(qs(d.format), QString("text"));
    QCOMPARE(qs(d.encoding), QString("UTF-8"));
    QCOMPARE(d.replaced_bytes, int64_t{0});
    QCOMPARE(d.source_bytes, static_cast<int64_t>(in.size()));
    QCOMPARE(qs(d.title), QString("notes"));
    QVERIFY(d.headings.empty() && d.page_offsets.empty());
  }

  void utf8WithBom() {
    INGEST_OK(d, fkv::ingest_bytes("\xEF\xBB\xBF"
                                   "caf\xC3\xA9\n",
                                   "bom.txt"));
    QCOMPARE(qs(d.text), QString("café"));
    QCOMPARE(qs(d.encoding), QString("UTF-8 (BOM)"));
  }

  void utf16WithBom() {
    const std::u16string text = u"Grüße 😀\r\nzwei";
    INGEST_OK(le, fkv::ingest_bytes(utf16(text, true, true), "le.txt"));
    QCOMPARE(qs(le.text), QString("Grüße 😀\nzwei"));
    QCOMPARE(qs(le.encoding), QString("UTF-16LE"));
    INGEST_OK(be, fkv::ingest_bytes(utf16(text, false, true), "be.txt"));
    QCOMPARE(qs(be.text), QString("Grüße 😀\nzwei"));
    QCOMPARE(qs(be.encoding), QString("UTF-16BE"));
    // An unpaired surrogate (2 bytes) and an odd trailing byte (1) become U+FFFD.
    const std::u16string broken = {u'a', char16_t(0xD800), u'b'};
    INGEST_OK(bad, fkv::ingest_bytes(utf16(broken, true, true) + "x", "bad.txt"));
    QCOMPARE(qs(bad.text), QString("a\uFFFDb\uFFFD"));
    QCOMPARE(bad.replaced_bytes, int64_t{3});
  }

  void utf16WithoutBom() {
    INGEST_OK(d, fkv::ingest_bytes(utf16(u"Plain ASCII text saved as UTF-16", true, false), "nobom.txt"));
    QCOMPARE(qs(d.text), QString("Plain ASCII text saved as UTF-16"));
    QCOMPARE(qs(d.encoding), QString("UTF-16LE (no BOM)"));
  }

  void utf8WithAFewInvalidBytes() {
    INGEST_OK(d, fkv::ingest_bytes("naïve café résumé \xFF déjà vu", "mixed.txt"));
    QCOMPARE(qs(d.text), QString("naïve café résumé \uFFFD déjà vu"));
    QCOMPARE(qs(d.encoding), QString("UTF-8"));
    QCOMPARE(d.replaced_bytes, int64_t{1});
  }

  void windows1252WhenInvalidBytesDominate() {
    INGEST_OK(d, fkv::ingest_bytes("caf\xE9 \x93quoted\x94 costs \x80"
                                   "5 \x85 na\xEFve",
                                   "legacy.txt"));
    QCOMPARE(qs(d.text), QString("café “quoted” costs €5 … naïve"));
    QCOMPARE(qs(d.encoding), QString("windows-1252"));
    QCOMPARE(d.replaced_bytes, int64_t{0});
  }

  void nulPastTheSniffWindowIsDropped() {
    const std::string in = std::string(9000, 'a') + '\0' + "b";
    INGEST_OK(d, fkv::ingest_bytes(in, "late-nul.txt"));
    QCOMPARE(d.text, std::string(9000, 'a') + "b");
  }

  void binaryFilesAreRefused() {
    const char png_bytes[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10";
    const std::string png(png_bytes, sizeof png_bytes - 1);
    INGEST_FAILS(fkv::ingest_bytes(png, "image.png"), "image.png: binary file");
    INGEST_FAILS(fkv::ingest_bytes(png, "image.txt"), "NUL byte at offset 8");
    INGEST_FAILS(fkv::ingest_bytes(repeat("ab\x01\x02\x03\x04\x05\x06", 50), "ctl.dat"), "control characters");
    INGEST_FAILS(fkv::ingest_bytes("\xFF\xFE" + std::string(64, '\0'), "ctl16.txt"), "binary file");
    const std::string path = write_temp("blob.bin", png);
    INGEST_FAILS(fkv::ingest_file(path), path + ": binary file");
  }

  void emptyInputsAreRefused() {
    INGEST_FAILS(fkv::ingest_bytes("", "empty.txt"), "empty.txt: empty file (0 bytes)");
    INGEST_FAILS(fkv::ingest_bytes("  \n\t\r\n  ", "blank.txt"), "blank.txt: empty document");
    INGEST_FAILS(fkv::ingest_bytes("<html><head><title>T</title></head><body> &nbsp; </body></html>", "a.html"),
                 "only markup");
    INGEST_FAILS(fkv::ingest_bytes("", "markdown"), "markdown input: empty file");
    const std::string path = write_temp("zero.md", "");
    INGEST_FAILS(fkv::ingest_file(path), path + ": empty file");
  }

  void sizeLimitIsEnforced() {
    IngestOptions o;
    o.max_bytes = 16;
    INGEST_FAILS(fkv::ingest_bytes(std::string(17, 'a'), "big.txt", o), "17 bytes, over the limit of 16 bytes");
    const std::string path = write_temp("big.txt", std::string(17, 'a'));
    INGEST_FAILS(fkv::ingest_file(path, o), path + ": 17 bytes, over the limit of 16");
    INGEST_OK(fits, fkv::ingest_bytes(std::string(16, 'a'), "fits.txt", o));
    QCOMPARE(fits.text.size(), size_t{16});
    QCOMPARE(IngestOptions().max_bytes, int64_t{256} << 20);
  }

  void missingPathsAndDirectoriesAreRefused() {
    const std::string missing = (fkvtest::tempDir() + "/no-such-file.txt").toStdString();
    INGEST_FAILS(fkv::ingest_file(missing), missing + ": file not found");
    const std::string dir = fkvtest::tempDir().toStdString();
    INGEST_FAILS(fkv::ingest_file(dir), dir + ": is a directory");
  }

  void ingestFileReadsFromDisk() {
    const std::string path = write_temp("Quarterly Report.final.md", "Intro\n\n## Numbers\nUp.\n");
    INGEST_OK(d, fkv::ingest_file(path));
    QCOMPARE(qs(d.path), qs(path));
    QCOMPARE(qs(d.format), QString("markdown"));
    QCOMPARE(qs(d.title), QString("Numbers"));
    QCOMPARE(qs(d.text), QString("Intro\n\nNumbers\nUp."));
  }

  void formatComesFromExtensionThenContent() {
    const std::string html = "<!DOCTYPE html><title>x</title><p>hi</p>";
    auto format_of = [](std::string_view bytes, std::string_view name) {
      auto r = fkv::ingest_bytes(bytes, name);
      return r.ok() ? qs(r->format) : qs(r.message());
    };
    QCOMPARE(format_of("# H\n", "NOTES.MD"), QString("markdown"));
    QCOMPARE(format_of("# H\n", "notes.markdown"), QString("markdown"));
    QCOMPARE(format_of(html, "page.HTM"), QString("html"));
    QCOMPARE(format_of(html, "page.xhtml"), QString("html"));
    QCOMPARE(format_of(html, "page.TXT"), QString("text"));   // the extension wins over the content
    QCOMPARE(format_of(html, "saved.log"), QString("html"));  // unknown extension: sniffed
    QCOMPARE(format_of("\xEF\xBB\xBF\n  <html><body>x</body></html>", "saved"), QString("html"));
    QCOMPARE(format_of("<?xml version=\"1.0\"?>\n<html xmlns=\"x\"><p>x</p></html>", "a.xml"), QString("html"));
    QCOMPARE(format_of("# not markdown without the extension", "README"), QString("text"));
    QCOMPARE(format_of("# H", "markdown"), QString("markdown"));
    QCOMPARE(format_of("<p>x</p>", "HTML"), QString("html"));
    QCOMPARE(format_of("plain", "text"), QString("text"));
  }

  void titleFallsBackToTheFileName() {
    INGEST_OK(text, fkv::ingest_bytes("body", "/some/dir/My Notes.final.txt"));
    QCOMPARE(qs(text.title), QString("My Notes.final"));
    QCOMPARE(qs(text.path), QString("/some/dir/My Notes.final.txt"));
    INGEST_OK(md, fkv::ingest_bytes("no headings here", "report.md"));
    QCOMPARE(qs(md.title), QString("report"));
    INGEST_OK(html, fkv::ingest_bytes("<h1>Heading</h1><p>x</p>", "page.html"));
    QCOMPARE(qs(html.title), QString("page"));
    INGEST_OK(unnamed, fkv::ingest_bytes("\n  First line here  \nSecond", "text"));
    QCOMPARE(qs(unnamed.title), QString("First line here"));
    QVERIFY(unnamed.path.empty());
  }

  void markdownAtxHeadings() {
    const std::string md =
        "# Title\nIntro text.\n\n## Section *one* ##\n####### seven is not a heading\n#hashtag is not a heading\n"
        "   ### Indented three ###   \n    # indented code, not a heading\n###### Six\n# \n";
    INGEST_OK(d, fkv::ingest_bytes(md, "doc.md"));
    QCOMPARE(qs(d.text), QString("Title\nIntro text.\n\nSection *one*\n####### seven is not a heading\n"
                                 "#hashtag is not a heading\nIndented three\n    # indented code, not a heading\n"
                                 "Six\n#"));
    QCOMPARE(d.headings.size(), size_t{4});
    const std::vector<std::pair<int, std::string>> expected = {
        {1, "Title"}, {2, "Section *one*"}, {3, "Indented three"}, {6, "Six"}};
    for (size_t i = 0; i < expected.size(); ++i) {
      QCOMPARE(d.headings[i].level, expected[i].first);
      QCOMPARE(qs(d.headings[i].text), qs(expected[i].second));
    }
    QVERIFY(headings_point_at_their_text(d));
    QCOMPARE(qs(d.title), QString("Title"));
    QCOMPARE(qs(broken_invariant(d)), QString());
  }

  void markdownSetextHeadingsAndCodeFences() {
    const std::string md =
        "Main Title\n==========\n\nSome paragraph\nspanning lines\n---\n\n```python\n# not a heading\nFake\n===\n```\n"
        "~~~~\n## still code\n~~~\n~~~~~\n- item\n---\n> quote\n===\n\nAfter\n-\n";
    INGEST_OK(d, fkv::ingest_bytes(md, "setext.md"));
    QCOMPARE(qs(d.text), QString("Main Title\n\nSome paragraph\nspanning lines\n\n```python\n# not a heading\nFake\n"
                                 "===\n```\n~~~~\n## still code\n~~~\n~~~~~\n- item\n---\n> quote\n===\n\nAfter"));
    QCOMPARE(d.headings.size(), size_t{3});
    QCOMPARE(qs(d.headings[0].text), QString("Main Title"));
    QCOMPARE(d.headings[0].level, 1);
    QCOMPARE(qs(d.headings[1].text), QString("Some paragraph spanning lines"));
    QCOMPARE(d.headings[1].level, 2);
    QCOMPARE(d.headings[1].char_offset, static_cast<int64_t>(d.text.find("Some paragraph")));
    QCOMPARE(qs(d.headings[2].text), QString("After"));
    QCOMPARE(d.headings[2].char_offset, static_cast<int64_t>(d.text.rfind("After")));
  }

  void markdownFrontMatter() {
    INGEST_OK(d,
              fkv::ingest_bytes("---\ntitle: \"Quarterly Report\"\nauthor: X\n---\n\n# Heading One\nBody\n", "q.md"));
    QCOMPARE(qs(d.title), QString("Quarterly Report"));
    QCOMPARE(qs(d.text), QString("Heading One\nBody"));
    QCOMPARE(d.headings.size(), size_t{1});
    QCOMPARE(d.headings[0].char_offset, int64_t{0});
    INGEST_OK(open, fkv::ingest_bytes("---\ntitle: X\nnever closed\n", "open.md"));
    QCOMPARE(qs(open.title), QString("open"));
    QCOMPARE(qs(open.text), QString("---\ntitle: X\nnever closed"));
  }

  void htmlEntities() {
    const std::string html =
        "<p>Fish &amp; chips &lt;b&gt; caf&eacute; &#233;&#x00E9; &#X1F600; &mdash;&ndash;&hellip; &copy;&reg;&trade; "
        "&laquo;q&raquo; &lsquo;s&rsquo; &ldquo;d&rdquo; &bull;&middot; a&nbsp;b &unknown; &amp AT&T &#0; &#x110000; "
        "&#150; &apos;&quot; &#; &shy;x</p>";
    INGEST_OK(d, fkv::ingest_bytes(html, "e.html"));
    QCOMPARE(qs(d.text), QString("Fish & chips <b> café éé 😀 —–… ©®™ «q» ‘s’ “d” •· a\u00A0b &unknown; & AT&T "
                                 "\uFFFD \uFFFD – '\" &#; x"));
  }

  void htmlDropsScriptsStylesCommentsAndHead() {
    const std::string html =
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>The &quot;Page&quot;</title>\n"
        "<style>p { color: red; } </style><script>var x = \"<p>not text</p>\";</script></head>\n"
        "<body><!-- a comment <p>hidden</p> --><p>Visible</p><noscript>enable js</noscript>\n"
        "<template><p>tmpl <template>inner</template> still tmpl</p></template><script>\n"
        "if (a < b && c > d) {}</SCRIPT ><p>After script</p><svg><text>svg text</text></svg><p>End</p>"
        "<!--> empty comment <p>x < y</p></body></html>";
    INGEST_OK(d, fkv::ingest_bytes(html, "page.html"));
    QCOMPARE(qs(d.text), QString("Visible\n\nAfter script\n\nEnd\n\nempty comment\n\nx < y"));
    QCOMPARE(qs(d.title), QString("The \"Page\""));
    QCOMPARE(qs(d.encoding), QString("UTF-8"));
  }

  void htmlBlocksAndHeadings() {
    const std::string html =
        "<body><h1>Main   <em>Title</em></h1><p>One\ntwo   three</p><div>Line A</div><div>Line B</div>Text<br>after "
        "break<br/>\n<h2 class=\"x\">Sub</h2><ul><li>first<li>second</ul><ol><li>uno</li><li>dos</li></ol>"
        "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table><h3> </h3><h6>Deep</h6>tail</body>";
    INGEST_OK(d, fkv::ingest_bytes(html, "blocks.htm"));
    QCOMPARE(qs(d.text), QString("Main Title\n\nOne two three\n\nLine A\nLine B\nText\nafter break\n\nSub\n\n- first\n"
                                 "- second\n\n1. uno\n2. dos\n\na\tb\nc\td\n\nDeep\n\ntail"));
    QCOMPARE(d.headings.size(), size_t{3});
    QCOMPARE(d.headings[0].level, 1);
    QCOMPARE(qs(d.headings[0].text), QString("Main Title"));
    QCOMPARE(d.headings[1].level, 2);
    QCOMPARE(d.headings[2].level, 6);
    QVERIFY(headings_point_at_their_text(d));
    QCOMPARE(fkv::heading_at(d, static_cast<int64_t>(d.text.find("uno"))), 1);
  }

  void htmlPreKeepsWhitespace() {
    const std::string html = "<p>before</p><pre>\n  indented\n    more   spaces\n\n\n\n\nend</pre><p>after   x</p>";
    INGEST_OK(d, fkv::ingest_bytes(html, "pre.html"));
    QCOMPARE(qs(d.text), QString("before\n\n  indented\n    more   spaces\n\n\nend\n\nafter x"));
  }

  void htmlDeclaredCharset() {
    INGEST_OK(meta, fkv::ingest_bytes("<html><head><meta charset=\"windows-1252\"><title>Caf\xE9</title></head>"
                                      "<body><p>\x93Hi\x94 \x80</p></body></html>",
                                      "cp.html"));
    QCOMPARE(qs(meta.text), QString("“Hi” €"));
    QCOMPARE(qs(meta.title), QString("Café"));
    QCOMPARE(qs(meta.encoding), QString("windows-1252"));
    INGEST_OK(equiv, fkv::ingest_bytes("<meta http-equiv=\"Content-Type\" content=\"text/html; charset=ISO-8859-1\">"
                                       "<p>na\xEFve</p>",
                                       "latin1.html"));
    QCOMPARE(qs(equiv.text), QString("naïve"));
    QCOMPARE(qs(equiv.encoding), QString("windows-1252"));
    INGEST_OK(latin9, fkv::ingest_bytes("<meta charset=iso-8859-15><p>\xA4 5</p>", "l9.html"));
    QCOMPARE(qs(latin9.text), QString("€ 5"));
    QCOMPARE(qs(latin9.encoding), QString("ISO-8859-15"));
    INGEST_OK(xml, fkv::ingest_bytes("<?xml version=\"1.0\" encoding=\"windows-1252\"?><html><p>\xE9t\xE9</p></html>",
                                     "x.xhtml"));
    QCOMPARE(qs(xml.text), QString("été"));
    // A byte order mark outranks the declaration.
    INGEST_OK(bom, fkv::ingest_bytes("\xEF\xBB\xBF<meta charset=windows-1252><p>caf\xC3\xA9</p>", "bom.html"));
    QCOMPARE(qs(bom.text), QString("café"));
    QCOMPARE(qs(bom.encoding), QString("UTF-8 (BOM)"));
  }

  void spanLookups() {
    IngestedDocument d;
    d.text = std::string(40, 'x');
    QCOMPARE(fkv::page_at(d, 5), 0);
    d.page_offsets = {0, 10, 10, 25};  // page 2 is blank: it begins where page 3 does
    QCOMPARE(fkv::page_at(d, 0), 1);
    QCOMPARE(fkv::page_at(d, 9), 1);
    QCOMPARE(fkv::page_at(d, 10), 3);
    QCOMPARE(fkv::page_at(d, 24), 3);
    QCOMPARE(fkv::page_at(d, 25), 4);
    QCOMPARE(fkv::page_at(d, 1000), 4);
    QCOMPARE(fkv::page_at(d, -5), 1);
    QCOMPARE(fkv::heading_at(d, 3), -1);
    d.headings = {{1, "A", 5}, {2, "B", 20}};
    QCOMPARE(fkv::heading_at(d, 0), -1);
    QCOMPARE(fkv::heading_at(d, 5), 0);
    QCOMPARE(fkv::heading_at(d, 19), 0);
    QCOMPARE(fkv::heading_at(d, 20), 1);
    QCOMPARE(fkv::heading_at(d, 1000), 1);
  }

  // Inputs built to make a careless scanner quadratic, recursive or out of bounds; each must finish and either fail
  // with a message or keep every invariant.
  void adversarialInputsKeepInvariants() {
    std::mt19937 rng(7);
    std::string noise(20000, '\0');
    for (char& c : noise) c = static_cast<char>(rng() % 96 + 32);
    const std::vector<std::string> inputs = {std::string(100000, '<'),
                                             repeat("<a ", 30000),
                                             repeat("<!--", 30000),
                                             repeat("&#x", 30000),
                                             repeat("&amp", 30000),
                                             repeat("<h1>", 30000),
                                             repeat("<ul><li>", 20000),
                                             "<script>" + repeat("</scrip", 20000),
                                             "<a href=\"" + std::string(100000, 'x'),
                                             repeat("<template>", 20000),
                                             repeat("<pre>\r\n", 20000),
                                             repeat("```\n", 20000),
                                             repeat("# ", 50000),
                                             repeat("a\n=\n", 20000),
                                             "---\n" + repeat("title: x\n", 20000),
                                             repeat("<h2><td><td><p>", 20000),
                                             repeat("\xE2\x80", 30000),
                                             repeat("\xC3", 30000) + "abc",
                                             noise};
    for (const std::string& in : inputs) {
      for (const char* format : {"text", "markdown", "html"}) {
        const auto r = fkv::ingest_bytes(in, format);
        if (!r.ok()) {
          QVERIFY2(r.message().rfind(std::string(format) + " input: ", 0) == 0, r.message().c_str());
          continue;
        }
        QCOMPARE(qs(broken_invariant(*r)), QString());
      }
    }
  }
};

QTEST_APPLESS_MAIN(TestIngest)
#include "test_ingest.moc"
