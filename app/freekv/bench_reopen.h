// freekv bench --reopen-tokens: prefill-and-save against reopen-from-snapshot (bench_reopen.cpp).
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
};

struct ReopenReport {
  int n_tokens = 0;
  double prefill_s = 0, save_s = 0, first_token_prefill_s = 0;
  double load_s = 0, first_token_reopen_s = 0;
  uint64_t snapshot_bytes = 0;
};

// `dir`: an empty scratch folder for the document and the library.
fkv::Result<ReopenReport> run_reopen_benchmark(const ReopenOptions& o, const std::string& dir);
void print_reopen_report(const ReopenReport& r, bool json);

}  // namespace freekv
