// freekv bench --reopen-tokens N: what persisting a document's KV saves. A generated document of about N tokens is
// opened in a fresh library (prefill + save), then in a second engine (load from the page file, no prefill); both
// times one question is asked and the time to its first answer token is measured.
// freekv bench --document FILE: decode speed over a real document, a whole book included. The document is opened in
// a library (its saved KV reused when there is one), one question is asked, and its answer runs for exactly
// --decode-tokens steps (past the end of its turn if need be), so a speed over a book and one at a short context
// (`freekv bench --context N`) count the same number of steps.
#include "bench_reopen.h"

#include <sys/resource.h>

#include <cstdio>
#include <fstream>

#include "core/clock.h"
#include "eval/eval_tasks.h"
#include "fkv/engine.h"
#include "model/model.h"

namespace freekv {

namespace {


long major_faults() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_majflt;
}

struct Asked {
  fkv::OpenedDocument doc;
  double first_token_s = 0;
  long major_faults = 0;  // during the open and the answer: pages that had to come from the disk
  fkv::GenerateResult answer;
  fkv::EngineStats stats;  // after the answer
};

// One open + one question (greedy): the document's OpenedDocument, the seconds to the first answer piece, the answer.
fkv::Result<Asked> open_and_ask(const ReopenOptions& o, const fkv::ModelOptions& mo, const std::string& library,
                                const std::string& doc) {
  fkv::EngineOptions eo;
  eo.library_path = library;
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<fkv::Engine> engine, fkv::Engine::create(eo));
  FKV_TRY(engine->load_model(o.model_path, mo));
  const fkv::Clock::time_point t0 = fkv::Clock::now();
  const long faults0 = major_faults();
  Asked a;
  FKV_ASSIGN_OR_RETURN(a.doc, engine->open_document(doc, fkv::DocumentOptions{}, nullptr));
  fkv::GenerationOptions g;
  g.temperature = 0;
  g.max_tokens = o.answer_tokens;
  const auto on_text = [&](std::string_view) {
    if (a.first_token_s == 0) a.first_token_s = fkv::seconds_since(t0);
    return true;
  };
  FKV_ASSIGN_OR_RETURN(a.answer, engine->ask({{"user", "Which city is named in the report?"}}, g, on_text));
  if (a.first_token_s == 0) a.first_token_s = fkv::seconds_since(t0);  // only control tokens (no text)
  a.stats = engine->stats();
  a.major_faults = major_faults() - faults0;
  return a;
}

}  // namespace

fkv::Result<ReopenReport> run_reopen_benchmark(const ReopenOptions& o, const std::string& dir) {
  // The document: a generated report (eval/eval_tasks.h, kind qa) of about n_tokens tokens, as a text file.
  std::vector<fkv::EvalTask> tasks;
  {
    FKV_ASSIGN_OR_RETURN(std::unique_ptr<fkv::Model> model, fkv::Model::load(o.model_path));
    FKV_ASSIGN_OR_RETURN(tasks, fkv::make_tasks(model->tokenizer(), "qa", o.n_tokens, 1, o.seed));
  }
  const std::string doc = dir + "/report.txt";
  std::ofstream(doc, std::ios::binary) << tasks[0].prompt;
  const std::string library = dir + "/library/library.db";

  FKV_ASSIGN_OR_RETURN(const Asked cold, open_and_ask(o, o.model, library, doc));
  if (cold.doc.kv_source != fkv::KvSource::prefill)
    return fkv::err("the first open did not prefill (", fkv::kv_source_name(cold.doc.kv_source), ")");
  if (!cold.doc.save_error.empty()) return fkv::err("the snapshot was not saved: ", cold.doc.save_error);
  FKV_ASSIGN_OR_RETURN(const Asked warm, open_and_ask(o, o.model, library, doc));
  if (warm.doc.kv_source != fkv::KvSource::snapshot)
    return fkv::err("the second open did not load the snapshot: ", warm.doc.recompute_reason);
  ReopenReport r;
  r.n_tokens = cold.doc.n_tokens;
  r.prefill_s = cold.doc.prefill_s;
  r.save_s = cold.doc.save_s;
  r.first_token_prefill_s = cold.first_token_s;
  r.load_s = warm.doc.load_s;
  r.first_token_reopen_s = warm.first_token_s;
  r.snapshot_bytes = warm.doc.snapshot_bytes;
  r.decode_tok_s_prefill = cold.answer.decode_tokens_per_s;
  r.decode_tok_s_reopen = warm.answer.decode_tokens_per_s;
  r.answer_tokens = warm.answer.n_generated;
  r.reopen_file_read_bytes = warm.stats.kv_file_read_bytes;
  r.reopen_major_faults = warm.major_faults;
  if (o.host_kv_mib > 0) {
    fkv::ModelOptions capped = o.model;
    capped.host_kv_mib = o.host_kv_mib;
    FKV_ASSIGN_OR_RETURN(const Asked c, open_and_ask(o, capped, library, doc));
    r.host_kv_mib = o.host_kv_mib;
    r.capped_first_token_s = c.first_token_s;
    r.capped_decode_tok_s = c.answer.decode_tokens_per_s;
    r.capped_file_read_bytes = c.stats.kv_file_read_bytes;
    r.capped_resident_bytes = c.stats.kv_file_resident_bytes;
    r.capped_major_faults = c.major_faults;
    r.capped_file_wait_s = c.stats.kv_file_wait_s;
    r.capped_step_file_wait_s = c.stats.retrieval.file_wait_s;
    r.capped_same_answer = c.answer.text == warm.answer.text && c.answer.n_generated == warm.answer.n_generated;
  }
  return r;
}

fkv::Result<DocumentBenchReport> run_document_benchmark(const DocumentBenchOptions& o) {
  fkv::EngineOptions eo;
  eo.library_path = o.library;
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<fkv::Engine> engine, fkv::Engine::create(eo));
  FKV_TRY(engine->load_model(o.model_path, o.model));  // with o.model.retrieval
  DocumentBenchReport r;
  const fkv::Clock::time_point t0 = fkv::Clock::now();
  FKV_ASSIGN_OR_RETURN(r.doc, engine->open_document(o.document, fkv::DocumentOptions{}, nullptr));
  fkv::GenerationOptions g;
  g.temperature = 0;
  g.max_tokens = o.decode_tokens;
  g.ignore_eos = true;
  g.max_citations = 0;
  const auto on_text = [&](std::string_view) {
    if (r.first_token_s == 0) r.first_token_s = fkv::seconds_since(t0);
    return true;
  };
  FKV_ASSIGN_OR_RETURN(const fkv::GenerateResult a,
                       engine->ask({{"user", "What is this document about? Answer in detail."}}, g, on_text));
  if (r.first_token_s == 0) r.first_token_s = fkv::seconds_since(t0);
  r.decode_tokens = a.n_generated;
  r.decode_tok_s = a.decode_tokens_per_s;
  r.stats = engine->stats();
  return r;
}

void print_document_report(const DocumentBenchOptions& o, const DocumentBenchReport& r, bool json) {
  const double open_s = r.doc.kv_source == fkv::KvSource::prefill ? r.doc.prefill_s : r.doc.load_s;
  if (!json) {
    std::printf("document    %d tokens, KV from %s in %.2f s%s\n", r.doc.n_tokens, fkv::kv_source_name(r.doc.kv_source),
                open_s, r.stats.context_memory ? " (context memory past the trained window)" : "");
    std::printf("answer      first token after %.2f s; %d steps at %.2f tok/s (%s)\n", r.first_token_s, r.decode_tokens,
                r.decode_tok_s, fkv::policy_name(r.stats.policy));
    return;
  }
  JsonWriter j;
  j.begin_object().key("model_path").value(o.model_path).key("document").value(o.document);
  j.key("document_tokens").value(r.doc.n_tokens).key("kv_source").value(fkv::kv_source_name(r.doc.kv_source));
  j.key("open_s").value(open_s).key("n_ctx").value(r.stats.n_ctx).key("context_memory").value(r.stats.context_memory);
  j.key("threads").value(o.model.n_threads).key("first_token_s").value(r.first_token_s);
  j.key("decode_tokens").value(r.decode_tokens).key("decode_tokens_per_s").value(r.decode_tok_s);
  j.key("decode_ms_per_token").value(r.decode_tok_s > 0 ? 1e3 / r.decode_tok_s : 0.0);
  j.key("policy").value(fkv::policy_name(r.stats.policy));
  j.key("kv_file_read_bytes").value(r.stats.kv_file_read_bytes);
  write_retrieval_json(j, r.stats.retrieval, r.decode_tokens);
  j.end_object();
  std::printf("%s\n", j.str().c_str());
}

void print_reopen_report(const ReopenReport& r, bool json) {
  const double bytes_per_token = r.n_tokens > 0 ? static_cast<double>(r.snapshot_bytes) / r.n_tokens : 0;
  const double load_gb_s = r.load_s > 0 ? static_cast<double>(r.snapshot_bytes) / r.load_s / 1e9 : 0;
  const double ratio = r.first_token_prefill_s > 0 ? r.first_token_reopen_s / r.first_token_prefill_s : 0;
  if (!json) {
    std::printf("document    %d tokens (with the prompt head)\n", r.n_tokens);
    std::printf("prefill     %.2f s, save %.2f s; first answer token after %.2f s\n", r.prefill_s, r.save_s,
                r.first_token_prefill_s);
    std::printf("reopen      load %.3f s (%.2f GB/s); first answer token after %.3f s (%.4f of the prefill path)\n",
                r.load_s, load_gb_s, r.first_token_reopen_s, ratio);
    std::printf("page file   %s, %.0f bytes/token\n", format_bytes(r.snapshot_bytes).c_str(), bytes_per_token);
    std::printf("answer      %d tokens: %.1f tok/s after the prefill, %.1f after the reopen (%s of the file read)\n",
                r.answer_tokens, r.decode_tok_s_prefill, r.decode_tok_s_reopen,
                format_bytes(r.reopen_file_read_bytes).c_str());
    if (r.host_kv_mib > 0) {
      std::printf("capped      at %d MiB: first answer token after %.3f s, %.1f tok/s, %s read, %s resident at the "
                  "end; %s answer\n",
                  r.host_kv_mib, r.capped_first_token_s, r.capped_decode_tok_s,
                  format_bytes(r.capped_file_read_bytes).c_str(), format_bytes(r.capped_resident_bytes).c_str(),
                  r.capped_same_answer ? "the same" : "a DIFFERENT");
      std::printf("disk wait   %.3f s in all, %.3f ms per answer token\n", r.capped_file_wait_s,
                  r.answer_tokens > 0 ? 1e3 * r.capped_step_file_wait_s / r.answer_tokens : 0.0);
    }
    return;
  }
  JsonWriter j;
  j.begin_object().key("document_tokens").value(r.n_tokens);
  j.key("prefill_s").value(r.prefill_s).key("save_s").value(r.save_s);
  j.key("first_token_after_prefill_s").value(r.first_token_prefill_s);
  j.key("load_s").value(r.load_s).key("first_token_after_reopen_s").value(r.first_token_reopen_s);
  j.key("reopen_over_prefill").value(ratio).key("snapshot_bytes").value(r.snapshot_bytes);
  j.key("bytes_per_token").value(bytes_per_token).key("load_gb_per_s").value(load_gb_s);
  j.key("answer_tokens").value(r.answer_tokens).key("decode_tok_s_after_prefill").value(r.decode_tok_s_prefill);
  j.key("decode_tok_s_after_reopen").value(r.decode_tok_s_reopen);
  j.key("reopen_file_read_bytes").value(r.reopen_file_read_bytes).key("reopen_major_faults").value(r.reopen_major_faults);
  if (r.host_kv_mib > 0) {
    j.key("capped").begin_object().key("host_kv_mib").value(r.host_kv_mib);
    j.key("first_token_s").value(r.capped_first_token_s).key("decode_tok_s").value(r.capped_decode_tok_s);
    j.key("file_read_bytes").value(r.capped_file_read_bytes).key("resident_bytes").value(r.capped_resident_bytes);
    j.key("major_faults").value(r.capped_major_faults);
    j.key("file_read_bytes_per_answer_token")
        .value(r.answer_tokens > 0 ? static_cast<double>(r.capped_file_read_bytes) / r.answer_tokens : 0.0);
    j.key("file_wait_s").value(r.capped_file_wait_s);
    j.key("file_wait_ms_per_answer_token")
        .value(r.answer_tokens > 0 ? 1e3 * r.capped_step_file_wait_s / r.answer_tokens : 0.0);
    j.key("same_answer").value(r.capped_same_answer).end_object();
  }
  j.end_object();
  std::printf("%s\n", j.str().c_str());
}

}  // namespace freekv
