// Retrieval budget options and retrieval telemetry reports, shared by `freekv bench` and `freekv eval`.
#include <cmath>
#include <cstdio>
#include <limits>

#include "cli.h"
#include "runtime/context.h"

namespace freekv {

namespace {

constexpr OptionSpec kBudgetOptions[] = {
    // constexpr: constant-initialized before the commands copy it
    kBudgetTokenOptions[0],
    kBudgetTokenOptions[1],
    kBudgetTokenOptions[2],
    {"--page-size", "", "N", "tokens per KV page (default 32)"},
    {"--tau", "", "T", "freekv correction threshold on the query cosine, -1..1 (default 0.9)"},
    {"--speculation", "", "MODE",
     "where freekv's speculative selection and recall run: background (a thread), inline (on the compute threads) "
     "or auto (inline when the compute threads take every core; default)"},
    kPrefillOption,
};

double per_token(double total, int64_t n_tokens) { return n_tokens > 0 ? total / static_cast<double>(n_tokens) : 0.0; }

}  // namespace

std::span<const OptionSpec> budget_options() { return kBudgetOptions; }

fkv::Status read_budget_tokens(const ParsedArgs& a, int& sink_tokens, int& recent_tokens, int& retrieved_tokens) {
  constexpr int kMax = 1 << 24;
  FKV_ASSIGN_OR_RETURN(sink_tokens, int_option(a, "--budget-sink", sink_tokens, 0, kMax));
  FKV_ASSIGN_OR_RETURN(recent_tokens, int_option(a, "--budget-recent", recent_tokens, 0, kMax));
  FKV_ASSIGN_OR_RETURN(retrieved_tokens, int_option(a, "--budget-retrieved", retrieved_tokens, 0, kMax));
  return {};
}

fkv::Status read_budget_options(const ParsedArgs& a, fkv::ContextParams& cp) {
  const fkv::Budget defaults;
  FKV_ASSIGN_OR_RETURN(cp.page_size, int_option(a, "--page-size", defaults.page_size, 1, 4096));
  cp.budget.sink_tokens = defaults.sink_tokens;
  cp.budget.recent_tokens = defaults.recent_tokens;
  cp.budget.retrieved_tokens = defaults.retrieved_tokens;
  FKV_TRY(read_budget_tokens(a, cp.budget.sink_tokens, cp.budget.recent_tokens, cp.budget.retrieved_tokens));
  FKV_ASSIGN_OR_RETURN(cp.correction_tau,
                       float_option(a, "--tau", 0.9f, fkv::kMinCorrectionTau, fkv::kMaxCorrectionTau));
  FKV_ASSIGN_OR_RETURN(cp.speculation,
                       named_option(a, "--speculation", fkv::Speculation::automatic, fkv::parse_speculation));
  FKV_ASSIGN_OR_RETURN(cp.prefill, named_option(a, "--prefill", fkv::Prefill::dense, fkv::parse_prefill));
  cp.budget.page_size = cp.page_size;  // one page size for the cache and the budget
  FKV_TRY(cp.budget.validate());
  return cp.validate();
}

std::string budget_summary(const fkv::ContextParams& cp) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%d sink + %d recent + %d retrieved tokens, page %d, tau %.2f, %s prefill",
                cp.budget.sink_tokens, cp.budget.recent_tokens, cp.budget.retrieved_tokens, cp.page_size,
                static_cast<double>(cp.correction_tau), fkv::prefill_name(cp.prefill));
  return buf;
}

void write_budget_json(JsonWriter& j, const fkv::ContextParams& cp) {
  j.key("budget").begin_object();
  j.key("sink_tokens").value(cp.budget.sink_tokens).key("recent_tokens").value(cp.budget.recent_tokens);
  j.key("retrieved_tokens").value(cp.budget.retrieved_tokens).key("total_tokens").value(cp.budget.total_tokens());
  j.key("page_size").value(cp.page_size).key("tau").value(static_cast<double>(cp.correction_tau));
  j.end_object();
  j.key("prefill").value(fkv::prefill_name(cp.prefill));
}

void add_retrieval_stats(fkv::RetrievalStats& to, const fkv::RetrievalStats& s) {
  to.layer_steps += s.layer_steps;
  to += s;
}

double correction_rate(const fkv::RetrievalStats& s) {
  if (s.heads_checked == 0) return std::numeric_limits<double>::quiet_NaN();
  return static_cast<double>(s.heads_corrected) / static_cast<double>(s.heads_checked);
}

std::string retrieval_summary(const fkv::RetrievalStats& s, int64_t n_tokens) {
  char buf[320];
  const double rate = correction_rate(s);
  char corr[64] = "no heads checked";
  if (!std::isnan(rate)) {
    std::snprintf(corr, sizeof corr, "%.1f%% of %lld heads corrected", 100.0 * rate,
                  static_cast<long long>(s.heads_checked));
  }
  std::snprintf(buf, sizeof buf,
                "per token: select %.3f ms, recall %.3f ms, wait %.3f ms; pages selected %.1f, recalled %.1f, "
                "reused %.1f; %s",
                1e3 * per_token(s.select_s, n_tokens), 1e3 * per_token(s.recall_s, n_tokens),
                1e3 * per_token(s.wait_s, n_tokens), per_token(static_cast<double>(s.pages_selected), n_tokens),
                per_token(static_cast<double>(s.pages_recalled), n_tokens),
                per_token(static_cast<double>(s.pages_reused), n_tokens), corr);
  return buf;
}

void write_retrieval_json(JsonWriter& j, const fkv::RetrievalStats& s, int64_t n_tokens) {
  j.key("select_ms_per_token").value(1e3 * per_token(s.select_s, n_tokens));
  j.key("recall_ms_per_token").value(1e3 * per_token(s.recall_s, n_tokens));
  j.key("wait_ms_per_token").value(1e3 * per_token(s.wait_s, n_tokens));
  j.key("pages_selected_per_token").value(per_token(static_cast<double>(s.pages_selected), n_tokens));
  j.key("pages_recalled_per_token").value(per_token(static_cast<double>(s.pages_recalled), n_tokens));
  j.key("pages_reused_per_token").value(per_token(static_cast<double>(s.pages_reused), n_tokens));
  j.key("bytes_recalled_per_token").value(per_token(static_cast<double>(s.bytes_recalled), n_tokens));
  j.key("bytes_from_file_per_token").value(per_token(static_cast<double>(s.bytes_from_file), n_tokens));
  j.key("file_wait_ms_per_token").value(1e3 * per_token(s.file_wait_s, n_tokens));
  j.key("heads_checked").value(s.heads_checked).key("heads_corrected").value(s.heads_corrected);
  j.key("correction_rate").value(correction_rate(s));
}

}  // namespace freekv
