// freekv eval: accuracy and fidelity of attention policies on long-context tasks (generated ones, and questions about
// documents Debian ships). For each task kind, length and prompt, the prompt is prefilled once and the reference
// policy ("full" unless --reference names another: past the model's window, where full cannot read) decodes the
// reference; every other policy restarts from the prefilled prompt, is teacher-forced on the reference's tokens and
// compared (top-1 agreement, KL divergence), and its own greedy answer is scored by exact match.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "backend/cpu/quant.h"
#include "cli.h"
#include "core/gguf.h"
#include "core/thread_pool.h"
#include "eval/docqa.h"
#include "eval/eval_tasks.h"
#include "eval/fidelity.h"
#include "model/model.h"
#include "runtime/context.h"
#include "runtime/document_prompt.h"
#include "synthetic_models.h"
#include "tokenizer/tokenizer.h"

namespace freekv {

namespace {

const OptionSpec kEvalOwnOptions[] = {
    {"--model", "-m", "MODEL", "GGUF model file (or --synthetic)"},
    {"--synthetic", "", "SHAPE", "evaluate a generated model: tinyllama-q8_0, tinyllama-f16, tiny-llama, tiny-gemma3"},
    {"--vocab", "", "PATH", "vocabulary GGUF for --synthetic (default: $FKV_VOCAB, else shared/vocab/llama-spm.gguf)"},
    {"--tasks", "", "LIST",
     "task kinds: passkey,multikey,vartrack,qa,docqa,docqa-filler (default: all); docqa-filler asks docqa's "
     "questions with unrelated filler around the document instead of the other license texts"},
    {"--prompt", "", "STYLE",
     "auto, chat or completion: chat puts the text and question in the user turn of the model's chat template; "
     "auto uses it when the GGUF has one, as instruct models do (default auto)"},
    {"--system", "", "TEXT",
     "chat prompts: a system turn before the user's; 'document' is the desktop's for questions about a document "
     "(keep to the text, answer briefly in its words), 'none' leaves it out (default none)"},
    {"--docs", "", "DIR", "folder of docqa's documents (default /usr/share/common-licenses)"},
    {"--lengths", "", "LIST", "prompt lengths in tokens (default 4096)"},
    {"--count", "", "N", "prompts per task kind and length (default 1)"},
    {"--items", "", "LIST",
     "run only these of the --count prompts, numbered from 1 (default all): a long grid split into runs that each "
     "finish, with the same prompts as one run; scripts/eval_table.py merges their JSON"},
    {"--policies", "", "LIST",
     "policies: full,streaming,quest,arkvale,freekv (default: all; the reference always runs); freekv@T sets "
     "freekv's tau to T, so freekv@0.8,freekv@0.95 sweeps it on the same prefills"},
    {"--reference", "", "P",
     "the policy the others are compared with (default full); lengths past the model's trained window are read as "
     "context memory, which needs a policy that selects here and full left out of --policies"},
    {"--queries", "", "K", "multikey: numbers asked for, of 4 hidden (default 2)"},
    {"--gen-tokens", "", "N",
     "decode steps compared and the longest answer (default per task: 32 for each number multikey asks, 64 for "
     "vartrack, docqa and docqa-filler, 32 for the others)"},
    {"--seed", "", "S", "seed of the generated tasks (default 1)"},
    {"--threads", "-t", "N", "compute threads; 0 uses every hardware thread (default 0)"},
    {"--batch", "", "N", "prefill chunk in tokens (default 128)"},
    {"--json", "", "", "print one JSON object instead of a table"},
};

std::vector<OptionSpec> eval_options() {
  std::vector<OptionSpec> out(std::begin(kEvalOwnOptions), std::end(kEvalOwnOptions));
  const std::span<const OptionSpec> budget = budget_options();
  out.insert(out.end(), budget.begin(), budget.end());
  return out;
}

const std::vector<OptionSpec> kEvalOptions = eval_options();

// A policy as the table names it ("freekv@0.8") and as the context takes it (name, tau).
struct PolicySpec {
  std::string label;  // as given: "freekv@0.8"
  fkv::Policy policy = fkv::Policy::full;
  float tau = 0.9f;
};

struct EvalOptions {
  std::string model_path, synthetic, vocab;
  std::vector<std::string> tasks;
  std::vector<PolicySpec> policies;
  std::vector<int> lengths;
  int count = 1;
  std::vector<int> items;  // 0-based prompt indices to run, ascending; empty: all
  uint64_t seed = 1;
  bool json = false;
  fkv::PromptMode prompt_mode = fkv::PromptMode::Auto;  // resolved against the model into task_options.prompt
  std::string system;  // --system, resolved: the text of the system turn, empty for none
  fkv::TaskOptions task_options;
  fkv::FidelityParams fidelity;
  int gen_tokens = 0;  // --gen-tokens; 0: per task kind (gen_tokens_for)
};

// Decode steps for a task kind. An answer cut short is scored wrong, so each kind gets room for its whole answer:
// multikey's "The special magic number for <key> is <7 digits>." takes about 20 tokens per number asked. Instruct
// models often restate a docqa question (about 30 tokens) before they answer it.
int gen_tokens_for(const EvalOptions& o, const std::string& kind) {
  if (o.gen_tokens > 0) return o.gen_tokens;
  if (kind == "multikey") return 32 * o.task_options.multikey_queries;
  if (kind == "vartrack" || fkv::is_docqa_kind(kind)) return 64;
  return 32;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

fkv::Result<std::vector<std::string>> read_tasks(const ParsedArgs& a) {
  const std::span<const std::string_view> known = fkv::task_kinds();
  if (!a.has("--tasks")) return std::vector<std::string>(known.begin(), known.end());
  std::vector<std::string> tasks = split_list(*a.value("--tasks"));
  for (const std::string& t : tasks) {
    if (std::find(known.begin(), known.end(), t) == known.end())
      return fkv::err("option --tasks: expected passkey, multikey, vartrack, qa, docqa or docqa-filler, found '", t,
                      "'");
  }
  return tasks;
}

fkv::Result<std::vector<int>> read_lengths(const ParsedArgs& a) {
  std::vector<int> lengths;
  for (const std::string& s : split_list(a.value("--lengths").value_or("4096"))) {
    char* end = nullptr;
    const long n = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || n < 16 || n > (1 << 24))
      return fkv::err("option --lengths: expected integers in 16..16777216, found '", s, "'");
    lengths.push_back(static_cast<int>(n));
  }
  return lengths;
}

// "name" or "name@tau": tau in the engine's range, only for freekv.
fkv::Result<PolicySpec> read_policy_spec(const std::string& label, float default_tau) {
  PolicySpec s{label, fkv::Policy::full, default_tau};
  const size_t at = label.find('@');
  const fkv::Result<fkv::Policy> policy = fkv::parse_policy(label.substr(0, at));
  if (!policy.ok()) return fkv::err("option --policies: ", policy.message());
  s.policy = *policy;
  if (at == std::string::npos) return s;
  const std::string t = label.substr(at + 1);
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (s.policy != fkv::Policy::freekv)
    return fkv::err("option --policies: '", label, "': only freekv takes a tau (freekv@0.8)");
  if (t.empty() || end != t.c_str() + t.size() || !(v >= fkv::kMinCorrectionTau && v <= fkv::kMaxCorrectionTau))
    return fkv::err("option --policies: '", label, "': expected a tau between ", fkv::kMinCorrectionTau, " and ",
                    fkv::kMaxCorrectionTau, " after '@', found '", t, "'");
  s.tau = static_cast<float>(v);
  return s;
}

// The reference first, each label once.
fkv::Result<std::vector<PolicySpec>> read_policies(const ParsedArgs& a, fkv::Policy reference, float default_tau) {
  std::vector<PolicySpec> out = {PolicySpec{fkv::policy_name(reference), reference, default_tau}};
  for (const std::string& p : split_list(a.value("--policies").value_or("full,streaming,quest,arkvale,freekv"))) {
    if (p.empty()) return fkv::err("option --policies: found an empty name in '", *a.value("--policies"), "'");
    FKV_ASSIGN_OR_RETURN(PolicySpec spec, read_policy_spec(p, default_tau));
    if (std::none_of(out.begin(), out.end(), [&](const PolicySpec& o) { return o.label == p; })) out.push_back(spec);
  }
  return out;
}

fkv::Result<std::vector<int>> read_items(const ParsedArgs& a, int count) {
  std::vector<int> items;
  if (!a.has("--items")) return items;
  for (const std::string& s : split_list(*a.value("--items"))) {
    char* end = nullptr;
    const long n = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || n < 1 || n > count)
      return fkv::err("option --items: expected prompt numbers in 1..", count, " (the --count), found '", s, "'");
    items.push_back(static_cast<int>(n - 1));
  }
  std::sort(items.begin(), items.end());
  items.erase(std::unique(items.begin(), items.end()), items.end());
  return items;
}

fkv::Result<EvalOptions> read_eval_options(const ParsedArgs& a) {
  EvalOptions o;
  o.model_path = a.value("--model").value_or("");
  o.synthetic = a.value("--synthetic").value_or("");
  if (o.model_path.empty() == o.synthetic.empty()) return fkv::err("give either --model MODEL or --synthetic SHAPE");
  if (!o.synthetic.empty()) FKV_TRY(synthetic_shape(o.synthetic).status());
  o.vocab = a.value("--vocab").value_or("");
  FKV_ASSIGN_OR_RETURN(o.tasks, read_tasks(a));
  FKV_ASSIGN_OR_RETURN(o.lengths, read_lengths(a));
  if (a.has("--prompt")) {
    fkv::Result<fkv::PromptMode> mode = fkv::parse_prompt_mode(*a.value("--prompt"));
    if (!mode.ok()) return fkv::err("option --prompt: ", mode.message());
    o.prompt_mode = *mode;
  }
  if (a.has("--docs")) o.task_options.docqa_dir = *a.value("--docs");
  if (a.has("--system")) {
    const std::string s = *a.value("--system");
    if (s.empty()) return fkv::err("option --system: expected 'document', 'none' or a text, found an empty text");
    o.system = s == "none" ? std::string() : s == "document" ? std::string(fkv::document_system_prompt()) : s;
  }

  FKV_ASSIGN_OR_RETURN(o.count, int_option(a, "--count", 1, 1, 10000));
  FKV_ASSIGN_OR_RETURN(o.items, read_items(a, o.count));
  FKV_ASSIGN_OR_RETURN(o.seed, u64_option(a, "--seed", 1));
  FKV_ASSIGN_OR_RETURN(o.task_options.multikey_queries,
                       int_option(a, "--queries", 2, 1, o.task_options.multikey_pairs));
  FKV_ASSIGN_OR_RETURN(o.gen_tokens, int_option(a, "--gen-tokens", 0, 1, 4096));
  FKV_ASSIGN_OR_RETURN(o.fidelity.context.n_threads, int_option(a, "--threads", 0, 0, 1024));
  FKV_ASSIGN_OR_RETURN(o.fidelity.context.n_batch, int_option(a, "--batch", 128, 1, 8192));
  FKV_TRY(read_budget_options(a, o.fidelity.context));
  FKV_ASSIGN_OR_RETURN(o.fidelity.reference, named_option(a, "--reference", fkv::Policy::full, fkv::parse_policy));
  FKV_ASSIGN_OR_RETURN(o.policies, read_policies(a, o.fidelity.reference, o.fidelity.context.correction_tau));
  o.json = a.has("--json");
  return o;
}

// One prompt under one policy.
struct PromptRecord {
  int index = 0;
  int n_tokens = 0;
  double depth = 0;
  std::string expected;
  int n_expected = 0;  // answers the output must hold
  fkv::FidelityResult result;
};

// Everything measured for one task kind, length and policy.
struct Cell {
  std::string task, policy;
  int length = 0;
  int gen_tokens = 0;
  std::vector<PromptRecord> prompts;
  fkv::RetrievalStats stats;  // summed over prompts

  int n_correct() const {
    return static_cast<int>(std::count_if(prompts.begin(), prompts.end(), [](auto& p) { return p.result.correct; }));
  }
  double accuracy() const { return prompts.empty() ? 0 : static_cast<double>(n_correct()) / prompts.size(); }
  // Partial credit: the mean fraction of expected answers found (a multikey answer with one of two numbers: 0.5).
  double answer_recall() const {
    double s = 0;
    for (const PromptRecord& p : prompts) s += static_cast<double>(p.result.n_found) / std::max(1, p.n_expected);
    return prompts.empty() ? 0 : s / static_cast<double>(prompts.size());
  }
  double mean_of(double fkv::FidelityResult::*field) const {
    double s = 0;
    for (const PromptRecord& p : prompts) s += p.result.*field;
    return prompts.empty() ? 0 : s / static_cast<double>(prompts.size());
  }
  // Over every answer step of the cell's prompts, so a long answer weighs more than a one-word one; 1 and 0 when no
  // answer took a decode step.
  double answer_weighted(double fkv::FidelityResult::*field, double none) const {
    double s = 0;
    int n = 0;
    for (const PromptRecord& p : prompts) {
      s += p.result.*field * p.result.answer_steps;
      n += p.result.answer_steps;
    }
    return n > 0 ? s / n : none;
  }
  int64_t decode_tokens() const {
    int64_t n = 0;
    for (const PromptRecord& p : prompts) n += p.result.n_steps;
    return n;
  }
  double decode_tokens_per_s() const {
    double s = 0;
    for (const PromptRecord& p : prompts) s += p.result.decode_s;
    return s > 0 ? static_cast<double>(decode_tokens()) / s : 0;
  }
};

// How the prompts read, e.g. "chat (chatml)" or "completion".
std::string prompt_label(const fkv::TaskPrompt& p) {
  std::string s = fkv::prompt_style_name(p.style);
  if (p.style == fkv::PromptStyle::Chat) {
    s += std::string(" (") + fkv::chat_template_name(p.chat_template) + (p.system.empty() ? "" : ", system turn") + ")";
  }
  return s;
}

// Fails before any long run: full attention past the model's training context, unknown policies, a budget a policy
// rejects, a docqa document missing.
fkv::Status check_setup(const fkv::Model& model, const EvalOptions& o) {
  const int n_train = model.config().n_ctx_train;
  const int longest = *std::max_element(o.lengths.begin(), o.lengths.end());
  int gen = 0;  // the most decode steps any task kind takes
  for (const std::string& kind : o.tasks) gen = std::max(gen, gen_tokens_for(o, kind));
  const bool past_window = n_train > 0 && longest + gen + 1 > n_train;
  const auto full = [](const PolicySpec& p) { return p.policy == fkv::Policy::full; };
  if (past_window && std::any_of(o.policies.begin(), o.policies.end(), full)) {
    return fkv::err("length ", longest, " + ", gen, " generated tokens is past the model's training context (", n_train,
                    " tokens): such prompts are read as context memory, which policy full ",
                    "cannot attend; use --lengths up to ", n_train - gen - 1, ", or --reference freekv ",
                    "(or quest, arkvale, streaming) with full left out of --policies");
  }
  if (std::any_of(o.tasks.begin(), o.tasks.end(), [](const std::string& t) { return fkv::is_docqa_kind(t); }))
    FKV_TRY(fkv::check_docqa_documents(o.task_options.docqa_dir));
  for (const PolicySpec& p : o.policies) {
    fkv::ContextParams cp = o.fidelity.context;
    cp.policy = p.policy;
    cp.correction_tau = p.tau;
    cp.n_ctx = cp.page_size;
    FKV_TRY(fkv::Context::create(model, cp).status());
  }
  return {};
}

// Runs every prompt of one task kind and length under every policy; cells are appended in policy order.
fkv::Status run_tasks(const fkv::Model& model, const EvalOptions& o, const std::string& kind, int length,
                      std::vector<Cell>& cells) {
  FKV_ASSIGN_OR_RETURN(const std::vector<fkv::EvalTask> tasks,
                       fkv::make_tasks(model.tokenizer(), kind, length, o.count, o.seed, o.task_options));
  const size_t first = cells.size();
  fkv::FidelityParams params = o.fidelity;
  params.n_gen = gen_tokens_for(o, kind);
  for (const PolicySpec& p : o.policies) cells.push_back(Cell{kind, p.label, length, params.n_gen, {}, {}});
  const bool progress = isatty(STDERR_FILENO) != 0;  // a terminal watching a long run; never in a pipe
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (!o.items.empty() && !std::binary_search(o.items.begin(), o.items.end(), static_cast<int>(i))) continue;
    if (progress) std::fprintf(stderr, "\r%s %d #%zu: full         ", kind.c_str(), length, i + 1);
    // One prefill per prompt: the session decodes the reference, then rewinds to the prompt for each policy.
    FKV_ASSIGN_OR_RETURN(std::unique_ptr<fkv::FidelitySession> session,
                         fkv::FidelitySession::start(model, tasks[i], params));
    for (size_t k = 0; k < o.policies.size(); ++k) {
      if (progress)
        std::fprintf(stderr, "\r%s %d #%zu: %-12s", kind.c_str(), length, i + 1, o.policies[k].label.c_str());
      PromptRecord rec{static_cast<int>(i),
                       tasks[i].n_tokens,
                       tasks[i].depth,
                       tasks[i].answer,
                       static_cast<int>(tasks[i].answers.size()),
                       {}};
      if (k == 0) {
        rec.result = fkv::reference_result(session->reference());
      } else {
        FKV_ASSIGN_OR_RETURN(rec.result, session->compare(o.policies[k].policy, o.policies[k].tau));
      }
      Cell& cell = cells[first + k];
      add_retrieval_stats(cell.stats, rec.result.stats);
      cell.prompts.push_back(std::move(rec));
    }
  }
  if (progress) std::fprintf(stderr, "\r%60s\r", "");
  return {};
}

void print_table(const fkv::Model& model, const EvalOptions& o, const std::vector<Cell>& cells) {
  std::printf("model   %s (%s), training context %d\n", model.config().name.c_str(),
              fkv::arch_name(model.config().arch), model.config().n_ctx_train);
  std::printf("prompts %s (--prompt %s)\n", prompt_label(o.task_options.prompt).c_str(),
              fkv::prompt_mode_name(o.prompt_mode));
  std::string steps;
  for (const std::string& kind : o.tasks)
    steps += (steps.empty() ? "" : ", ") + kind + " " + std::to_string(gen_tokens_for(o, kind));
  std::printf("budget  %s; %d prompt(s) per cell, seed %llu\ndecode steps %s\n\n",
              budget_summary(o.fidelity.context).c_str(), o.count, static_cast<unsigned long long>(o.seed),
              steps.c_str());
  std::printf("%-9s %7s %-11s %6s %6s %7s %9s %9s %7s %9s %6s %9s %7s %7s\n", "task", "length", "policy", "exact",
              "found", "agree", "KL mean", "KL max", "ans agr", "ans KL", "corr%", "decode/s", "pages/t", "recall/t");
  for (const Cell& c : cells) {
    double max_kl = 0;
    for (const PromptRecord& p : c.prompts) max_kl = std::max(max_kl, p.result.max_kl);
    const double rate = correction_rate(c.stats);
    char corr[16] = "-";
    if (!std::isnan(rate)) std::snprintf(corr, sizeof corr, "%.1f", 100.0 * rate);
    const double n_tok = static_cast<double>(std::max<int64_t>(1, c.decode_tokens()));
    std::printf("%-9s %7d %-11s %3d/%-2zu %6.2f %7.3f %9.5f %9.5f %7.3f %9.5f %6s %9.2f %7.1f %7.1f\n", c.task.c_str(),
                c.length, c.policy.c_str(), c.n_correct(), c.prompts.size(), c.answer_recall(),
                c.mean_of(&fkv::FidelityResult::agreement), c.mean_of(&fkv::FidelityResult::mean_kl), max_kl,
                c.answer_weighted(&fkv::FidelityResult::answer_agreement, 1),
                c.answer_weighted(&fkv::FidelityResult::answer_mean_kl, 0), corr, c.decode_tokens_per_s(),
                static_cast<double>(c.stats.pages_selected) / n_tok,
                static_cast<double>(c.stats.pages_recalled) / n_tok);
  }
  std::printf(
      "\nexact: prompts whose answer holds every expected string; found: mean fraction of them found;\n"
      "agree/KL: top-1 agreement and KL(reference || policy) over teacher-forced decode steps; ans agr/ans KL: the\n"
      "same over the steps that predict the reference's answer (to its end), weighted by steps; corr%%: freekv\n"
      "heads corrected of those checked; pages/t, recall/t: KV pages attended and recalled per decoded token.\n");
}

void write_prompt_json(JsonWriter& j, const PromptRecord& p) {
  const fkv::FidelityResult& r = p.result;
  j.begin_object();
  j.key("index").value(p.index).key("n_tokens").value(p.n_tokens).key("depth").value(p.depth);
  j.key("expected").value(p.expected).key("output").value(r.output).key("correct").value(r.correct);
  j.key("answers_found").value(r.n_found).key("answers_expected").value(p.n_expected);
  j.key("agreement").value(r.agreement).key("mean_kl").value(r.mean_kl).key("max_kl").value(r.max_kl);
  j.key("answer_steps").value(r.answer_steps).key("answer_agreement").value(r.answer_agreement);
  j.key("answer_mean_kl").value(r.answer_mean_kl);
  j.key("first_divergence").value(r.first_divergence).key("reran").value(r.reran);
  j.key("prefill_s").value(r.prefill_s).key("decode_s").value(r.decode_s);
  j.end_object();
}

void print_json(const fkv::Model& model, const EvalOptions& o, const std::vector<Cell>& cells) {
  JsonWriter j;
  j.begin_object();
  j.key("model").value(model.config().name).key("architecture").value(fkv::arch_name(model.config().arch));
  j.key("synthetic").value(o.synthetic).key("n_ctx_train").value(model.config().n_ctx_train);
  // gen_tokens: the --gen-tokens given, 0 for the per-task default (each result names its own)
  j.key("count").value(o.count).key("gen_tokens").value(o.gen_tokens).key("seed").value(o.seed);
  const fkv::TaskPrompt& p = o.task_options.prompt;
  j.key("prompt").value(fkv::prompt_style_name(p.style)).key("prompt_mode").value(fkv::prompt_mode_name(o.prompt_mode));
  j.key("system").value(p.style == fkv::PromptStyle::Chat ? p.system : std::string());
  j.key("chat_template").value(p.style == fkv::PromptStyle::Chat ? fkv::chat_template_name(p.chat_template) : "");
  write_budget_json(j, o.fidelity.context);
  // Where the prompts ran: a grid spread over sessions mixes machines, and float summation order follows the ISA.
  const int threads =
      o.fidelity.context.n_threads > 0 ? o.fidelity.context.n_threads : fkv::ThreadPool::default_threads();
  j.key("version").value(FKV_VERSION).key("isa").value(fkv::cpu::active_isa_label()).key("threads").value(threads);
  j.key("results").begin_array();
  for (const Cell& c : cells) {
    j.begin_object();
    j.key("task").value(c.task).key("length").value(c.length).key("policy").value(c.policy);
    j.key("gen_tokens").value(c.gen_tokens);
    j.key("prompts").value(static_cast<int>(c.prompts.size())).key("accuracy").value(c.accuracy());
    j.key("answer_recall").value(c.answer_recall());
    j.key("agreement").value(c.mean_of(&fkv::FidelityResult::agreement));
    j.key("mean_kl").value(c.mean_of(&fkv::FidelityResult::mean_kl));
    j.key("answer_agreement").value(c.answer_weighted(&fkv::FidelityResult::answer_agreement, 1));
    j.key("answer_mean_kl").value(c.answer_weighted(&fkv::FidelityResult::answer_mean_kl, 0));
    j.key("decode_tokens_per_s").value(c.decode_tokens_per_s());
    write_retrieval_json(j, c.stats, c.decode_tokens());
    j.key("items").begin_array();
    for (const PromptRecord& p : c.prompts) write_prompt_json(j, p);
    j.end_array();
    j.end_object();
  }
  j.end_array();
  j.end_object();
  std::printf("%s\n", j.str().c_str());
}

}  // namespace

const CommandHelp kEvalHelp = {
    "eval", "(-m MODEL | --synthetic SHAPE) [options]",
    "Scores attention policies on long-context tasks (generated ones and questions about Debian's license texts): "
    "accuracy, agreement with full attention, speed.",
    kEvalOptions};

int run_eval(std::span<char* const> args) {
  fkv::Result<ParsedArgs> parsed = parse_args(kEvalOptions, args);
  if (!parsed.ok()) return usage_fail("eval: " + parsed.message());
  if (!parsed->positionals().empty()) return usage_fail("eval: unexpected argument '" + parsed->positionals()[0] + "'");
  fkv::Result<EvalOptions> o = read_eval_options(*parsed);
  if (!o.ok()) return usage_fail("eval: " + o.message());
  TempDir tmp;
  fkv::Result<std::string> path = prepare_model(o->model_path, o->synthetic, o->vocab, tmp);
  if (!path.ok()) return fail(path.message());
  fkv::Result<std::unique_ptr<fkv::Model>> model = fkv::Model::load(*path);
  if (!model.ok()) return fail(model.message());
  fkv::Result<fkv::TaskPrompt> prompt = fkv::choose_task_prompt((*model)->gguf(), o->prompt_mode);
  if (!prompt.ok()) return fail("eval: " + prompt.message());
  o->task_options.prompt = *prompt;
  o->task_options.prompt.system = o->system;
  if (fkv::Status s = check_setup(**model, *o); !s.ok()) return fail("eval: " + s.message());
  std::vector<Cell> cells;
  for (const std::string& kind : o->tasks) {
    for (int length : o->lengths) {
      if (fkv::Status s = run_tasks(**model, *o, kind, length, cells); !s.ok()) {
        return fail("eval: " + kind + " at " + std::to_string(length) + " tokens: " + s.message());
      }
    }
  }
  if (o->json) {
    print_json(**model, *o, cells);
  } else {
    print_table(**model, *o, cells);
  }
  return kExitOk;
}

}  // namespace freekv
