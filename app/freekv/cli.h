// Shared pieces of the `freekv` command-line tool: a hand-written option parser, error reporting with the tool's exit
// codes, a small JSON writer, and the entry point of each command.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fkv/events.h"
#include "fkv/status.h"
#include "fkv/types.h"

namespace fkv {
struct ContextParams;
class Engine;
}

namespace freekv {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;  // the input was fine but the work failed (missing file, bad model)
inline constexpr int kExitUsage = 2;    // the command line itself is wrong

// Prints "freekv: error: <message>" (one line: newlines become spaces, other control characters escapes as by
// display_text) to stderr and returns the exit code.
int fail(std::string_view message, int exit_code = kExitRuntime);
inline int usage_fail(std::string_view message) { return fail(message, kExitUsage); }

struct OptionSpec {
  std::string_view name;        // "--temp"
  std::string_view alias;       // "-t", or empty
  std::string_view value_name;  // "T" for an option with a value; empty for a flag
  std::string_view help;
  bool repeatable = false;  // may be given more than once (values are collected); otherwise the last one wins
};

struct CommandHelp {
  std::string_view name;      // "generate"
  std::string_view synopsis;  // "-m MODEL -p PROMPT [options]"
  std::string_view summary;   // one line
  std::span<const OptionSpec> options;
};

// Prints "usage: freekv NAME SYNOPSIS", the summary and the option table to stdout.
void print_help(const CommandHelp& help);
// True when args hold -h or --help before a "--".
bool wants_help(std::span<char* const> args);

class ParsedArgs {
 public:
  bool has(std::string_view name) const { return values_.count(std::string(name)) != 0; }
  // The last value given for the option, if any.
  std::optional<std::string> value(std::string_view name) const;
  // Every value of a repeatable option, in order.
  std::vector<std::string> values(std::string_view name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  friend fkv::Result<ParsedArgs> parse_args(std::span<const OptionSpec> specs, std::span<char* const> args);
  std::map<std::string, std::vector<std::string>> values_;  // long option name -> values ("" for flags)
  std::vector<std::string> positionals_;
};

// Parses "--name value", "--name=value", "-a value" and flags; "--" ends the options. Errors (all usage errors) name
// the flag: unknown option, missing value, a value given to a flag.
fkv::Result<ParsedArgs> parse_args(std::span<const OptionSpec> specs, std::span<char* const> args);

// Typed option values; absent options give `fallback`. Errors name the option, the accepted range and what was found.
fkv::Result<int> int_option(const ParsedArgs& a, std::string_view name, int fallback, int min, int max);
fkv::Result<float> float_option(const ParsedArgs& a, std::string_view name, float fallback, float min, float max);
fkv::Result<uint64_t> u64_option(const ParsedArgs& a, std::string_view name, uint64_t fallback);
// A named setting (policy, backend, speculation, KV type) read by the engine's parser, whose error lists the names.
template <class E>
fkv::Result<E> named_option(const ParsedArgs& a, std::string_view name, E fallback,
                            fkv::Result<E> (*parse)(std::string_view)) {
  const std::optional<std::string> v = a.value(name);
  if (!v) return fallback;
  fkv::Result<E> r = parse(*v);
  if (!r.ok()) return fkv::err("option ", name, ": ", r.message());
  return r;
}

// Builds one JSON value as text. Strings are escaped; non-finite numbers become null.
class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(double d);
  JsonWriter& value(int64_t i);
  JsonWriter& value(uint64_t u);
  JsonWriter& value(int i) { return value(static_cast<int64_t>(i)); }
  JsonWriter& value(bool b);
  const std::string& str() const { return out_; }

 private:
  void separate();
  std::string out_;
  std::vector<bool> first_;  // (depth) whether the open object or array has no element yet
  bool after_key_ = false;
};

std::string json_escape(std::string_view s);
// Text from files (titles, paths, reasons that quote them) as the text output prints it: C0 controls, DEL and C1
// controls become visible escapes (ESC is "\e", U+009B "\u009b"), invalid UTF-8 bytes "\xHH"; nothing else changes.
std::string display_text(std::string_view s);

// "1.17 GiB", "512.0 KiB", "37 B".
std::string format_bytes(uint64_t n);

// Options several commands take, with one help text each.
inline constexpr OptionSpec kPrefillOption = {
    "--prefill", "", "MODE",
    "prompt evaluation: dense (exact), retrieval (each chunk attends a sink, a local window and retrieved pages: "
    "cost linear in the length) or auto (dense for the first 8,192 tokens, retrieval past them) (default dense)"};
inline constexpr OptionSpec kBudgetTokenOptions[] = {
    {"--budget-sink", "", "N", "retrieval budget: sink tokens at the start (default 512)"},
    {"--budget-recent", "", "N", "retrieval budget: most recent tokens (default 512)"},
    {"--budget-retrieved", "", "N", "retrieval budget: tokens in retrieved pages (default 1024)"},
};
// Reads kBudgetTokenOptions into the three counts; a count keeps its value when its option is absent.
fkv::Status read_budget_tokens(const ParsedArgs& a, int& sink_tokens, int& recent_tokens, int& retrieved_tokens);

// Retrieval options shared by bench and eval: the budget tokens, --page-size, --tau, --speculation, --prefill.
std::span<const OptionSpec> budget_options();
// Reads them into cp (budget, page size, correction tau) and validates the budget; errors name the option.
fkv::Status read_budget_options(const ParsedArgs& a, fkv::ContextParams& cp);
// "512 sink + 512 recent + 1024 retrieved tokens, page 32, tau 0.90".
std::string budget_summary(const fkv::ContextParams& cp);
void write_budget_json(JsonWriter& j, const fkv::ContextParams& cp);
// Retrieval work per decoded token over `n_tokens` decode steps: stage times, pages recalled/reused, correction rate.
std::string retrieval_summary(const fkv::RetrievalStats& s, int64_t n_tokens);
void write_retrieval_json(JsonWriter& j, const fkv::RetrievalStats& s, int64_t n_tokens);
void add_retrieval_stats(fkv::RetrievalStats& to, const fkv::RetrievalStats& s);
// heads_corrected / heads_checked; NaN (JSON null) when no head was checked.
double correction_rate(const fkv::RetrievalStats& s);

// Model and sampling options shared by generate, chat and ask (-m, --ctx, --temp, ...), read into engine options.
struct RunOptions {
  std::string model_path;
  fkv::ModelOptions model;
  fkv::GenerationOptions gen;
};
std::span<const OptionSpec> model_run_options();
// With no -m: the largest model in fkv::default_models_folder() that fits in free memory (said on stderr), or an
// error that says what is installed and what it needs.
fkv::Result<std::string> installed_model();
fkv::Result<RunOptions> read_run_options(const ParsedArgs& a);

// While alive, the first Ctrl-C (SIGINT) cancels `engine`'s work in progress (Engine::cancel) instead of ending the
// program, so a long prefill or answer stops cleanly; a second Ctrl-C ends the program as usual. One at a time.
class CancelOnSigint {
 public:
  explicit CancelOnSigint(fkv::Engine& engine);
  ~CancelOnSigint();
  CancelOnSigint(const CancelOnSigint&) = delete;
  CancelOnSigint& operator=(const CancelOnSigint&) = delete;
  // A Ctrl-C came since construction.
  bool interrupted() const;

 private:
  void (*previous_)(int) = nullptr;
};

// Entry points; args exclude the program and command names. Each returns the process exit code.
int run_info(std::span<char* const> args);
int run_tokenize(std::span<char* const> args);
int run_generate(std::span<char* const> args);
int run_chat(std::span<char* const> args);
int run_bench(std::span<char* const> args);
int run_eval(std::span<char* const> args);
int run_ingest(std::span<char* const> args);
int run_library(std::span<char* const> args);
int run_ask(std::span<char* const> args);
int run_perplexity(std::span<char* const> args);

extern const CommandHelp kInfoHelp;
extern const CommandHelp kTokenizeHelp;
extern const CommandHelp kGenerateHelp;
extern const CommandHelp kChatHelp;
extern const CommandHelp kBenchHelp;
extern const CommandHelp kEvalHelp;
extern const CommandHelp kIngestHelp;
extern const CommandHelp kLibraryHelp;
extern const CommandHelp kAskHelp;
extern const CommandHelp kPerplexityHelp;

}  // namespace freekv
