// freekv perplexity: the engine's numerics on real weights, by the same method as llama.cpp's perplexity tool, so the
// two figures compare directly. The text is tokenized once (with a BOS where the vocabulary adds one); each chunk of
// N tokens is evaluated from an empty cache (its first token replaced by BOS where the vocabulary adds one) and only
// the second half is scored, each token given everything before it in the chunk.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "cli.h"
#include "model/model.h"
#include "runtime/context.h"
#include "tokenizer/tokenizer.h"

namespace freekv {

namespace {

constexpr OptionSpec kPerplexityOptions[] = {
    {"--model", "-m", "MODEL", "GGUF model file (required)"},
    {"--file", "-f", "FILE", "the text to score (required)"},
    {"--ctx", "-c", "N", "tokens per chunk; the second half of each is scored (default 512)"},
    {"--chunks", "", "N", "score at most this many chunks (default: every whole chunk of the file)"},
    {"--batch", "-b", "N", "tokens per forward pass (default 256)"},
    {"--threads", "-t", "N", "compute threads; 0 uses every hardware thread (default 0)"},
    {"--json", "", "", "print one JSON object instead of text"},
};

struct PerplexityOptions {
  std::string model_path, text_path;
  int n_ctx = 512, n_chunks = 0, n_batch = 256, n_threads = 0;
  bool json = false;
};

fkv::Result<PerplexityOptions> read_options(const ParsedArgs& a) {
  PerplexityOptions o;
  o.model_path = a.value("--model").value_or("");
  o.text_path = a.value("--file").value_or("");
  if (o.model_path.empty()) return fkv::err("option --model (-m) is required");
  if (o.text_path.empty()) return fkv::err("option --file (-f) is required");
  FKV_ASSIGN_OR_RETURN(o.n_ctx, int_option(a, "--ctx", 512, 8, 1 << 20));
  FKV_ASSIGN_OR_RETURN(o.n_chunks, int_option(a, "--chunks", 0, 0, 1 << 20));
  FKV_ASSIGN_OR_RETURN(o.n_batch, int_option(a, "--batch", 256, 1, 1 << 16));
  FKV_ASSIGN_OR_RETURN(o.n_threads, int_option(a, "--threads", 0, 0, 1024));
  o.json = a.has("--json");
  return o;
}

// -log p(target) from one row of logits, in double: a vocabulary of 150k terms loses digits in float.
double negative_log_likelihood(std::span<const float> logits, int32_t target) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - max));
  return std::log(sum) - static_cast<double>(logits[static_cast<size_t>(target)] - max);
}

struct Score {
  double sum = 0, sum_sq = 0;  // of the per-token negative log-likelihoods
  int64_t count = 0;
  void add(double nll) {
    sum += nll;
    sum_sq += nll * nll;
    ++count;
  }
  double perplexity() const { return std::exp(sum / static_cast<double>(count)); }
  // The uncertainty llama.cpp reports: the standard error of the mean NLL, carried through exp().
  double perplexity_error() const {
    if (count < 2) return 0;
    const double mean = sum / static_cast<double>(count);
    const double var = std::max(0.0, sum_sq / static_cast<double>(count) - mean * mean);
    return std::sqrt(var / static_cast<double>(count - 1)) * perplexity();
  }
};

// One chunk: the first half fills the cache, the second half is evaluated in batches with every row's logits.
fkv::Status score_chunk(fkv::Context& ctx, std::vector<int32_t> chunk, int n_batch, int n_vocab, Score& score) {
  ctx.reset();
  const size_t n = chunk.size(), first = n / 2;
  std::vector<float> logits(static_cast<size_t>(n_batch) * static_cast<size_t>(n_vocab));  // (n_batch, n_vocab)
  for (size_t done = 0; done < first;) {
    const size_t m = std::min<size_t>(static_cast<size_t>(n_batch), first - done);
    FKV_TRY(ctx.eval(std::span(chunk).subspan(done, m), fkv::LogitsMode::Last, logits));
    done += m;
  }
  // Row i of a batch starting at `done` predicts token done + i + 1; the last token of the chunk predicts nothing.
  for (size_t done = first; done + 1 < n;) {
    const size_t m = std::min<size_t>(static_cast<size_t>(n_batch), n - 1 - done);
    FKV_TRY(ctx.eval(std::span(chunk).subspan(done, m), fkv::LogitsMode::All, logits));
    for (size_t i = 0; i < m; ++i) {
      const std::span<const float> row(logits.data() + i * static_cast<size_t>(n_vocab), static_cast<size_t>(n_vocab));
      score.add(negative_log_likelihood(row, chunk[done + i + 1]));
    }
    done += m;
  }
  return {};
}

int run_perplexity_impl(const PerplexityOptions& o) {
  std::ifstream in(o.text_path, std::ios::binary);
  if (!in) return fail("perplexity: cannot read '" + o.text_path + "'");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fkv::Result<std::unique_ptr<fkv::Model>> model = fkv::Model::load(o.model_path);
  if (!model.ok()) return fail(model.message());
  const fkv::Tokenizer& tok = (*model)->tokenizer();
  const bool add_bos = tok.add_bos_default() && tok.bos_id() >= 0;
  fkv::Result<std::vector<int32_t>> tokens = tok.encode(text, add_bos, false);
  if (!tokens.ok()) return fail("perplexity: " + o.text_path + ": " + tokens.message());
  int n_chunks = static_cast<int>(tokens->size() / static_cast<size_t>(o.n_ctx));
  if (n_chunks < 1) {
    return fail("perplexity: " + o.text_path + " holds " + std::to_string(tokens->size()) + " tokens; -c " +
                std::to_string(o.n_ctx) + " needs at least that many");
  }
  if (o.n_chunks > 0) n_chunks = std::min(n_chunks, o.n_chunks);
  fkv::ContextParams cp;
  cp.n_ctx = o.n_ctx;
  cp.n_batch = o.n_batch;
  cp.n_threads = o.n_threads;
  fkv::Result<std::unique_ptr<fkv::Context>> ctx = fkv::Context::create(**model, cp);
  if (!ctx.ok()) return fail("perplexity: " + ctx.message());
  Score score;
  const int n_vocab = (*model)->config().n_vocab;
  for (int c = 0; c < n_chunks; ++c) {
    const auto begin = tokens->begin() + static_cast<std::ptrdiff_t>(c) * o.n_ctx;
    std::vector<int32_t> chunk(begin, begin + o.n_ctx);
    if (add_bos) chunk[0] = tok.bos_id();
    if (fkv::Status s = score_chunk(**ctx, std::move(chunk), o.n_batch, n_vocab, score); !s.ok())
      return fail("perplexity: chunk " + std::to_string(c + 1) + ": " + s.message());
    if (!o.json) std::fprintf(stderr, "[%d]%.4f%s", c + 1, score.perplexity(), c + 1 == n_chunks ? "\n" : ",");
  }
  if (o.json) {
    JsonWriter j;
    j.begin_object().key("model").value(o.model_path).key("file").value(o.text_path);
    j.key("n_tokens").value(static_cast<int64_t>(tokens->size())).key("ctx").value(o.n_ctx);
    j.key("chunks").value(n_chunks).key("scored_tokens").value(score.count).key("add_bos").value(add_bos);
    j.key("perplexity").value(score.perplexity()).key("perplexity_error").value(score.perplexity_error());
    j.end_object();
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf("Final estimate: PPL = %.4f +/- %.5f (%d chunks of %d tokens, %lld tokens scored)\n", score.perplexity(),
                score.perplexity_error(), n_chunks, o.n_ctx, static_cast<long long>(score.count));
  }
  return kExitOk;
}

}  // namespace

const CommandHelp kPerplexityHelp = {
    "perplexity", "-m MODEL -f FILE [-c N] [options]",
    "perplexity of a text by llama.cpp's method (chunks of N tokens, the second half of each scored)",
    kPerplexityOptions};

int run_perplexity(std::span<char* const> args) {
  fkv::Result<ParsedArgs> a = parse_args(kPerplexityOptions, args);
  if (!a.ok()) return usage_fail("perplexity: " + a.message());
  if (!a->positionals().empty()) return usage_fail("perplexity: unexpected argument '" + a->positionals()[0] + "'");
  fkv::Result<PerplexityOptions> o = read_options(*a);
  if (!o.ok()) return usage_fail("perplexity: " + o.message());
  return run_perplexity_impl(*o);
}

}  // namespace freekv
