// A slow, plain double-precision forward pass for the llama, qwen2 and gemma3 families, written from the model
// equations and independently of the engine's forward pass: the tests' ground truth for the engine's logits.
// Weights are read with fkv::GgufFile and decoded with fkv::cpu::ref::dequantize_row (the one piece it shares with the
// engine), then every operation is a loop in double.
#pragma once

#include <QString>

#include <cstdint>
#include <memory>
#include <vector>

namespace fkvtest {

class ReferenceModel {
 public:
  // Reads the GGUF and decodes every weight to double. On failure returns null and sets *error (when given).
  static std::unique_ptr<ReferenceModel> load(const QString& gguf_path, QString* error);

  // Logits for every position of `tokens`, placed at positions 0..n-1 with causal attention: (n_tokens, n_vocab).
  // Returns an empty vector when a token id is outside [0, n_vocab).
  std::vector<double> forward(const std::vector<int32_t>& tokens) const;

  int n_vocab() const { return n_vocab_; }
  int n_layers() const { return static_cast<int>(layers_.size()); }

 private:
  enum class Family { Llama, Qwen2, Gemma3 };

  struct Matrix {
    int64_t n_rows = 0;     // output features
    int64_t n_cols = 0;     // input features
    std::vector<double> w;  // (n_rows, n_cols)
  };

  struct Layer {
    std::vector<double> attn_norm;           // (n_embd)
    Matrix wq, wk, wv, wo;                   // (n_q, n_embd), (n_kv, n_embd) x2, (n_embd, n_q)
    std::vector<double> bq, bk, bv;          // (n_q), (n_kv), (n_kv); empty unless qwen2
    std::vector<double> q_norm, k_norm;      // (head_dim); empty unless gemma3
    std::vector<double> post_attn_norm;      // (n_embd); empty unless gemma3
    std::vector<double> ffn_norm;            // (n_embd)
    Matrix w_gate, w_up, w_down;             // (n_ff, n_embd) x2, (n_embd, n_ff)
    std::vector<double> post_ffn_norm;       // (n_embd); empty unless gemma3
    bool local = false;                      // gemma3 sliding-window layer
  };

  ReferenceModel() = default;
  class Loader;
  friend class Loader;

  // (n_tok, n_out) = (n_tok, n_in) W^T
  static std::vector<double> project(const Matrix& m, const std::vector<double>& x, int n_tok);
  // Each row of `x` ((n_rows, n) row-major) to rmsnorm(row) * weight.
  void rms_norm_rows(std::vector<double>& x, int64_t n, const std::vector<double>& weight) const;
  // x: (n_tok, n_heads, head_dim). `scaled`: apply YaRN (gemma3's local layers do not).
  void rope(std::vector<double>& x, int n_tok, int n_heads, double base, bool scaled) const;
  std::vector<double> attention(const std::vector<double>& q, const std::vector<double>& k,
                                const std::vector<double>& v, int n_tok, bool local) const;
  void attention_block(std::vector<double>& x, const Layer& l, int n_tok) const;
  void ffn_block(std::vector<double>& x, const Layer& l, int n_tok) const;

  Family family_ = Family::Llama;
  int n_embd_ = 0;
  int n_heads_ = 0;
  int n_kv_heads_ = 0;
  int head_dim_ = 0;
  int n_vocab_ = 0;
  double eps_ = 1e-5;
  double rope_base_ = 10000.0;
  int sliding_window_ = 0;
  std::vector<double> rope_divisors_;  // (head_dim / 2); empty without llama3 scaling
  std::vector<double> yarn_freq_mul_;  // (head_dim / 2) YaRN's multiplier of each pair's frequency; empty without
  double yarn_mscale_ = 1.0;           // YaRN's factor on the rotated q and k
  Matrix tok_embd_;                    // (n_vocab, n_embd)
  std::vector<double> output_norm_;    // (n_embd)
  Matrix output_;                      // (n_vocab, n_embd); empty when tied to tok_embd_
  std::vector<Layer> layers_;          // (n_layers)
};

}  // namespace fkvtest
