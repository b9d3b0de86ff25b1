// freekv bench --reopen-tokens: prefill-and-save against reopen-from-snapshot; freekv bench --document: decode
// speed over a document of any length, its saved KV reused (bench_reopen.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "cli.h"
#include "fkv/types.h"

namespace freekv {

struct ReopenOptions {
  std::string model_path;
  fkv::ModelOptions model;  // context, threads, KV type
  int n_tokens = 16384;     // document size
  uint64_t seed = 1;
  int answer_tokens = 32;   // each open's answer: its decode speed is measured
  int host_kv_mib = 0;      // > 0: a third open reads the saved KV with at most this much of it resident
};

struct ReopenReport {
  int n_tokens = 0;
  double prefill_s = 0, save_s = 0, first_token_prefill_s = 0;
  double load_s = 0, first_token_reopen_s = 0;
  uint64_t snapshot_bytes = 0;
  double decode_tok_s_prefill = 0, decode_tok_s_reopen = 0;  // the answer after each open
  int answer_tokens = 0;
  uint64_t reopen_file_read_bytes = 0;  // the saved KV read in place during the reopen's answer
  // Page faults that waited for the disk (getrusage) during each reopen: 0 when the page cache held the file.
  long reopen_major_faults = 0, capped_major_faults = 0;
  // The capped reopen (host_kv_mib > 0).
  int host_kv_mib = 0;
  double capped_first_token_s = 0, capped_decode_tok_s = 0;
  uint64_t capped_file_read_bytes = 0, capped_resident_bytes = 0;
  double capped_file_wait_s = 0;       // decode threads waiting for page-file reads, question and answer
  double capped_step_file_wait_s = 0;  // of that, in the answer's decode steps
  bool capped_same_answer = false;  // token for token the uncapped reopen's answer
};

// `dir`: an empty scratch folder for the document and the library.
fkv::Result<ReopenReport> run_reopen_benchmark(const ReopenOptions& o, const std::string& dir);
void print_reopen_report(const ReopenReport& r, bool json);

struct DocumentBenchOptions {
  std::string model_path;
  fkv::ModelOptions model;  // threads, KV type, retrieval; the context fits the document (n_ctx 0)
  std::string document;     // the file, opened as `freekv ask --doc` would
  std::string library;      // its library (a saved KV there is reused: no prefill)
  int decode_tokens = 64;   // answer steps timed, whatever the model answers (past the end of its turn)
};

struct DocumentBenchReport {
  fkv::OpenedDocument doc;
  double first_token_s = 0;  // from the open's start to the first answer token
  int decode_tokens = 0;
  double decode_tok_s = 0;
  fkv::EngineStats stats;  // after the answer
};

fkv::Result<DocumentBenchReport> run_document_benchmark(const DocumentBenchOptions& o);
void print_document_report(const DocumentBenchOptions& o, const DocumentBenchReport& r, bool json);

}  // namespace freekv
