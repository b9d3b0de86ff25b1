// A loaded model: the GGUF mapping, its blueprint (ModelConfig), weight views into the mapping, and the tokenizer.
// Quantized weights stay quantized in the mapping; nothing is dequantized up front.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/quant.h"
#include "fkv/status.h"
#include "model/config.h"
#include "core/gguf.h"

namespace fkv {

class Tokenizer;

struct LayerWeights {
  const float* attn_norm = nullptr;       // (n_embd)
  cpu::MatrixView wq, wk, wv, wo;         // (n_embd_q, n_embd), (n_embd_kv, n_embd) x2, (n_embd, n_embd_q)
  const float* bq = nullptr;              // (n_embd_q) qwen2
  const float* bk = nullptr;              // (n_embd_kv)
  const float* bv = nullptr;              // (n_embd_kv)
  const float* q_norm = nullptr;          // (head_dim) gemma3
  const float* k_norm = nullptr;          // (head_dim)
  const float* post_attn_norm = nullptr;  // (n_embd) gemma3
  const float* ffn_norm = nullptr;        // (n_embd)
  cpu::MatrixView w_gate, w_up, w_down;   // (n_ff, n_embd) x2, (n_embd, n_ff)
  const float* post_ffn_norm = nullptr;   // (n_embd) gemma3
};

struct ModelWeights {
  cpu::MatrixView tok_embd;         // (n_vocab, n_embd)
  const float* output_norm = nullptr;  // (n_embd)
  cpu::MatrixView output;           // (n_vocab, n_embd); the token embedding when tied
  const float* rope_freqs = nullptr;   // (head_dim / 2) llama3 divisors, or null
  std::vector<LayerWeights> layers; // (n_layers)
};

class Model {
 public:
  ~Model();
  // Maps, validates (every tensor present with the shape the config implies; F32 for norms and biases) and builds the tokenizer.
  static Result<std::unique_ptr<Model>> load(const std::string& path);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GgufFile& gguf() const { return *gguf_; }
  const std::string& path() const { return path_; }
  // Bytes of weights read per decoded token (every matrix once; the embedding row is negligible).
  size_t weight_bytes() const;

 private:
  Model() = default;
  std::string path_;
  std::unique_ptr<GgufFile> gguf_;
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace fkv
