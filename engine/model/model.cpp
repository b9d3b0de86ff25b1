#include "model/model.h"

#include <cstdlib>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace fkv {

namespace {

// Binds tensors by name and checks each against the shape the config implies.
class Binder {
 public:
  explicit Binder(const GgufFile& f) : f_(f) {}

  Result<cpu::MatrixView> matrix(const std::string& name, int64_t n_rows, int64_t n_cols) const {
    FKV_ASSIGN_OR_RETURN(const GgufTensor* t, find(name));
    if (t->dims.size() != 2 || t->dims[0] != n_cols || t->dims[1] != n_rows)
      return err(f_.label(), ": tensor '", name, "' has shape ", shape(*t), ", expected {", n_cols, ", ", n_rows, "}");
    return cpu::MatrixView{t->data, t->type, n_rows, n_cols};
  }

  Result<const float*> vector(const std::string& name, int64_t n) const {
    FKV_ASSIGN_OR_RETURN(const GgufTensor* t, find(name));
    if (t->dims.size() != 1 || t->dims[0] != n)
      return err(f_.label(), ": tensor '", name, "' has shape ", shape(*t), ", expected {", n, "}");
    if (t->type != DType::F32)
      return err(f_.label(), ": tensor '", name, "' has type ", dtype_name(t->type), ", expected F32");
    return reinterpret_cast<const float*>(t->data);
  }

 private:
  Result<const GgufTensor*> find(const std::string& name) const {
    const GgufTensor* t = f_.find_tensor(name);
    if (t == nullptr) return err(f_.label(), ": missing tensor '", name, "'");
    return t;
  }
  static std::string shape(const GgufTensor& t) {
    std::string s = "{";
    for (size_t i = 0; i < t.dims.size(); ++i) s += (i ? ", " : "") + std::to_string(t.dims[i]);
    return s + "}";
  }
  const GgufFile& f_;
};

Result<LayerWeights> bind_layer(const Binder& b, const ModelConfig& c, int il) {
  const std::string p = "blk." + std::to_string(il) + ".";
  LayerWeights w;
  FKV_ASSIGN_OR_RETURN(w.attn_norm, b.vector(p + "attn_norm.weight", c.n_embd));
  FKV_ASSIGN_OR_RETURN(w.wq, b.matrix(p + "attn_q.weight", c.n_embd_q(), c.n_embd));
  FKV_ASSIGN_OR_RETURN(w.wk, b.matrix(p + "attn_k.weight", c.n_embd_kv(), c.n_embd));
  FKV_ASSIGN_OR_RETURN(w.wv, b.matrix(p + "attn_v.weight", c.n_embd_kv(), c.n_embd));
  FKV_ASSIGN_OR_RETURN(w.wo, b.matrix(p + "attn_output.weight", c.n_embd, c.n_embd_q()));
  FKV_ASSIGN_OR_RETURN(w.ffn_norm, b.vector(p + "ffn_norm.weight", c.n_embd));
  FKV_ASSIGN_OR_RETURN(w.w_gate, b.matrix(p + "ffn_gate.weight", c.n_ff, c.n_embd));
  FKV_ASSIGN_OR_RETURN(w.w_up, b.matrix(p + "ffn_up.weight", c.n_ff, c.n_embd));
  FKV_ASSIGN_OR_RETURN(w.w_down, b.matrix(p + "ffn_down.weight", c.n_embd, c.n_ff));
  if (c.qkv_bias) {
    FKV_ASSIGN_OR_RETURN(w.bq, b.vector(p + "attn_q.bias", c.n_embd_q()));
    FKV_ASSIGN_OR_RETURN(w.bk, b.vector(p + "attn_k.bias", c.n_embd_kv()));
    FKV_ASSIGN_OR_RETURN(w.bv, b.vector(p + "attn_v.bias", c.n_embd_kv()));
  }
  if (c.qk_norm) {
    FKV_ASSIGN_OR_RETURN(w.q_norm, b.vector(p + "attn_q_norm.weight", c.head_dim));
    FKV_ASSIGN_OR_RETURN(w.k_norm, b.vector(p + "attn_k_norm.weight", c.head_dim));
  }
  if (c.post_norms) {
    FKV_ASSIGN_OR_RETURN(w.post_attn_norm, b.vector(p + "post_attention_norm.weight", c.n_embd));
    FKV_ASSIGN_OR_RETURN(w.post_ffn_norm, b.vector(p + "post_ffw_norm.weight", c.n_embd));
  }
  return w;
}

Result<ModelWeights> bind_weights(const GgufFile& f, const ModelConfig& c) {
  const Binder b(f);
  ModelWeights w;
  FKV_ASSIGN_OR_RETURN(w.tok_embd, b.matrix("token_embd.weight", c.n_vocab, c.n_embd));
  FKV_ASSIGN_OR_RETURN(w.output_norm, b.vector("output_norm.weight", c.n_embd));
  if (c.tied_output) {
    w.output = w.tok_embd;
  } else {
    FKV_ASSIGN_OR_RETURN(w.output, b.matrix("output.weight", c.n_vocab, c.n_embd));
  }
  if (c.has_rope_freqs_tensor) {
    FKV_ASSIGN_OR_RETURN(w.rope_freqs, b.vector("rope_freqs.weight", c.head_dim / 2));
  }
  w.layers.reserve(static_cast<size_t>(c.n_layers));
  for (int il = 0; il < c.n_layers; ++il) {
    FKV_ASSIGN_OR_RETURN(LayerWeights lw, bind_layer(b, c, il));
    w.layers.push_back(lw);
  }
  return w;
}

size_t matrix_bytes(const cpu::MatrixView& m) { return static_cast<size_t>(m.n_rows) * row_bytes(m.type, m.n_cols); }

}  // namespace

Model::~Model() = default;

FileBacking weight_backing(Backend backend) {
  if (backend == Backend::cuda) return FileBacking::Map;
  const char* env = std::getenv("FKV_WEIGHTS");
  if (env != nullptr && std::string_view(env) == "map") return FileBacking::Map;
  return huge_pages_available() ? FileBacking::HugePages : FileBacking::Map;
}

Result<std::unique_ptr<Model>> Model::load(const std::string& path, const RopeOverride& rope, FileBacking backing) {
  std::unique_ptr<Model> m(new Model());
  m->path_ = path;
  FKV_ASSIGN_OR_RETURN(m->gguf_, GgufFile::open(path, backing));
  FKV_ASSIGN_OR_RETURN(m->config_, ModelConfig::from_gguf(*m->gguf_));
  FKV_TRY(m->config_.apply_rope_override(rope));
  FKV_ASSIGN_OR_RETURN(m->weights_, bind_weights(*m->gguf_, m->config_));
  // Every error of the steps above already names the file (the reader's label is `path`).
  FKV_ASSIGN_OR_RETURN(m->tokenizer_, Tokenizer::from_gguf(*m->gguf_));
  if (m->tokenizer_->n_vocab() != m->config_.n_vocab)
    return err(path, ": the vocabulary has ", m->tokenizer_->n_vocab(), " tokens but token_embd.weight has ",
               m->config_.n_vocab, " rows");
  return m;
}

size_t Model::weight_bytes() const {
  size_t n = matrix_bytes(weights_.output);
  for (const LayerWeights& l : weights_.layers)
    for (const cpu::MatrixView* mv : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) n += matrix_bytes(*mv);
  return n;
}

}  // namespace fkv
