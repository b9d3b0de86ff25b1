// freekv ingest, library and ask: documents in the library, and questions about one whose KV is persisted, so asking
// again (even from a new process) needs no prefill.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

#include "cli.h"
#include "core/clock.h"
#include "core/format.h"
#include "fkv/engine.h"
#include "fkv/prefill_eta.h"
#include "ingest/ingest.h"
#include "store/library.h"
#include "store/library_documents.h"

namespace freekv {

namespace {


constexpr OptionSpec kLibraryOption = {"--library", "", "PATH",
                                       "library database (default: $FKV_LIBRARY, else $XDG_DATA_HOME/freekv-desk/"
                                       "library.db, else ~/.local/share/freekv-desk/library.db)"};
constexpr OptionSpec kJsonOption = {"--json", "", "", "print one JSON object instead of text"};

// The desktop app keeps its library in the same place (its AppDataLocation is .../freekv-desk).
std::string default_library_path() {
  if (const char* p = std::getenv("FKV_LIBRARY"); p != nullptr && *p != '\0') return p;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x != nullptr && *x != '\0')
    return std::string(x) + "/freekv-desk/library.db";
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : ".") + "/.local/share/freekv-desk/library.db";
}

std::string library_path(const ParsedArgs& a) { return a.value("--library").value_or(default_library_path()); }

// Opens the library; one that can only be read (a full disk, a read-only folder) is said so once, on stderr.
fkv::Result<std::unique_ptr<fkv::Library>> open_library(const ParsedArgs& a) {
  fkv::Result<std::unique_ptr<fkv::Library>> lib = fkv::Library::open(library_path(a));
  if (lib.ok() && (*lib)->read_only()) {
    std::fprintf(stderr, "freekv: note: the library is open read-only: %s\n",
                 display_text((*lib)->read_only_reason()).c_str());
  }
  return lib;
}

const char* state_name(fkv::SnapshotState s) {
  return s == fkv::SnapshotState::ready ? "ready" : s == fkv::SnapshotState::stale ? "stale" : "none";
}

// ---- ingest ----

constexpr OptionSpec kIngestOptions[] = {kLibraryOption, kJsonOption};

int run_ingest_impl(const ParsedArgs& a) {
  if (a.positionals().empty()) return usage_fail("ingest: give at least one FILE");
  fkv::Result<std::unique_ptr<fkv::Library>> lib = open_library(a);
  if (!lib.ok()) return fail("ingest: " + lib.message());
  const bool json = a.has("--json");
  JsonWriter j;
  j.begin_object().key("library").value((*lib)->db_path()).key("documents").begin_array();
  int failures = 0;
  for (const std::string& path : a.positionals()) {
    fkv::Result<fkv::IngestedDocument> d = fkv::ingest_file(path);
    fkv::Result<int64_t> id = d.ok() ? fkv::import_document(**lib, *d) : fkv::Result<int64_t>(d.status());
    j.begin_object().key("path").value(path);
    if (!id.ok()) {
      ++failures;
      j.key("error").value(id.message()).end_object();
      if (!json) std::fprintf(stderr, "freekv: error: %s\n", display_text(id.message()).c_str());
      continue;
    }
    j.key("id").value(*id).key("title").value(d->title).key("format").value(d->format);
    j.key("encoding").value(d->encoding).key("n_chars").value(static_cast<int64_t>(d->text.size()));
    j.key("headings").value(static_cast<int64_t>(d->headings.size()));
    j.key("pages").value(static_cast<int64_t>(d->page_offsets.size()));
    j.key("replaced_bytes").value(d->replaced_bytes).end_object();
    if (!json) {
      std::printf("%lld  %s  (%s, %s of text", static_cast<long long>(*id), display_text(d->title).c_str(),
                  d->format.c_str(), format_bytes(d->text.size()).c_str());
      if (!d->page_offsets.empty()) std::printf(", %zu pages", d->page_offsets.size());
      if (!d->headings.empty()) std::printf(", %zu headings", d->headings.size());
      if (d->replaced_bytes > 0) std::printf(", %lld invalid bytes replaced", static_cast<long long>(d->replaced_bytes));
      std::printf(")\n");
    }
  }
  j.end_array().end_object();
  if (json) std::printf("%s\n", j.str().c_str());
  return failures == 0 ? kExitOk : kExitRuntime;
}

// ---- library ----

constexpr OptionSpec kLibraryOptions[] = {
    kLibraryOption,
    kJsonOption,
    {"--cap", "", "BYTES", "evict: keep page files under this many bytes (suffixes K, M, G)"},
};

fkv::Result<int64_t> parse_bytes(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  const std::string unit(end);
  const double mult = unit.empty() || unit == "B" ? 1.0
                      : unit == "K"              ? 1024.0
                      : unit == "M"              ? 1024.0 * 1024
                      : unit == "G"              ? 1024.0 * 1024 * 1024
                                                 : -1.0;
  if (end == s.c_str() || mult < 0 || !(v >= 0)) return fkv::err("expected a size such as 500M or 2G, found '", s, "'");
  // 2^63 is exact as a double; anything at or past it would wrap when cast (to -9223372036854775808).
  if (!(v * mult < 9223372036854775808.0))
    return fkv::err("expected a size below 8589934592G (2^63 bytes), found '", s, "'");
  return static_cast<int64_t>(v * mult);
}

int list_documents(fkv::Library& lib, bool json) {
  fkv::Result<std::vector<fkv::DocumentSummary>> docs = lib.list_documents();
  if (!docs.ok()) return fail("library: " + docs.message());
  int64_t total_bytes = 0;  // every snapshot belongs to a document: the rows' bytes are the total
  for (const fkv::DocumentSummary& d : *docs) total_bytes += d.snapshot_bytes;
  if (json) {
    JsonWriter j;
    j.begin_object().key("library").value(lib.db_path()).key("snapshot_bytes").value(total_bytes);
    j.key("documents").begin_array();
    for (const fkv::DocumentSummary& d : *docs) {
      j.begin_object().key("id").value(d.info.id).key("title").value(d.info.title).key("path").value(d.info.path);
      j.key("format").value(d.info.format).key("n_chars").value(d.info.n_chars);
      j.key("kv_state").value(state_name(d.best_state)).key("snapshot_bytes").value(d.snapshot_bytes);
      if (!d.refusal.empty()) j.key("refusal").value(d.refusal).key("refused_tokens").value(d.refused_tokens);
      j.key("added_at").value(d.info.added_at).key("opened_at").value(d.info.opened_at).end_object();
    }
    j.end_array().end_object();
    std::printf("%s\n", j.str().c_str());
    return kExitOk;
  }
  std::printf("%s: %zu document(s), KV snapshots %s\n", display_text(lib.db_path()).c_str(), docs->size(),
              format_bytes(static_cast<uint64_t>(total_bytes)).c_str());
  for (const fkv::DocumentSummary& d : *docs) {
    std::printf("%5lld  %-40s %-8s %10s  KV %-5s %10s  %s\n", static_cast<long long>(d.info.id),
                display_text(d.info.title).c_str(), d.info.format.c_str(),
                format_bytes(static_cast<uint64_t>(d.info.n_chars)).c_str(), state_name(d.best_state),
                format_bytes(static_cast<uint64_t>(d.snapshot_bytes)).c_str(), display_text(d.info.path).c_str());
    if (!d.refusal.empty()) std::printf("       last open refused: %s\n", display_text(d.refusal).c_str());
  }
  return kExitOk;
}

int run_library_impl(const ParsedArgs& a) {
  const std::vector<std::string>& pos = a.positionals();
  const std::string verb = pos.empty() ? "list" : pos[0];
  if (verb != "list" && verb != "delete" && verb != "size" && verb != "evict")
    return usage_fail("library: unknown action '" + verb + "' (expected list, delete ID..., size or evict --cap N)");
  fkv::Result<int64_t> cap = int64_t{0};
  if (verb == "evict") {
    if (!a.has("--cap")) return usage_fail("library evict: give --cap BYTES");
    cap = parse_bytes(*a.value("--cap"));
    if (!cap.ok()) return usage_fail("library: option --cap: " + cap.message());
  }
  std::vector<int64_t> ids;
  for (size_t i = 1; i < pos.size(); ++i) {
    char* end = nullptr;
    const long long v = std::strtoll(pos[i].c_str(), &end, 10);
    if (verb != "delete" || end == pos[i].c_str() || *end != '\0' || v <= 0)
      return usage_fail("library " + verb + ": unexpected argument '" + pos[i] + "'");
    ids.push_back(v);
  }
  if (verb == "delete" && ids.empty()) return usage_fail("library delete: give the ID of each document to delete");
  fkv::Result<std::unique_ptr<fkv::Library>> lib = open_library(a);
  if (!lib.ok()) return fail("library: " + lib.message());
  if (verb == "list") return list_documents(**lib, a.has("--json"));
  if (verb == "delete") {
    for (int64_t id : ids) {
      if (fkv::Status s = (*lib)->delete_document(id); !s.ok()) return fail("library delete: " + s.message());
    }
    return kExitOk;
  }
  if (verb == "evict") {
    fkv::Result<std::vector<fkv::SnapshotRecord>> gone = (*lib)->evict_to_cap(*cap);
    if (!gone.ok()) return fail("library evict: " + gone.message());
    std::printf("evicted %zu snapshot(s)\n", gone->size());
  }
  fkv::Result<int64_t> total = (*lib)->total_snapshot_bytes();
  if (!total.ok()) return fail("library: " + total.message());
  std::printf("%lld\n", static_cast<long long>(*total));
  return kExitOk;
}

// ---- ask ----

constexpr OptionSpec kAskOwnOptions[] = {
    {"--doc", "", "FILE", "the document to ask about (txt, md, html, pdf)"},
    {"--doc-id", "", "ID", "a library document instead of --doc"},
    {"--question", "-q", "TEXT", "the question (or give it as the last argument)"},
    kLibraryOption,
    {"--no-library", "", "", "remember nothing: prefill every time and save no snapshot"},
    kJsonOption,
    {"--policy", "", "P", "decode attention policy: full, streaming, quest, arkvale or freekv (default freekv)"},
    kBudgetTokenOptions[0],
    kBudgetTokenOptions[1],
    kBudgetTokenOptions[2],
};

// The answer's citations come from retrieval, so ask lets the budget be smaller than a short document.
fkv::Status read_ask_retrieval(const ParsedArgs& a, fkv::ModelOptions& m) {
  fkv::RetrievalOptions& r = m.retrieval;
  FKV_ASSIGN_OR_RETURN(r.policy, named_option(a, "--policy", r.policy, fkv::parse_policy));
  FKV_TRY(read_budget_tokens(a, r.sink_tokens, r.recent_tokens, r.retrieved_tokens));
  return r.validate(m.page_size);
}

// ask reads long documents, so its context is not the shared 4096 default (run_ask_impl leaves it to the model).
static_assert(fkv::kAutoContextMax == 32768 && fkv::kMaxDocumentTokens == 1048576, "kAskContextHelp states the limits");
constexpr std::string_view kAskContextHelp =
    "context size in tokens (default: the model's training context, at most 32768, grown for a longer document up "
    "to 1048576 tokens, past the training context with context memory; a size given here must hold the document)";

std::vector<OptionSpec> ask_options() {
  std::vector<OptionSpec> out(std::begin(kAskOwnOptions), std::end(kAskOwnOptions));
  for (OptionSpec o : model_run_options()) {
    if (o.name == "--system") continue;
    if (o.name == "--ctx") o.help = kAskContextHelp;
    out.push_back(o);
  }
  return out;
}
const std::vector<OptionSpec> kAskOptions = ask_options();

void clear_progress_line() { std::fprintf(stderr, "\r%60s\r", ""); }

// The question's evaluation (stage prompt) reads as "question" on the line.
// A terminal's progress line. A prefill also shows its rate and time left: a book's takes more than an hour.
struct ProgressLine {
  fkv::Stage stage = fkv::Stage::ingest;
  fkv::Clock::time_point t0;
  int64_t done0 = 0;  // where the stage started: a resumed prefill starts past 0
  fkv::PrefillEta eta;

  void operator()(const fkv::Progress& p) {
    if (p.total <= 0) return;
    if (p.stage != stage || p.done == 0) {
      stage = p.stage;
      t0 = fkv::Clock::now();
      done0 = p.done;
      eta.reset();
    }
    const char* label = p.stage == fkv::Stage::prompt ? "question" : fkv::stage_name(p.stage);
    std::string rate;
    if (p.stage == fkv::Stage::prefill) {
      const double s = fkv::seconds_since(t0);
      eta.add(p.done, s);
      const double left = eta.seconds_left(p.total);
      if (s > 0 && left >= 0) {
        char buf[96];
        const long long l = std::llround(left);
        std::snprintf(buf, sizeof buf, ", %.0f tok/s, %lld:%02lld:%02lld left", static_cast<double>(p.done - done0) / s,
                      l / 3600, l / 60 % 60, l % 60);
        rate = buf;
      }
    }
    std::fprintf(stderr, "\r%-8s %5.1f%% (%lld / %lld%s)   ", label, 100.0 * static_cast<double>(p.done) / p.total,
                 static_cast<long long>(p.done), static_cast<long long>(p.total), rate.c_str());
    if (p.done >= p.total) clear_progress_line();
  }
};

// The question's evaluation, shown once it takes more than one batch: a progress line on a terminal, else one note
// (scripts and logs then still learn why nothing happens for a while). Counts what was evaluated, for the message
// of a cancel.
struct QuestionProgress {
  bool tty = false;
  bool noted = false;
  int64_t done = 0, total = 0;
  ProgressLine line;

  bool operator()(const fkv::Progress& p) {
    done = p.done;
    total = p.total;
    const bool long_prompt = noted || (p.done > 0 && p.done < p.total);
    if (!long_prompt) return true;
    if (tty) {
      line(p);
    } else if (!noted) {
      std::fprintf(stderr, "freekv: note: evaluating a long question (%lld tokens; Ctrl-C cancels)\n",
                   static_cast<long long>(p.total));
    }
    noted = true;
    return true;
  }
};

void write_opened_json(JsonWriter& j, const fkv::OpenedDocument& d) {
  j.key("document").begin_object();
  j.key("id").value(d.id).key("title").value(d.title).key("path").value(d.path).key("format").value(d.format);
  j.key("n_chars").value(d.n_chars).key("n_tokens").value(d.n_tokens);
  j.key("kv_source").value(fkv::kv_source_name(d.kv_source));
  j.key("recompute_reason").value(d.recompute_reason).key("save_error").value(d.save_error);
  j.key("snapshot_bytes").value(d.snapshot_bytes).key("resumed_tokens").value(d.resumed_tokens);
  j.key("checkpoints").value(d.checkpoints).key("checkpoint_s").value(d.checkpoint_s);
  j.key("ingest_s").value(d.ingest_s).key("tokenize_s").value(d.tokenize_s).key("load_s").value(d.load_s);
  j.key("prefill_s").value(d.prefill_s).key("save_s").value(d.save_s);
  j.end_object();
}

int run_ask_impl(const ParsedArgs& a) {
  fkv::Result<RunOptions> ro = read_run_options(a);
  if (!ro.ok()) return usage_fail("ask: " + ro.message());
  if (!a.has("--ctx")) ro->model.n_ctx = 0;  // documents are long: the model's training context (up to 32k)
  if (fkv::Status s = read_ask_retrieval(a, ro->model); !s.ok()) return usage_fail("ask: " + s.message());
  const std::optional<std::string> doc = a.value("--doc");
  const std::optional<std::string> doc_id = a.value("--doc-id");
  if (doc.has_value() == doc_id.has_value()) return usage_fail("ask: give either --doc FILE or --doc-id ID");
  if (doc_id && a.has("--no-library")) return usage_fail("ask: --doc-id needs the library (drop --no-library)");
  std::string question = a.value("--question").value_or("");
  if (question.empty() && !a.positionals().empty()) question = a.positionals().back();
  if (question.empty()) return usage_fail("ask: give the question (-q TEXT or as the last argument)");
  int64_t id = 0;
  if (doc_id) {
    char* end = nullptr;
    id = std::strtoll(doc_id->c_str(), &end, 10);
    if (end == doc_id->c_str() || *end != '\0' || id <= 0)
      return usage_fail("ask: option --doc-id: expected a document id, found '" + *doc_id + "'");
  }
  const bool json = a.has("--json");
  const fkv::Clock::time_point t0 = fkv::Clock::now();
  fkv::EngineOptions eo;
  if (!a.has("--no-library")) eo.library_path = library_path(a);
  fkv::Result<std::unique_ptr<fkv::Engine>> engine = fkv::Engine::create(eo);
  if (!engine.ok()) return fail("ask: " + engine.message());
  if (fkv::Status s = (*engine)->load_model(ro->model_path, ro->model); !s.ok()) return fail("ask: " + s.message());
  const double load_model_s = fkv::seconds_since(t0);
  const CancelOnSigint ctrl_c(**engine);
  const bool show_progress = isatty(STDERR_FILENO) != 0;
  // A cancelled prefill leaves its progress line unfinished; the error goes on a line of its own.
  const auto ask_fail = [&](const std::string& message) {
    if (show_progress) clear_progress_line();
    return fail("ask: " + message);
  };
  ProgressLine progress_line;
  bool prefill_seen = false;
  const fkv::ProgressCallback progress = [&](const fkv::Progress& p) {
    if (p.stage == fkv::Stage::prefill && !prefill_seen) {
      prefill_seen = true;
      if (p.done > 0 && !json) {
        if (show_progress) clear_progress_line();
        std::fprintf(stderr, "freekv: note: resuming a stopped prefill at %s of %s tokens\n",
                     fkv::grouped(p.done).c_str(), fkv::grouped(p.total).c_str());
      }
    }
    if (show_progress) progress_line(p);
    return true;
  };
  const fkv::Clock::time_point t_open = fkv::Clock::now();
  fkv::Result<fkv::OpenedDocument> opened = doc ? (*engine)->open_document(*doc, fkv::DocumentOptions{}, progress)
                                                : (*engine)->open_document(id, fkv::DocumentOptions{}, progress);
  if (!opened.ok()) return ask_fail(opened.message());
  if (!opened->recompute_reason.empty() && !json)
    std::fprintf(stderr, "freekv: note: the saved KV was not used (%s); prefilled again\n",
                 display_text(opened->recompute_reason).c_str());
  if (!opened->save_error.empty() && !json)
    std::fprintf(stderr, "freekv: warning: the KV could not be saved: %s\n", display_text(opened->save_error).c_str());
  // A Ctrl-C between the two calls would be dropped when ask starts (Engine::cancel), so it is honoured here.
  if (ctrl_c.interrupted()) return ask_fail("cancelled before the question was read; no answer");
  QuestionProgress question_progress{show_progress};
  ro->gen.progress = std::ref(question_progress);
  double first_token_s = 0;
  const fkv::Result<fkv::GenerateResult> r =
      (*engine)->ask({{"user", question}}, ro->gen, [&](std::string_view piece) {
        if (first_token_s == 0) first_token_s = fkv::seconds_since(t_open);
        if (!json) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        }
        return true;
      });
  if (!r.ok()) return ask_fail(r.message());
  const bool cancelled = r->stop_reason == fkv::StopReason::cancelled;
  if (cancelled && r->n_generated == 0) {
    return ask_fail("cancelled while evaluating the question (" + std::to_string(question_progress.done) + " of " +
                    std::to_string(question_progress.total) + " tokens); no answer");
  }
  if (!r->kv_recomputed.empty() && !json)
    std::fprintf(stderr, "freekv: note: the saved KV failed a check while answering (%s); it was recomputed\n",
                 display_text(r->kv_recomputed).c_str());
  if (!json) {
    std::printf("\n");
    for (size_t i = 0; i < r->citations.size(); ++i) {
      const fkv::Citation& c = r->citations[i];
      std::printf("[%zu] %s%s\"%s\" (bytes %lld-%lld, %.0f%% of selections)\n", i + 1, display_text(c.where).c_str(),
                  c.where.empty() ? "" : ": ", display_text(c.snippet).c_str(), static_cast<long long>(c.char_begin),
                  static_cast<long long>(c.char_end), 100.0 * c.weight);
    }
    std::fflush(stdout);  // the answer and its citations before the timings on stderr
    std::fprintf(stderr, "[%s: %d tokens, KV from %s in %.2f s; first answer token after %.2f s; %.1f tok/s%s]\n",
                 display_text(opened->title).c_str(), opened->n_tokens, fkv::kv_source_name(opened->kv_source),
                 opened->kv_source == fkv::KvSource::snapshot ? opened->load_s : opened->prefill_s, first_token_s,
                 r->decode_tokens_per_s, cancelled ? "; the answer was cancelled" : "");
    return kExitOk;
  }
  JsonWriter j;
  j.begin_object().key("model").value(ro->model_path).key("load_model_s").value(load_model_s);
  const fkv::ModelInfo info = (*engine)->model_info();
  j.key("n_ctx").value(info.n_ctx).key("n_ctx_train").value(info.n_ctx_train);
  j.key("context_memory").value(info.context_memory);
  write_opened_json(j, *opened);
  j.key("question").value(question).key("answer").value(r->text);
  j.key("stop_reason").value(fkv::stop_reason_name(r->stop_reason));
  j.key("kv_recomputed").value(r->kv_recomputed);
  const fkv::EngineStats es = (*engine)->stats();
  j.key("kv_file_resident_bytes").value(es.kv_file_resident_bytes).key("kv_file_read_bytes").value(es.kv_file_read_bytes);
  j.key("kv_file_wait_s").value(es.kv_file_wait_s);
  j.key("first_token_s").value(first_token_s).key("question_tokens").value(r->n_prompt_tokens - r->n_cached_tokens);
  j.key("n_generated").value(r->n_generated).key("decode_tokens_per_s").value(r->decode_tokens_per_s);
  // What retrieval cost the answer (the question's evaluation and the decode steps), per generated token.
  j.key("retrieval").begin_object();
  write_retrieval_json(j, (*engine)->stats().retrieval, r->n_generated);
  j.end_object();
  j.key("citations").begin_array();
  for (const fkv::Citation& c : r->citations) {
    j.begin_object().key("char_begin").value(c.char_begin).key("char_end").value(c.char_end);
    j.key("weight").value(double{c.weight}).key("where").value(c.where).key("snippet").value(c.snippet).end_object();
  }
  j.end_array();
  j.end_object();
  std::printf("%s\n", j.str().c_str());
  return kExitOk;
}

template <typename F>
int parse_then(std::span<const OptionSpec> specs, std::span<char* const> args, const char* name, F run) {
  fkv::Result<ParsedArgs> a = parse_args(specs, args);
  if (!a.ok()) return usage_fail(std::string(name) + ": " + a.message());
  return run(*a);
}

}  // namespace

const CommandHelp kIngestHelp = {"ingest", "FILE... [options]",
                                 "read documents (txt, md, html, pdf) into the library", kIngestOptions};
const CommandHelp kLibraryHelp = {"library", "[list | delete ID... | size | evict --cap BYTES] [options]",
                                  "list the library's documents, delete them, show or cap the KV storage",
                                  kLibraryOptions};
const CommandHelp kAskHelp = {"ask", "-m MODEL (--doc FILE | --doc-id ID) QUESTION [options]",
                              "answer a question about a document; its KV is saved, so asking again skips the prefill",
                              kAskOptions};

int run_ingest(std::span<char* const> args) { return parse_then(kIngestOptions, args, "ingest", run_ingest_impl); }
int run_library(std::span<char* const> args) {
  return parse_then(kLibraryOptions, args, "library", run_library_impl);
}
int run_ask(std::span<char* const> args) { return parse_then(kAskOptions, args, "ask", run_ask_impl); }

}  // namespace freekv
