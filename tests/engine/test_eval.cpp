// Long-context evaluation: generated tasks (deterministic, sized to the target, needles where they belong), the
// fidelity comparison of a policy with full attention, and the `freekv eval` / `freekv bench --policy` commands.
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>

#include "eval/eval_tasks.h"
#include "eval/fidelity.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "support/cli_runner.h"
#include "support/test_models.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"

namespace {

int occurrences(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
  return n;
}

bool endsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

using fkvtest::CliRun;
using fkvtest::parseObject;
using fkvtest::runCli;

}  // namespace

class TestEval : public QObject {
  Q_OBJECT

 private:
  std::unique_ptr<fkv::Model> m_model;
  const fkv::Tokenizer& tok() const { return m_model->tokenizer(); }

  std::vector<fkv::EvalTask> tasks(std::string_view kind, int target, int count, uint64_t seed) {
    fkv::Result<std::vector<fkv::EvalTask>> r = fkv::make_tasks(tok(), kind, target, count, seed);
    if (!r.ok()) qWarning("make_tasks: %s", r.message().c_str());
    return r.ok() ? std::move(r).value() : std::vector<fkv::EvalTask>();
  }

  fkv::FidelityParams smallBudget(fkv::Policy policy) const {
    fkv::FidelityParams p;
    p.n_gen = 8;
    p.context.policy = policy;
    p.context.page_size = 16;
    p.context.budget = fkv::Budget{16, 32, 32, 16};
    return p;
  }

 private slots:
  void initTestCase() {
    fkv::SyntheticModelSpec spec = fkvtest::llamaSpec(11);  // 2 layers, embd 64, 4 heads, 2 KV heads: fast
    spec.name = "eval test model";
    const std::string path = (fkvtest::tempDir() + "/eval.gguf").toStdString();
    const QString written = fkvtest::writeModel(spec, QString::fromStdString(path));
    QVERIFY2(written.isEmpty(), qPrintable(written));
    fkv::Result<std::unique_ptr<fkv::Model>> m = fkv::Model::load(path);
    QVERIFY2(m.ok(), m.message().c_str());
    m_model = std::move(m).value();
  }

  // The generated kinds; the docqa kinds' real documents need longer prompts and have their own suite
  // (test_eval_docqa).
  static std::vector<std::string_view> generatedKinds() {
    std::vector<std::string_view> kinds;
    for (std::string_view k : fkv::task_kinds()) {
      if (!fkv::is_docqa_kind(k)) kinds.push_back(k);
    }
    return kinds;
  }

  void tasksAreDeterministic() {
    QCOMPARE(generatedKinds().size(), size_t(4));
    for (std::string_view kind : generatedKinds()) {
      const auto a = tasks(kind, 600, 2, 7);
      const auto b = tasks(kind, 600, 2, 7);
      const auto c = tasks(kind, 600, 2, 8);
      QCOMPARE(a.size(), size_t(2));
      QCOMPARE(b.size(), size_t(2));
      QCOMPARE(c.size(), size_t(2));
      for (size_t i = 0; i < 2; ++i) {
        QCOMPARE(a[i].prompt, b[i].prompt);
        QCOMPARE(a[i].answers, b[i].answers);
        QVERIFY(a[i].prompt != c[i].prompt);
      }
      QVERIFY(a[0].prompt != a[1].prompt);  // prompts of one batch differ
    }
  }

  void tasksReachTargetLength() {
    // The longest filler sentence is well under 40 tokens in this vocabulary.
    for (std::string_view kind : generatedKinds()) {
      for (int target : {300, 1500}) {
        const std::vector<fkv::EvalTask> ts = tasks(kind, target, 2, 3);
        QCOMPARE(ts.size(), size_t(2));
        for (const fkv::EvalTask& t : ts) {
          QCOMPARE(t.kind, std::string(kind));
          QVERIFY2(t.n_tokens <= target && t.n_tokens > target - 40,
                   qPrintable(QString("%1 at %2: %3 tokens").arg(kind.data()).arg(target).arg(t.n_tokens)));
          QCOMPARE(static_cast<int>(t.tokens.size()), t.n_tokens);
          fkv::Result<std::vector<int32_t>> again = tok().encode(t.prompt, tok().add_bos_default(), false);
          QVERIFY(again.ok());
          QCOMPARE(*again, t.tokens);
        }
      }
    }
  }

  void passkeyPlacement() {
    const auto ts = tasks("passkey", 1200, 3, 5);
    QCOMPARE(ts.size(), size_t(3));
    const double depths[] = {1.0 / 6, 0.5, 5.0 / 6};  // mid-slot: (i + 0.5) / count
    for (size_t i = 0; i < ts.size(); ++i) {
      const fkv::EvalTask& t = ts[i];
      QCOMPARE(t.answers.size(), size_t(1));
      const std::string& key = t.answers[0];
      QVERIFY(key.size() >= 5 && key.size() <= 7);
      QCOMPARE(occurrences(t.prompt, key), 1);
      QCOMPARE(occurrences(t.prompt, "The passkey is " + key + "."), 1);
      // Only the passkey holds digits, so the answer cannot be found anywhere else.
      QCOMPARE(std::count_if(t.prompt.begin(), t.prompt.end(), [](char c) { return c >= '0' && c <= '9'; }),
               static_cast<long>(key.size()));
      QVERIFY(endsWith(t.prompt, "The passkey is"));
      QCOMPARE(t.depth, depths[i]);
      const size_t body_begin = t.prompt.find("\n\n") + 2;
      const size_t body_end = t.prompt.rfind("\n\n");
      const double at =
          static_cast<double>(t.prompt.find(key) - body_begin) / static_cast<double>(body_end - body_begin);
      QVERIFY2(std::abs(at - depths[i]) < 0.05, qPrintable(QString("passkey at %1, asked %2").arg(at).arg(depths[i])));
    }
  }

  void multikeyAndVartrackNeedles() {
    for (const fkv::EvalTask& t : tasks("multikey", 900, 2, 9)) {
      QCOMPARE(t.answers.size(), size_t(2));
      QCOMPARE(occurrences(t.prompt, "The special magic number for "), 4);  // the needles (the cue says "numbers")
      for (const std::string& a : t.answers) {
        QCOMPARE(occurrences(t.prompt, a), 1);
        const size_t at = t.prompt.find(a);
        const size_t key_at = t.prompt.rfind("The special magic number for ", at);
        const std::string key = t.prompt.substr(key_at + 29, t.prompt.find(' ', key_at + 29) - key_at - 29);
        QVERIFY2(occurrences(t.prompt, key) == 3, key.c_str());  // the needle, the question and the cue
      }
      QVERIFY(endsWith(t.prompt, " are"));
    }
    for (const fkv::EvalTask& t : tasks("vartrack", 900, 2, 9)) {
      QCOMPARE(t.answers.size(), size_t(4));
      const QRegularExpression first("VAR " + QString::fromStdString(t.answers[0]) + " = (\\d{5})\\.");
      const QRegularExpressionMatch m = first.match(QString::fromStdString(t.prompt));
      QVERIFY(m.hasMatch());
      QVERIFY(t.prompt.find("assigned the value " + m.captured(1).toStdString()) != std::string::npos);
      size_t last = t.prompt.find("VAR " + t.answers[0] + " =");
      for (size_t h = 1; h < t.answers.size(); ++h) {
        const size_t at = t.prompt.find("VAR " + t.answers[h] + " = VAR " + t.answers[h - 1] + ".");
        QVERIFY(at != std::string::npos && at > last);  // the chain reads in assignment order
        last = at;
      }
      QCOMPARE(occurrences(t.prompt, "VAR "), 2 * 4 + 2 * 3);  // two chains; hops after the first name two variables
    }
  }

  void qaAsksAboutOneFact() {
    for (const fkv::EvalTask& t : tasks("qa", 900, 4, 2)) {
      QCOMPARE(t.answers.size(), size_t(1));
      QVERIFY(occurrences(t.prompt, t.answers[0]) >= 1);
      QVERIFY(t.prompt.find("Question: ") != std::string::npos);
      QVERIFY(endsWith(t.prompt, " was founded in the city of") || endsWith(t.prompt, " was founded in the year") ||
              endsWith(t.prompt, " was founded by"));
      QCOMPARE(occurrences(t.prompt, "in the city of "), 8);  // one per fact; the cue ends without the space
    }
  }

  void taskErrors() {
    fkv::Result<std::vector<fkv::EvalTask>> r = fkv::make_tasks(tok(), "sudoku", 500, 1, 1);
    QVERIFY(!r.ok());
    QVERIFY(r.message().find("sudoku") != std::string::npos);
    r = fkv::make_tasks(tok(), "passkey", 20, 1, 1);
    QVERIFY(!r.ok());
    QVERIFY2(r.message().find("too short") != std::string::npos, r.message().c_str());
    QVERIFY(!fkv::make_tasks(tok(), "passkey", 500, 0, 1).ok());
    fkv::TaskOptions o;
    o.multikey_queries = 5;  // more than the 4 pairs
    QVERIFY(!fkv::make_tasks(tok(), "multikey", 500, 1, 1, o).ok());
  }

  void scoring() {
    const std::vector<std::string> answers = {"123", "456"};
    QCOMPARE(fkv::count_answers_found(" 123 and 789", answers), 1);
    QVERIFY(!fkv::answers_match(" 123 and 789", answers));
    QVERIFY(fkv::answers_match("456, 123.", answers));
    QVERIFY(!fkv::answers_match("anything", {}));
  }

  void klDivergence() {
    const std::vector<float> p = {0.f, 0.f};
    const std::vector<float> q = {0.f, std::log(3.f)};  // (1/4, 3/4)
    const double expected = 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0);
    fkv::Result<double> kl = fkv::kl_divergence(p, q);
    QVERIFY(kl.ok());
    QVERIFY(std::abs(*kl - expected) < 1e-6);
    const std::vector<float> q_shifted = {100.f, 100.f + std::log(3.f)};  // softmax ignores a common shift
    QVERIFY(std::abs(*fkv::kl_divergence(p, q_shifted) - expected) < 1e-5);
    QCOMPARE(*fkv::kl_divergence(q, q), 0.0);
    QVERIFY(!fkv::kl_divergence(p, std::vector<float>{0.f}).ok());
  }

  void fullAgainstFullIsExact() {
    const auto ts = tasks("passkey", 400, 1, 1);
    QCOMPARE(ts.size(), size_t(1));
    fkv::FidelityParams params;
    params.n_gen = 12;
    fkv::Result<fkv::ReferenceRun> ref = fkv::run_reference(*m_model, ts[0], params);
    QVERIFY2(ref.ok(), ref.message().c_str());
    QCOMPARE(ref->tokens.size(), size_t(13));
    fkv::Result<fkv::FidelityResult> r = fkv::compare_policy(*m_model, ts[0], *ref, fkv::Policy::full, params);
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->agreement, 1.0);
    QCOMPARE(r->mean_kl, 0.0);
    QCOMPARE(r->max_kl, 0.0);
    QCOMPARE(r->first_divergence, 13);
    QCOMPARE(r->output, ref->output);
    QVERIFY(!r->reran);
  }

  void policyWithinBudgetIsExact() {
    const auto ts = tasks("multikey", 300, 1, 4);
    QCOMPARE(ts.size(), size_t(1));
    fkv::FidelityParams params;  // default budget: 2048 tokens, more than the prompt
    params.n_gen = 6;
    fkv::Result<fkv::ReferenceRun> ref = fkv::run_reference(*m_model, ts[0], params);
    QVERIFY2(ref.ok(), ref.message().c_str());
    for (fkv::Policy policy : {fkv::Policy::streaming, fkv::Policy::quest, fkv::Policy::arkvale, fkv::Policy::freekv}) {
      fkv::Result<fkv::FidelityResult> r = fkv::compare_policy(*m_model, ts[0], *ref, policy, params);
      QVERIFY2(r.ok(), r.message().c_str());
      QVERIFY(r->policy == policy);
      QCOMPARE(r->agreement, 1.0);
      QCOMPARE(r->mean_kl, 0.0);
      QCOMPARE(r->output, ref->output);
    }
  }

  void smallBudgetDiverges() {
    // A 64-token budget over a thousand tokens: the comparison must see the difference, and retrieval must happen.
    const auto ts = tasks("passkey", 1000, 1, 6);
    QCOMPARE(ts.size(), size_t(1));
    fkv::FidelityParams full = smallBudget(fkv::Policy::full);
    fkv::Result<fkv::ReferenceRun> ref = fkv::run_reference(*m_model, ts[0], full);
    QVERIFY2(ref.ok(), ref.message().c_str());
    for (fkv::Policy policy : {fkv::Policy::streaming, fkv::Policy::quest, fkv::Policy::freekv}) {
      fkv::Result<fkv::FidelityResult> r = fkv::compare_policy(*m_model, ts[0], *ref, policy, smallBudget(policy));
      QVERIFY2(r.ok(), r.message().c_str());
      QVERIFY2(r->mean_kl > 0, fkv::policy_name(policy));
      QVERIFY(r->max_kl >= r->mean_kl);
      QVERIFY(r->agreement >= 0 && r->agreement <= 1);
      QVERIFY(r->stats.layer_steps > 0);
      QVERIFY(r->stats.pages_selected < ref->stats.pages_selected);  // fewer pages than full attention reads
    }
  }

  void answerSpanIgnoresStepsPastTheAnswer() {
    // Over a reference whose answer ends at its fourth token, the answer's measures must be the whole-run measures of
    // the same reference cut there: the steps past the answer change agreement and KL, never the answer's own.
    const auto ts = tasks("passkey", 1000, 1, 6);
    QCOMPARE(ts.size(), size_t(1));
    fkv::Result<fkv::ReferenceRun> ref = fkv::run_reference(*m_model, ts[0], smallBudget(fkv::Policy::full));
    QVERIFY2(ref.ok(), ref.message().c_str());
    QCOMPARE(ref->n_steps, 8);
    fkv::ReferenceRun whole = *ref;
    whole.answer_tokens = 4;  // tokens[0] comes from the prefill; decode steps 0-2 predict tokens 1-3
    fkv::ReferenceRun cut = whole;
    cut.n_steps = 3;
    cut.tokens.resize(4);
    cut.logits.resize(static_cast<size_t>(3 * ref->n_vocab));
    bool past_answer_counted = false;
    for (fkv::Policy policy : {fkv::Policy::streaming, fkv::Policy::quest, fkv::Policy::freekv}) {
      fkv::FidelityParams params = smallBudget(policy);
      fkv::Result<fkv::FidelityResult> a = fkv::compare_policy(*m_model, ts[0], whole, policy, params);
      params.n_gen = 3;
      fkv::Result<fkv::FidelityResult> b = fkv::compare_policy(*m_model, ts[0], cut, policy, params);
      QVERIFY2(a.ok() && b.ok(), fkv::policy_name(policy));
      QCOMPARE(a->answer_steps, 3);
      QCOMPARE(b->answer_steps, 3);
      QCOMPARE(a->answer_agreement, b->agreement);
      QCOMPARE(a->answer_mean_kl, b->mean_kl);
      QCOMPARE(b->answer_mean_kl, b->mean_kl);
      past_answer_counted = past_answer_counted || a->mean_kl != a->answer_mean_kl;
    }
    QVERIFY(past_answer_counted);  // there were steps past the answer to leave out
    whole.answer_tokens = 1;       // an answer of one token, predicted by the prefill: no decode step predicts it
    const fkv::FidelityResult single = fkv::reference_result(whole);
    QCOMPARE(single.answer_steps, 0);
    QCOMPARE(single.answer_agreement, 1.0);
    whole.answer_tokens = 9;  // an answer cut at n_gen tokens plus the prefill's: every step is an answer step
    QCOMPARE(fkv::reference_result(whole).answer_steps, 8);
  }

  void sessionMatchesFreshContexts() {
    // One prefill rewound for each policy in turn must give what a fresh context per policy gives, bit for bit.
    const auto ts = tasks("qa", 1000, 1, 12);
    QCOMPARE(ts.size(), size_t(1));
    fkv::FidelityParams params = smallBudget(fkv::Policy::full);
    params.n_gen = 64;  // decoding seals pages that leave the recent window; rewinding must open them again
    fkv::Result<std::unique_ptr<fkv::FidelitySession>> session = fkv::FidelitySession::start(*m_model, ts[0], params);
    QVERIFY2(session.ok(), session.message().c_str());
    const fkv::ReferenceRun& ref = (*session)->reference();
    fkv::Result<fkv::ReferenceRun> fresh_ref = fkv::run_reference(*m_model, ts[0], params);
    QVERIFY(fresh_ref.ok());
    QCOMPARE(fresh_ref->tokens, ref.tokens);
    QVERIFY(fresh_ref->logits == ref.logits);
    int n_reran = 0;
    for (fkv::Policy policy : {fkv::Policy::freekv, fkv::Policy::streaming, fkv::Policy::quest, fkv::Policy::arkvale,
                               fkv::Policy::full, fkv::Policy::freekv}) {
      fkv::Result<fkv::FidelityResult> a = (*session)->compare(policy);
      fkv::Result<fkv::FidelityResult> b = fkv::compare_policy(*m_model, ts[0], ref, policy, params);
      QVERIFY2(a.ok() && b.ok(), fkv::policy_name(policy));
      QCOMPARE(a->agreement, b->agreement);
      QCOMPARE(a->mean_kl, b->mean_kl);
      QCOMPARE(a->max_kl, b->max_kl);
      QCOMPARE(a->first_divergence, b->first_divergence);
      QCOMPARE(a->output, b->output);
      QCOMPARE(a->stats.pages_selected, b->stats.pages_selected);
      QCOMPARE(a->stats.heads_corrected, b->stats.heads_corrected);
      QCOMPARE(a->reran, b->reran);
      QCOMPARE(a->reran, a->first_divergence < ref.answer_tokens);
      n_reran += a->reran ? 1 : 0;
    }
    QVERIFY(n_reran > 0);  // some policy parted from the reference inside the answer and decoded on its own
    QVERIFY(!(*session)->compare(fkv::Policy::freekv, 1.5f).ok());
    QVERIFY((*session)->compare(fkv::Policy::quest).ok());  // a rejected policy leaves the session usable
  }

  void truncateRewindsExactly() {
    // Decoding other tokens, rewinding and decoding B must equal decoding B right after the prompt: the cache, the
    // page summaries of pages that were sealed after the rewind point and the policy's state all go back.
    const auto ts = tasks("passkey", 100, 1, 3);
    QCOMPARE(ts.size(), size_t(1));
    const std::vector<int32_t>& prompt = ts[0].tokens;
    constexpr int kSteps = 160;  // most pages the policy ranks are sealed while decoding, after the rewind point
    const auto n_vocab = static_cast<size_t>(m_model->config().n_vocab);
    auto decode = [&](fkv::Context& ctx, int32_t first_id) {
      std::vector<float> rows;  // (kSteps, n_vocab)
      std::vector<float> logits(n_vocab);
      for (int32_t t = first_id; t < first_id + kSteps; ++t) {
        if (!ctx.eval(std::span<const int32_t>(&t, 1), fkv::LogitsMode::Last, logits).ok()) return std::vector<float>();
        rows.insert(rows.end(), logits.begin(), logits.end());
      }
      return rows;
    };
    for (fkv::Policy policy : {fkv::Policy::quest, fkv::Policy::freekv}) {
      fkv::ContextParams cp = smallBudget(policy).context;
      cp.n_ctx = 400;
      cp.correction_tau = -1.f;  // freekv never corrects: every step uses what the previous step left behind
      auto a = fkv::Context::create(*m_model, cp);
      auto b = fkv::Context::create(*m_model, cp);
      QVERIFY(a.ok() && b.ok());
      std::vector<float> logits(n_vocab);
      QVERIFY((*a)->eval(prompt, fkv::LogitsMode::Last, logits).ok());
      QVERIFY((*b)->eval(prompt, fkv::LogitsMode::Last, logits).ok());
      QCOMPARE(decode(**a, 3000).size(), size_t(kSteps) * n_vocab);
      QVERIFY((*a)->truncate(static_cast<int>(prompt.size())).ok());
      QCOMPARE((*a)->n_past(), static_cast<int>(prompt.size()));
      QCOMPARE((*a)->stats().layer_steps, int64_t(0));
      const std::vector<float> rewound = decode(**a, 9000);
      const std::vector<float> fresh = decode(**b, 9000);
      QCOMPARE(rewound.size(), size_t(kSteps) * n_vocab);
      QVERIFY2(rewound == fresh, fkv::policy_name(policy));
    }
    fkv::ContextParams cp;
    cp.n_ctx = 64;
    auto ctx = fkv::Context::create(*m_model, cp);
    QVERIFY(ctx.ok());
    std::vector<float> logits(n_vocab);
    QVERIFY((*ctx)->eval(std::span(prompt).first(4), fkv::LogitsMode::Last, logits).ok());
    const fkv::Status over = (*ctx)->truncate(5);
    QVERIFY(!over.ok());
    QVERIFY2(over.message().find("found 5") != std::string::npos, over.message().c_str());
  }

  void referenceMismatchIsAnError() {
    const auto ts = tasks("passkey", 300, 1, 1);
    fkv::FidelityParams params;
    params.n_gen = 4;
    fkv::Result<fkv::ReferenceRun> ref = fkv::run_reference(*m_model, ts[0], params);
    QVERIFY(ref.ok());
    params.n_gen = 5;
    QVERIFY(!fkv::compare_policy(*m_model, ts[0], *ref, fkv::Policy::quest, params).ok());
    params.n_gen = 4;
    params.context.correction_tau = 1.5f;
    fkv::Result<fkv::FidelityResult> bad = fkv::compare_policy(*m_model, ts[0], *ref, fkv::Policy::freekv, params);
    QVERIFY(!bad.ok());
    QVERIFY(bad.message().find("tau") != std::string::npos);
  }

  void evalCommandJson() {
    const CliRun r = runCli({"eval", "--synthetic", "tiny-llama", "--tasks", "passkey,multikey,vartrack,qa",
                             "--lengths", "512", "--count", "1", "--gen-tokens", "8", "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const QJsonObject o = parseObject(r.out);
    QCOMPARE(o.value("synthetic").toString(), QStringLiteral("tiny-llama"));
    QCOMPARE(o.value("budget").toObject().value("total_tokens").toInt(), 2048);
    // Where the prompts ran, so files from several machines can be told apart.
    QVERIFY(!o.value("version").toString().isEmpty());
    const QString isa = o.value("isa").toString();
    QVERIFY2(isa == "scalar" || isa == "avx2" || isa == "avx2+vnni", qPrintable(isa));
    QVERIFY(o.value("threads").toInt() >= 1);
    const QJsonArray results = o.value("results").toArray();
    QCOMPARE(results.size(), 4 * 5);  // every generated kind under every policy
    for (const QJsonValue& v : results) {
      const QJsonObject c = v.toObject();
      QCOMPARE(c.value("length").toInt(), 512);
      QCOMPARE(c.value("prompts").toInt(), 1);
      QCOMPARE(c.value("agreement").toDouble(), 1.0);  // the budget holds the whole context
      QCOMPARE(c.value("mean_kl").toDouble(), 0.0);
      QCOMPARE(c.value("answer_agreement").toDouble(), 1.0);
      QCOMPARE(c.value("answer_mean_kl").toDouble(), 0.0);
      QVERIFY(c.value("decode_tokens_per_s").toDouble() > 0);
      const QJsonObject item = c.value("items").toArray().at(0).toObject();
      QVERIFY(item.value("n_tokens").toInt() <= 512);
      QVERIFY(item.value("answer_steps").toInt() >= 0 && item.value("answer_steps").toInt() <= 8);
      QCOMPARE(item.value("answer_agreement").toDouble(), 1.0);
      QVERIFY(!item.value("expected").toString().isEmpty());
    }
    QCOMPARE(results.at(0).toObject().value("policy").toString(), QStringLiteral("full"));
    QCOMPARE(o.value("gen_tokens").toInt(), 8);
    for (const QJsonValue& v : results) QCOMPARE(v.toObject().value("gen_tokens").toInt(), 8);
  }

  // Without --gen-tokens each kind decodes long enough for its whole answer: 32 tokens per number multikey asks (its
  // answer of two numbers does not fit in 32), 64 for vartrack, 32 for the others; the table names them.
  void evalGenTokensPerTask() {
    const QStringList args = {"eval", "--synthetic", "tiny-llama", "--tasks", "passkey,multikey,vartrack", "--lengths",
                              "256", "--queries", "3", "--policies", "quest"};
    const CliRun r = runCli(args + QStringList{"--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const QJsonObject o = parseObject(r.out);
    QCOMPARE(o.value("gen_tokens").toInt(), 0);
    const QJsonArray results = o.value("results").toArray();
    QCOMPARE(results.size(), 3 * 2);
    const QHash<QString, int> want = {{"passkey", 32}, {"multikey", 96}, {"vartrack", 64}};
    for (const QJsonValue& v : results) {
      const QJsonObject c = v.toObject();
      QCOMPARE(c.value("gen_tokens").toInt(), want.value(c.value("task").toString()));
    }
    const CliRun text = runCli(args);
    QVERIFY2(text.exitCode == 0, text.err.constData());
    QVERIFY2(text.out.contains("decode steps passkey 32, multikey 96, vartrack 64"), text.out.constData());
  }

  // --items runs a subset of the --count prompts: the same prompts, under their own numbers, as in the whole run, so
  // a long grid can be split into runs that each finish.
  void evalItemsRunTheSamePrompts() {
    const QStringList common = {"eval", "--synthetic", "tiny-llama", "--tasks", "passkey", "--lengths", "512",
                                "--count", "3", "--gen-tokens", "4", "--policies", "quest", "--json"};
    const CliRun whole = runCli(common);
    const CliRun part = runCli(common + QStringList{"--items", "3,2,3"});
    QVERIFY2(whole.exitCode == 0 && part.exitCode == 0, (whole.err + part.err).constData());
    const QJsonArray all = parseObject(whole.out).value("results").toArray();
    const QJsonArray some = parseObject(part.out).value("results").toArray();
    QCOMPARE(some.size(), all.size());
    for (qsizetype c = 0; c < all.size(); ++c) {
      const QJsonArray a = all.at(c).toObject().value("items").toArray();
      const QJsonArray b = some.at(c).toObject().value("items").toArray();
      QCOMPARE(a.size(), 3);
      QCOMPARE(b.size(), 2);
      for (int k = 0; k < 2; ++k) {
        const QJsonObject x = a.at(k + 1).toObject(), y = b.at(k).toObject();
        QCOMPARE(y.value("index").toInt(), k + 1);
        QCOMPARE(y.value("expected").toString(), x.value("expected").toString());
        QCOMPARE(y.value("n_tokens").toInt(), x.value("n_tokens").toInt());
        QCOMPARE(y.value("output").toString(), x.value("output").toString());
        QCOMPARE(y.value("answers_expected").toInt(), 1);
      }
    }
    for (const char* bad : {"0", "4", "1,x", ""}) {
      const CliRun r = runCli(common + QStringList{"--items", bad});
      QCOMPARE(r.exitCode, 2);
      QVERIFY2(r.err.contains("--items") && r.err.contains("1..3"), r.err.constData());
    }
  }

  // freekv@T runs freekv with tau T on the same prefills: tau 1 corrects every checked head, tau 0 only those whose
  // query turned by more than 90 degrees (the random model's queries often do), and the plain label keeps --tau.
  void evalTauSweep() {
    const CliRun r = runCli({"eval",
                             "--synthetic",
                             "tiny-llama",
                             "--tasks",
                             "passkey",
                             "--lengths",
                             "1024",
                             "--gen-tokens",
                             "8",
                             "--budget-sink",
                             "64",
                             "--budget-recent",
                             "64",
                             "--budget-retrieved",
                             "128",
                             "--policies",
                             "freekv@1,freekv@0,freekv",
                             "--tau",
                             "1",
                             "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const QJsonArray results = parseObject(r.out).value("results").toArray();
    QCOMPARE(results.size(), 4);
    QStringList labels;
    for (const QJsonValue& v : results) labels << v.toObject().value("policy").toString();
    QCOMPARE(labels, (QStringList{"full", "freekv@1", "freekv@0", "freekv"}));
    const double always = results.at(1).toObject().value("correction_rate").toDouble(-1);
    const double never = results.at(2).toObject().value("correction_rate").toDouble(-1);
    QCOMPARE(always, 1.0);
    QVERIFY2(never >= 0 && never < always, qPrintable(QString::number(never)));
    QCOMPARE(results.at(3).toObject().value("correction_rate").toDouble(-1), 1.0);
  }

  // Past the trained window the prompts are read as context memory: a selecting policy is the reference.
  void evalPastTheWindowTakesAnotherReference() {
    const CliRun r = runCli({"eval", "--synthetic", "tiny-llama", "--lengths", "6000", "--tasks", "passkey",
                             "--gen-tokens", "4", "--threads", "2", "--reference", "freekv", "--policies", "quest",
                             "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const QJsonArray results = parseObject(r.out).value("results").toArray();
    QCOMPARE(results.size(), 2);
    QCOMPARE(results.at(0).toObject().value("policy").toString(), QStringLiteral("freekv"));
    QCOMPARE(results.at(1).toObject().value("policy").toString(), QStringLiteral("quest"));
    const CliRun full = runCli({"eval", "--synthetic", "tiny-llama", "--lengths", "6000", "--reference", "freekv"});
    QCOMPARE(full.exitCode, 1);  // the default policy list holds full
    QVERIFY2(full.err.contains("context memory"), full.err.constData());
  }

  void evalCommandErrors() {
    const CliRun tooLong = runCli({"eval", "--synthetic", "tiny-llama", "--lengths", "8192"});
    QCOMPARE(tooLong.exitCode, 1);
    QVERIFY2(tooLong.err.contains("training context (4096 tokens)") && tooLong.err.contains("--reference"),
             tooLong.err.constData());
    const CliRun badPolicy = runCli({"eval", "--synthetic", "tiny-llama", "--lengths", "256", "--policies", "magic"});
    QCOMPARE(badPolicy.exitCode, 2);  // an unknown name is a usage error, like a bad tau below
    QVERIFY2(badPolicy.err.contains("magic"), badPolicy.err.constData());
    for (const char* bad : {"freekv@1.5", "freekv@", "freekv@0.8x", "quest@0.8"}) {
      const CliRun r = runCli({"eval", "--synthetic", "tiny-llama", "--lengths", "256", "--policies", bad});
      QCOMPARE(r.exitCode, 2);  // a usage error, found before anything runs
      QVERIFY2(r.err.contains(bad), r.err.constData());
    }
    const CliRun badTask = runCli({"eval", "--synthetic", "tiny-llama", "--tasks", "passkey,chess"});
    QCOMPARE(badTask.exitCode, 2);
    QVERIFY(badTask.err.contains("chess"));
    QCOMPARE(badTask.err.count('\n'), 1);
  }

  // --save-model keeps the generated GGUF, which another engine (or freekv -m) then loads as a file.
  void benchSavesTheSyntheticModel() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = dir.filePath("tiny.gguf");
    const CliRun r = runCli({"bench", "--synthetic", "tiny-llama", "--save-model", path, "--prompt-tokens", "0",
                             "--decode-tokens", "1", "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    QVERIFY(QFileInfo(path).size() > 0);
    const CliRun again = runCli({"bench", "-m", path, "--prompt-tokens", "16", "--decode-tokens", "1", "--json"});
    QVERIFY2(again.exitCode == 0, again.err.constData());
    QCOMPARE(parseObject(again.out).value("model_file_bytes").toDouble(), static_cast<double>(QFileInfo(path).size()));
    const CliRun noShape = runCli({"bench", "-m", path, "--save-model", dir.filePath("x.gguf")});
    QCOMPARE(noShape.exitCode, 2);
    QVERIFY2(noShape.err.contains("--synthetic"), noShape.err.constData());
  }

  void benchReportsPolicy() {
    const CliRun r = runCli({"bench", "--synthetic", "tiny-llama", "--policy", "quest", "--context", "512",
                             "--prompt-tokens", "0", "--decode-tokens", "4", "--budget-sink", "32", "--budget-recent",
                             "64", "--budget-retrieved", "64", "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const QJsonObject o = parseObject(r.out);
    QCOMPARE(o.value("policy").toString(), QStringLiteral("quest"));
    QCOMPARE(o.value("budget").toObject().value("total_tokens").toInt(), 160);
    // 160 tokens of 32-token pages for each of 2 KV heads in 2 layers, every decode step.
    QCOMPARE(o.value("pages_selected_per_token").toDouble(), 5.0 * 2 * 2);
    QVERIFY(o.value("decode_tokens_per_s").toDouble() > 0);
    QVERIFY(o.contains("select_ms_per_token") && o.contains("correction_rate"));
  }
};

QTEST_GUILESS_MAIN(TestEval)
#include "test_eval.moc"
