// The generation loop on a seeded synthetic model with the Llama-2 vocabulary: greedy output equals a hand-written
// argmax loop, and each way of stopping (token limit, callback, cancel flag, full context, stop string) ends where
// and how it promises, with the streamed pieces always whole UTF-8 characters.
#include <QtTest>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "fkv/engine.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/context.h"
#include "runtime/generator.h"
#include "support/test_models.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

// Counts heap allocations so a test can check that decoding a token allocates nothing.
std::atomic<long> g_n_allocs{0};

void* operator new(size_t n) {
  g_n_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace {

struct Streamed {
  std::vector<std::string> pieces;
  std::string text() const {
    std::string t;
    for (const std::string& p : pieces) t += p;
    return t;
  }
};

std::function<bool(std::string_view)> collect(Streamed& s) {
  return [&s](std::string_view piece) {
    s.pieces.emplace_back(piece);
    return true;
  };
}

fkv::GenerateParams greedy(int max_tokens) {
  fkv::GenerateParams p;
  p.max_tokens = max_tokens;
  p.sampler.temperature = 0.f;
  return p;
}

// Index of the first character boundary at or after byte `pos` of valid UTF-8 text.
size_t char_boundary(const std::string& s, size_t pos) {
  while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;
  return pos;
}

}  // namespace

class TestGenerator : public QObject {
  Q_OBJECT

 private:
  std::unique_ptr<fkv::Model> m_model;
  std::string m_path;
  std::vector<int32_t> m_prompt;
  const std::string m_promptText = "Once upon a time, in a small town";

  std::unique_ptr<fkv::Engine> newEngine() {
    auto e = fkv::Engine::create(fkv::EngineOptions{});
    if (!e.ok()) qFatal("Engine::create: %s", e.message().c_str());
    fkv::ModelOptions mo;
    mo.n_ctx = 256;
    mo.n_threads = 2;
    const fkv::Status s = (*e)->load_model(m_path, mo);
    if (!s.ok()) qFatal("load_model: %s", s.message().c_str());
    return std::move(e).value();
  }

  static fkv::GenerationOptions greedyOptions(int max_tokens) {
    fkv::GenerationOptions o;
    o.max_tokens = max_tokens;
    o.temperature = 0.f;
    o.raw = true;
    return o;
  }

  std::unique_ptr<fkv::Context> newContext(int n_ctx) {
    fkv::ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.page_size = 4;  // several pages even in short runs
    cp.n_batch = 4;    // the prompt goes in more than one batch
    cp.n_threads = 2;
    auto ctx = fkv::Context::create(*m_model, cp);
    if (!ctx.ok()) qFatal("Context::create: %s", ctx.message().c_str());
    return std::move(ctx).value();
  }

  // The greedy continuation computed without the generator: eval, argmax, repeat.
  std::vector<int32_t> referenceGreedy(int n) {
    auto ctx = newContext(256);
    std::vector<float> logits(static_cast<size_t>(m_model->config().n_vocab));
    std::vector<int32_t> out;
    fkv::Status s = ctx->eval(m_prompt, fkv::LogitsMode::Last, logits);
    for (int i = 0; s.ok() && i < n; ++i) {
      const int32_t id = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      out.push_back(id);
      s = ctx->eval(std::span<const int32_t>(&out.back(), 1), fkv::LogitsMode::Last, logits);
    }
    if (!s.ok()) qFatal("reference eval: %s", s.message().c_str());
    return out;
  }

 private slots:
  void initTestCase() {
    m_path = (fkvtest::tempDir() + "/generator.gguf").toStdString();
    const QString written = fkvtest::writeModel(fkvtest::llamaSpec(7, 256), QString::fromStdString(m_path));
    QVERIFY2(written.isEmpty(), qPrintable(written));
    auto model = fkv::Model::load(m_path);
    QVERIFY2(model.ok(), model.message().c_str());
    m_model = std::move(model).value();
    auto ids = m_model->tokenizer().encode(m_promptText, true, false);
    QVERIFY2(ids.ok(), ids.message().c_str());
    m_prompt = *ids;
    // The stopping tests below assume the greedy continuation does not end by itself early.
    for (int32_t id : referenceGreedy(24)) QVERIFY(!m_model->tokenizer().is_eog(id));
  }

  void greedyMatchesArgmaxLoop() {
    const std::vector<int32_t> expected = referenceGreedy(12);
    auto ctx = newContext(256);
    Streamed out;
    auto r = fkv::generate(*ctx, m_prompt, greedy(12), collect(out));
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->tokens, expected);
    QCOMPARE(r->n_prompt, static_cast<int>(m_prompt.size()));
    QCOMPARE(r->n_generated, 12);
    QCOMPARE(r->stop_reason, fkv::StopReason::max_tokens);
    // The last token is not evaluated: nothing would read its logits.
    QCOMPARE(ctx->n_past(), static_cast<int>(m_prompt.size()) + 11);
    std::string pieces;  // the token bytes in order; whole characters here, so streaming must not change them
    for (int32_t id : expected) pieces += m_model->tokenizer().token_piece(id);
    QVERIFY(!fkv::utf8_first_invalid(pieces).has_value());
    QCOMPARE(out.text(), pieces);
    for (const std::string& p : out.pieces) {
      QVERIFY(!p.empty());
      QVERIFY2(!fkv::utf8_first_invalid(p).has_value(), p.c_str());
    }
  }

  void decodeDoesNotAllocatePerToken() {
    // The same call with 2 and with 24 tokens must allocate equally often: everything is sized before the loop.
    long counts[2] = {0, 0};
    const int n_tokens[2] = {2, 24};
    for (int i = 0; i < 2; ++i) {
      auto ctx = newContext(256);
      int n_pieces = 0;
      const std::function<bool(std::string_view)> count_pieces = [&](std::string_view) { return ++n_pieces > 0; };
      const fkv::GenerateParams p = greedy(n_tokens[i]);
      const long before = g_n_allocs.load();
      auto r = fkv::generate(*ctx, m_prompt, p, count_pieces);
      counts[i] = g_n_allocs.load() - before;
      QVERIFY2(r.ok(), r.message().c_str());
      QCOMPARE(r->n_generated, n_tokens[i]);
    }
    QCOMPARE(counts[1], counts[0]);
  }

  void greedyIsDeterministic() {
    auto a = newContext(256);
    auto b = newContext(256);
    Streamed sa, sb;
    auto ra = fkv::generate(*a, m_prompt, greedy(10), collect(sa));
    auto rb = fkv::generate(*b, m_prompt, greedy(10), collect(sb));
    QVERIFY(ra.ok() && rb.ok());
    QCOMPARE(ra->tokens, rb->tokens);
    QCOMPARE(sa.text(), sb.text());
  }

  void seededSamplingRepeats() {
    fkv::GenerateParams p = greedy(10);
    p.sampler.temperature = 1.5f;
    p.sampler.top_k = 0;
    p.sampler.top_p = 1.f;
    p.sampler.min_p = 0.f;
    p.sampler.seed = 42;
    std::vector<std::vector<int32_t>> runs;
    for (int i = 0; i < 2; ++i) {
      auto ctx = newContext(256);
      auto r = fkv::generate(*ctx, m_prompt, p, nullptr);
      QVERIFY2(r.ok(), r.message().c_str());
      runs.push_back(r->tokens);
    }
    QCOMPARE(runs[0], runs[1]);
    QVERIFY(runs[0] != referenceGreedy(10));  // a hot sampler on a random model does not stay greedy for 10 tokens
  }

  void zeroMaxTokensOnlyPrefills() {
    auto ctx = newContext(256);
    auto r = fkv::generate(*ctx, m_prompt, greedy(0), nullptr);
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->n_generated, 0);
    QCOMPARE(r->stop_reason, fkv::StopReason::max_tokens);
    QCOMPARE(ctx->n_past(), static_cast<int>(m_prompt.size()));
  }

  void callbackFalseCancels() {
    auto ctx = newContext(256);
    int calls = 0;
    auto r = fkv::generate(*ctx, m_prompt, greedy(20), [&](std::string_view) { return ++calls < 2; });
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->stop_reason, fkv::StopReason::cancelled);
    QCOMPARE(calls, 2);
    QVERIFY(r->n_generated < 20);
  }

  void cancelFlagStopsBeforePrefill() {
    auto ctx = newContext(256);
    std::atomic<bool> cancel{true};
    fkv::GenerateParams p = greedy(20);
    p.cancel = &cancel;
    auto r = fkv::generate(*ctx, m_prompt, p, nullptr);
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->stop_reason, fkv::StopReason::cancelled);
    QCOMPARE(r->n_generated, 0);
    QCOMPARE(ctx->n_past(), 0);
  }

  void cancelFlagDuringDecode() {
    auto ctx = newContext(256);
    std::atomic<bool> cancel{false};
    fkv::GenerateParams p = greedy(20);
    p.cancel = &cancel;
    int calls = 0;
    auto r = fkv::generate(*ctx, m_prompt, p, [&](std::string_view) {
      if (++calls == 3) cancel.store(true);  // as another thread would, while the loop runs
      return true;
    });
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->stop_reason, fkv::StopReason::cancelled);
    QVERIFY(r->n_generated < 20);
  }

  void fullContextEndsGeneration() {
    const int n_ctx = static_cast<int>(m_prompt.size()) + 3;
    auto ctx = newContext(n_ctx);
    Streamed out;
    auto r = fkv::generate(*ctx, m_prompt, greedy(50), collect(out));
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->stop_reason, fkv::StopReason::context_full);
    QCOMPARE(r->n_generated, 4);  // three fill the free slots, the fourth is sampled from the last logits
    QCOMPARE(ctx->n_past(), n_ctx);
    QCOMPARE(r->tokens, referenceGreedy(4));
  }

  void promptThatDoesNotFitIsAnError() {
    auto ctx = newContext(static_cast<int>(m_prompt.size()) - 1);
    auto r = fkv::generate(*ctx, m_prompt, greedy(4), nullptr);
    QVERIFY(!r.ok());
    QVERIFY2(r.message().find("room for") != std::string::npos, r.message().c_str());
    QCOMPARE(ctx->n_past(), 0);
  }

  void badRequestsAreErrors() {
    auto ctx = newContext(64);
    QVERIFY(!fkv::generate(*ctx, {}, greedy(4), nullptr).ok());
    QVERIFY(!fkv::generate(*ctx, m_prompt, greedy(-1), nullptr).ok());
    fkv::GenerateParams p = greedy(4);
    p.stop = {""};
    QVERIFY(!fkv::generate(*ctx, m_prompt, p, nullptr).ok());
    p.stop = {"\xC3"};  // half a character
    QVERIFY(!fkv::generate(*ctx, m_prompt, p, nullptr).ok());
    p = greedy(4);
    p.sampler.top_p = 2.f;
    QVERIFY(!fkv::generate(*ctx, m_prompt, p, nullptr).ok());
    QCOMPARE(ctx->n_past(), 0);
  }

  void stopStringCutsTheText() {
    Streamed full;
    auto ctx = newContext(256);
    auto r = fkv::generate(*ctx, m_prompt, greedy(20), collect(full));
    QVERIFY(r.ok());
    QVERIFY(full.pieces.size() > 4);
    const std::string text = full.text();
    // The last character of one piece and the first of the next: the stop string is only complete one piece after
    // it starts, so its beginning must be held back, never streamed.
    const size_t i = full.pieces.size() / 2;
    const std::string& a = full.pieces[i];
    const std::string& b = full.pieces[i + 1];
    size_t last = a.size() - 1;
    while (last > 0 && (static_cast<unsigned char>(a[last]) & 0xC0) == 0x80) --last;
    const std::string stop = a.substr(last) + b.substr(0, char_boundary(b, 1));
    fkv::GenerateParams p = greedy(20);
    p.stop = {"never appears \x01", stop};
    Streamed cut;
    auto ctx2 = newContext(256);
    auto r2 = fkv::generate(*ctx2, m_prompt, p, collect(cut));
    QVERIFY2(r2.ok(), r2.message().c_str());
    QCOMPARE(r2->stop_reason, fkv::StopReason::stop_string);
    QCOMPARE(cut.text(), text.substr(0, text.find(stop)));
    QVERIFY(r2->n_generated < 20);
    for (const std::string& piece : cut.pieces) QVERIFY(!fkv::utf8_first_invalid(piece).has_value());
  }

  void continuesAfterEarlierTokens() {
    // A second call appends to what the context holds (a chat's next turn).
    auto ctx = newContext(256);
    auto first = fkv::generate(*ctx, m_prompt, greedy(3), nullptr);
    QVERIFY(first.ok());
    const int before = ctx->n_past();
    const std::vector<int32_t> more = {m_prompt[1], m_prompt[2]};
    auto second = fkv::generate(*ctx, more, greedy(2), nullptr);
    QVERIFY2(second.ok(), second.message().c_str());
    QCOMPARE(ctx->n_past(), before + 2 + 1);
  }
  // The facade: same text as the loop itself, prefix reuse that changes nothing, cancel from another thread, errors.
  void engineMatchesGenerator() {
    auto ctx = newContext(256);
    Streamed direct;
    QVERIFY(fkv::generate(*ctx, m_prompt, greedy(8), collect(direct)).ok());
    auto engine = newEngine();
    const fkv::ModelInfo info = engine->model_info();
    QVERIFY(info.loaded);
    QCOMPARE(info.architecture, std::string("llama"));
    QCOMPARE(info.n_ctx, 256);
    QCOMPARE(info.chat_template, std::string("llama2"));
    QCOMPARE(info.kv_bytes_per_token, uint64_t{2 * 2 * 2 * 16 * 2});
    Streamed streamed;
    auto r = engine->generate(m_promptText, greedyOptions(8), collect(streamed));
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->text, direct.text());
    QCOMPARE(streamed.text(), r->text);
    QCOMPARE(r->n_prompt_tokens, static_cast<int>(m_prompt.size()));
    QCOMPARE(r->stop_reason, fkv::StopReason::max_tokens);
  }

  // n_ctx 0: the context is the model's training context (256 for this synthetic model).
  void engineAutomaticContext() {
    auto e = fkv::Engine::create(fkv::EngineOptions{});
    QVERIFY(e.ok());
    fkv::ModelOptions mo;
    mo.n_ctx = 0;
    mo.n_threads = 2;
    const fkv::Status s = (*e)->load_model(m_path, mo);
    QVERIFY2(s.ok(), s.message().c_str());
    QCOMPARE((*e)->model_info().n_ctx, 256);
  }

  void engineReusesTheCachedPrefix() {
    const std::string longer = m_promptText + " there lived";
    auto fresh = newEngine();
    auto expected = fresh->generate(longer, greedyOptions(6), nullptr);
    QVERIFY(expected.ok());
    auto engine = newEngine();
    QVERIFY(engine->generate(m_promptText, greedyOptions(0), nullptr).ok());
    auto r = engine->generate(longer, greedyOptions(6), nullptr);
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->n_cached_tokens, static_cast<int>(m_prompt.size()));
    QCOMPARE(r->text, expected->text);
    // Asking again for the same prompt drops the answer and re-evaluates only the last prompt token (for its logits).
    auto again = engine->generate(longer, greedyOptions(6), nullptr);
    QVERIFY(again.ok());
    QCOMPARE(again->n_cached_tokens, r->n_prompt_tokens - 1);
    QCOMPARE(again->text, expected->text);
    // A prompt that leaves the cached one part way (an edited question) keeps the shared beginning only.
    const std::string edited = m_promptText + " once";
    auto fresh_edit = newEngine()->generate(edited, greedyOptions(6), nullptr);
    QVERIFY(fresh_edit.ok());
    auto edit = engine->generate(edited, greedyOptions(6), nullptr);
    QVERIFY2(edit.ok(), edit.message().c_str());
    QVERIFY(edit->n_cached_tokens >= static_cast<int>(m_prompt.size()) - 1);
    QVERIFY(edit->n_cached_tokens < edit->n_prompt_tokens);
    QCOMPARE(edit->text, fresh_edit->text);
  }

  void engineChat() {
    auto engine = newEngine();
    std::vector<fkv::Message> history = {{"system", "Be brief."}, {"user", "Hello"}};
    auto r = engine->chat(history, greedyOptions(4), nullptr);
    QVERIFY2(r.ok(), r.message().c_str());
    QVERIFY(r->n_prompt_tokens > 5);
    history.push_back({"assistant", r->text});
    QVERIFY(!engine->chat(history, greedyOptions(4), nullptr).ok());  // nothing to answer
    history.push_back({"user", "And then?"});
    auto next = engine->chat(history, greedyOptions(4), nullptr);
    QVERIFY2(next.ok(), next.message().c_str());
    QVERIFY(next->n_prompt_tokens > r->n_prompt_tokens);
  }

  void engineCancelFromAnotherThread() {
    auto engine = newEngine();
    std::atomic<bool> cancel_sent{false};
    std::atomic<int> n_pieces{0};
    fkv::Result<fkv::GenerateResult> r = fkv::Status::error("not run");
    std::thread worker([&] {
      r = engine->generate(m_promptText, greedyOptions(200), [&](std::string_view) {
        if (n_pieces.fetch_add(1) == 0) {
          while (!cancel_sent.load()) std::this_thread::yield();  // hold the loop until the request is made
        }
        return true;
      });
    });
    while (n_pieces.load() == 0) std::this_thread::yield();
    engine->cancel();
    cancel_sent.store(true);
    worker.join();
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->stop_reason, fkv::StopReason::cancelled);
    QVERIFY(r->n_generated < 5);
    // A request made while nothing runs does not cancel the next generation.
    engine->cancel();
    auto next = engine->generate(m_promptText, greedyOptions(3), nullptr);
    QVERIFY(next.ok());
    QCOMPARE(next->stop_reason, fkv::StopReason::max_tokens);
  }

  void engineErrors() {
    QVERIFY(!fkv::Engine::create({"sse9"}).ok());
    auto e = fkv::Engine::create(fkv::EngineOptions{});
    QVERIFY(e.ok());
    fkv::Engine& engine = **e;
    auto none = engine.generate("hi", greedyOptions(2), nullptr);
    QVERIFY(!none.ok());
    QVERIFY2(none.message().find("no model") != std::string::npos, none.message().c_str());
    QVERIFY(!engine.model_info().loaded);
    fkv::ModelOptions mo;
    mo.n_ctx = 64;
    QVERIFY(!fkv::parse_kv_type("q4").ok());
    mo.page_size = 0;
    QVERIFY(!engine.load_model(m_path, mo).ok());
    mo.page_size = 32;
    mo.chat_template = "jinja";
    QVERIFY(!engine.load_model(m_path, mo).ok());
    mo.chat_template = "chatml";
    QVERIFY(engine.load_model(m_path, mo).ok());
    QCOMPARE(engine.model_info().chat_template, std::string("chatml"));
    // A failed load keeps the model that was there.
    QVERIFY(!engine.load_model("/nonexistent/model.gguf", mo).ok());
    QVERIFY(engine.model_info().loaded);
    QVERIFY(!engine.chat({}, greedyOptions(2), nullptr).ok());
    auto tooLong = engine.generate(std::string(400, 'x') + " y z", greedyOptions(2), nullptr);
    QVERIFY(!tooLong.ok());
    QVERIFY2(tooLong.message().find("more than the context") != std::string::npos, tooLong.message().c_str());
    QVERIFY(engine.generate("hi", greedyOptions(2), nullptr).ok());
  }
};

QTEST_APPLESS_MAIN(TestGenerator)
#include "test_generator.moc"
