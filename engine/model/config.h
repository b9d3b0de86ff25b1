// The blueprint of a model: architecture and dimensions read from GGUF metadata, validated.
// Separate from the weights (model/model.h) and from the run state (runtime/context.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "fkv/options.h"
#include "fkv/status.h"

namespace fkv {

enum class Arch { Llama, Qwen2, Gemma3 };
const char* arch_name(Arch a);

// How RoPE pairs channels: Norm rotates (x[2i], x[2i+1]) (llama GGUFs, whose Q/K rows were permuted at conversion);
// Neox rotates (x[i], x[i + head_dim/2]) (qwen2, gemma3).
enum class RopeStyle { Norm, Neox };

// Linear divides every frequency by the factor; Llama3 and Yarn leave high frequencies alone and divide low ones,
// blending in between (runtime/rope.cpp); Yarn also scales the rotation's magnitude.
enum class RopeScaling { None, Linear, Llama3, Yarn };

enum class Activation { Silu, GeluTanh };

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string name;  // general.name, or the architecture when absent
  int n_layers = 0;
  int n_embd = 0;      // residual width
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // key/value heads (GQA groups)
  int head_dim = 0;    // key and value head width
  int n_ff = 0;        // feed-forward hidden width
  int n_vocab = 0;
  int n_ctx_train = 0;
  float norm_eps = 1e-5f;
  float attn_scale = 0.f;  // softmax scale, 1/sqrt(head_dim) unless the architecture says otherwise

  // RoPE
  RopeStyle rope_style = RopeStyle::Norm;
  float rope_base = 10000.f;        // global layers
  float rope_base_local = 10000.f;  // sliding-window layers (gemma3)
  RopeScaling rope_scaling = RopeScaling::None;
  float rope_factor = 1.f;              // linear / llama3 / yarn factor
  float rope_low_freq_factor = 1.f;     // llama3
  float rope_high_freq_factor = 4.f;    // llama3
  int rope_orig_ctx = 8192;             // llama3 / yarn: the context the model was trained at before scaling
  float rope_yarn_beta_fast = 32.f;     // yarn: pairs turning at least this often over rope_orig_ctx keep their speed
  float rope_yarn_beta_slow = 1.f;      // yarn: pairs turning at most this often are fully interpolated
  float rope_attn_factor = 1.f;         // yarn: multiplies the attention magnitude correction
  bool has_rope_freqs_tensor = false;   // rope_freqs.weight holds per-pair divisors (llama3 GGUFs)

  // Architecture switches
  bool qkv_bias = false;     // qwen2
  bool qk_norm = false;      // gemma3: RMSNorm of q and k per head
  bool post_norms = false;   // gemma3: norms after attention and after the FFN, before the residual add
  float embd_scale = 1.f;    // gemma3: sqrt(n_embd)
  Activation act = Activation::Silu;
  bool tied_output = false;  // output projection is the token embedding

  int sliding_window = 0;          // tokens a local layer sees (0: none)
  std::vector<uint8_t> layer_local;  // (n_layers) 1 when the layer uses the sliding window and rope_base_local

  int n_embd_q() const { return n_heads * head_dim; }
  int n_embd_kv() const { return n_kv_heads * head_dim; }
  int group_size() const { return n_heads / n_kv_heads; }

  // Reads and validates `{arch}.*` metadata. Unknown architecture: "unsupported architecture 'phi3' (supported: ...)".
  static Result<ModelConfig> from_gguf(const GgufFile& f);
  // Checks ranges and consistency (used by from_gguf and by writers of synthetic models).
  Status validate() const;
  // Replaces the file's RoPE scaling (fkv/options.h RopeOverride), sets n_ctx_train to the scaled window and
  // validates. Errors name the option that is missing or out of range.
  Status apply_rope_override(const RopeOverride& o);
};

}  // namespace fkv
