// `freekv perplexity` against a second computation of the same figure: the test feeds each chunk one token at a time
// (the decode path, not the batched prefill the command uses) and scores the second half itself. Equal figures mean
// the command scores the right tokens with the right logits; usage errors end with exit code 2.
#include <QFile>
#include <QJsonObject>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/context.h"
#include "support/cli_runner.h"
#include "support/test_models.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"

namespace {

// exp(mean -log p) over the second half of each whole chunk of n_ctx tokens, token by token.
double perplexityByDecode(const fkv::Model& model, const std::vector<int32_t>& tokens, int n_ctx) {
  fkv::ContextParams cp;
  cp.n_ctx = n_ctx;
  cp.n_threads = 2;
  auto ctx = fkv::Context::create(model, cp);
  if (!ctx.ok()) qFatal("%s", ctx.message().c_str());
  const int n_vocab = model.config().n_vocab;
  std::vector<float> logits(static_cast<size_t>(n_vocab));
  double nll = 0;
  int64_t count = 0;
  for (size_t start = 0; start + static_cast<size_t>(n_ctx) <= tokens.size(); start += static_cast<size_t>(n_ctx)) {
    (*ctx)->reset();
    for (int j = 0; j + 1 < n_ctx; ++j) {
      const int32_t t = tokens[start + static_cast<size_t>(j)];
      if (!(*ctx)->eval(std::span(&t, 1), fkv::LogitsMode::Last, logits).ok()) qFatal("eval failed");
      if (j < n_ctx / 2) continue;
      const double max = *std::max_element(logits.begin(), logits.end());
      double sum = 0;
      for (float l : logits) sum += std::exp(l - max);
      nll += std::log(sum) + max - logits[static_cast<size_t>(tokens[start + static_cast<size_t>(j) + 1])];
      ++count;
    }
  }
  return std::exp(nll / static_cast<double>(count));
}

}  // namespace

class TestCliPerplexity : public QObject {
  Q_OBJECT

 private:
  QString m_model, m_text;

 private slots:
  void initTestCase() {
    m_model = fkvtest::tempDir() + "/ppl.gguf";
    const QString written = fkvtest::writeModel(fkvtest::llamaSpec(5, 256), m_model);
    QVERIFY2(written.isEmpty(), qPrintable(written));
    m_text = fkvtest::tempDir() + "/text.txt";
    QFile f(m_text);
    QVERIFY(f.open(QIODevice::WriteOnly));
    for (int i = 0; i < 60; ++i) f.write("The keeper of the lighthouse counts " + QByteArray::number(i * 7) + " ships.\n");
  }

  void matchesTokenByTokenScoring() {
    const int n_ctx = 64;
    const fkvtest::CliRun r = fkvtest::runCli(
        {"perplexity", "-m", m_model, "-f", m_text, "-c", QString::number(n_ctx), "-b", "16", "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const QJsonObject o = fkvtest::parseObject(r.out);
    auto model = fkv::Model::load(m_model.toStdString());
    QVERIFY2(model.ok(), model.message().c_str());
    QFile f(m_text);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const fkv::Tokenizer& tok = (*model)->tokenizer();
    auto tokens = tok.encode(f.readAll().toStdString(), tok.add_bos_default(), false);
    QVERIFY(tokens.ok());
    const int n_chunks = static_cast<int>(tokens->size()) / n_ctx;
    QVERIFY(n_chunks >= 3);
    QCOMPARE(o.value("chunks").toInt(), n_chunks);
    QCOMPARE(o.value("scored_tokens").toInteger(), qint64(n_chunks) * (n_ctx - n_ctx / 2 - 1));
    // The CLI puts BOS first in every chunk where the vocabulary adds one; so does the reference here.
    if (o.value("add_bos").toBool()) {
      for (int c = 0; c < n_chunks; ++c) (*tokens)[static_cast<size_t>(c * n_ctx)] = tok.bos_id();
    }
    const double expected = perplexityByDecode(**model, *tokens, n_ctx);
    const double found = o.value("perplexity").toDouble();
    QVERIFY2(std::abs(found - expected) < 1e-3 * expected,
             qPrintable(QStringLiteral("cli %1, token by token %2").arg(found).arg(expected)));
    QVERIFY(o.value("perplexity_error").toDouble() > 0);
  }

  void usageErrors_data() {
    QTest::addColumn<QStringList>("args");
    QTest::newRow("no model") << QStringList{"perplexity", "-f", m_text};
    QTest::newRow("no file") << QStringList{"perplexity", "-m", m_model};
    QTest::newRow("tiny ctx") << QStringList{"perplexity", "-m", m_model, "-f", m_text, "-c", "2"};
  }

  void usageErrors() {
    QFETCH(QStringList, args);
    const fkvtest::CliRun r = fkvtest::runCli(args);
    QCOMPARE(r.exitCode, 2);
    QVERIFY(r.err.startsWith("freekv: error: perplexity: "));
  }

  void textShorterThanOneChunk() {
    const fkvtest::CliRun r = fkvtest::runCli({"perplexity", "-m", m_model, "-f", m_text, "-c", "100000"});
    QCOMPARE(r.exitCode, 1);
    QVERIFY2(r.err.contains("needs at least that many"), r.err.constData());
  }
};

QTEST_APPLESS_MAIN(TestCliPerplexity)
#include "test_cli_perplexity.moc"
