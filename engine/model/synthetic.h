// Writes small models with seeded random weights as GGUF files, named the way llama.cpp names real models, so the
// engine's loaders read them like downloaded ones. Tests compare the engine against a reference on these files;
// benchmarks use them where no real model is installed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "fkv/status.h"
#include "model/config.h"

namespace fkv {

struct SyntheticModelSpec {
  Arch arch = Arch::Llama;
  int n_layers = 2;
  int n_embd = 64;
  int n_heads = 4;
  int n_kv_heads = 2;
  int head_dim = 0;  // 0: n_embd / n_heads
  int n_ff = 128;
  int n_ctx = 4096;  // written as {arch}.context_length
  DType weight_type = DType::F32;  // matrices and the token embedding; norms and biases are always F32
  uint64_t seed = 1;
  float rope_base = 10000.f;  // {arch}.rope.freq_base (gemma3: the global layers' base; local layers use 10000)
  // Writes llama3 rope scaling metadata (factor 8, low 1, high 4, original context 64 so it matters in short tests)
  // and the rope_freqs.weight tensor of per-pair divisors computed from them.
  bool llama3_rope = false;
  // Writes YaRN rope scaling metadata (factor 4, original context 64 so it matters in short tests, and the optional
  // yarn_beta_fast / yarn_beta_slow / attn_factor keys at their usual values), as llama.cpp writes Qwen's.
  bool yarn_rope = false;
  int sliding_window = 0;  // gemma3: tokens a local layer sees (0: every layer is global)
  bool tied_embeddings = false;  // no output.weight: the output projection is token_embd
  // A GGUF holding tokenizer.ggml.* arrays (e.g. ../shared/vocab/llama-spm.gguf); n_vocab is its token count.
  std::string vocab_path;
  std::string name = "synthetic";  // general.name
};

// The llama3 rope scaling parameters write_synthetic_model uses (exposed so tests can check the written metadata).
struct SyntheticLlama3Rope {
  static constexpr float factor = 8.f;
  static constexpr float low_freq_factor = 1.f;
  static constexpr float high_freq_factor = 4.f;
  static constexpr int original_context = 64;
};

// The YaRN parameters write_synthetic_model uses.
struct SyntheticYarnRope {
  static constexpr float factor = 4.f;
  static constexpr int original_context = 64;
  static constexpr float beta_fast = 32.f;
  static constexpr float beta_slow = 1.f;
  static constexpr float attn_factor = 1.f;
};

// Per-pair frequency divisors of llama3 rope scaling for head_dim / 2 pairs (what rope_freqs.weight holds):
// 1 for short wavelengths, `factor` for long ones, a smooth blend in between.
std::vector<float> llama3_rope_divisors(int head_dim, float base, float factor, float low_freq_factor,
                                        float high_freq_factor, int original_context);

// Checks the spec without touching any file: positive dimensions, heads divisible into groups, even head_dim, a weight type
// the quantizers encode, rows that are whole blocks of it, a sliding window only where the architecture has one.
Status validate_synthetic_spec(const SyntheticModelSpec& spec);

// Validates the spec, reads the vocabulary, generates every tensor and writes the GGUF atomically to `out_path`.
// The same spec (seed included) always produces the same bytes.
Status write_synthetic_model(const SyntheticModelSpec& spec, const std::string& out_path);

}  // namespace fkv
