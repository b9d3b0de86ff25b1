// The run state of one sequence: the paged KV cache, scratch buffers sized up front, and the position.
// eval() runs prefill in chunks (batched matrix products) and single tokens as decode (matrix-vector products).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include <string>

#include "core/dtype.h"
#include "fkv/events.h"
#include "fkv/status.h"
#include "kv/budget.h"
#include "model/model.h"
#include "runtime/backend_info.h"
#include "store/page_file.h"

namespace fkv {

struct SnapshotMeta;
class KvCache;

// The retrieval prefill's budget: a sink that holds a chat template's head, a local window of 2,048 tokens before
// each chunk (the context adds the chunk itself), and 2,048 retrieved tokens: InfLLM's 128 + 4,096 + 2,048 with a
// smaller window, so that a 2-core machine gains from about 8k tokens on.
inline Budget default_prefill_budget() {
  Budget b;
  b.sink_tokens = 128;
  b.recent_tokens = 2048;
  b.retrieved_tokens = 2048;
  return b;
}

struct ContextParams {
  int n_ctx = 4096;       // tokens the cache holds
  int page_size = 32;     // tokens per KV page
  int n_batch = 128;      // prefill chunk: tokens per forward pass
  int n_threads = 0;      // 0: the machine's hardware threads
  DType kv_type = DType::F16;  // F16 (default), BF16 or F32 (exactness tests)

  Policy policy = Policy::full;  // decode-time attention
  // Prompt evaluation: dense (exact) or retrieval: each chunk of a global layer attends the prefill budget's sink,
  // its local window (recent_tokens before the chunk, then the chunk) and the top pages for the chunk's mean query.
  // Sliding-window layers stay exact (their window is the budget). automatic: dense while a chunk ends within the
  // first auto_dense_tokens of the context, retrieval past that.
  Prefill prefill = Prefill::dense;
  int auto_dense_tokens = kAutoDenseTokens;
  Budget prefill_budget = default_prefill_budget();
  // Context memory, for contexts past the model's trained window (kv/virtual_layout.h): every global-layer attention
  // (prefill chunk and decode step) attends sinks + retrieved pages + local window laid side by side, so the distances
  // it sees stay within the budget; pages are scored as if each sat the local window's length before the query, so
  // the page summaries (and those a KV snapshot holds) are of keys rotated back to their page's start. Prompts take
  // the retrieval prefill; the decode policy must select (not full). Off, the context is exact as before.
  bool context_memory = false;
  Budget budget;                  // sink + recent + retrieved tokens; page_size above wins over budget.page_size
  float correction_tau = 0.9f;    // freekv: KV heads whose group-mean query cosine is below this are corrected
  // freekv: where the speculative selection and recall for the next step run. Same selections and logits. With every
  // core computing, a background thread only takes turns with the compute threads: over a book on 2 cores inline
  // decodes faster, at 4k the two are level (docs/benchmarks.md). Context::speculation() says what automatic chose.
  Speculation speculation = Speculation::automatic;
  TelemetryObserver* observer = nullptr;  // per step and layer events; null costs nothing
  // Pages read in place from a KV page file (map_kv) that may stay resident; the least recently used beyond it go
  // back to the file after each layer. 0: no cap.
  uint64_t host_kv_cap_bytes = 0;
  // See runtime/backend_info.h choose_backend. On CUDA the context runs the dense forward pass with its KV cache on
  // the device: policy full only, no KV snapshots, no telemetry.
  Backend backend = Backend::cpu;
  int device = 0;  // CUDA device index
  Status validate() const;
};

enum class LogitsMode { Last, All };

class Context {
 public:
  ~Context();
  static Result<std::unique_ptr<Context>> create(const Model& model, const ContextParams& params);

  // Appends `tokens` at position n_past(). LogitsMode::Last writes (n_vocab) floats for the last token; All writes
  // (tokens.size(), n_vocab). `logits` must be large enough. Errors: context overflow, token id out of range; on error the
  // cache is left as before the call.
  Status eval(std::span<const int32_t> tokens, LogitsMode mode, std::span<float> logits);

  int n_past() const;
  int n_ctx() const;
  void reset();  // forget all tokens
  // Forgets the tokens after the first `n_tokens` (0..n_past()): the prefix's cache stays, the policy and the stats
  // restart. With set_policy(), one prefill serves several policies decoding after it in turn.
  Status truncate(int n_tokens);
  const RetrievalStats& stats() const;  // totals over decode steps since create()/reset()/set_policy()
  // Switches the decode-time policy (and its budget and tau) keeping the cached tokens, so several policies can be
  // compared on one prefilled context. On error the current policy stays.
  Status set_policy(Policy policy, const Budget& budget, float correction_tau);
  void set_observer(TelemetryObserver* observer);

  // Persistence (store/kv_snapshot.h). save_kv writes the cached pages [first_page, ...) with their summaries;
  // first_page > 0 makes an extension of the snapshot meta.base_fingerprint. load_kv takes a snapshot's tokens
  // into the context: a whole snapshot replaces what is cached, an extension goes on top of its loaded base. The
  // policy and stats restart; on error the context is empty.
  Status save_kv(const std::string& path, const SnapshotMeta& meta, int first_page,
                 const ByteProgress& progress = {}) const;
  Status load_kv(const PageFileReader& file, const SnapshotMeta& meta);
  // As load_kv, but the pages stay in the file and are read in place (store/kv_snapshot.h map_kv_snapshot); with
  // ContextParams::host_kv_cap_bytes, at most that many of them stay resident.
  Status map_kv(std::shared_ptr<const PageFileReader> file, const SnapshotMeta& meta);
  // The disk tier: bytes of file pages resident now, and read in so far.
  uint64_t mapped_resident_bytes() const;
  uint64_t paged_in_bytes() const;
  double file_wait_s() const;  // KvCache::file_wait_s
  const KvCache& kv_cache() const;  // the host tier (read only: for inspection)
  uint64_t mapped_bytes() const;  // of file pages in the context, resident or not
  // The first page read in place that failed its check (eval then fails); empty while none has.
  std::string kv_damage() const;
  const Model& model() const;
  const ContextParams& params() const;
  // Prompts of up to this many tokens (from an empty context) are evaluated exactly as dense: all of them with
  // dense prefill, those within the retrieval budget (or auto's dense part) otherwise; 0 under context memory.
  int64_t exact_prefill_tokens() const;
  // Where this context runs, and for "auto" that ended on the CPU, why.
  const BackendChoice& backend() const;
  Speculation speculation() const;  // where freekv's speculation runs in this context (never automatic)

 private:
  Context() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fkv
