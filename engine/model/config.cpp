#include "model/config.h"

#include <cmath>

#include "backend/cpu/ops.h"

namespace fkv {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Llama: return "llama";
    case Arch::Qwen2: return "qwen2";
    case Arch::Gemma3: return "gemma3";
  }
  return "?";
}

namespace {

constexpr int kGemma3SwaPattern = 6;  // gemma3: every 6th layer is global, the others use the sliding window
// Gemma 3 27B, known by its layer count as llama.cpp knows it: its reference config scales queries by
// 1/sqrt(n_embd / n_heads) = 1/sqrt(168) where the other sizes use 1/sqrt(head_dim), and its GGUF files carry no
// attention.scale to say so.
constexpr int kGemma3_27bLayers = 62;
constexpr int kMaxDim = 1 << 20;      // sanity bound on any single dimension read from a file

Result<Arch> parse_arch(std::string_view name) {
  if (name == "llama") return Arch::Llama;
  if (name == "qwen2") return Arch::Qwen2;
  if (name == "gemma3") return Arch::Gemma3;
  return err("unsupported architecture '", name, "' (supported: llama, qwen2, gemma3)");
}

// Reads a required positive integer `{arch}.{key}` into `out`.
Status read_dim(const GgufFile& f, const std::string& key, int& out, bool required = true) {
  auto v = f.get_uint(key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) {
    if (required) return err(f.label(), ": missing metadata '", key, "'");
    return {};
  }
  const uint64_t x = **v;
  if (x == 0 || x > static_cast<uint64_t>(kMaxDim))
    return err(f.label(), ": metadata '", key, "' = ", x, " is out of range (expected 1..", kMaxDim, ")");
  out = static_cast<int>(x);
  return {};
}

Status read_float(const GgufFile& f, const std::string& key, float& out) {
  auto v = f.get_float(key);
  if (!v.ok()) return v.status();
  if (v->has_value()) out = static_cast<float>(**v);
  return {};
}

// YaRN needs the factor and the original context (no default could be right for a file that omits them); the
// rotation counts and the attention factor default as in llama.cpp's GGUF conventions. Ranges: validate().
Status read_yarn(const GgufFile& f, const std::string& a, ModelConfig& c) {
  const std::string factor_key = a + ".rope.scaling.factor";
  auto factor = f.get_float(factor_key);
  if (!factor.ok()) return factor.status();
  if (!factor->has_value()) return err(f.label(), ": rope scaling 'yarn' needs metadata '", factor_key, "'");
  c.rope_factor = static_cast<float>(**factor);
  const std::string ctx_key = a + ".rope.scaling.original_context_length";
  if (f.find(ctx_key) == nullptr) return err(f.label(), ": rope scaling 'yarn' needs metadata '", ctx_key, "'");
  FKV_TRY(read_dim(f, ctx_key, c.rope_orig_ctx));
  FKV_TRY(read_float(f, a + ".rope.scaling.yarn_beta_fast", c.rope_yarn_beta_fast));
  FKV_TRY(read_float(f, a + ".rope.scaling.yarn_beta_slow", c.rope_yarn_beta_slow));
  FKV_TRY(read_float(f, a + ".rope.scaling.attn_factor", c.rope_attn_factor));
  c.rope_scaling = RopeScaling::Yarn;
  return {};
}

Status read_rope_scaling(const GgufFile& f, const std::string& a, ModelConfig& c) {
  auto type = f.get_string(a + ".rope.scaling.type");
  if (!type.ok()) return type.status();
  c.has_rope_freqs_tensor = f.find_tensor("rope_freqs.weight") != nullptr;
  if (!type->has_value() || **type == "none") return {};
  const std::string_view t = **type;
  if (t == "yarn") return read_yarn(f, a, c);
  FKV_TRY(read_float(f, a + ".rope.scaling.factor", c.rope_factor));
  if (t == "linear") {
    c.rope_scaling = RopeScaling::Linear;
  } else if (t == "llama3") {
    c.rope_scaling = RopeScaling::Llama3;
    FKV_TRY(read_float(f, a + ".rope.scaling.low_freq_factor", c.rope_low_freq_factor));
    FKV_TRY(read_float(f, a + ".rope.scaling.high_freq_factor", c.rope_high_freq_factor));
    FKV_TRY(read_dim(f, a + ".rope.scaling.original_context_length", c.rope_orig_ctx, false));
  } else {
    return err(f.label(), ": unsupported rope scaling type '", t, "' (supported: none, linear, llama3, yarn)");
  }
  if (!(c.rope_factor > 0.f)) return err(f.label(), ": rope scaling factor must be > 0, found ", c.rope_factor);
  return {};
}

// YaRN's parameters, named by their GGUF keys: the frequency ramp takes logarithms of the factor, the context and
// the rotation counts, and needs beta_fast's pair below beta_slow's.
Status validate_yarn(const ModelConfig& c) {
  const std::string k = std::string(arch_name(c.arch)) + ".rope.scaling.";
  if (!(c.rope_factor > 0.f) || !std::isfinite(c.rope_factor))
    return err("YaRN: '", k, "factor' must be a finite value > 0, found ", c.rope_factor);
  if (c.rope_orig_ctx <= 0)
    return err("YaRN: '", k, "original_context_length' must be > 0, found ", c.rope_orig_ctx);
  if (!(c.rope_yarn_beta_slow > 0.f))
    return err("YaRN: '", k, "yarn_beta_slow' must be > 0, found ", c.rope_yarn_beta_slow);
  if (!std::isfinite(c.rope_yarn_beta_fast))
    return err("YaRN: '", k, "yarn_beta_fast' must be finite, found ", c.rope_yarn_beta_fast);
  if (!(c.rope_yarn_beta_fast > c.rope_yarn_beta_slow))
    return err("YaRN: '", k, "yarn_beta_fast' (", c.rope_yarn_beta_fast, ") must be greater than '", k,
               "yarn_beta_slow' (", c.rope_yarn_beta_slow, ")");
  if (!(c.rope_attn_factor > 0.f) || !std::isfinite(c.rope_attn_factor))
    return err("YaRN: '", k, "attn_factor' must be a finite value > 0, found ", c.rope_attn_factor);
  return {};
}

}  // namespace

Result<ModelConfig> ModelConfig::from_gguf(const GgufFile& f) {
  ModelConfig c;
  auto arch = f.get_string("general.architecture");
  if (!arch.ok()) return arch.status();
  if (!arch->has_value()) return err(f.label(), ": missing metadata 'general.architecture'");
  const std::string a(**arch);
  const Result<Arch> kind = parse_arch(a);
  if (!kind.ok()) return err(f.label(), ": ", kind.message());
  c.arch = *kind;
  auto name = f.get_string("general.name");
  c.name = name.ok() && name->has_value() ? std::string(**name) : a;

  FKV_TRY(read_dim(f, a + ".block_count", c.n_layers));
  FKV_TRY(read_dim(f, a + ".embedding_length", c.n_embd));
  FKV_TRY(read_dim(f, a + ".feed_forward_length", c.n_ff));
  FKV_TRY(read_dim(f, a + ".attention.head_count", c.n_heads));
  c.n_kv_heads = c.n_heads;
  FKV_TRY(read_dim(f, a + ".attention.head_count_kv", c.n_kv_heads, false));
  c.head_dim = c.n_embd / c.n_heads;
  FKV_TRY(read_dim(f, a + ".attention.key_length", c.head_dim, false));
  int value_length = c.head_dim;
  FKV_TRY(read_dim(f, a + ".attention.value_length", value_length, false));
  if (value_length != c.head_dim)
    return err(f.label(), ": key length ", c.head_dim, " differs from value length ", value_length, " (not supported)");
  c.n_ctx_train = 2048;
  FKV_TRY(read_dim(f, a + ".context_length", c.n_ctx_train, false));
  FKV_TRY(read_float(f, a + ".attention.layer_norm_rms_epsilon", c.norm_eps));
  FKV_TRY(read_float(f, a + ".rope.freq_base", c.rope_base));
  FKV_TRY(read_rope_scaling(f, a, c));

  const GgufTensor* embd = f.find_tensor("token_embd.weight");
  if (embd == nullptr) return err(f.label(), ": missing tensor 'token_embd.weight'");
  if (embd->dims.size() != 2) return err(f.label(), ": tensor 'token_embd.weight' should have 2 dims, found ", embd->dims.size());
  if (embd->dims[1] <= 0 || embd->dims[1] > (1 << 24))
    return err(f.label(), ": vocabulary size ", embd->dims[1], " is out of range");
  c.n_vocab = static_cast<int>(embd->dims[1]);
  c.tied_output = f.find_tensor("output.weight") == nullptr;

  const bool gemma3_27b = c.arch == Arch::Gemma3 && c.n_layers == kGemma3_27bLayers;
  c.attn_scale = 1.f / std::sqrt(static_cast<float>(gemma3_27b ? c.n_embd / c.n_heads : c.head_dim));
  FKV_TRY(read_float(f, a + ".attention.scale", c.attn_scale));  // a file that states its scale is believed
  c.layer_local.assign(static_cast<size_t>(c.n_layers), 0);
  switch (c.arch) {
    case Arch::Llama:
      c.rope_style = RopeStyle::Norm;
      break;
    case Arch::Qwen2:
      c.rope_style = RopeStyle::Neox;
      c.qkv_bias = true;
      break;
    case Arch::Gemma3: {
      c.rope_style = RopeStyle::Neox;
      c.qk_norm = true;
      c.post_norms = true;
      c.embd_scale = std::sqrt(static_cast<float>(c.n_embd));
      c.act = Activation::GeluTanh;
      FKV_TRY(read_dim(f, a + ".attention.sliding_window", c.sliding_window, false));
      FKV_TRY(read_float(f, a + ".rope.local.freq_base", c.rope_base_local));
      if (c.sliding_window > 0)
        for (int l = 0; l < c.n_layers; ++l) c.layer_local[static_cast<size_t>(l)] = (l + 1) % kGemma3SwaPattern != 0;
      break;
    }
  }
  // validate() also checks configs built in code, so its messages name no file; this one came from f.
  if (Status s = c.validate(); !s.ok()) return err(f.label(), ": ", s.message());
  return c;
}

Status ModelConfig::validate() const {
  if (n_layers <= 0 || n_embd <= 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || n_ff <= 0 || n_vocab <= 0)
    return err("model dimensions must be positive (layers ", n_layers, ", embd ", n_embd, ", heads ", n_heads, ", kv heads ",
               n_kv_heads, ", head dim ", head_dim, ", ffn ", n_ff, ", vocab ", n_vocab, ")");
  if (n_heads % n_kv_heads != 0)
    return err("query heads (", n_heads, ") must be a multiple of key/value heads (", n_kv_heads, ")");
  // n_embd_q() and n_embd_kv() are int products: bound them like any single dimension so they cannot overflow.
  const int64_t q_width = static_cast<int64_t>(n_heads) * head_dim;
  if (q_width > kMaxDim)
    return err("query width (", n_heads, " heads x head dim ", head_dim, " = ", q_width,
               ") is out of range (expected at most ", kMaxDim, ")");
  if (head_dim % 2 != 0) return err("head dimension must be even for RoPE, found ", head_dim);
  // The attention kernels keep one row and a group's scores on the stack.
  if (head_dim > cpu::kMaxHeadDim) return err("head dimension ", head_dim, " is larger than supported (", cpu::kMaxHeadDim, ")");
  if (n_heads / n_kv_heads > cpu::kMaxGroup)
    return err("query heads per key/value head (", n_heads / n_kv_heads, ") exceed the supported ", cpu::kMaxGroup);
  if (!(norm_eps > 0.f) || norm_eps > 1.f) return err("RMS norm epsilon out of range: ", norm_eps);
  if (!(rope_base > 1.f) || !(rope_base_local > 1.f)) return err("RoPE base must be > 1, found ", rope_base);
  if (!(attn_scale > 0.f)) return err("attention scale must be > 0, found ", attn_scale);
  if (static_cast<int>(layer_local.size()) != n_layers) return err("layer kinds: expected ", n_layers, " entries");
  if (rope_scaling == RopeScaling::Yarn) return validate_yarn(*this);
  return {};
}

Status ModelConfig::apply_rope_override(const RopeOverride& o) {
  if (!o.active()) {
    if (o.scale != 0.f || o.orig_ctx != 0) return err("--rope-scale and --rope-orig-ctx need --rope-scaling linear or yarn");
    return {};
  }
  if (o.scale != 0.f && !(o.scale >= 1.f && o.scale <= 1024.f))
    return err("--rope-scale must be 1..1024, found ", o.scale);
  if (o.orig_ctx < 0 || o.orig_ctx > kMaxDim) return err("--rope-orig-ctx must be 1..", kMaxDim, ", found ", o.orig_ctx);
  if (o.scaling == RopeScalingMode::none) {
    if (o.scale != 0.f || o.orig_ctx != 0) return err("--rope-scaling none takes no --rope-scale or --rope-orig-ctx");
    rope_scaling = RopeScaling::None;
    rope_factor = 1.f;
    return validate();
  }
  const bool file_has = (o.scaling == RopeScalingMode::yarn && rope_scaling == RopeScaling::Yarn) ||
                        (o.scaling == RopeScalingMode::linear && rope_scaling == RopeScaling::Linear);
  if (o.scale == 0.f && !file_has)
    return err("--rope-scaling ", rope_scaling_name(o.scaling), " needs --rope-scale (the file carries no factor)");
  const float factor = o.scale != 0.f ? o.scale : rope_factor;
  if (o.scaling == RopeScalingMode::linear && o.orig_ctx != 0) return err("--rope-orig-ctx is for --rope-scaling yarn");
  // The window before scaling: the option's, else a YaRN file's original context, else the file's training context.
  int orig = n_ctx_train;
  if (o.orig_ctx > 0) {
    orig = o.orig_ctx;
  } else if (file_has && rope_scaling == RopeScaling::Yarn) {
    orig = rope_orig_ctx;
  }
  if (o.scaling == RopeScalingMode::yarn && !file_has) {
    rope_yarn_beta_fast = 32.f;  // llama.cpp's defaults for a YaRN the file does not describe
    rope_yarn_beta_slow = 1.f;
    rope_attn_factor = 1.f;
  }
  rope_scaling = o.scaling == RopeScalingMode::yarn ? RopeScaling::Yarn : RopeScaling::Linear;
  rope_factor = factor;
  rope_orig_ctx = orig;
  n_ctx_train = static_cast<int>(std::min<double>(kMaxDim, static_cast<double>(orig) * factor));
  return validate();
}

}  // namespace fkv
