// Plain value types of the public engine API (fkv/engine.h). No engine internals: the desktop app and the CLI see
// only these.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace fkv {

struct EngineOptions {
  // Which CPU kernels to run: "auto" (the best this CPU supports), "avx2" (an error on a CPU without AVX2/FMA/F16C)
  // or "scalar" (the plain reference kernels). It is a process-wide setting: the last Engine created decides.
  std::string isa = "auto";
};

struct ModelOptions {
  int n_ctx = 4096;             // tokens the context holds; more than the model's training context is allowed
  int n_threads = 0;            // compute threads; 0: the machine's hardware threads
  int page_size = 32;           // tokens per KV page
  std::string kv_type = "f16";  // KV cache element type: "f16", "bf16" or "f32"
  std::string chat_template;    // "" detects it from the file; else "llama2", "llama3", "mistral", "chatml", "gemma"
};

struct ModelInfo {
  bool loaded = false;
  std::string path;
  std::string name;          // general.name
  std::string architecture;  // "llama", "qwen2", "gemma3"
  int n_layers = 0;
  int n_embd = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int n_ff = 0;
  int n_vocab = 0;
  int n_ctx_train = 0;
  int n_ctx = 0;                    // the context this load uses
  std::string chat_template;        // the family in use, or "unknown"
  uint64_t file_bytes = 0;          // size of the GGUF
  uint64_t weight_bytes = 0;        // weights read per decoded token
  uint64_t kv_bytes_per_token = 0;  // K and V of every layer, in the KV type of this load
};

struct Message {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

struct GenerationOptions {
  int max_tokens = 256;
  float temperature = 0.8f;     // 0: greedy
  int top_k = 40;               // 0: off
  float top_p = 0.95f;          // 1: off
  float min_p = 0.05f;          // 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int repeat_last_n = 64;
  uint64_t seed = 0;
  std::vector<std::string> stop;  // stop strings (not included in the text)
  // generate(): true feeds the prompt as is (special-token text such as "<start_of_turn>" is parsed), false wraps it
  // as one user turn of the model's chat template.
  bool raw = false;
  std::string system_prompt;  // generate() without raw: an optional system turn before the user turn
};

struct GenerateResult {
  std::string text;
  int n_prompt_tokens = 0;  // the whole prompt, in tokens
  int n_cached_tokens = 0;  // of those, already in the context from the previous call (not evaluated again)
  int n_generated = 0;      // sampled tokens, the end-of-generation token included
  double prefill_s = 0;
  double decode_s = 0;
  double prefill_tokens_per_s = 0;  // evaluated prompt tokens / prefill_s
  double decode_tokens_per_s = 0;   // n_generated / decode_s
  std::string stop_reason;          // "eos" | "max_tokens" | "cancelled" | "stop_string" | "context_full"
};

// Receives the answer as it is generated, in pieces of whole UTF-8 characters; returning false cancels.
using TextCallback = std::function<bool(std::string_view piece)>;

}  // namespace fkv
