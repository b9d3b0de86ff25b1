#include "support/reference_model.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "backend/cpu/quant.h"
#include "core/gguf.h"

namespace fkvtest {

// Reads metadata and tensors; remembers the first failure and lets the caller check once at the end.
class ReferenceModel::Loader {
 public:
  explicit Loader(const fkv::GgufFile& f) : f_(f) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  void load(ReferenceModel& m);

 private:
  void fail(const std::string& msg) {
    if (error_.empty()) error_ = f_.label() + ": " + msg;
  }
  int64_t uint_key(const std::string& key, int64_t fallback);  // fallback < 0: required
  double float_key(const std::string& key, double fallback);
  std::string string_key(const std::string& key);
  const fkv::GgufTensor* tensor(const std::string& name, size_t n_dims, bool required);
  std::vector<double> decode(const fkv::GgufTensor& t, int64_t n_rows, int64_t n_cols);
  Matrix matrix(const std::string& name, int64_t n_in, int64_t n_out);  // n_out < 0: any
  std::vector<double> vec(const std::string& name, int64_t n, bool required = true);
  void load_layer(ReferenceModel& m, int index);
  void load_yarn(ReferenceModel& m, const std::string& arch);

  const fkv::GgufFile& f_;
  std::string error_;
};

int64_t ReferenceModel::Loader::uint_key(const std::string& key, int64_t fallback) {
  auto r = f_.get_uint(key);
  if (!r.ok()) {
    fail(r.message());
    return 0;
  }
  if (r->has_value()) return static_cast<int64_t>(**r);
  if (fallback < 0) fail("missing key " + key);
  return std::max<int64_t>(fallback, 0);
}

double ReferenceModel::Loader::float_key(const std::string& key, double fallback) {
  auto r = f_.get_float(key);
  if (!r.ok()) {
    fail(r.message());
    return fallback;
  }
  return r->has_value() ? **r : fallback;
}

std::string ReferenceModel::Loader::string_key(const std::string& key) {
  auto r = f_.get_string(key);
  if (!r.ok() || !r->has_value()) {
    fail(r.ok() ? "missing key " + key : r.message());
    return {};
  }
  return std::string(**r);
}

const fkv::GgufTensor* ReferenceModel::Loader::tensor(const std::string& name, size_t n_dims, bool required) {
  const fkv::GgufTensor* t = f_.find_tensor(name);
  if (t == nullptr) {
    if (required) fail("missing tensor " + name);
    return nullptr;
  }
  if (t->dims.size() != n_dims) {
    fail("tensor " + name + ": expected " + std::to_string(n_dims) + " dims, found " + std::to_string(t->dims.size()));
    return nullptr;
  }
  return t;
}

std::vector<double> ReferenceModel::Loader::decode(const fkv::GgufTensor& t, int64_t n_rows, int64_t n_cols) {
  if (n_cols % fkv::dtype_info(t.type).block_size != 0 ||
      t.n_bytes < fkv::row_bytes(t.type, n_cols) * static_cast<uint64_t>(n_rows)) {
    fail("tensor " + t.name + ": size does not match its dims and type");
    return {};
  }
  const size_t n_row_bytes = fkv::row_bytes(t.type, n_cols);
  std::vector<float> row(static_cast<size_t>(n_cols));                     // (n_cols)
  std::vector<double> out(static_cast<size_t>(n_rows * n_cols));           // (n_rows, n_cols)
  for (int64_t r = 0; r < n_rows; ++r) {
    fkv::cpu::ref::dequantize_row(t.type, t.data + static_cast<size_t>(r) * n_row_bytes, row.data(), n_cols);
    std::copy(row.begin(), row.end(), out.begin() + r * n_cols);
  }
  return out;
}

ReferenceModel::Matrix ReferenceModel::Loader::matrix(const std::string& name, int64_t n_in, int64_t n_out) {
  const fkv::GgufTensor* t = tensor(name, 2, true);
  if (t == nullptr) return {};
  if (t->dims[0] != n_in || (n_out >= 0 && t->dims[1] != n_out)) {
    fail("tensor " + name + ": expected dims {" + std::to_string(n_in) + ", " + std::to_string(n_out) + "}, found {" +
         std::to_string(t->dims[0]) + ", " + std::to_string(t->dims[1]) + "}");
    return {};
  }
  return Matrix{t->dims[1], t->dims[0], decode(*t, t->dims[1], t->dims[0])};
}

std::vector<double> ReferenceModel::Loader::vec(const std::string& name, int64_t n, bool required) {
  const fkv::GgufTensor* t = tensor(name, 1, required);
  if (t == nullptr) return {};
  if (t->dims[0] != n) {
    fail("tensor " + name + ": expected " + std::to_string(n) + " values, found " + std::to_string(t->dims[0]));
    return {};
  }
  return decode(*t, 1, n);
}

void ReferenceModel::Loader::load_layer(ReferenceModel& m, int index) {
  const std::string p = "blk." + std::to_string(index) + ".";
  const int64_t n_q = static_cast<int64_t>(m.n_heads_) * m.head_dim_;
  const int64_t n_kv = static_cast<int64_t>(m.n_kv_heads_) * m.head_dim_;
  const bool gemma = m.family_ == Family::Gemma3;
  Layer& l = m.layers_[static_cast<size_t>(index)];
  l.attn_norm = vec(p + "attn_norm.weight", m.n_embd_);
  l.wq = matrix(p + "attn_q.weight", m.n_embd_, n_q);
  l.wk = matrix(p + "attn_k.weight", m.n_embd_, n_kv);
  l.wv = matrix(p + "attn_v.weight", m.n_embd_, n_kv);
  l.wo = matrix(p + "attn_output.weight", n_q, m.n_embd_);
  if (m.family_ == Family::Qwen2) {
    l.bq = vec(p + "attn_q.bias", n_q);
    l.bk = vec(p + "attn_k.bias", n_kv);
    l.bv = vec(p + "attn_v.bias", n_kv);
  }
  if (gemma) {
    l.q_norm = vec(p + "attn_q_norm.weight", m.head_dim_);
    l.k_norm = vec(p + "attn_k_norm.weight", m.head_dim_);
    l.post_attn_norm = vec(p + "post_attention_norm.weight", m.n_embd_);
    l.post_ffn_norm = vec(p + "post_ffw_norm.weight", m.n_embd_);
    l.local = m.sliding_window_ > 0 && (index + 1) % 6 != 0;
  }
  l.ffn_norm = vec(p + "ffn_norm.weight", m.n_embd_);
  l.w_gate = matrix(p + "ffn_gate.weight", m.n_embd_, -1);
  l.w_up = matrix(p + "ffn_up.weight", m.n_embd_, l.w_gate.n_rows);
  l.w_down = matrix(p + "ffn_down.weight", l.w_gate.n_rows, m.n_embd_);
}

void ReferenceModel::Loader::load(ReferenceModel& m) {
  const std::string arch = string_key("general.architecture");
  if (arch == "llama") m.family_ = Family::Llama;
  else if (arch == "qwen2") m.family_ = Family::Qwen2;
  else if (arch == "gemma3") m.family_ = Family::Gemma3;
  else return fail("unsupported architecture '" + arch + "'");
  m.n_embd_ = static_cast<int>(uint_key(arch + ".embedding_length", -1));
  const auto n_layers = static_cast<int>(uint_key(arch + ".block_count", -1));
  m.n_heads_ = static_cast<int>(uint_key(arch + ".attention.head_count", -1));
  m.n_kv_heads_ = static_cast<int>(uint_key(arch + ".attention.head_count_kv", m.n_heads_));
  if (!ok() || m.n_embd_ <= 0 || m.n_heads_ <= 0 || m.n_kv_heads_ <= 0 || m.n_heads_ % m.n_kv_heads_ != 0) {
    return fail("bad dimensions");
  }
  m.head_dim_ = static_cast<int>(uint_key(arch + ".attention.key_length", m.n_embd_ / m.n_heads_));
  m.eps_ = float_key(arch + ".attention.layer_norm_rms_epsilon", 1e-5);
  m.rope_base_ = float_key(arch + ".rope.freq_base", 10000.0);
  if (m.family_ == Family::Gemma3) m.sliding_window_ = static_cast<int>(uint_key(arch + ".attention.sliding_window", 0));

  m.tok_embd_ = matrix("token_embd.weight", m.n_embd_, -1);
  m.n_vocab_ = static_cast<int>(m.tok_embd_.n_rows);
  m.rope_divisors_ = vec("rope_freqs.weight", m.head_dim_ / 2, false);
  load_yarn(m, arch);
  m.layers_.resize(static_cast<size_t>(std::max(n_layers, 0)));
  for (int i = 0; i < n_layers && ok(); ++i) load_layer(m, i);
  m.output_norm_ = vec("output_norm.weight", m.n_embd_);
  if (f_.find_tensor("output.weight") != nullptr) m.output_ = matrix("output.weight", m.n_embd_, m.n_vocab_);
}

// YaRN (arXiv 2309.00071) from the paper's definition in terms of turns: pair i turns n_i = L / (2 pi) * base^(-2i/d)
// times over the original context L. The ramp starts at the last pair that still turns beta_fast times (pairs up to
// it keep their frequency) and ends at the first pair, counted past the real ones if need be and at most d - 1, that
// turns no more than beta_slow times (pairs from it on are divided by the factor); the weight of the divided frequency
// grows linearly in between. Both rotated vectors are multiplied by (0.1 ln factor + 1) * attn_factor.
void ReferenceModel::Loader::load_yarn(ReferenceModel& m, const std::string& arch) {
  const auto type = f_.get_string(arch + ".rope.scaling.type");
  if (!type.ok() || !type->has_value() || **type != "yarn") return;
  const double s = float_key(arch + ".rope.scaling.factor", 0.0);
  const double ctx = static_cast<double>(uint_key(arch + ".rope.scaling.original_context_length", -1));
  const double beta_fast = float_key(arch + ".rope.scaling.yarn_beta_fast", 32.0);
  const double beta_slow = float_key(arch + ".rope.scaling.yarn_beta_slow", 1.0);
  const double attn_factor = float_key(arch + ".rope.scaling.attn_factor", 1.0);
  if (!(s > 0.0) || !(beta_fast > beta_slow) || !(beta_slow > 0.0)) return fail("bad YaRN parameters");
  const int d = m.head_dim_;
  const auto turns = [&](int i) { return ctx / (2.0 * std::numbers::pi) * std::pow(m.rope_base_, -2.0 * i / d); };
  int first = 0;  // the last pair turning at least beta_fast times (0 when even pair 0 turns less)
  while (first + 1 < d && turns(first + 1) >= beta_fast) ++first;
  int last = 0;  // the first pair turning at most beta_slow times
  while (last < d - 1 && turns(last) > beta_slow) ++last;
  m.yarn_freq_mul_.resize(static_cast<size_t>(d / 2));
  for (int i = 0; i < d / 2; ++i) {
    const double gamma = last > first ? std::clamp(static_cast<double>(i - first) / (last - first), 0.0, 1.0)
                                      : (i > first ? 1.0 : 0.0);
    m.yarn_freq_mul_[static_cast<size_t>(i)] = (1.0 - gamma) + gamma / s;
  }
  m.yarn_mscale_ = (s > 1.0 ? 0.1 * std::log(s) + 1.0 : 1.0) * attn_factor;
}

std::unique_ptr<ReferenceModel> ReferenceModel::load(const QString& gguf_path, QString* error) {
  auto file = fkv::GgufFile::open(gguf_path.toStdString());
  if (!file.ok()) {
    if (error) *error = QString::fromStdString(file.message());
    return nullptr;
  }
  std::unique_ptr<ReferenceModel> m(new ReferenceModel());
  Loader loader(**file);
  loader.load(*m);
  if (!loader.ok()) {
    if (error) *error = QString::fromStdString(loader.error());
    return nullptr;
  }
  return m;
}

// ---- the forward pass ----

std::vector<double> ReferenceModel::project(const Matrix& m, const std::vector<double>& x, int n_tok) {
  std::vector<double> y(static_cast<size_t>(n_tok * m.n_rows));  // (n_tok, n_rows)
  for (int t = 0; t < n_tok; ++t) {
    const double* xt = x.data() + t * m.n_cols;
    for (int64_t r = 0; r < m.n_rows; ++r) {
      const double* w = m.w.data() + r * m.n_cols;
      double s = 0.0;
      for (int64_t c = 0; c < m.n_cols; ++c) s += w[c] * xt[c];
      y[static_cast<size_t>(t * m.n_rows + r)] = s;
    }
  }
  return y;
}

void ReferenceModel::rms_norm_rows(std::vector<double>& x, int64_t n, const std::vector<double>& weight) const {
  for (size_t row = 0; row < x.size() / static_cast<size_t>(n); ++row) {
    double* v = x.data() + row * static_cast<size_t>(n);
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += v[i] * v[i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps_);
    for (int64_t i = 0; i < n; ++i) v[i] = v[i] * inv * weight[static_cast<size_t>(i)];
  }
}

void ReferenceModel::rope(std::vector<double>& x, int n_tok, int n_heads, double base, bool scaled) const {
  const bool yarn = scaled && !yarn_freq_mul_.empty();
  const double mag = yarn ? yarn_mscale_ : 1.0;
  const int half = head_dim_ / 2;
  for (int p = 0; p < n_tok; ++p) {
    for (int h = 0; h < n_heads; ++h) {
      double* v = x.data() + (static_cast<size_t>(p) * n_heads + h) * head_dim_;
      for (int i = 0; i < half; ++i) {
        double theta = p * std::pow(base, -2.0 * i / head_dim_);
        if (!rope_divisors_.empty()) theta /= rope_divisors_[static_cast<size_t>(i)];
        if (yarn) theta *= yarn_freq_mul_[static_cast<size_t>(i)];
        // llama GGUFs pair neighbours (their Q/K rows were permuted at conversion); qwen2 and gemma3 pair halves.
        const int i0 = family_ == Family::Llama ? 2 * i : i;
        const int i1 = family_ == Family::Llama ? 2 * i + 1 : i + half;
        const double a = v[i0], b = v[i1];
        v[i0] = mag * (a * std::cos(theta) - b * std::sin(theta));
        v[i1] = mag * (a * std::sin(theta) + b * std::cos(theta));
      }
    }
  }
}

std::vector<double> ReferenceModel::attention(const std::vector<double>& q, const std::vector<double>& k,
                                              const std::vector<double>& v, int n_tok, bool local) const {
  const int group = n_heads_ / n_kv_heads_;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  std::vector<double> out(static_cast<size_t>(n_tok) * n_heads_ * head_dim_);  // (n_tok, n_heads, head_dim)
  std::vector<double> p(static_cast<size_t>(n_tok));                            // (n_tok) scores, then weights
  for (int i = 0; i < n_tok; ++i) {
    const int j0 = local ? std::max(0, i - sliding_window_ + 1) : 0;
    for (int h = 0; h < n_heads_; ++h) {
      const double* qi = q.data() + (static_cast<size_t>(i) * n_heads_ + h) * head_dim_;
      const size_t kv_off = static_cast<size_t>(h / group) * head_dim_;
      double max_s = -INFINITY;
      for (int j = j0; j <= i; ++j) {
        const double* kj = k.data() + static_cast<size_t>(j) * n_kv_heads_ * head_dim_ + kv_off;
        double s = 0.0;
        for (int d = 0; d < head_dim_; ++d) s += qi[d] * kj[d];
        p[static_cast<size_t>(j)] = s * scale;
        max_s = std::max(max_s, s * scale);
      }
      double sum = 0.0;
      for (int j = j0; j <= i; ++j) sum += (p[static_cast<size_t>(j)] = std::exp(p[static_cast<size_t>(j)] - max_s));
      double* o = out.data() + (static_cast<size_t>(i) * n_heads_ + h) * head_dim_;
      for (int j = j0; j <= i; ++j) {
        const double* vj = v.data() + static_cast<size_t>(j) * n_kv_heads_ * head_dim_ + kv_off;
        for (int d = 0; d < head_dim_; ++d) o[d] += p[static_cast<size_t>(j)] / sum * vj[d];
      }
    }
  }
  return out;
}

namespace {

void add_rows(std::vector<double>& x, const std::vector<double>& bias) {
  if (bias.empty()) return;
  for (size_t i = 0; i < x.size(); ++i) x[i] += bias[i % bias.size()];
}

double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

}  // namespace

void ReferenceModel::attention_block(std::vector<double>& x, const Layer& l, int n_tok) const {
  std::vector<double> h = x;  // (n_tok, n_embd)
  rms_norm_rows(h, n_embd_, l.attn_norm);
  std::vector<double> q = project(l.wq, h, n_tok);  // (n_tok, n_heads, head_dim)
  std::vector<double> k = project(l.wk, h, n_tok);  // (n_tok, n_kv_heads, head_dim)
  std::vector<double> v = project(l.wv, h, n_tok);  // (n_tok, n_kv_heads, head_dim)
  add_rows(q, l.bq);
  add_rows(k, l.bk);
  add_rows(v, l.bv);
  if (!l.q_norm.empty()) {
    rms_norm_rows(q, head_dim_, l.q_norm);  // every head of every token is one row of head_dim
    rms_norm_rows(k, head_dim_, l.k_norm);
  }
  const double base = l.local ? 10000.0 : rope_base_;
  rope(q, n_tok, n_heads_, base, !l.local);
  rope(k, n_tok, n_kv_heads_, base, !l.local);
  std::vector<double> o = project(l.wo, attention(q, k, v, n_tok, l.local), n_tok);  // (n_tok, n_embd)
  if (!l.post_attn_norm.empty()) rms_norm_rows(o, n_embd_, l.post_attn_norm);
  for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
}

void ReferenceModel::ffn_block(std::vector<double>& x, const Layer& l, int n_tok) const {
  std::vector<double> h = x;  // (n_tok, n_embd)
  rms_norm_rows(h, n_embd_, l.ffn_norm);
  std::vector<double> g = project(l.w_gate, h, n_tok);  // (n_tok, n_ff)
  const std::vector<double> u = project(l.w_up, h, n_tok);
  const bool gelu = family_ == Family::Gemma3;
  for (size_t i = 0; i < g.size(); ++i) g[i] = (gelu ? gelu_tanh(g[i]) : silu(g[i])) * u[i];
  std::vector<double> f = project(l.w_down, g, n_tok);  // (n_tok, n_embd)
  if (!l.post_ffn_norm.empty()) rms_norm_rows(f, n_embd_, l.post_ffn_norm);
  for (size_t i = 0; i < x.size(); ++i) x[i] += f[i];
}

std::vector<double> ReferenceModel::forward(const std::vector<int32_t>& tokens) const {
  const int n_tok = static_cast<int>(tokens.size());
  const double embd_scale = family_ == Family::Gemma3 ? std::sqrt(static_cast<double>(n_embd_)) : 1.0;
  std::vector<double> x(static_cast<size_t>(n_tok) * n_embd_);  // (n_tok, n_embd)
  for (int t = 0; t < n_tok; ++t) {
    const int32_t id = tokens[static_cast<size_t>(t)];
    if (id < 0 || id >= n_vocab_) return {};
    for (int c = 0; c < n_embd_; ++c) {
      x[static_cast<size_t>(t) * n_embd_ + c] = tok_embd_.w[static_cast<size_t>(id) * n_embd_ + c] * embd_scale;
    }
  }
  for (const Layer& l : layers_) {
    attention_block(x, l, n_tok);
    ffn_block(x, l, n_tok);
  }
  rms_norm_rows(x, n_embd_, output_norm_);
  return project(output_.w.empty() ? tok_embd_ : output_, x, n_tok);  // (n_tok, n_vocab)
}

}  // namespace fkvtest
