// The prompt's evaluation through the engine facade (GenerationOptions::progress): a long prompt reports its tokens
// batch by batch; a question about a document is cancelled within one batch from the callback or by
// Engine::cancel() from another thread, returns stop_reason "cancelled" with no answer, and leaves the engine
// answering the next question exactly as an engine that never saw the cancelled one.
#include <QtTest>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "fkv/engine.h"
#include "model/synthetic.h"
#include "support/cancel_from_thread.h"
#include "support/test_models.h"
#include "support/test_paths.h"

namespace {

constexpr int kBatch = 128;  // ContextParams::n_batch: the prompt is evaluated in batches of this many tokens

// Seeded words, about 1.3 tokens each with the Llama vocabulary.
std::string words(int n, uint32_t seed) {
  static const char* const k_words[] = {"lamp", "field", "river", "stone", "north", "bread", "quiet", "market"};
  uint32_t x = seed;
  std::string out;
  for (int i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out += k_words[(x >> 16) % 8];
    out += ' ';
  }
  return out;
}

fkv::GenerationOptions greedy() {
  fkv::GenerationOptions o;
  o.max_tokens = 6;
  o.temperature = 0.f;
  return o;
}

struct Call {
  fkv::Stage stage;
  int64_t done, total;
};

}  // namespace

class TestPromptProgress : public QObject {
  Q_OBJECT

 private:
  std::string m_model, m_doc;
  const std::string m_longQuestion = "Which words come back most often? " + words(700, 9);

  std::unique_ptr<fkv::Engine> engineWithDocument() {
    auto e = fkv::Engine::create(fkv::EngineOptions{});  // no library: nothing is saved
    if (!e.ok()) qFatal("engine: %s", e.message().c_str());
    fkv::ModelOptions mo;
    mo.n_ctx = 4096;
    mo.n_threads = 2;
    if (fkv::Status s = (*e)->load_model(m_model, mo); !s.ok()) qFatal("load: %s", s.message().c_str());
    auto d = (*e)->open_document(m_doc, fkv::DocumentOptions{}, {});
    if (!d.ok()) qFatal("open: %s", d.message().c_str());
    return std::move(e).value();
  }

 private slots:
  void initTestCase() {
    m_model = (fkvtest::tempDir() + "/prompt-progress.gguf").toStdString();
    const QString written = fkvtest::writeModel(fkvtest::llamaSpec(17, 4096), QString::fromStdString(m_model));
    QVERIFY2(written.isEmpty(), qPrintable(written));
    m_doc = (fkvtest::tempDir() + "/prompt-progress.txt").toStdString();
    std::ofstream(m_doc, std::ios::binary) << "Field notes\n\n" << words(200, 3);
  }

  void longPromptReportsEachBatch() {
    const std::unique_ptr<fkv::Engine> e = engineWithDocument();
    std::vector<Call> calls;
    fkv::GenerationOptions o = greedy();
    o.progress = [&](const fkv::Progress& p) {
      calls.push_back({p.stage, p.done, p.total});
      return true;
    };
    auto r = e->ask({{"user", m_longQuestion}}, o, {});
    QVERIFY2(r.ok(), r.message().c_str());
    QVERIFY(r->n_generated > 0);
    const int64_t evaluated = r->n_prompt_tokens - r->n_cached_tokens;
    QVERIFY2(evaluated > 4 * kBatch, "the question should take several batches");
    QCOMPARE(static_cast<int64_t>(calls.size()), (evaluated + kBatch - 1) / kBatch + 1);
    for (size_t i = 0; i < calls.size(); ++i) {
      QCOMPARE(calls[i].stage, fkv::Stage::prompt);
      QCOMPARE(calls[i].total, evaluated);
      QCOMPARE(calls[i].done, std::min<int64_t>(static_cast<int64_t>(i) * kBatch, evaluated));
    }
  }

  void cancelFromCallback() {
    const std::unique_ptr<fkv::Engine> e = engineWithDocument();
    int n_calls = 0;
    int64_t last_done = -1;
    fkv::GenerationOptions o = greedy();
    o.progress = [&](const fkv::Progress& p) {
      ++n_calls;
      last_done = p.done;
      return p.done < kBatch;  // stop after the first batch
    };
    std::string streamed;
    auto r = e->ask({{"user", m_longQuestion}}, o, [&](std::string_view piece) {
      streamed += piece;
      return true;
    });
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->stop_reason, fkv::StopReason::cancelled);
    QCOMPARE(r->n_generated, 0);
    QVERIFY(r->text.empty() && streamed.empty());
    QCOMPARE(n_calls, 2);  // no batch after the refusal
    QCOMPARE(last_done, int64_t{kBatch});
    expectSameAnswerAsFresh(*e);
  }

  void cancelFromAnotherThread() {
    const std::unique_ptr<fkv::Engine> e = engineWithDocument();
    std::vector<int64_t> done;
    fkv::GenerationOptions o = greedy();
    const fkv::Result<fkv::GenerateResult> r = [&] {
      fkvtest::CancelFromThread canceller([&] { e->cancel(); });
      o.progress = [&](const fkv::Progress& p) {
        done.push_back(p.done);
        canceller.reached();
        return true;
      };
      return e->ask({{"user", m_longQuestion}}, o, {});
    }();
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->stop_reason, fkv::StopReason::cancelled);
    QCOMPARE(r->n_generated, 0);
    // The request came while the report before the first batch was out: it is seen as soon as that report returns,
    // and no batch runs.
    QCOMPARE(done, std::vector<int64_t>{0});
    expectSameAnswerAsFresh(*e);
  }

 private:
  // A short question after a cancelled one is answered from the document alone, token for token.
  void expectSameAnswerAsFresh(fkv::Engine& e) {
    const std::vector<fkv::Message> q = {{"user", "Which field?"}};
    auto after = e.ask(q, greedy(), {});
    QVERIFY2(after.ok(), after.message().c_str());
    const std::unique_ptr<fkv::Engine> fresh = engineWithDocument();
    auto want = fresh->ask(q, greedy(), {});
    QVERIFY2(want.ok(), want.message().c_str());
    QVERIFY(want->n_generated > 0);
    QCOMPARE(after->text, want->text);
    QCOMPARE(after->n_generated, want->n_generated);
  }
};

QTEST_GUILESS_MAIN(TestPromptProgress)
#include "test_prompt_progress.moc"
