// freekv generate and freekv chat: streaming text generation through the public engine facade (fkv/engine.h).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <random>

#include "cli.h"
#include "fkv/engine.h"
#include "fkv/models.h"
#include "runtime/context.h"
#include "runtime/sampler.h"
#include "tokenizer/chat_template.h"

namespace freekv {

namespace {

// Options shared by generate and chat.
constexpr OptionSpec kModelOptions[] = {
    {"--model", "-m", "MODEL",
     "GGUF model file (default: the largest model in $XDG_DATA_HOME/freekv-desk/models that fits in free memory)"},
    {"--max-tokens", "-n", "N", "tokens to generate at most (default 256)"},
    {"--temp", "", "T", "temperature; 0 is greedy (default 0.8)"},
    {"--top-k", "", "K", "keep the K most likely tokens; 0 is off (default 40)"},
    {"--top-p", "", "P", "nucleus sampling; 1 is off (default 0.95)"},
    {"--min-p", "", "P", "drop tokens below P x the best probability; 0 is off (default 0.05)"},
    {"--repeat-penalty", "", "R", "penalty for recent tokens; 1 is off (default 1.0)"},
    {"--repeat-last-n", "", "N", "how many recent tokens are penalized (default 64)"},
    {"--seed", "", "S", "random seed (default: a fresh one each run)"},
    {"--stop", "", "TEXT", "stop when the answer contains TEXT (repeatable)", true},
    {"--ctx", "-c", "N", "context size in tokens; 0: the model's training context, at most 32768 (default 4096)"},
    {"--threads", "-t", "N", "compute threads; 0 uses every hardware thread (default 0)"},
    {"--kv-type", "", "TYPE", "KV cache type: f16, bf16 or f32 (default f16)"},
    {"--host-kv-mib", "", "N",
     "MiB of a document's saved KV kept in memory; the rest is read from its page file as needed (default: half of "
     "the machine's memory)"},
    kPrefillOption,
    {"--rope-scaling", "", "NAME", "RoPE scaling instead of the file's: none, linear or yarn (default: the file's)"},
    {"--rope-scale", "", "F", "linear or YaRN factor, e.g. 4 for Qwen2.5's 131072 tokens over 32768"},
    {"--rope-orig-ctx", "", "N", "YaRN: the context trained before scaling (default: the file's training context)"},
    {"--template", "", "NAME", "chat template: llama2, llama3, mistral, chatml, gemma, deepseek-r1 (default: detect)"},
    {"--system", "", "TEXT", "system prompt"},
    {"--backend", "", "NAME", "cpu, cuda (dense attention on the GPU) or auto (cuda where it can run) (default cpu)"},
    {"--device", "", "N", "CUDA device index (default 0)"},
};

const OptionSpec kGenerateOnlyOptions[] = {
    {"--prompt", "-p", "PROMPT", "the prompt (required)"},
    {"--raw", "", "", "feed the prompt as is, without the chat template"},
    {"--json", "", "", "print one JSON object (text and timings) instead of streaming"},
};

std::vector<OptionSpec> join(std::span<const OptionSpec> a, std::span<const OptionSpec> b) {
  std::vector<OptionSpec> out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

const std::vector<OptionSpec> kGenerateOptions = join(kModelOptions, kGenerateOnlyOptions);
const std::span<const OptionSpec> kChatOptions = kModelOptions;

}  // namespace

std::span<const OptionSpec> model_run_options() { return kModelOptions; }

fkv::Result<std::string> installed_model() {
  const std::string folder = fkv::default_models_folder();
  const std::vector<fkv::InstalledModel> installed = fkv::list_installed_models(folder);
  const int64_t available = fkv::available_memory_bytes();
  const std::optional<fkv::InstalledModel> chosen = fkv::choose_model(installed, available);
  if (chosen) {
    std::fprintf(stderr, "freekv: note: model %s (the largest installed model that fits in free memory)\n",
                 display_text(chosen->path).c_str());
    return chosen->path;
  }
  if (installed.empty()) {
    return fkv::err("no model given (-m FILE) and none installed in ", folder,
                    " (scripts/install_models.py installs the default ones)");
  }
  const auto smallest = std::min_element(
      installed.begin(), installed.end(),
      [](const fkv::InstalledModel& x, const fkv::InstalledModel& y) { return x.need_bytes < y.need_bytes; });
  return fkv::err("no model given (-m FILE), and none of the ", installed.size(), " installed in ", folder,
                  " fits in the ", format_bytes(static_cast<uint64_t>(available)), " of free memory (", smallest->name,
                  " needs ", format_bytes(static_cast<uint64_t>(smallest->need_bytes)), ")");
}

// Everything here is a usage error: the values are checked before any file is touched.
fkv::Result<RunOptions> read_run_options(const ParsedArgs& a) {
  RunOptions o;
  const std::optional<std::string> model = a.value("--model");
  if (model) {
    o.model_path = *model;
  } else {
    FKV_ASSIGN_OR_RETURN(o.model_path, installed_model());
  }
  FKV_ASSIGN_OR_RETURN(o.model.n_ctx, int_option(a, "--ctx", 4096, 0, 1 << 24));
  FKV_ASSIGN_OR_RETURN(o.model.n_threads, int_option(a, "--threads", 0, 0, 1024));
  FKV_ASSIGN_OR_RETURN(o.model.kv_type, named_option(a, "--kv-type", fkv::KvType::f16, fkv::parse_kv_type));
  FKV_ASSIGN_OR_RETURN(o.model.prefill, named_option(a, "--prefill", fkv::Prefill::dense, fkv::parse_prefill));
  FKV_ASSIGN_OR_RETURN(o.model.host_kv_mib, int_option(a, "--host-kv-mib", 0, 1, 1 << 24));
  FKV_ASSIGN_OR_RETURN(o.model.rope.scaling,
                       named_option(a, "--rope-scaling", fkv::RopeScalingMode::file, fkv::parse_rope_scaling));
  FKV_ASSIGN_OR_RETURN(o.model.rope.scale, float_option(a, "--rope-scale", 0.f, 1.f, 1024.f));
  FKV_ASSIGN_OR_RETURN(o.model.rope.orig_ctx, int_option(a, "--rope-orig-ctx", 0, 1, 1 << 20));
  FKV_ASSIGN_OR_RETURN(o.model.backend, named_option(a, "--backend", fkv::Backend::cpu, fkv::parse_backend));
  FKV_ASSIGN_OR_RETURN(o.model.device, int_option(a, "--device", 0, 0, 1023));
  // The CUDA backend attends to every page; asking for it asks for dense attention.
  if (o.model.backend != fkv::Backend::cpu) o.model.retrieval.policy = fkv::Policy::full;
  FKV_TRY(o.model.validate());
  o.model.chat_template = a.value("--template").value_or("");
  if (!o.model.chat_template.empty()) FKV_TRY(fkv::chat_template_from_name(o.model.chat_template).status());
  fkv::GenerationOptions& g = o.gen;
  FKV_ASSIGN_OR_RETURN(g.max_tokens, int_option(a, "--max-tokens", 256, 0, 1 << 24));
  FKV_ASSIGN_OR_RETURN(g.temperature, float_option(a, "--temp", 0.8f, 0.f, 100.f));
  FKV_ASSIGN_OR_RETURN(g.top_k, int_option(a, "--top-k", 40, 0, 1 << 24));
  FKV_ASSIGN_OR_RETURN(g.top_p, float_option(a, "--top-p", 0.95f, 0.f, 1.f));
  FKV_ASSIGN_OR_RETURN(g.min_p, float_option(a, "--min-p", 0.05f, 0.f, 1.f));
  FKV_ASSIGN_OR_RETURN(g.repeat_penalty, float_option(a, "--repeat-penalty", 1.f, 0.f, 100.f));
  FKV_ASSIGN_OR_RETURN(g.repeat_last_n, int_option(a, "--repeat-last-n", 64, 0, 1 << 24));
  FKV_ASSIGN_OR_RETURN(g.seed, u64_option(a, "--seed", std::random_device{}()));
  g.stop = a.values("--stop");
  for (const std::string& s : g.stop) {
    if (s.empty()) return fkv::err("option --stop: expected a non-empty text");
  }
  g.system_prompt = a.value("--system").value_or("");
  fkv::SamplerParams sp;
  sp.temperature = g.temperature;
  sp.top_k = g.top_k;
  sp.top_p = g.top_p;
  sp.min_p = g.min_p;
  sp.repeat_penalty = g.repeat_penalty;
  sp.repeat_last_n = g.repeat_last_n;
  FKV_TRY(sp.validate());
  return o;
}

namespace {

fkv::Result<std::unique_ptr<fkv::Engine>> open_engine(const RunOptions& o) {
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<fkv::Engine> engine, fkv::Engine::create(fkv::EngineOptions{}));
  FKV_TRY(engine->load_model(o.model_path, o.model));
  // Say where the model runs whenever the user asked for anything but the CPU, and why "auto" did not use the GPU.
  const fkv::ModelInfo info = engine->model_info();
  if (o.model.backend != fkv::Backend::cpu) {
    std::fprintf(stderr, "[backend: %s%s%s]\n", fkv::backend_name(info.backend), info.backend_note.empty() ? "" : "; ",
                 info.backend_note.c_str());
  }
  return engine;
}

// The engine whose work the next Ctrl-C cancels; taken by that Ctrl-C, so a second one ends the program.
std::atomic<fkv::Engine*> g_cancel_target{nullptr};
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<fkv::Engine*>::is_always_lock_free && std::atomic<bool>::is_always_lock_free,
              "the SIGINT handler may only touch lock-free atomics");

void on_sigint(int) {
  if (fkv::Engine* e = g_cancel_target.exchange(nullptr); e != nullptr) {
    g_interrupted.store(true);
    e->cancel();  // an atomic store: safe in a signal handler
    return;
  }
  std::signal(SIGINT, SIG_DFL);
  std::raise(SIGINT);
}

bool stream_to_stdout(std::string_view piece) {
  std::fwrite(piece.data(), 1, piece.size(), stdout);
  std::fflush(stdout);
  return true;
}

void print_timings(const fkv::GenerateResult& r) {
  std::fprintf(stderr, "[prompt %d tokens (%d cached), %.1f tok/s | generated %d tokens, %.1f tok/s | stop: %s]\n",
               r.n_prompt_tokens, r.n_cached_tokens, r.prefill_tokens_per_s, r.n_generated, r.decode_tokens_per_s,
               fkv::stop_reason_name(r.stop_reason));
}

void print_result_json(const fkv::GenerateResult& r, const fkv::ModelInfo& info) {
  JsonWriter j;
  j.begin_object();
  j.key("text").value(r.text).key("stop_reason").value(fkv::stop_reason_name(r.stop_reason));
  j.key("backend").value(fkv::backend_name(info.backend));
  j.key("n_prompt_tokens").value(r.n_prompt_tokens).key("n_generated").value(r.n_generated);
  j.key("prefill_s").value(r.prefill_s).key("decode_s").value(r.decode_s);
  j.key("prefill_tokens_per_s").value(r.prefill_tokens_per_s);
  j.key("decode_tokens_per_s").value(r.decode_tokens_per_s);
  j.end_object();
  std::printf("%s\n", j.str().c_str());
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// One REPL turn: answers the last user message and appends the answer to the history.
void chat_turn(fkv::Engine& engine, std::vector<fkv::Message>& history, const fkv::GenerationOptions& gen) {
  const CancelOnSigint ctrl_c(engine);  // only while the turn runs: at the prompt Ctrl-C ends the program
  fkv::Result<fkv::GenerateResult> r = engine.chat(history, gen, stream_to_stdout);
  if (!r.ok()) {
    history.pop_back();  // the turn did not happen
    fail(r.message() + " (/reset starts a new conversation)");
    return;
  }
  std::printf("\n");
  print_timings(*r);
  history.push_back({"assistant", r->text});
  if (r->stop_reason == fkv::StopReason::context_full)
    std::fprintf(stderr, "[the context is full: /reset to start over]\n");
}

}  // namespace

CancelOnSigint::CancelOnSigint(fkv::Engine& engine) {
  g_interrupted.store(false);
  g_cancel_target.store(&engine);
  previous_ = std::signal(SIGINT, on_sigint);
}

CancelOnSigint::~CancelOnSigint() {
  std::signal(SIGINT, previous_);
  g_cancel_target.store(nullptr);
}

bool CancelOnSigint::interrupted() const { return g_interrupted.load(); }

const CommandHelp kGenerateHelp = {"generate", "-m MODEL -p PROMPT [options]",
                                   "Streams the model's answer to PROMPT (one user turn of its chat template unless "
                                   "--raw); timings go to stderr.",
                                   kGenerateOptions};

const CommandHelp kChatHelp = {"chat", "-m MODEL [options]",
                               "Interactive chat on stdin: one line per turn; /reset clears the conversation, /quit "
                               "(or end of input) leaves; Ctrl-C stops an answer.",
                               kChatOptions};

int run_generate(std::span<char* const> args) {
  fkv::Result<ParsedArgs> parsed = parse_args(kGenerateOptions, args);
  if (!parsed.ok()) return usage_fail("generate: " + parsed.message());
  if (!parsed->positionals().empty()) {
    return usage_fail("generate: unexpected argument '" + parsed->positionals()[0] + "' (the prompt goes after -p)");
  }
  const std::optional<std::string> prompt = parsed->value("--prompt");
  if (!prompt) return usage_fail("generate: option --prompt (-p) is required");
  fkv::Result<RunOptions> o = read_run_options(*parsed);
  if (!o.ok()) return usage_fail("generate: " + o.message());
  o->gen.raw = parsed->has("--raw");
  const bool json = parsed->has("--json");

  fkv::Result<std::unique_ptr<fkv::Engine>> engine = open_engine(*o);
  if (!engine.ok()) return fail(engine.message());
  fkv::Result<fkv::GenerateResult> r = [&] {
    const CancelOnSigint ctrl_c(**engine);
    return (*engine)->generate(*prompt, o->gen, json ? fkv::TextCallback() : fkv::TextCallback(stream_to_stdout));
  }();
  if (!r.ok()) return fail(r.message());
  if (json) {
    print_result_json(*r, (*engine)->model_info());
  } else {
    if (r->text.empty() || r->text.back() != '\n') std::printf("\n");
    print_timings(*r);
  }
  return kExitOk;
}

int run_chat(std::span<char* const> args) {
  fkv::Result<ParsedArgs> parsed = parse_args(kChatOptions, args);
  if (!parsed.ok()) return usage_fail("chat: " + parsed.message());
  if (!parsed->positionals().empty()) return usage_fail("chat: unexpected argument '" + parsed->positionals()[0] + "'");
  fkv::Result<RunOptions> o = read_run_options(*parsed);
  if (!o.ok()) return usage_fail("chat: " + o.message());
  fkv::Result<std::unique_ptr<fkv::Engine>> engine = open_engine(*o);
  if (!engine.ok()) return fail(engine.message());
  const bool interactive = isatty(STDIN_FILENO) != 0;
  std::vector<fkv::Message> history;
  const auto start = [&] {
    history.clear();
    if (!o->gen.system_prompt.empty()) history.push_back({"system", o->gen.system_prompt});
  };
  start();
  if (interactive)
    std::fprintf(stderr, "[chat with %s: /reset clears, /quit leaves]\n", display_text(o->model_path).c_str());
  std::string line;
  while (true) {
    if (interactive) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    const std::string text = trim(line);
    if (text.empty()) continue;
    if (text == "/quit" || text == "/exit") break;
    if (text == "/reset") {
      start();
      (*engine)->reset();
      std::fprintf(stderr, "[conversation cleared]\n");
      continue;
    }
    history.push_back({"user", text});
    chat_turn(**engine, history, o->gen);
  }
  return kExitOk;
}

}  // namespace freekv
