// freekv bench --reopen-tokens N: what persisting a document's KV saves. A generated document of about N tokens is
// opened in a fresh library (prefill + save), then in a second engine (load from the page file, no prefill); both
// times one question is asked and the time to its first answer token is measured.
#include "bench_reopen.h"

#include <cstdio>
#include <fstream>

#include "core/clock.h"
#include "eval/eval_tasks.h"
#include "fkv/engine.h"
#include "model/model.h"

namespace freekv {

namespace {


// One open + one question: the document's OpenedDocument and the seconds to the first answer piece.
fkv::Result<std::pair<fkv::OpenedDocument, double>> open_and_ask(const ReopenOptions& o, const std::string& library,
                                                                const std::string& doc) {
  fkv::EngineOptions eo;
  eo.library_path = library;
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<fkv::Engine> engine, fkv::Engine::create(eo));
  FKV_TRY(engine->load_model(o.model_path, o.model));
  const fkv::Clock::time_point t0 = fkv::Clock::now();
  FKV_ASSIGN_OR_RETURN(fkv::OpenedDocument d, engine->open_document(doc, fkv::DocumentOptions{}, nullptr));
  fkv::GenerationOptions g;
  g.temperature = 0;
  g.max_tokens = 1;
  double first = 0;
  const auto on_text = [&](std::string_view) {
    if (first == 0) first = fkv::seconds_since(t0);
    return true;
  };
  FKV_TRY(engine->ask({{"user", "Which city is named in the report?"}}, g, on_text).status());
  if (first == 0) first = fkv::seconds_since(t0);  // the one token was a control token (no text)
  return std::make_pair(d, first);
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

  FKV_ASSIGN_OR_RETURN(const auto cold, open_and_ask(o, library, doc));
  if (cold.first.kv_source != fkv::KvSource::prefill)
    return fkv::err("the first open did not prefill (", fkv::kv_source_name(cold.first.kv_source), ")");
  if (!cold.first.save_error.empty()) return fkv::err("the snapshot was not saved: ", cold.first.save_error);
  FKV_ASSIGN_OR_RETURN(const auto warm, open_and_ask(o, library, doc));
  if (warm.first.kv_source != fkv::KvSource::snapshot)
    return fkv::err("the second open did not load the snapshot: ", warm.first.recompute_reason);
  ReopenReport r;
  r.n_tokens = cold.first.n_tokens;
  r.prefill_s = cold.first.prefill_s;
  r.save_s = cold.first.save_s;
  r.first_token_prefill_s = cold.second;
  r.load_s = warm.first.load_s;
  r.first_token_reopen_s = warm.second;
  r.snapshot_bytes = warm.first.snapshot_bytes;
  return r;
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
    return;
  }
  JsonWriter j;
  j.begin_object().key("document_tokens").value(r.n_tokens);
  j.key("prefill_s").value(r.prefill_s).key("save_s").value(r.save_s);
  j.key("first_token_after_prefill_s").value(r.first_token_prefill_s);
  j.key("load_s").value(r.load_s).key("first_token_after_reopen_s").value(r.first_token_reopen_s);
  j.key("reopen_over_prefill").value(ratio).key("snapshot_bytes").value(r.snapshot_bytes);
  j.key("bytes_per_token").value(bytes_per_token).key("load_gb_per_s").value(load_gb_s);
  j.end_object();
  std::printf("%s\n", j.str().c_str());
}

}  // namespace freekv
