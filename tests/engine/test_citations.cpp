// Citations under an answer (runtime/citations.h): KV pages map to the bytes of the document they hold, the pages
// retrieval chose most become the first passages (adjacent ones joined), and a policy or a document where retrieval
// chose nothing cites nothing. The engine attaches them to ask()'s result, inside the document's text.
#include <QtTest>

#include <fstream>

#include "fkv/engine.h"
#include "runtime/citations.h"
#include "support/policy_helpers.h"
#include "support/test_models.h"
#include "support/test_paths.h"

namespace {

// Ten sentences of 4 tokens each, one span per sentence, at context positions from 8 (a head of 8 tokens before
// the document): with pages of 4 tokens, page p >= 2 holds sentence p - 2.
fkv::DocumentContent tenSentences() {
  fkv::DocumentContent c;
  c.page_size = 4;
  for (int i = 0; i < 10; ++i) {
    const int64_t at = static_cast<int64_t>(c.text.size());
    c.text += "Sentence number " + std::to_string(i) + " here.\n";
    c.spans.push_back({8 + 4 * i, 12 + 4 * i, at, static_cast<int64_t>(c.text.size())});
  }
  c.sections.push_back({false, 1, "Opening", 0});
  c.sections.push_back({true, 0, "Page 2", c.spans[5].char_begin});
  c.sections.push_back({false, 2, "Middle", c.spans[5].char_begin});
  return c;
}

// One layer-step event: head h selects pages[h] (ascending, as policies give them).
struct Selection {
  std::vector<int32_t> indptr{0};
  std::vector<int32_t> pages;
  fkv::LayerStepEvent event(int64_t step) {
    fkv::LayerStepEvent e;
    e.step = step;
    e.policy = fkv::Policy::freekv;
    e.n_kv_heads = static_cast<int>(indptr.size()) - 1;
    e.sel_indptr = indptr.data();
    e.sel_pages = pages.data();
    return e;
  }
  Selection& head(std::vector<int32_t> p) {
    pages.insert(pages.end(), p.begin(), p.end());
    indptr.push_back(static_cast<int32_t>(pages.size()));
    return *this;
  }
};

struct Recorder : fkv::TelemetryObserver {
  int events = 0;
  void on_layer_step(const fkv::LayerStepEvent&) override { ++events; }
};

}  // namespace

class TestCitations : public QObject {
  Q_OBJECT

 private slots:
  void pagesMapToTheBytesTheyHold() {
    const fkv::DocumentContent c = tenSentences();
    QVERIFY(fkv::page_text_ranges(c, 0).empty());  // the head
    QVERIFY(fkv::page_text_ranges(c, 1).empty());
    const auto r = fkv::page_text_ranges(c, 4);
    QCOMPARE(r.size(), size_t(1));
    QCOMPARE(c.text.substr(size_t(r[0].begin), size_t(r[0].end - r[0].begin)), std::string("Sentence number 2 here.\n"));
    QVERIFY(fkv::page_text_ranges(c, 12).empty());  // past the document: the question
    // A page across two spans holds half of each.
    fkv::DocumentContent shifted = c;
    shifted.page_size = 8;
    // page 1 of 8 tokens: positions 8..15, sentences 0 and 1
    const auto two = fkv::page_text_ranges(shifted, 1);
    QCOMPARE(two.size(), size_t(2));
    QCOMPARE(two[0].begin, c.spans[0].char_begin);
    QCOMPARE(two[1].end, c.spans[1].char_end);
  }

  // Page 7 (sentence 5) is chosen by both heads every step, page 8 by one: they form the first passage; page 3 once
  // makes the second. The sink (page 0) and the recent window (the last page) never count.
  void theMostChosenPagesComeFirst() {
    const fkv::DocumentContent c = tenSentences();
    Recorder forward;
    fkv::CitationTally tally(&forward, fkv::Policy::freekv, fkvtest::make_budget(4, 4, 8, 4));
    for (int step = 0; step < 4; ++step) {
      Selection s;
      s.head({0, 7, 8, 13}).head(step == 0 ? std::vector<int32_t>{0, 3, 7, 13} : std::vector<int32_t>{0, 5, 7, 13});
      tally.on_layer_step(s.event(step));
    }
    QCOMPARE(forward.events, 4);  // the engine's own observer still sees every event
    const std::vector<fkv::Citation> cites = tally.citations(c, 3);
    QCOMPARE(cites.size(), size_t(3));
    QCOMPARE(cites[0].char_begin, c.spans[5].char_begin);
    QCOMPARE(cites[0].char_end, c.spans[6].char_end);
    QCOMPARE(cites[0].weight, 1.0f);
    QCOMPARE(cites[0].where, std::string("Page 2 · Middle"));
    QCOMPARE(cites[0].snippet, std::string("Sentence number 5 here. Sentence number 6 here."));
    QCOMPARE(cites[1].char_begin, c.spans[3].char_begin);  // page 5: 3 of 8 choices
    QCOMPARE(cites[1].weight, 3.0f / 8.0f);
    QCOMPARE(cites[1].where, std::string("Opening"));
    QCOMPARE(cites[2].char_begin, c.spans[1].char_begin);  // page 3: once
    QCOMPARE(tally.citations(c, 1).size(), size_t(1));
    QVERIFY(tally.citations(c, 0).empty());
  }

  // Retrieval that chose every page every time (a document inside the budget), or a policy without retrieval, tells
  // nothing about where the answer came from.
  void nothingIsCitedWhenRetrievalChoseNothing() {
    const fkv::DocumentContent c = tenSentences();
    std::vector<int32_t> all(14);
    for (int p = 0; p < 14; ++p) all[size_t(p)] = p;
    fkv::CitationTally everything(nullptr, fkv::Policy::quest, fkvtest::make_budget(4, 4, 64, 4));
    for (int step = 0; step < 3; ++step) {
      Selection s;
      s.head(all).head(all);
      everything.on_layer_step(s.event(step));
    }
    QVERIFY(everything.citations(c, 3).empty());
    for (fkv::Policy p : {fkv::Policy::full, fkv::Policy::streaming}) {
      fkv::CitationTally none(nullptr, p, fkvtest::make_budget(4, 4, 8, 4));
      Selection s;
      s.head({0, 7, 13}).head({0, 7, 13});
      none.on_layer_step(s.event(0));
      QVERIFY(none.citations(c, 3).empty());
    }
  }

  // Snippets keep whole words and whole UTF-8 characters, and say when they were cut.
  void snippetsAreWholeWordsAndCharacters() {
    fkv::DocumentContent c;
    c.page_size = 4;
    for (int i = 0; i < 60; ++i) c.text += "Größe ";
    c.spans.push_back({8, 48, 0, static_cast<int64_t>(c.text.size())});
    fkv::CitationTally tally(nullptr, fkv::Policy::freekv, fkvtest::make_budget(4, 4, 4, 4));
    Selection s;
    s.head({0, 5, 13});
    tally.on_layer_step(s.event(0));
    const auto cites = tally.citations(c, 1);
    QCOMPARE(cites.size(), size_t(1));
    const QString snippet = QString::fromStdString(cites[0].snippet);
    QVERIFY2(snippet.startsWith(QStringLiteral("Größe")), qPrintable(snippet));
    QVERIFY(!snippet.contains(QChar::ReplacementCharacter));
    QVERIFY(cites[0].snippet.size() <= fkv::CitationTally::kSnippetBytes + 3);
  }

  // Through the engine: an answer about a document longer than the budget cites passages inside its text; under
  // policy full it cites none.
  void answersCarryCitationsInsideTheDocument() {
    const QString dir = fkvtest::tempDir();
    const QString model = dir + QStringLiteral("/model.gguf");
    const QString err = fkvtest::writeModel(fkvtest::llamaSpec(21, 2048), model);
    QVERIFY2(err.isEmpty(), qPrintable(err));
    const std::string doc = (dir + QStringLiteral("/notes.txt")).toStdString();
    {
      std::ofstream f(doc);
      for (int i = 0; i < 100; ++i) f << "Line " << i << " of the notes says the mill turned " << i * 7 << " times.\n";
    }
    auto e = fkv::Engine::create({});
    QVERIFY2(e.ok(), e.message().c_str());
    fkv::ModelOptions mo;
    mo.n_ctx = 2048;
    mo.n_threads = 2;
    mo.retrieval.sink_tokens = 64;
    mo.retrieval.recent_tokens = 64;
    mo.retrieval.retrieved_tokens = 128;
    QVERIFY2((*e)->load_model(model.toStdString(), mo).ok(), "load_model");
    auto opened = (*e)->open_document(doc, {}, {});
    QVERIFY2(opened.ok(), opened.message().c_str());
    const fkv::DocumentContent* content = (*e)->document();
    QVERIFY(content != nullptr);
    fkv::GenerationOptions g;
    g.temperature = 0;
    g.max_tokens = 6;
    auto r = (*e)->ask({{"user", "How often did the mill turn?"}}, g, {});
    QVERIFY2(r.ok(), r.message().c_str());
    QVERIFY(!r->citations.empty() && r->citations.size() <= 3);
    for (const fkv::Citation& c : r->citations) {
      QVERIFY(0 <= c.char_begin && c.char_begin < c.char_end);
      QVERIFY(c.char_end <= static_cast<int64_t>(content->text.size()));
      QVERIFY(c.weight > 0 && c.weight <= 1);
      QVERIFY(content->text.find(c.snippet.substr(0, 20)) != std::string::npos);
    }
    for (size_t i = 1; i < r->citations.size(); ++i) QVERIFY(r->citations[i - 1].weight >= r->citations[i].weight);
    fkv::RetrievalOptions full = mo.retrieval;
    full.policy = fkv::Policy::full;
    QVERIFY((*e)->set_retrieval(full).ok());
    auto plain = (*e)->ask({{"user", "How often did the mill turn?"}}, g, {});
    QVERIFY2(plain.ok(), plain.message().c_str());
    QVERIFY(plain->citations.empty());
  }
};

QTEST_APPLESS_MAIN(TestCitations)
#include "test_citations.moc"
