// The engine's named settings as types. Each has one name function (for messages, JSON and settings files) and one
// parser (for command lines and saved settings), so a name is spelled and checked in exactly one place.
#pragma once

#include <string_view>

#include "fkv/status.h"

namespace fkv {

// Decode-time attention over the KV cache (the prefill follows Prefill below). full: every page; streaming: sinks and the
// recent window only; quest and arkvale: plus the pages whose summaries score highest for this step's query
// (arkvale recalls them from host memory); freekv: arkvale's selection made speculatively with the previous step's
// query, corrected synchronously for heads whose query moved (FREEKV.md).
enum class Policy { full, streaming, quest, arkvale, freekv };
// Where the forward pass runs. automatic: CUDA when this build, the machine and the policy allow it, else the CPU.
enum class Backend { cpu, cuda, automatic };
// freekv: where the speculative selection and recall for the next step run: on a thread of its own (FreeKV's
// design) or on the decode thread right after each layer, its page scoring then split over the compute threads. Same
// selections and logits either way. automatic: inline when the compute threads take every hardware thread (no core is
// free for the background thread), background otherwise.
enum class Speculation { background, inline_, automatic };
// How a prompt is evaluated. dense: every token attends every earlier token (exact; cost grows with the square of
// the length). retrieval: each chunk of the prompt attends the sink, a local window before it and the pages whose
// summaries score highest for the chunk's mean query (LONGDOCS.md), so the cost grows linearly with the length; a
// prompt that fits that budget is evaluated exactly as dense. automatic ("auto"): dense for the chunks within the
// first kAutoDenseTokens of the context, retrieval past them (docs/benchmarks.md: below about 8k tokens retrieval
// saves little time, past it dense grows with the square of the length).
enum class Prefill { dense, retrieval, automatic };
inline constexpr int kAutoDenseTokens = 8192;
// Element type of the KV cache.
enum class KvType { f16, bf16, f32 };
// RoPE scaling to use instead of the file's (RopeOverride): file keeps what the GGUF says.
enum class RopeScalingMode { file, none, linear, yarn };
// Why a generation stopped: the end-of-generation token, the token limit, a cancel, a stop string, a full context.
enum class StopReason { eos, max_tokens, cancelled, stop_string, context_full };
// Where an opened document's KV came from: computed now, or loaded from its saved page file.
enum class KvSource { prefill, snapshot };
// What long work is doing, in Progress reports: reading the file (a PDF's pages), tokenizing, loading a saved KV
// (bytes), the prefill (tokens), saving the KV (bytes), evaluating a question (tokens).
enum class Stage { ingest, tokenize, load, prefill, save, prompt };

const char* policy_name(Policy p);  // "full", "streaming", "quest", "arkvale", "freekv"
const char* backend_name(Backend b);  // "cpu", "cuda", "auto"
const char* speculation_name(Speculation s);  // "background", "inline", "auto"
const char* prefill_name(Prefill p);          // "dense", "retrieval", "auto"
const char* kv_type_name(KvType t);  // "f16", "bf16", "f32"
const char* rope_scaling_name(RopeScalingMode m);  // "file", "none", "linear", "yarn"
const char* stop_reason_name(StopReason r);  // "eos", "max_tokens", "cancelled", "stop_string", "context_full"
const char* kv_source_name(KvSource s);      // "prefill", "snapshot"
const char* stage_name(Stage s);             // "ingest", "tokenize", "load", "prefill", "save", "prompt"

// Errors name what was given and list the accepted names.
Result<Policy> parse_policy(std::string_view name);
Result<Backend> parse_backend(std::string_view name);
Result<Speculation> parse_speculation(std::string_view name);
Result<Prefill> parse_prefill(std::string_view name);
Result<KvType> parse_kv_type(std::string_view name);
Result<RopeScalingMode> parse_rope_scaling(std::string_view name);
Result<StopReason> parse_stop_reason(std::string_view name);
Result<KvSource> parse_kv_source(std::string_view name);
Result<Stage> parse_stage(std::string_view name);

// RoPE scaling over the file's, as llama.cpp's --rope-scaling, --rope-scale and --yarn-orig-ctx set it: for example
// YaRN x4 over 32,768 tokens for Qwen2.5 (131,072), which its model cards publish but its GGUF files do not carry.
// The model's trained window becomes orig_ctx x scale (the window context memory starts past).
struct RopeOverride {
  RopeScalingMode scaling = RopeScalingMode::file;
  float scale = 0.f;  // linear / yarn factor, >= 1; 0: the file's (yarn and linear files carry one)
  int orig_ctx = 0;   // yarn: the context trained before scaling; 0: the file's, else its training context
  bool active() const { return scaling != RopeScalingMode::file; }
};

// freekv's correction threshold on the query cosine, the one range every caller checks against: heads whose cosine
// falls below it are re-selected; -1 never corrects, 1 corrects every head whose query moved at all.
inline constexpr float kMinCorrectionTau = -1.f, kMaxCorrectionTau = 1.f;

}  // namespace fkv
