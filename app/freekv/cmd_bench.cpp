// freekv bench: prefill and decode speed of the CPU engine on a model file or a synthetic model of a real shape.
// Prefill evaluates random token ids in chunks; decode fills the context to a depth once (untimed) and then, in each
// run, truncates back to that depth and times single-token evaluations, each fed the greedy choice of the previous
// logits, under the chosen attention policy (the prefill is as --prefill says, dense by default); the policy's
// retrieval work per decoded token is reported beside the speed.
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "backend/cpu/quant.h"
#include "bench_reopen.h"
#include "cli.h"
#include "core/clock.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "runtime/context.h"
#include "synthetic_models.h"
#include "tokenizer/tokenizer.h"

namespace freekv {

namespace {

const OptionSpec kBenchOwnOptions[] = {
    {"--model", "-m", "MODEL", "GGUF model file (or --synthetic)"},
    {"--synthetic", "", "SHAPE",
     "benchmark a generated model: tinyllama-q8_0, tinyllama-f16, tiny-llama, tiny-gemma3, "
     "llama31-8b-bf16 (16 GB)"},
    {"--vocab", "", "PATH", "vocabulary GGUF for --synthetic (default: $FKV_VOCAB, else shared/vocab/llama-spm.gguf)"},
    {"--save-model", "", "PATH",
     "with --synthetic: write the generated GGUF to PATH and keep it, so another engine can run the same file"},
    {"--prompt-tokens", "", "N", "prefill: tokens evaluated (default 512; 0 skips the test)"},
    {"--context", "", "N", "decode: tokens in the context before decoding starts (default 0)"},
    {"--decode-tokens", "", "N", "decode: tokens evaluated one at a time (default 64; 0 skips the test)"},
    {"--batch", "", "N", "prefill chunk in tokens (default 128)"},
    {"--threads", "-t", "N", "compute threads; 0 uses every hardware thread (default 0)"},
    {"--repeat", "-r", "R", "runs of each test, reported as mean and standard deviation (default 1)"},
    {"--kv-type", "", "TYPE", "KV cache type: f16, bf16 or f32 (default f16)"},
    {"--isa", "", "ISA", "CPU kernels: auto, avx2 or scalar (default auto)"},
    {"--seed", "", "S", "seed of the random prompt tokens (default 1)"},
    {"--policy", "", "P", "decode attention policy: full, streaming, quest, arkvale or freekv (default full)"},
    {"--backend", "", "NAME", "cpu, cuda (dense attention on the GPU, policy full) or auto (default cpu)"},
    {"--device", "", "N", "CUDA device index (default 0)"},
    {"--json", "", "", "print one JSON object instead of text"},
    {"--reopen-tokens", "", "N",
     "instead: open a generated N-token document (prefill + save) and reopen it (load), time to first answer token"},
    {"--host-kv-mib", "", "N",
     "with --reopen-tokens: reopen a third time with at most N MiB of the saved KV resident, and compare"},
    {"--document", "", "FILE",
     "instead: decode speed over this document (a whole book too): open it, then time an answer of exactly "
     "--decode-tokens steps (default policy freekv)"},
    {"--library", "", "DB",
     "with --document: the library to open it in; its saved KV there is reused (default: a "
     "temporary library, so the document is prefilled)"},
};

std::vector<OptionSpec> bench_options() {
  std::vector<OptionSpec> out(std::begin(kBenchOwnOptions), std::end(kBenchOwnOptions));
  const std::span<const OptionSpec> budget = budget_options();
  out.insert(out.end(), budget.begin(), budget.end());
  return out;
}

const std::vector<OptionSpec> kBenchOptions = bench_options();


struct BenchOptions {
  std::string model_path;
  std::string synthetic;  // shape name, or empty
  std::string vocab;
  int n_prompt = 512;
  int depth = 0;
  int n_decode = 64;
  int n_batch = 128;
  int n_threads = 0;
  int n_repeat = 1;
  fkv::DType kv_type = fkv::DType::F16;
  std::string isa = "auto";
  uint64_t seed = 1;
  bool json = false;
  fkv::ContextParams retrieval;  // policy, budget, page size and tau
};

struct Samples {
  std::vector<double> values;  // (n_repeat) tokens per second of each run
  double mean() const {
    double s = 0;
    for (double v : values) s += v;
    return values.empty() ? 0 : s / static_cast<double>(values.size());
  }
  double stddev() const {
    if (values.size() < 2) return 0;
    const double m = mean();
    double s = 0;
    for (double v : values) s += (v - m) * (v - m);
    return std::sqrt(s / static_cast<double>(values.size() - 1));
  }
};

struct BenchReport {
  std::string model, architecture, isa, kv_type;
  std::string backend, backend_note;  // where the context ran, and why "auto" stayed on the CPU
  std::string speculation;            // freekv: "inline" or "background"
  uint64_t file_bytes = 0, weight_bytes = 0;
  int n_threads = 0, n_ctx = 0;
  std::string weights;  // "huge pages" (an anonymous copy) or "mapped"
  double load_s = 0;    // Model::load: parsing, and with the copy, reading the whole file
  Samples prefill, decode;
  double peak_rss_mib = 0;
  fkv::RetrievalStats stats;  // summed over the timed decode runs
  int64_t decode_tokens = 0;  // decode steps those stats cover
};

fkv::Result<BenchOptions> read_bench_options(const ParsedArgs& a) {
  BenchOptions o;
  o.model_path = a.value("--model").value_or("");
  o.synthetic = a.value("--synthetic").value_or("");
  if (o.model_path.empty() == o.synthetic.empty()) return fkv::err("give either --model MODEL or --synthetic SHAPE");
  if (!o.synthetic.empty()) FKV_TRY(synthetic_shape(o.synthetic).status());
  o.vocab = a.value("--vocab").value_or("");
  FKV_ASSIGN_OR_RETURN(o.n_prompt, int_option(a, "--prompt-tokens", 512, 0, 1 << 20));
  FKV_ASSIGN_OR_RETURN(o.depth, int_option(a, "--context", 0, 0, 1 << 20));
  FKV_ASSIGN_OR_RETURN(o.n_decode, int_option(a, "--decode-tokens", 64, 0, 1 << 20));
  FKV_ASSIGN_OR_RETURN(o.n_batch, int_option(a, "--batch", 128, 1, 8192));
  FKV_ASSIGN_OR_RETURN(o.n_threads, int_option(a, "--threads", 0, 0, 1024));
  FKV_ASSIGN_OR_RETURN(o.n_repeat, int_option(a, "--repeat", 1, 1, 1000));
  FKV_ASSIGN_OR_RETURN(const fkv::KvType kv_type,
                       named_option(a, "--kv-type", fkv::KvType::f16, fkv::parse_kv_type));
  o.kv_type = fkv::kv_dtype(kv_type);
  FKV_ASSIGN_OR_RETURN(o.seed, u64_option(a, "--seed", 1));
  o.isa = a.value("--isa").value_or("auto");
  if (o.isa != "auto" && o.isa != "avx2" && o.isa != "scalar") {
    return fkv::err("option --isa: expected auto, avx2 or scalar, found '", o.isa, "'");
  }
  if (o.n_prompt == 0 && o.n_decode == 0)
    return fkv::err("nothing to measure: --prompt-tokens and --decode-tokens are 0");
  o.json = a.has("--json");
  FKV_ASSIGN_OR_RETURN(o.retrieval.policy, named_option(a, "--policy", fkv::Policy::full, fkv::parse_policy));
  FKV_ASSIGN_OR_RETURN(o.retrieval.backend, named_option(a, "--backend", fkv::Backend::cpu, fkv::parse_backend));
  FKV_ASSIGN_OR_RETURN(o.retrieval.device, int_option(a, "--device", 0, 0, 1023));
  FKV_TRY(read_budget_options(a, o.retrieval));
  return o;
}

fkv::Status apply_isa(const std::string& name) {
  using fkv::cpu::Isa;
  if (name == "avx2" && fkv::cpu::detected_isa() != Isa::Avx2) {
    return fkv::err("--isa avx2: this CPU lacks AVX2, FMA or F16C");
  }
  fkv::cpu::set_active_isa(name == "scalar" ? Isa::Scalar : fkv::cpu::detected_isa());
  return {};
}


int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Tokens per second of one prefill of `tokens` into an empty context.
fkv::Result<double> time_prefill(fkv::Context& ctx, std::span<const int32_t> tokens, std::span<float> logits) {
  ctx.reset();
  const fkv::Clock::time_point t0 = fkv::Clock::now();
  FKV_TRY(ctx.eval(tokens, fkv::LogitsMode::Last, logits));
  return static_cast<double>(tokens.size()) / fkv::seconds_since(t0);
}

// Tokens per second of `n_decode` single-token evaluations starting from `first`, on the context as it is.
fkv::Result<double> time_decode(fkv::Context& ctx, int n_decode, int32_t first, std::span<float> logits) {
  int32_t next = first;
  const fkv::Clock::time_point t0 = fkv::Clock::now();
  for (int i = 0; i < n_decode; ++i) {
    FKV_TRY(ctx.eval(std::span<const int32_t>(&next, 1), fkv::LogitsMode::Last, logits));
    next = argmax(logits);
  }
  return n_decode / fkv::seconds_since(t0);
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

fkv::Result<BenchReport> run_benchmark(const BenchOptions& o, const std::string& path) {
  const fkv::Clock::time_point t_load = fkv::Clock::now();
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<fkv::Model> model,
                       fkv::Model::load(path, {}, fkv::weight_backing(o.retrieval.backend)));
  const double load_s = fkv::seconds_since(t_load);
  fkv::ContextParams cp = o.retrieval;
  cp.n_ctx = std::max({o.n_prompt, o.depth + o.n_decode, 1});
  cp.n_batch = o.n_batch;
  cp.n_threads = o.n_threads;
  cp.kv_type = o.kv_type;
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<fkv::Context> ctx, fkv::Context::create(*model, cp));
  const int n_vocab = model->config().n_vocab;
  std::mt19937_64 rng(o.seed);
  const int n_warm = std::min(8, cp.n_ctx);
  std::vector<int32_t> tokens(static_cast<size_t>(std::max({o.n_prompt, o.depth, n_warm})));  // (n_tokens)
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(n_vocab));
  std::vector<float> logits(static_cast<size_t>(n_vocab));  // (n_vocab)
  const int32_t first = std::max(0, model->tokenizer().bos_id());

  // Untimed warm-up: the first evaluation faults the mapped weights in and starts the worker threads.
  FKV_TRY(time_prefill(*ctx, std::span(tokens).first(n_warm), logits).status());
  BenchReport r;
  for (int rep = 0; rep < o.n_repeat; ++rep) {
    if (o.n_prompt > 0) {
      FKV_ASSIGN_OR_RETURN(double tps, time_prefill(*ctx, std::span(tokens).first(o.n_prompt), logits));
      r.prefill.values.push_back(tps);
    }
  }
  if (o.n_decode > 0) {
    // One untimed fill to the depth serves every run: each run truncates back to it and decodes the same tokens.
    ctx->reset();
    int32_t first_decoded = first;
    if (o.depth > 0) {
      FKV_TRY(ctx->eval(std::span(tokens).first(o.depth), fkv::LogitsMode::Last, logits));
      first_decoded = argmax(logits);
    }
    for (int rep = 0; rep < o.n_repeat; ++rep) {
      FKV_TRY(ctx->truncate(o.depth));  // restarts the policy and the stats
      FKV_ASSIGN_OR_RETURN(double tps, time_decode(*ctx, o.n_decode, first_decoded, logits));
      r.decode.values.push_back(tps);
      add_retrieval_stats(r.stats, ctx->stats());
      r.decode_tokens += o.n_decode;
    }
  }
  r.model = model->config().name;
  r.architecture = fkv::arch_name(model->config().arch);
  r.file_bytes = model->gguf().file_size();
  r.weight_bytes = model->weight_bytes();
  r.n_threads = o.n_threads > 0 ? o.n_threads : fkv::ThreadPool::default_threads();
  r.n_ctx = cp.n_ctx;
  r.isa = fkv::cpu::active_isa_label();
  r.backend = fkv::backend_name(ctx->backend().kind);
  r.speculation = fkv::speculation_name(ctx->speculation());
  r.backend_note = ctx->backend().note;
  r.kv_type = fkv::dtype_name(o.kv_type);
  r.peak_rss_mib = peak_rss_mib();
  r.weights = model->weights_copied() ? "huge pages" : "mapped";
  r.load_s = load_s;
  return r;
}

void print_report_text(const BenchOptions& o, const BenchReport& r) {
  std::printf("model       %s (%s), file %s, weights read per token %s\n", r.model.c_str(), r.architecture.c_str(),
              format_bytes(r.file_bytes).c_str(), format_bytes(r.weight_bytes).c_str());
  std::printf("setup       %d threads, isa %s, KV %s, context %d, batch %d, %d run(s)\n", r.n_threads, r.isa.c_str(),
              r.kv_type.c_str(), r.n_ctx, o.n_batch, o.n_repeat);
  std::printf("weights     %s, loaded in %.2f s\n", r.weights.c_str(), r.load_s);
  const bool freekv = o.retrieval.policy == fkv::Policy::freekv;
  std::printf("policy      %s, budget %s%s%s\n", fkv::policy_name(o.retrieval.policy),
              budget_summary(o.retrieval).c_str(), freekv ? ", speculation " : "", freekv ? r.speculation.c_str() : "");
  std::printf("backend     %s%s%s\n", r.backend.c_str(), r.backend_note.empty() ? "" : "; ", r.backend_note.c_str());
  if (o.n_prompt > 0) {
    std::printf("prefill     %d tokens: %.2f +- %.2f tok/s\n", o.n_prompt, r.prefill.mean(), r.prefill.stddev());
  }
  if (o.n_decode > 0) {
    const double tps = r.decode.mean();
    std::printf("decode      %d tokens at depth %d: %.2f +- %.2f tok/s, %.2f ms/token, weights %.2f GB/s\n", o.n_decode,
                o.depth, tps, r.decode.stddev(), tps > 0 ? 1000.0 / tps : 0.0,
                static_cast<double>(r.weight_bytes) * tps / 1e9);
    std::printf("retrieval   %s\n", retrieval_summary(r.stats, r.decode_tokens).c_str());
  }
  std::printf("peak RSS    %.1f MiB\n", r.peak_rss_mib);
}

void print_report_json(const BenchOptions& o, const BenchReport& r) {
  const double tps = r.decode.mean();
  JsonWriter j;
  j.begin_object();
  j.key("model").value(r.model).key("architecture").value(r.architecture);
  j.key("synthetic").value(o.synthetic).key("model_file_bytes").value(r.file_bytes);
  j.key("weight_bytes").value(r.weight_bytes).key("weights").value(r.weights).key("load_s").value(r.load_s);
  j.key("threads").value(r.n_threads).key("isa").value(r.isa).key("kv_type").value(r.kv_type);
  j.key("backend").value(r.backend).key("backend_note").value(r.backend_note);
  j.key("speculation").value(r.speculation);
  j.key("n_ctx").value(r.n_ctx).key("batch").value(o.n_batch).key("repeat").value(o.n_repeat);
  j.key("prompt_tokens").value(o.n_prompt).key("context_depth").value(o.depth).key("decode_tokens").value(o.n_decode);
  j.key("prefill_tokens_per_s").value(r.prefill.mean()).key("prefill_tokens_per_s_stddev").value(r.prefill.stddev());
  j.key("decode_tokens_per_s").value(tps).key("decode_tokens_per_s_stddev").value(r.decode.stddev());
  j.key("decode_ms_per_token").value(tps > 0 ? 1000.0 / tps : 0.0);
  j.key("weights_gb_per_s").value(static_cast<double>(r.weight_bytes) * tps / 1e9);
  j.key("peak_rss_mib").value(r.peak_rss_mib);
  j.key("policy").value(fkv::policy_name(o.retrieval.policy));
  write_budget_json(j, o.retrieval);
  write_retrieval_json(j, r.stats, r.decode_tokens);
  j.end_object();
  std::printf("%s\n", j.str().c_str());
}

int run_reopen(const ParsedArgs& a) {
  ReopenOptions ro;
  ro.model_path = a.value("--model").value_or("");
  if (ro.model_path.empty()) return usage_fail("bench --reopen-tokens: give -m MODEL");
  fkv::Result<int> n = int_option(a, "--reopen-tokens", 16384, 256, 1 << 20);
  if (!n.ok()) return usage_fail("bench: " + n.message());
  fkv::Result<int> threads = int_option(a, "--threads", 0, 0, 1024);
  if (!threads.ok()) return usage_fail("bench: " + threads.message());
  ro.n_tokens = *n;
  ro.model.n_ctx = *n + 512;  // room for the prompt head and the question
  ro.model.n_threads = *threads;
  fkv::Result<fkv::KvType> kv_type = named_option(a, "--kv-type", fkv::KvType::f16, fkv::parse_kv_type);
  if (!kv_type.ok()) return usage_fail("bench: " + kv_type.message());
  ro.model.kv_type = *kv_type;
  fkv::Result<int> cap = int_option(a, "--host-kv-mib", 0, 1, 1 << 24);
  if (!cap.ok()) return usage_fail("bench: " + cap.message());
  ro.host_kv_mib = *cap;
  TempDir tmp;
  fkv::Result<std::string> dir = make_temp_dir();
  if (!dir.ok()) return fail(dir.message());
  tmp.path = *dir;
  fkv::Result<ReopenReport> r = run_reopen_benchmark(ro, tmp.path);
  if (!r.ok()) return fail("bench: " + r.message());
  print_reopen_report(*r, a.has("--json"));
  return kExitOk;
}

int run_document(const ParsedArgs& a) {
  DocumentBenchOptions o;
  o.model_path = a.value("--model").value_or("");
  if (o.model_path.empty()) return usage_fail("bench --document: give -m MODEL");
  o.document = a.value("--document").value_or("");
  fkv::Result<int> n = int_option(a, "--decode-tokens", 64, 1, 1 << 20);
  if (!n.ok()) return usage_fail("bench: " + n.message());
  o.decode_tokens = *n;
  fkv::Result<int> threads = int_option(a, "--threads", 0, 0, 1024);
  if (!threads.ok()) return usage_fail("bench: " + threads.message());
  o.model.n_threads = *threads;
  o.model.n_ctx = 0;  // fits the document, past the trained window as context memory
  fkv::Result<fkv::KvType> kv_type = named_option(a, "--kv-type", fkv::KvType::f16, fkv::parse_kv_type);
  if (!kv_type.ok()) return usage_fail("bench: " + kv_type.message());
  o.model.kv_type = *kv_type;
  fkv::RetrievalOptions& r = o.model.retrieval;
  fkv::Result<fkv::Policy> policy = named_option(a, "--policy", fkv::Policy::freekv, fkv::parse_policy);
  if (!policy.ok()) return usage_fail("bench: " + policy.message());
  r.policy = *policy;
  if (fkv::Status s = read_budget_tokens(a, r.sink_tokens, r.recent_tokens, r.retrieved_tokens); !s.ok())
    return usage_fail("bench: " + s.message());
  fkv::Result<float> tau = float_option(a, "--tau", r.correction_tau, fkv::kMinCorrectionTau, fkv::kMaxCorrectionTau);
  if (!tau.ok()) return usage_fail("bench: " + tau.message());
  r.correction_tau = *tau;
  TempDir tmp;
  o.library = a.value("--library").value_or("");
  if (o.library.empty()) {
    fkv::Result<std::string> dir = make_temp_dir();
    if (!dir.ok()) return fail(dir.message());
    tmp.path = *dir;
    o.library = tmp.path + "/library.db";
  }
  fkv::Result<DocumentBenchReport> rep = run_document_benchmark(o);
  if (!rep.ok()) return fail("bench: " + rep.message());
  print_document_report(o, *rep, a.has("--json"));
  return kExitOk;
}

}  // namespace

const CommandHelp kBenchHelp = {"bench", "(-m MODEL | --synthetic SHAPE) [options]",
                                "Measures prefill and decode speed (tokens/s), weight bandwidth and peak memory.",
                                kBenchOptions};

int run_bench(std::span<char* const> args) {
  fkv::Result<ParsedArgs> parsed = parse_args(kBenchOptions, args);
  if (!parsed.ok()) return usage_fail("bench: " + parsed.message());
  if (!parsed->positionals().empty()) {
    return usage_fail("bench: unexpected argument '" + parsed->positionals()[0] + "'");
  }
  if (parsed->has("--reopen-tokens") && parsed->has("--document"))
    return usage_fail("bench: --reopen-tokens and --document are two benchmarks; give one");
  if (parsed->has("--reopen-tokens")) return run_reopen(*parsed);
  if (parsed->has("--document")) return run_document(*parsed);
  if (parsed->has("--library")) return usage_fail("bench: --library goes with --document");
  fkv::Result<BenchOptions> o = read_bench_options(*parsed);
  if (!o.ok()) return usage_fail("bench: " + o.message());
  if (fkv::Status s = apply_isa(o->isa); !s.ok()) return fail(s.message());
  TempDir tmp;
  const std::string save = parsed->value("--save-model").value_or("");
  if (!save.empty() && o->synthetic.empty()) return usage_fail("bench: --save-model needs --synthetic SHAPE");
  fkv::Result<std::string> path = prepare_model(o->model_path, o->synthetic, o->vocab, tmp, save);
  if (!path.ok()) return fail(path.message());
  fkv::Result<BenchReport> r = run_benchmark(*o, *path);
  if (!r.ok()) return fail(r.message());
  if (o->json) {
    print_report_json(*o, *r);
  } else {
    print_report_text(*o, *r);
  }
  return kExitOk;
}

}  // namespace freekv
