// The tensors of a transformer layer and of a model, once: the CPU pass reads them as views into the GGUF mapping
// (LayerWeights, ModelWeights in model/model.h), the CUDA pass as device matrices (backend/cuda/device_weights.h).
// Matrix is the type of a weight matrix there; norms and biases are F32 vectors on either side. An absent tensor
// (a bias llama does not have, gemma3's extra norms) is a null vector or an empty matrix.
#pragma once

#include <vector>

namespace fkv {

template <class Matrix>
struct LayerTensors {
  const float* attn_norm = nullptr;       // (n_embd)
  Matrix wq, wk, wv, wo;                  // (n_embd_q, n_embd), (n_embd_kv, n_embd) x2, (n_embd, n_embd_q)
  const float* bq = nullptr;              // (n_embd_q) qwen2
  const float* bk = nullptr;              // (n_embd_kv)
  const float* bv = nullptr;              // (n_embd_kv)
  const float* q_norm = nullptr;          // (head_dim) gemma3
  const float* k_norm = nullptr;          // (head_dim)
  const float* post_attn_norm = nullptr;  // (n_embd) gemma3
  const float* ffn_norm = nullptr;        // (n_embd)
  Matrix w_gate, w_up, w_down;            // (n_ff, n_embd) x2, (n_embd, n_ff)
  const float* post_ffn_norm = nullptr;   // (n_embd) gemma3
};

template <class Matrix>
struct ModelTensors {
  Matrix tok_embd;                       // (n_vocab, n_embd)
  const float* output_norm = nullptr;    // (n_embd)
  Matrix output;                         // (n_vocab, n_embd); the token embedding's memory when tied
  const float* rope_freqs = nullptr;     // (head_dim / 2) llama3 divisors, or null
  std::vector<LayerTensors<Matrix>> layers;  // (n_layers)
};

// The same layer with every matrix passed through `f` and the vectors kept.
template <class To, class From, class F>
LayerTensors<To> map_matrices(const LayerTensors<From>& l, F&& f) {
  LayerTensors<To> o;
  o.attn_norm = l.attn_norm;
  o.wq = f(l.wq);
  o.wk = f(l.wk);
  o.wv = f(l.wv);
  o.wo = f(l.wo);
  o.bq = l.bq;
  o.bk = l.bk;
  o.bv = l.bv;
  o.q_norm = l.q_norm;
  o.k_norm = l.k_norm;
  o.post_attn_norm = l.post_attn_norm;
  o.ffn_norm = l.ffn_norm;
  o.w_gate = f(l.w_gate);
  o.w_up = f(l.w_up);
  o.w_down = f(l.w_down);
  o.post_ffn_norm = l.post_ffn_norm;
  return o;
}

}  // namespace fkv
