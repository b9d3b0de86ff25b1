#include "model/synthetic.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <numbers>
#include <string_view>
#include <utility>

#include "backend/cpu/quant.h"
#include "core/gguf.h"
#include "core/rng.h"
#include "model/gguf_writer.h"

namespace fkv {

namespace {

// splitmix64 feeding Box-Muller: a few lines, no library state, the same stream on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next_u64() { return splitmix64(state_); }
  // Uniform in (0, 1]: never 0, so log() below is finite.
  double next_unit() { return static_cast<double>((next_u64() >> 11) + 1) * 0x1.0p-53; }
  double next_normal() {
    const double r = std::sqrt(-2.0 * std::log(next_unit()));
    return r * std::cos(2.0 * std::numbers::pi * next_unit());
  }

 private:
  uint64_t state_;
};

// Each tensor draws from its own stream (seed mixed with an FNV-1a hash of its name), so adding a tensor to the
// writer never changes the values of the others.
Rng tensor_rng(uint64_t seed, std::string_view name) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001B3ull;
  return Rng(seed ^ h);
}

const char* gguf_arch(Arch a) {
  switch (a) {
    case Arch::Llama: return "llama";
    case Arch::Qwen2: return "qwen2";
    case Arch::Gemma3: return "gemma3";
  }
  return "llama";
}

int resolved_head_dim(const SyntheticModelSpec& s) {
  return s.head_dim > 0 ? s.head_dim : (s.n_heads > 0 ? s.n_embd / s.n_heads : 0);
}

bool weight_type_writable(DType t) {
  switch (t) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::Q4_0: case DType::Q5_0: case DType::Q8_0:
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
      return true;
    case DType::Q8_K:  // activations only: no loader accepts it as a weight
      return false;
  }
  return false;
}

Status check_dims(const SyntheticModelSpec& s) {
  const std::pair<const char*, int> positive[] = {{"n_layers", s.n_layers}, {"n_embd", s.n_embd}, {"n_heads", s.n_heads},
                                                  {"n_kv_heads", s.n_kv_heads}, {"n_ff", s.n_ff}, {"n_ctx", s.n_ctx}};
  for (const auto& [what, v] : positive) {
    if (v <= 0) return err("synthetic model: ", what, " must be positive, found ", v);
  }
  if (s.n_heads % s.n_kv_heads != 0) {
    return err("synthetic model: n_heads (", s.n_heads, ") must be a multiple of n_kv_heads (", s.n_kv_heads, ")");
  }
  if (s.head_dim < 0) return err("synthetic model: head_dim must be positive or 0 (n_embd / n_heads), found ", s.head_dim);
  if (s.head_dim == 0 && s.n_embd % s.n_heads != 0) {
    return err("synthetic model: n_embd (", s.n_embd, ") is not a multiple of n_heads (", s.n_heads,
               "); set head_dim explicitly");
  }
  const int head_dim = resolved_head_dim(s);
  if (head_dim % 2 != 0) return err("synthetic model: head_dim must be even for RoPE, found ", head_dim);
  return Status();
}

Status check_options(const SyntheticModelSpec& s) {
  if (!weight_type_writable(s.weight_type)) {
    return err("synthetic model: weight type ", dtype_name(s.weight_type),
               " is not a weight encoding (expected F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K or Q6_K)");
  }
  if (s.sliding_window < 0) return err("synthetic model: sliding_window must be >= 0, found ", s.sliding_window);
  if (s.sliding_window > 0 && s.arch != Arch::Gemma3) {
    return err("synthetic model: sliding_window is a gemma3 feature, found it set for ", gguf_arch(s.arch));
  }
  if (s.llama3_rope && s.arch != Arch::Llama) {
    return err("synthetic model: llama3_rope applies to the llama architecture, found ", gguf_arch(s.arch));
  }
  if (s.llama3_rope && s.yarn_rope) return err("synthetic model: llama3_rope and yarn_rope are exclusive, both are set");
  if (!(s.rope_base > 1.f) || !std::isfinite(s.rope_base)) {
    return err("synthetic model: rope_base must be a finite value > 1, found ", s.rope_base);
  }
  if (s.vocab_path.empty()) return err("synthetic model: vocab_path is empty (expected a GGUF with tokenizer.ggml.*)");
  return Status();
}

// Every matrix row (the input features) must hold whole blocks of the weight type.
Status check_row_blocks(const SyntheticModelSpec& s) {
  const int64_t block = dtype_info(s.weight_type).block_size;
  const int64_t n_embd_q = static_cast<int64_t>(s.n_heads) * resolved_head_dim(s);
  const std::pair<const char*, int64_t> rows[] = {
      {"token_embd.weight", s.n_embd}, {"blk.0.attn_q.weight", s.n_embd}, {"blk.0.attn_output.weight", n_embd_q},
      {"blk.0.ffn_down.weight", s.n_ff}};
  for (const auto& [tensor, n] : rows) {
    if (n % block != 0) {
      return err("synthetic model: tensor ", tensor, " has rows of ", n, " values, not a multiple of the ",
                 dtype_name(s.weight_type), " block size ", block);
    }
  }
  return Status();
}

// A matrix of n_rows rows of n_cols values, N(0, std^2), encoded row by row in `type` with the reference encoder:
// the file's bytes must not depend on which kernels this CPU has.
std::vector<uint8_t> random_matrix(Rng rng, int64_t n_rows, int64_t n_cols, double std_dev, DType type) {
  const size_t n_row_bytes = row_bytes(type, n_cols);
  std::vector<uint8_t> out(n_row_bytes * static_cast<size_t>(n_rows));  // (n_rows, n_row_bytes)
  std::vector<float> row(static_cast<size_t>(n_cols));                   // (n_cols)
  for (int64_t r = 0; r < n_rows; ++r) {
    for (float& v : row) v = static_cast<float>(std_dev * rng.next_normal());
    cpu::ref::quantize_row(type, row.data(), out.data() + static_cast<size_t>(r) * n_row_bytes, n_cols);
  }
  return out;
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(float));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// n values mean + N(0, std^2), F32.
std::vector<uint8_t> random_vector(Rng rng, int64_t n, double mean, double std_dev) {
  std::vector<float> v(static_cast<size_t>(n));  // (n)
  for (float& x : v) x = static_cast<float>(mean + std_dev * rng.next_normal());
  return f32_bytes(v);
}

class TensorSink {
 public:
  TensorSink(GgufWriter& w, const SyntheticModelSpec& s) : w_(w), s_(s) {}

  // GGUF dims {in, out}: `out` rows of `in` values, N(0, 1/in) so each output has unit variance for unit inputs.
  void matrix(const std::string& name, int64_t n_in, int64_t n_out) {
    const double std_dev = 1.0 / std::sqrt(static_cast<double>(n_in));
    w_.add_tensor(name, {n_in, n_out}, s_.weight_type,
                  random_matrix(tensor_rng(s_.seed, name), n_out, n_in, std_dev, s_.weight_type));
  }
  void embedding(int64_t n_vocab) {
    // std 0.5: rows distinct enough that logits spread, small enough that tied outputs stay O(sqrt(n_embd)).
    w_.add_tensor("token_embd.weight", {s_.n_embd, n_vocab}, s_.weight_type,
                  random_matrix(tensor_rng(s_.seed, "token_embd.weight"), n_vocab, s_.n_embd, 0.5, s_.weight_type));
  }
  void norm(const std::string& name, int64_t n) { vec(name, n, 1.0, 0.1); }
  void bias(const std::string& name, int64_t n) { vec(name, n, 0.0, 0.1); }

 private:
  void vec(const std::string& name, int64_t n, double mean, double std_dev) {
    w_.add_tensor(name, {n}, DType::F32, random_vector(tensor_rng(s_.seed, name), n, mean, std_dev));
  }
  GgufWriter& w_;
  const SyntheticModelSpec& s_;
};

void add_layer_tensors(TensorSink& t, const SyntheticModelSpec& s, int layer) {
  const int64_t head_dim = resolved_head_dim(s);
  const int64_t n_embd_q = s.n_heads * head_dim;
  const int64_t n_embd_kv = s.n_kv_heads * head_dim;
  const std::string p = "blk." + std::to_string(layer) + ".";
  t.norm(p + "attn_norm.weight", s.n_embd);
  t.matrix(p + "attn_q.weight", s.n_embd, n_embd_q);
  t.matrix(p + "attn_k.weight", s.n_embd, n_embd_kv);
  t.matrix(p + "attn_v.weight", s.n_embd, n_embd_kv);
  t.matrix(p + "attn_output.weight", n_embd_q, s.n_embd);
  if (s.arch == Arch::Qwen2) {
    t.bias(p + "attn_q.bias", n_embd_q);
    t.bias(p + "attn_k.bias", n_embd_kv);
    t.bias(p + "attn_v.bias", n_embd_kv);
  }
  if (s.arch == Arch::Gemma3) {
    t.norm(p + "attn_q_norm.weight", head_dim);
    t.norm(p + "attn_k_norm.weight", head_dim);
    t.norm(p + "post_attention_norm.weight", s.n_embd);
  }
  t.norm(p + "ffn_norm.weight", s.n_embd);
  t.matrix(p + "ffn_gate.weight", s.n_embd, s.n_ff);
  t.matrix(p + "ffn_up.weight", s.n_embd, s.n_ff);
  t.matrix(p + "ffn_down.weight", s.n_ff, s.n_embd);
  if (s.arch == Arch::Gemma3) t.norm(p + "post_ffw_norm.weight", s.n_embd);
}

// Chat templates in the format of the family whose marker tokens the vocabulary holds, so the template's markers
// tokenize to single special tokens.
constexpr const char* kTemplateLlama2 =
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}[INST] <<SYS>>\n{{ m['content'] }}\n<</SYS>>\n\n"
    "{% elif m['role'] == 'user' %}{% if loop.index0 == 0 or messages[loop.index0 - 1]['role'] != 'system' %}[INST] "
    "{% endif %}{{ m['content'] }} [/INST]{% else %} {{ m['content'] }} {{ eos_token }}{% endif %}{% endfor %}";
constexpr const char* kTemplateChatml =
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
constexpr const char* kTemplateGemma =
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{% if m['role'] == 'assistant' %}model{% else %}user{% endif %}"
    "\n{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";
constexpr const char* kTemplateLlama3 =
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}"
    "<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";

const char* chat_template_for(const std::vector<std::string_view>& tokens) {
  for (std::string_view t : tokens) {
    if (t == "<|im_start|>") return kTemplateChatml;
    if (t == "<start_of_turn>") return kTemplateGemma;
    if (t == "<|start_header_id|>") return kTemplateLlama3;
  }
  return kTemplateLlama2;
}

Result<std::vector<std::string_view>> vocab_tokens(const GgufFile& vocab) {
  FKV_ASSIGN_OR_RETURN(std::optional<std::vector<std::string_view>> tokens,
                       vocab.get_string_array("tokenizer.ggml.tokens"));
  if (!tokens || tokens->empty()) {
    return err(vocab.label(), ": expected a tokenizer.ggml.tokens string array, found none");
  }
  return std::move(*tokens);
}

// Copies every tokenizer.ggml.* key and sets a chat template in the vocabulary's own format.
void copy_tokenizer(GgufWriter& w, const GgufFile& vocab, const std::vector<std::string_view>& tokens) {
  for (const auto& [key, value] : vocab.metadata()) {
    if (key.starts_with("tokenizer.ggml.")) w.copy_value(key, value);
  }
  w.set_string("tokenizer.chat_template", chat_template_for(tokens));
}

// The rope scaling keys, named and typed as llama.cpp's converter writes them.
void set_rope_scaling(GgufWriter& w, const SyntheticModelSpec& s, const std::string& a) {
  const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  if (s.llama3_rope) {
    w.set_string(a + ".rope.scaling.type", "llama3");
    w.set_f32(a + ".rope.scaling.factor", SyntheticLlama3Rope::factor);
    w.set_f32(a + ".rope.scaling.low_freq_factor", SyntheticLlama3Rope::low_freq_factor);
    w.set_f32(a + ".rope.scaling.high_freq_factor", SyntheticLlama3Rope::high_freq_factor);
    w.set_u32(a + ".rope.scaling.original_context_length", u32(SyntheticLlama3Rope::original_context));
  }
  if (s.yarn_rope) {
    using Y = SyntheticYarnRope;
    w.set_string(a + ".rope.scaling.type", "yarn");
    w.set_f32(a + ".rope.scaling.factor", Y::factor);
    w.set_u32(a + ".rope.scaling.original_context_length", u32(Y::original_context));
    w.set_f32(a + ".rope.scaling.yarn_beta_fast", Y::beta_fast);
    w.set_f32(a + ".rope.scaling.yarn_beta_slow", Y::beta_slow);
    w.set_f32(a + ".rope.scaling.attn_factor", Y::attn_factor);
  }
}

void set_metadata(GgufWriter& w, const SyntheticModelSpec& s, int64_t n_vocab) {
  const std::string a = gguf_arch(s.arch);
  const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  w.set_string("general.architecture", a);
  w.set_string("general.name", s.name);
  w.set_u32(a + ".context_length", u32(s.n_ctx));
  w.set_u32(a + ".embedding_length", u32(s.n_embd));
  w.set_u32(a + ".block_count", u32(s.n_layers));
  w.set_u32(a + ".feed_forward_length", u32(s.n_ff));
  w.set_u32(a + ".attention.head_count", u32(s.n_heads));
  w.set_u32(a + ".attention.head_count_kv", u32(s.n_kv_heads));
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", s.arch == Arch::Gemma3 ? 1e-6f : 1e-5f);
  w.set_f32(a + ".rope.freq_base", s.rope_base);
  w.set_u32(a + ".rope.dimension_count", u32(resolved_head_dim(s)));
  w.set_u32(a + ".attention.key_length", u32(resolved_head_dim(s)));
  w.set_u32(a + ".attention.value_length", u32(resolved_head_dim(s)));
  w.set_u32(a + ".vocab_size", u32(n_vocab));
  // Absent rather than 0 when off: readers take a present window as 1 or more tokens.
  if (s.sliding_window > 0) w.set_u32(a + ".attention.sliding_window", u32(s.sliding_window));
  set_rope_scaling(w, s, a);
}

}  // namespace

std::vector<float> llama3_rope_divisors(int head_dim, float base, float factor, float low_freq_factor,
                                        float high_freq_factor, int original_context) {
  const double low_freq_wavelen = original_context / static_cast<double>(low_freq_factor);
  const double high_freq_wavelen = original_context / static_cast<double>(high_freq_factor);
  std::vector<float> divisors(static_cast<size_t>(head_dim / 2));  // (head_dim / 2)
  for (int i = 0; i < head_dim / 2; ++i) {
    const double freq = std::pow(static_cast<double>(base), -2.0 * i / head_dim);
    const double wavelen = 2.0 * std::numbers::pi / freq;
    double d = 1.0;  // high frequencies (short wavelengths) keep their speed
    if (wavelen > low_freq_wavelen) {
      d = factor;
    } else if (wavelen >= high_freq_wavelen) {
      const double smooth = (original_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      d = 1.0 / ((1.0 - smooth) / factor + smooth);
    }
    divisors[static_cast<size_t>(i)] = static_cast<float>(d);
  }
  return divisors;
}

Status validate_synthetic_spec(const SyntheticModelSpec& spec) {
  FKV_TRY(check_dims(spec));
  FKV_TRY(check_options(spec));
  return check_row_blocks(spec);
}

Status write_synthetic_model(const SyntheticModelSpec& spec, const std::string& out_path) {
  FKV_TRY(validate_synthetic_spec(spec));
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> vocab, GgufFile::open(spec.vocab_path));
  FKV_ASSIGN_OR_RETURN(const std::vector<std::string_view> tokens, vocab_tokens(*vocab));
  const auto n_vocab = static_cast<int64_t>(tokens.size());

  GgufWriter w;
  set_metadata(w, spec, n_vocab);
  copy_tokenizer(w, *vocab, tokens);

  TensorSink t(w, spec);
  t.embedding(n_vocab);
  if (spec.llama3_rope) {
    using R = SyntheticLlama3Rope;
    const int head_dim = resolved_head_dim(spec);
    w.add_tensor("rope_freqs.weight", {head_dim / 2}, DType::F32,
                 f32_bytes(llama3_rope_divisors(head_dim, spec.rope_base, R::factor, R::low_freq_factor,
                                                R::high_freq_factor, R::original_context)));
  }
  for (int layer = 0; layer < spec.n_layers; ++layer) add_layer_tensors(t, spec, layer);
  t.norm("output_norm.weight", spec.n_embd);
  if (!spec.tied_embeddings) t.matrix("output.weight", spec.n_embd, n_vocab);
  return w.write(out_path);
}

}  // namespace fkv
