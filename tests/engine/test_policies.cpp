// Attention policies (kv/policy.h) through Context on small synthetic models: a budget covering the context is
// bit-identical to `full`; sparse selections keep every sink and recent page and fill the budget exactly; quest and
// arkvale agree bit for bit, and so does freekv with tau = 1; tau = -1 never corrects and in between exactly the heads
// below tau are corrected; edge cases, reset, prefill after decode, telemetry totals, and sliding-window layers that
// stay dense. (test_policy_direct.cpp checks the policies' selections directly, against brute force.)
#include <QTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kv/budget.h"
#include "kv/kv_cache.h"
#include "kv/page_summary.h"
#include "kv/policy.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/context.h"
#include "support/policy_helpers.h"
#include "support/test_paths.h"

using fkv::Budget;
using fkv::DType;
using fkv::KvGeometry;
using fkv::PageSelection;
using fkv::SelectCounters;
using fkv::SelectionQuery;
using Pages = std::vector<int32_t>;
using fkvtest::list;
using fkvtest::make_budget;

namespace {

// ---- through Context on synthetic models ----------------------------------------------------------------------------

struct Event {
  int layer = 0;
  int n_tokens = 0;            // context length of the step
  bool after_prefill = false;  // the first decode step after a prefill (or at the start)
  fkv::Policy policy = fkv::Policy::full;
  Pages indptr, pages;
  int reused = 0, recalled = 0, checked = 0, corrected = 0;
  uint64_t bytes = 0;
  bool has_cosine = false, has_flags = false;
  std::vector<float> cosine;
  std::vector<uint8_t> flags;
  double select_s = 0, recall_s = 0, wait_s = 0;

  Pages head(int h) const {
    return Pages(pages.begin() + indptr[static_cast<size_t>(h)], pages.begin() + indptr[static_cast<size_t>(h) + 1]);
  }
};

class Recorder : public fkv::TelemetryObserver {
 public:
  int n_tokens = 0;
  bool after_prefill = true;  // no decode step has run yet
  std::vector<Event> events;

  void on_layer_step(const fkv::LayerStepEvent& e) override {
    Event x;
    x.layer = e.layer;
    x.n_tokens = n_tokens;
    x.after_prefill = after_prefill;
    x.policy = e.policy;
    x.indptr.assign(e.sel_indptr, e.sel_indptr + e.n_kv_heads + 1);
    x.pages.assign(e.sel_pages, e.sel_pages + e.sel_indptr[e.n_kv_heads]);
    x.reused = e.pages_reused;
    x.recalled = e.pages_recalled;
    x.bytes = e.bytes_recalled;
    x.checked = e.heads_checked;
    x.corrected = e.heads_corrected;
    x.has_cosine = e.cosine != nullptr;
    x.has_flags = e.corrected != nullptr;
    if (x.has_cosine) x.cosine.assign(e.cosine, e.cosine + e.n_kv_heads);
    if (x.has_flags) x.flags.assign(e.corrected, e.corrected + e.n_kv_heads);
    x.select_s = e.select_s;
    x.recall_s = e.recall_s;
    x.wait_s = e.wait_s;
    events.push_back(std::move(x));
  }
};

struct RunSpec {
  fkv::Policy policy = fkv::Policy::full;
  int page_size = 8;
  Budget budget = make_budget(8, 8, 16, 8);
  float tau = 0.9f;
  DType kv = DType::F16;
  int n_threads = 1;  // inline: the suites stay fast on a loaded machine (the pool spins on busy cores)
  fkv::Speculation speculation = fkv::Speculation::background;
};

// One context and what it produced. Not copyable: the context points at the recorder.
struct Run {
  std::unique_ptr<fkv::Context> ctx;
  Recorder rec;
  std::vector<std::vector<float>> logits;  // (evals, n_vocab) of each eval's last token
  std::vector<int32_t> tokens;
  size_t next = 0;

  Run() = default;
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  QString start(const fkv::Model& m, const RunSpec& s, uint64_t token_seed = 1) {
    fkv::ContextParams p;
    p.n_ctx = 128;
    p.page_size = s.page_size;
    p.n_threads = s.n_threads;
    p.kv_type = s.kv;
    p.policy = s.policy;
    p.budget = s.budget;
    p.correction_tau = s.tau;
    p.speculation = s.speculation;
    p.observer = &rec;
    auto c = fkv::Context::create(m, p);
    if (!c.ok()) return QString::fromStdString(c.message());
    ctx = std::move(*c);
    std::mt19937_64 rng(token_seed);
    tokens.resize(static_cast<size_t>(p.n_ctx));
    for (int32_t& t : tokens) t = 3 + static_cast<int32_t>(rng() % static_cast<uint64_t>(m.config().n_vocab - 3));
    next = 0;
    return {};
  }

  // Evaluates `chunks` (tokens per eval call; 1 is a decode step) of the next tokens.
  QString feed(const std::vector<int>& chunks) {
    const int n_vocab = ctx->model().config().n_vocab;
    for (int n : chunks) {
      rec.n_tokens = ctx->n_past() + n;
      std::vector<float> out(static_cast<size_t>(n_vocab));
      const fkv::Status st =
          ctx->eval(std::span<const int32_t>(tokens.data() + next, static_cast<size_t>(n)), fkv::LogitsMode::Last, out);
      if (!st.ok()) return QString::fromStdString(st.message());
      rec.after_prefill = n > 1;
      next += static_cast<size_t>(n);
      logits.push_back(std::move(out));
    }
    return {};
  }
};

// A prompt of `prompt` tokens (a decode step when 1) then `steps` decode steps.
std::vector<int> script(int prompt, int steps) {
  std::vector<int> s{prompt};
  s.insert(s.end(), static_cast<size_t>(steps), 1);
  return s;
}

// Decode, a two-token prefill within the page the speculation was made for, more decode, a prefill across pages,
// decode.
const std::vector<int> kPrefillScript{40, 1, 1, 2, 1, 1, 1, 1, 1, 1, 9, 1, 1, 1, 1, 1, 1};

// The decode-step counters two runs must share; empty when they do.
QString same_stats(const fkv::RetrievalStats& a, const fkv::RetrievalStats& b) {
  const std::pair<const char*, std::pair<int64_t, int64_t>> counts[] = {
      {"layer steps", {a.layer_steps, b.layer_steps}},       {"pages selected", {a.pages_selected, b.pages_selected}},
      {"pages reused", {a.pages_reused, b.pages_reused}},    {"pages recalled", {a.pages_recalled, b.pages_recalled}},
      {"heads checked", {a.heads_checked, b.heads_checked}}, {"heads corrected", {a.heads_corrected, b.heads_corrected}}};
  for (const auto& [what, v] : counts) {
    if (v.first != v.second) return QString("%1: %2 vs %3").arg(what).arg(v.first).arg(v.second);
  }
  return {};
}

QString same_logits(const Run& a, const Run& b, size_t from_a = 0) {
  if (a.logits.size() - from_a != b.logits.size()) return "different numbers of evals";
  for (size_t i = 0; i < b.logits.size(); ++i)
    if (std::memcmp(a.logits[from_a + i].data(), b.logits[i].data(), b.logits[i].size() * sizeof(float)) != 0)
      return QString("logits of eval %1 differ").arg(i);
  return {};
}

QString same_selections(const std::vector<Event>& a, const std::vector<Event>& b) {
  if (a.size() != b.size()) return QString("%1 events vs %2").arg(a.size()).arg(b.size());
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].indptr != b[i].indptr || a[i].pages != b[i].pages)
      return QString::asprintf("event %zu (layer %d, %d tokens): ", i, a[i].layer, a[i].n_tokens) + list(a[i].pages) +
             " vs " + list(b[i].pages);
  return {};
}

// One event of a sparse policy: every head's pages ascending, unique and of the context; all of them while the context
// fits the budget; else every sink and recent page and exactly the budget's page count (streaming: no retrieved page),
// the retrieved ones from the middle.
QString check_budget(const Event& e, const RunSpec& s) {
  const Budget& b = s.budget;
  const int n_pages = (e.n_tokens + s.page_size - 1) / s.page_size;
  const bool streaming = s.policy == fkv::Policy::streaming;
  const bool fits = n_pages * s.page_size <= b.total_tokens();
  const int sink_end = std::min(n_pages, b.sink_pages());
  const int recent_begin = std::max(sink_end, n_pages - b.recent_pages());
  const QString where = QString("layer %1, %2 tokens").arg(e.layer).arg(e.n_tokens);
  if (e.policy != s.policy) return where + ": event names policy " + QString(fkv::policy_name(e.policy));
  for (int h = 0; h + 1 < static_cast<int>(e.indptr.size()); ++h) {
    const Pages got = e.head(h);
    const QString at = where + QString(" head %1 %2: ").arg(h).arg(list(got));
    for (size_t i = 0; i < got.size(); ++i)
      if (got[i] < 0 || got[i] >= n_pages || (i > 0 && got[i] <= got[i - 1]))
        return at + "not ascending pages of the context";
    const int want = fits ? n_pages
                          : sink_end + (n_pages - recent_begin) +
                                (streaming ? 0 : std::min(b.retrieved_pages(), recent_begin - sink_end));
    if (static_cast<int>(got.size()) != want) return at + QString("%1 pages, expected %2").arg(got.size()).arg(want);
    for (int p = 0; p < n_pages; ++p) {
      const bool must = fits || p < sink_end || p >= recent_begin;
      if (must && !std::binary_search(got.begin(), got.end(), p)) return at + QString("page %1 missing").arg(p);
    }
  }
  return {};
}

}  // namespace

class TestPolicies : public QObject {
  Q_OBJECT

  std::unique_ptr<fkv::Model> llama_;
  std::unique_ptr<fkv::Model> gemma_;

  // Writes and loads a synthetic model; null (and *error set) on failure.
  static std::unique_ptr<fkv::Model> load(fkv::SyntheticModelSpec spec, const char* name, QString* error) {
    spec.vocab_path = fkvtest::llamaVocabPath().toStdString();
    spec.n_ctx = 256;
    spec.weight_type = DType::Q8_0;  // small matrices keep the 32000-token output cheap under sanitizers
    spec.tied_embeddings = true;
    const std::string path = (fkvtest::tempDir() + "/" + name + ".gguf").toStdString();
    if (const fkv::Status st = fkv::write_synthetic_model(spec, path); !st.ok()) {
      *error = QString::fromStdString(st.message());
      return nullptr;
    }
    auto m = fkv::Model::load(path);
    if (!m.ok()) {
      *error = QString::fromStdString(m.message());
      return nullptr;
    }
    return std::move(*m);
  }

  // Runs `chunks` under spec into `run`; test failure on any error.
  void run(const fkv::Model& m, const RunSpec& s, const std::vector<int>& chunks, Run& r, uint64_t seed = 1) {
    QString e = r.start(m, s, seed);
    QVERIFY2(e.isEmpty(), qPrintable(e));
    e = r.feed(chunks);
    QVERIFY2(e.isEmpty(), qPrintable(QString(fkv::policy_name(s.policy)) + ": " + e));
  }

  static void add_sparse_rows() {
    QTest::addColumn<QString>("policy");
    for (fkv::Policy p : {fkv::Policy::streaming, fkv::Policy::quest, fkv::Policy::arkvale, fkv::Policy::freekv})
      QTest::newRow(fkv::policy_name(p)) << QString(fkv::policy_name(p));
  }

 private slots:
  void initTestCase() {
    fkv::SyntheticModelSpec llama;
    llama.seed = 41;
    QString error;
    llama_ = load(llama, "policy-llama", &error);
    QVERIFY2(llama_, qPrintable(error));
    fkv::SyntheticModelSpec gemma;
    gemma.arch = fkv::Arch::Gemma3;
    gemma.n_layers = 6;  // layers 0-4 local, layer 5 global
    gemma.n_heads = 2;
    gemma.n_kv_heads = 1;
    gemma.head_dim = 32;
    gemma.sliding_window = 8;
    gemma.seed = 42;
    gemma_ = load(gemma, "policy-gemma", &error);
    QVERIFY2(gemma_, qPrintable(error));
  }

  void budgetCoveringContextIsFull_data() {
    QTest::addColumn<QString>("policy");
    QTest::addColumn<DType>("kv");
    for (fkv::Policy p : {fkv::Policy::streaming, fkv::Policy::quest, fkv::Policy::arkvale, fkv::Policy::freekv}) {
      QTest::addRow("%s f16", fkv::policy_name(p)) << QString(fkv::policy_name(p)) << DType::F16;
      QTest::addRow("%s f32", fkv::policy_name(p)) << QString(fkv::policy_name(p)) << DType::F32;
    }
  }

  // 44 + 20 tokens, ending exactly at the 64-token budget.
  void budgetCoveringContextIsFull() {
    QFETCH(QString, policy);
    QFETCH(DType, kv);
    const fkv::Policy name = *fkv::parse_policy(policy.toStdString());
    RunSpec s;
    s.kv = kv;
    s.budget = make_budget(8, 8, 48, 8);
    Run full, sparse;
    run(*llama_, s, script(44, 20), full);
    s.policy = name;
    run(*llama_, s, script(44, 20), sparse);
    if (QTest::currentTestFailed()) return;
    const QString diff = same_logits(sparse, full);
    QVERIFY2(diff.isEmpty(), qPrintable(diff));
    QCOMPARE(static_cast<int>(sparse.rec.events.size()), 20 * 2);
    for (const Event& e : sparse.rec.events) {
      const QString bad = check_budget(e, s);
      QVERIFY2(bad.isEmpty(), qPrintable(bad));
      QVERIFY(e.checked == 0 && e.recalled == 0 && e.reused == 0);
    }
    QCOMPARE(sparse.ctx->stats().pages_recalled, int64_t{0});
  }

  void sparseSelectionsRespectBudget_data() {
    QTest::addColumn<QString>("policy");
    QTest::addColumn<int>("page_size");
    for (fkv::Policy p : {fkv::Policy::streaming, fkv::Policy::quest, fkv::Policy::arkvale, fkv::Policy::freekv}) {
      QTest::addRow("%s page 4", fkv::policy_name(p)) << QString(fkv::policy_name(p)) << 4;
      QTest::addRow("%s page 8", fkv::policy_name(p)) << QString(fkv::policy_name(p)) << 8;
    }
  }

  // 45 + 20 tokens (45 is no multiple of the page) against a 32-token budget.
  void sparseSelectionsRespectBudget() {
    QFETCH(QString, policy);
    QFETCH(int, page_size);
    const fkv::Policy name = *fkv::parse_policy(policy.toStdString());
    RunSpec s;
    s.page_size = page_size;
    s.budget = make_budget(8, 8, 16, page_size);
    Run full, sparse;
    run(*llama_, s, script(45, 20), full);
    s.policy = name;
    run(*llama_, s, script(45, 20), sparse);
    if (QTest::currentTestFailed()) return;
    QCOMPARE(static_cast<int>(sparse.rec.events.size()), 20 * 2);
    for (const Event& e : sparse.rec.events) {
      const QString bad = check_budget(e, s);
      QVERIFY2(bad.isEmpty(), qPrintable(bad));
    }
    QVERIFY2(!same_logits(sparse, full).isEmpty(), "a budget smaller than the context should change the logits");
  }

  void questEqualsArkvale_data() {
    QTest::addColumn<int>("page_size");
    QTest::addColumn<DType>("kv");
    QTest::addColumn<int>("n_threads");  // 2: each head's pages are split over two attention ranges
    QTest::newRow("page 4 f16") << 4 << DType::F16 << 1;
    QTest::newRow("page 8 f32, 2 threads") << 8 << DType::F32 << 2;
  }

  // Arkvale attends copies of exactly the pages quest reads in place: same selections, same logits to the bit.
  void questEqualsArkvale() {
    QFETCH(int, page_size);
    QFETCH(DType, kv);
    QFETCH(int, n_threads);
    RunSpec s;
    s.page_size = page_size;
    s.kv = kv;
    s.n_threads = n_threads;
    s.budget = make_budget(8, 8, 16, page_size);
    Run quest, ark;
    s.policy = fkv::Policy::quest;
    run(*llama_, s, kPrefillScript, quest);
    s.policy = fkv::Policy::arkvale;
    run(*llama_, s, kPrefillScript, ark);
    if (QTest::currentTestFailed()) return;
    QString d = same_selections(quest.rec.events, ark.rec.events);
    QVERIFY2(d.isEmpty(), qPrintable(d));
    d = same_logits(quest, ark);
    QVERIFY2(d.isEmpty(), qPrintable(d));
    const int k = s.budget.retrieved_pages();
    for (const Event& e : ark.rec.events) QCOMPARE(e.reused + e.recalled, 2 * k);  // every step is sparse
    QVERIFY(ark.ctx->stats().pages_reused > 0);                                    // consecutive steps share pages
  }

  // tau = 1 corrects every checked head: freekv then attends arkvale's pages, bit for bit, prefills included.
  void freeKvTauOneIsArkvale() {
    RunSpec s;
    s.tau = 1.f;
    Run ark, fk;
    s.policy = fkv::Policy::arkvale;
    run(*llama_, s, kPrefillScript, ark);
    s.policy = fkv::Policy::freekv;
    run(*llama_, s, kPrefillScript, fk);
    if (QTest::currentTestFailed()) return;
    QString d = same_selections(fk.rec.events, ark.rec.events);
    QVERIFY2(d.isEmpty(), qPrintable(d));
    d = same_logits(fk, ark);
    QVERIFY2(d.isEmpty(), qPrintable(d));
    for (const Event& e : fk.rec.events) {
      QCOMPARE(e.checked, e.corrected);
      for (uint8_t f : e.flags) QCOMPARE(f, uint8_t{1});
    }
    QVERIFY(fk.ctx->stats().heads_checked > 0);
  }

  // Where the speculation runs changes when its work is done, never what it selects: inline and background runs of
  // freekv select, correct, recall and compute the same, prefills between decode steps included; with 2 compute
  // threads inline recall copies the KV heads on both.
  void freeKvInlineSpeculationIsBackgroundSpeculation_data() {
    QTest::addColumn<int>("threads");
    QTest::newRow("1 thread") << 1;
    QTest::newRow("2 threads") << 2;
  }
  void freeKvInlineSpeculationIsBackgroundSpeculation() {
    QFETCH(int, threads);
    RunSpec s;
    s.policy = fkv::Policy::freekv;
    s.tau = 0.5f;  // some heads corrected, most speculations used
    s.n_threads = threads;
    Run bg, in;
    s.speculation = fkv::Speculation::background;
    run(*llama_, s, kPrefillScript, bg);
    s.speculation = fkv::Speculation::inline_;
    run(*llama_, s, kPrefillScript, in);
    if (QTest::currentTestFailed()) return;
    QVERIFY(bg.ctx->speculation() == fkv::Speculation::background);
    QVERIFY(in.ctx->speculation() == fkv::Speculation::inline_);
    QString d = same_selections(in.rec.events, bg.rec.events);
    QVERIFY2(d.isEmpty(), qPrintable(d));
    d = same_logits(in, bg);
    QVERIFY2(d.isEmpty(), qPrintable(d));
    const fkv::RetrievalStats& a = in.ctx->stats();
    d = same_stats(a, bg.ctx->stats());
    QVERIFY2(d.isEmpty(), qPrintable(d));
    QVERIFY(a.heads_checked > 0 && a.pages_recalled > 0);
    QCOMPARE(a.wait_s, 0.0);  // inline, nothing is waited for
    QVERIFY2(fkv::parse_speculation("eager").message().find(
                 "unknown speculation 'eager' (expected background, inline or auto)") != std::string::npos,
             fkv::parse_speculation("eager").message().c_str());
    QVERIFY(*fkv::parse_speculation("inline") == fkv::Speculation::inline_);
    QVERIFY(*fkv::parse_speculation("auto") == fkv::Speculation::automatic);
  }

  // "auto" runs the speculation inline when the compute threads take every hardware thread (no core is free for a
  // background one) and on its own thread otherwise; the context reports the choice, never "auto".
  void automaticSpeculationFollowsTheFreeCores() {
    const int hw = fkv::ThreadPool::default_threads();
    RunSpec s;
    s.policy = fkv::Policy::freekv;
    s.speculation = fkv::Speculation::automatic;
    s.n_threads = hw;
    Run all;
    QString e = all.start(*llama_, s);
    QVERIFY2(e.isEmpty(), qPrintable(e));
    QVERIFY(all.ctx->speculation() == fkv::Speculation::inline_);
    if (hw > 1) {
      s.n_threads = hw - 1;
      Run fewer;
      e = fewer.start(*llama_, s);
      QVERIFY2(e.isEmpty(), qPrintable(e));
      QVERIFY(fewer.ctx->speculation() == fkv::Speculation::background);
    }
  }

  // Switching the policy of a prefilled context decodes exactly like a context made with that policy; a bad name is
  // refused and leaves the current policy working.
  void setPolicyOnPrefilledContext_data() { add_sparse_rows(); }
  void setPolicyOnPrefilledContext() {
    QFETCH(QString, policy);
    const fkv::Policy name = *fkv::parse_policy(policy.toStdString());
    RunSpec s;
    s.policy = name;
    Run direct, switched;
    run(*llama_, s, script(40, 12), direct);
    RunSpec full;
    run(*llama_, full, {40}, switched);
    if (QTest::currentTestFailed()) return;
    const fkv::Status bad = switched.ctx->set_policy(name, s.budget, 1.5f);
    QVERIFY(!bad.ok() && bad.message().find("tau") != std::string::npos);
    const fkv::Status st = switched.ctx->set_policy(name, s.budget, s.tau);
    QVERIFY2(st.ok(), st.message().c_str());
    QVERIFY2(switched.feed(std::vector<int>(12, 1)).isEmpty(), "decode after set_policy failed");
    const QString d = same_logits(direct, switched);
    QVERIFY2(d.isEmpty(), qPrintable(d));
    QCOMPARE(switched.ctx->stats().layer_steps, direct.ctx->stats().layer_steps);
  }

  // tau = -1: no cosine is below it, so no head is ever corrected, though heads are checked.
  void freeKvTauMinusOneNeverCorrects() {
    RunSpec s;
    s.policy = fkv::Policy::freekv;
    s.tau = -1.f;
    Run fk;
    run(*llama_, s, kPrefillScript, fk);
    if (QTest::currentTestFailed()) return;
    QVERIFY(fk.ctx->stats().heads_checked > 0);
    QCOMPARE(fk.ctx->stats().heads_corrected, int64_t{0});
    for (const Event& e : fk.rec.events) {
      QCOMPARE(e.corrected, 0);
      for (uint8_t f : e.flags) QCOMPARE(f, uint8_t{0});
      for (float c : e.cosine) QVERIFY2(c >= -1.f && c <= 1.f, qPrintable(QString("cosine %1").arg(c)));
    }
  }

  // A threshold at the median of the cosines seen: each checked head is corrected exactly when its cosine is below tau;
  // the first decode step after a prefill has no speculation to check.
  void freeKvCorrectsExactlyBelowTau() {
    RunSpec s;
    s.policy = fkv::Policy::freekv;
    s.tau = -1.f;
    Run probe;
    run(*llama_, s, kPrefillScript, probe);
    if (QTest::currentTestFailed()) return;
    std::vector<float> seen;
    for (const Event& e : probe.rec.events) seen.insert(seen.end(), e.cosine.begin(), e.cosine.end());
    QVERIFY(seen.size() > 10);
    std::nth_element(seen.begin(), seen.begin() + static_cast<ptrdiff_t>(seen.size() / 2), seen.end());
    s.tau = seen[seen.size() / 2];
    Run fk;
    run(*llama_, s, kPrefillScript, fk);
    if (QTest::currentTestFailed()) return;
    int below = 0, above = 0;
    for (const Event& e : fk.rec.events) {
      const QString where = QString("layer %1, %2 tokens").arg(e.layer).arg(e.n_tokens);
      QVERIFY2(e.has_cosine == !e.after_prefill && e.has_flags == e.has_cosine,
               qPrintable(where + ": speculation checked right after a prefill, or not checked later"));
      QCOMPARE(e.checked, e.has_cosine ? 2 : 0);
      int n = 0;
      for (size_t h = 0; h < e.cosine.size(); ++h) {
        const bool corr = e.cosine[h] < s.tau;
        QVERIFY2(e.flags[h] == (corr ? 1 : 0),
                 qPrintable(where + QString::asprintf(": head %zu cosine %g, tau %g, flag %d", h, e.cosine[h], s.tau,
                                                      e.flags[h])));
        n += corr;
        (corr ? below : above) += 1;
      }
      QCOMPARE(e.corrected, n);
    }
    QVERIFY2(below > 0 && above > 0, qPrintable(QString("%1 heads below tau, %2 above").arg(below).arg(above)));
  }

  void edgeCases_data() {
    QTest::addColumn<int>("prompt");
    QTest::addColumn<int>("steps");
    QTest::addColumn<int>("page_size");
    QTest::addColumn<int>("sink");
    QTest::addColumn<int>("recent");
    QTest::addColumn<int>("retrieved");
    QTest::newRow("one token, budget covers") << 1 << 20 << 4 << 8 << 8 << 16;
    QTest::newRow("one token, small budget") << 1 << 24 << 4 << 4 << 4 << 4;
    QTest::newRow("exactly one page") << 8 << 0 << 8 << 8 << 8 << 8;
    QTest::newRow("one page, then beyond the budget") << 8 << 24 << 8 << 8 << 8 << 8;
    QTest::newRow("page does not divide the context") << 13 << 19 << 8 << 8 << 8 << 8;
    QTest::newRow("budget larger than the context") << 30 << 10 << 8 << 64 << 64 << 128;
    QTest::newRow("no retrieved pages") << 30 << 10 << 4 << 8 << 8 << 0;
    QTest::newRow("no sink") << 30 << 10 << 4 << 0 << 8 << 8;
    QTest::newRow("page of one token") << 10 << 10 << 1 << 2 << 2 << 4;
  }

  // Every policy on each shape: bit-identical to `full` while the budget covers the whole run, within the budget
  // otherwise, and no error either way.
  void edgeCases() {
    QFETCH(int, prompt);
    QFETCH(int, steps);
    QFETCH(int, page_size);
    QFETCH(int, sink);
    QFETCH(int, recent);
    QFETCH(int, retrieved);
    RunSpec s;
    s.page_size = page_size;
    s.budget = make_budget(sink, recent, retrieved, page_size);
    const int n_pages = (prompt + steps + page_size - 1) / page_size;
    const bool covered = n_pages * page_size <= s.budget.total_tokens();
    Run full;
    run(*llama_, s, script(prompt, steps), full);
    for (fkv::Policy p : {fkv::Policy::streaming, fkv::Policy::quest, fkv::Policy::arkvale, fkv::Policy::freekv}) {
      s.policy = p;
      Run r;
      run(*llama_, s, script(prompt, steps), r);
      if (QTest::currentTestFailed()) return;
      QCOMPARE(static_cast<int>(r.rec.events.size()), 2 * (steps + (prompt == 1)));
      if (covered) {
        const QString d = same_logits(r, full);
        QVERIFY2(d.isEmpty(), qPrintable(QString(fkv::policy_name(p)) + ": " + d));
      }
      for (const Event& e : r.rec.events) {
        const QString bad = check_budget(e, s);
        QVERIFY2(bad.isEmpty(), qPrintable(QString(fkv::policy_name(p)) + ": " + bad));
      }
    }
  }

  void resetThenReuse_data() { add_sparse_rows(); }

  // After reset() a context behaves like a fresh one: same logits, same selections, same recall counts (nothing stays
  // resident or speculative from before).
  void resetThenReuse() {
    QFETCH(QString, policy);
    const fkv::Policy name = *fkv::parse_policy(policy.toStdString());
    RunSpec s;
    s.policy = name;
    s.tau = 0.5f;
    Run used, fresh;
    run(*llama_, s, script(40, 12), used, 7);
    if (QTest::currentTestFailed()) return;
    used.ctx->reset();
    QCOMPARE(used.ctx->n_past(), 0);
    QCOMPARE(used.ctx->stats().layer_steps, int64_t{0});
    const size_t evals_before = used.logits.size();
    used.rec.events.clear();
    used.next = 64;  // other tokens than before the reset
    QString e = used.feed(script(45, 15));
    QVERIFY2(e.isEmpty(), qPrintable(e));
    QVERIFY(fresh.start(*llama_, s, 7).isEmpty());
    fresh.next = 64;
    e = fresh.feed(script(45, 15));
    QVERIFY2(e.isEmpty(), qPrintable(e));
    e = same_logits(used, fresh, evals_before);
    QVERIFY2(e.isEmpty(), qPrintable(e));
    e = same_selections(used.rec.events, fresh.rec.events);
    QVERIFY2(e.isEmpty(), qPrintable(e));
    e = same_stats(used.ctx->stats(), fresh.ctx->stats());
    QVERIFY2(e.isEmpty(), qPrintable(e));
  }

  void prefillAfterDecode_data() { add_sparse_rows(); }

  // Prefills between decode steps: selections stay within the budget; freekv drops the speculation the prefill made
  // stale and selects synchronously (no check on that step), then speculates again.
  void prefillAfterDecode() {
    QFETCH(QString, policy);
    const fkv::Policy name = *fkv::parse_policy(policy.toStdString());
    RunSpec s;
    s.policy = name;
    s.tau = 0.5f;
    Run r;
    run(*llama_, s, kPrefillScript, r);
    if (QTest::currentTestFailed()) return;
    QCOMPARE(r.ctx->n_past(), 65);
    for (const Event& e : r.rec.events) {
      const QString bad = check_budget(e, s);
      QVERIFY2(bad.isEmpty(), qPrintable(bad));
      if (name != fkv::Policy::freekv) continue;
      QVERIFY2(e.checked == (e.after_prefill ? 0 : 2),
               qPrintable(QString::asprintf("layer %d, %d tokens: %d heads checked", e.layer, e.n_tokens, e.checked)));
    }
  }

  void statsAreEventSums_data() { add_sparse_rows(); }

  // The totals are the sums of the events; a detached observer receives nothing while the totals go on; a context
  // without an observer computes the same.
  void statsAreEventSums() {
    QFETCH(QString, policy);
    const fkv::Policy name = *fkv::parse_policy(policy.toStdString());
    RunSpec s;
    s.policy = name;
    s.tau = 0.5f;
    Run r;
    run(*llama_, s, kPrefillScript, r);
    if (QTest::currentTestFailed()) return;
    fkv::RetrievalStats sum;
    for (const Event& e : r.rec.events) {
      sum.layer_steps += 1;
      sum.pages_selected += e.indptr.back();
      sum.pages_reused += e.reused;
      sum.pages_recalled += e.recalled;
      sum.bytes_recalled += e.bytes;
      sum.heads_checked += e.checked;
      sum.heads_corrected += e.corrected;
      sum.select_s += e.select_s;
      sum.recall_s += e.recall_s;
      sum.wait_s += e.wait_s;
    }
    const fkv::RetrievalStats& st = r.ctx->stats();
    QCOMPARE(st.layer_steps, sum.layer_steps);
    QCOMPARE(st.pages_selected, sum.pages_selected);
    QCOMPARE(st.pages_reused, sum.pages_reused);
    QCOMPARE(st.pages_recalled, sum.pages_recalled);
    QCOMPARE(st.bytes_recalled, sum.bytes_recalled);
    QCOMPARE(st.heads_checked, sum.heads_checked);
    QCOMPARE(st.heads_corrected, sum.heads_corrected);
    QVERIFY(st.select_s == sum.select_s && st.recall_s == sum.recall_s && st.wait_s == sum.wait_s);
    QVERIFY(st.pages_selected > 0);
    QVERIFY((name == fkv::Policy::arkvale || name == fkv::Policy::freekv) == (st.pages_recalled > 0));

    r.ctx->set_observer(nullptr);
    const size_t n_events = r.rec.events.size();
    const QString e = r.feed(script(1, 4));
    QVERIFY2(e.isEmpty(), qPrintable(e));
    QCOMPARE(r.rec.events.size(), n_events);
    QCOMPARE(r.ctx->stats().layer_steps, sum.layer_steps + 2 * 5);

    Run quiet;
    QVERIFY(quiet.start(*llama_, s).isEmpty());
    quiet.ctx->set_observer(nullptr);
    QVERIFY(quiet.feed(kPrefillScript).isEmpty());
    QVERIFY(quiet.feed(script(1, 4)).isEmpty());
    QVERIFY(quiet.rec.events.empty());
    QVERIFY2(same_logits(quiet, r).isEmpty(), "telemetry changed the logits");
    QCOMPARE(quiet.ctx->stats().pages_recalled, r.ctx->stats().pages_recalled);
    QCOMPARE(quiet.ctx->stats().heads_corrected, r.ctx->stats().heads_corrected);
  }

  void slidingWindowLayersStayDense_data() { add_sparse_rows(); }

  // Gemma 3 with an 8-token window: local layers attend their whole window under every policy; the global layer is
  // sparse within the budget.
  void slidingWindowLayersStayDense() {
    QFETCH(QString, policy);
    const fkv::Policy name = *fkv::parse_policy(policy.toStdString());
    const fkv::ModelConfig& cfg = gemma_->config();
    RunSpec s;
    s.policy = name;
    s.page_size = 4;
    s.budget = make_budget(4, 4, 8, 4);
    Run r;
    run(*gemma_, s, script(40, 10), r);
    if (QTest::currentTestFailed()) return;
    QCOMPARE(static_cast<int>(r.rec.events.size()), 10 * cfg.n_layers);
    int n_local = 0;
    for (const Event& e : r.rec.events) {
      if (!cfg.layer_local[static_cast<size_t>(e.layer)]) {
        const QString bad = check_budget(e, s);
        QVERIFY2(bad.isEmpty(), qPrintable(bad));
        continue;
      }
      ++n_local;
      const int pos = e.n_tokens - 1;
      const int first = std::max(0, pos - cfg.sliding_window + 1) / s.page_size;
      Pages want(static_cast<size_t>((e.n_tokens + s.page_size - 1) / s.page_size - first));
      std::iota(want.begin(), want.end(), first);
      QVERIFY2(e.head(0) == want, qPrintable(QString::asprintf("local layer %d, %d tokens: ", e.layer, e.n_tokens) +
                                             list(e.head(0)) + ", expected " + list(want)));
      QVERIFY(e.checked == 0 && e.recalled == 0);
    }
    QCOMPARE(n_local, 10 * 5);
  }
};

QTEST_APPLESS_MAIN(TestPolicies)
#include "test_policies.moc"
