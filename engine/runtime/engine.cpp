// The facade behind fkv/engine.h: owns the model, its context and the tokens in that context, so consecutive calls
// whose prompts share a beginning (a growing chat) evaluate only what is new.
#include "fkv/engine.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>

#include "backend/cpu/quant.h"
#include "runtime/engine_impl.h"
#include "runtime/generator.h"
#include "store/fingerprint.h"

namespace fkv {

namespace {

Status apply_isa(const std::string& name) {
  if (name == "auto") {
    cpu::set_active_isa(cpu::detected_isa());
  } else if (name == "scalar") {
    cpu::set_active_isa(cpu::Isa::Scalar);
  } else if (name == "avx2") {
    if (cpu::detected_isa() != cpu::Isa::Avx2)
      return err("ISA avx2 was asked for, but this CPU lacks AVX2, FMA or F16C");
    cpu::set_active_isa(cpu::Isa::Avx2);
  } else {
    return err("ISA '", name, "' is not known, expected auto, avx2 or scalar");
  }
  return {};
}

SamplerParams sampler_params(const GenerationOptions& o) {
  SamplerParams s;
  s.temperature = o.temperature;
  s.top_k = o.top_k;
  s.top_p = o.top_p;
  s.min_p = o.min_p;
  s.repeat_penalty = o.repeat_penalty;
  s.repeat_last_n = o.repeat_last_n;
  s.seed = o.seed;
  return s;
}

// The machine's memory; 0 when unknown (then a document's saved KV has no cap).
uint64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(size) : 0;
}

Status apply_retrieval(const RetrievalOptions& r, ContextParams& cp) {
  FKV_TRY(r.validate(cp.page_size));
  cp.policy = r.policy;
  cp.budget.sink_tokens = r.sink_tokens;
  cp.budget.recent_tokens = r.recent_tokens;
  cp.budget.retrieved_tokens = r.retrieved_tokens;
  cp.budget.page_size = cp.page_size;
  cp.correction_tau = r.correction_tau;
  return {};
}

size_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

Result<std::vector<int32_t>> Engine::Impl::tokenize_chat(std::span<const ChatMessage> messages) const {
  if (!chat_template) return err(template_error);
  FKV_ASSIGN_OR_RETURN(const std::string text, apply_chat_template(*chat_template, messages, true));
  const Tokenizer& tok = model->tokenizer();
  return tok.encode(text, tok.add_bos_default(), /*parse_special=*/true);
}

// The context now holds a prefix of prompt + generated (generation may stop before evaluating its last token).
void Engine::Impl::record_context(std::span<const int32_t> prompt, std::span<const int32_t> generated) {
  const size_t n_past = static_cast<size_t>(ctx->n_past());
  const size_t n_prompt = std::min(n_past, prompt.size());
  ctx_tokens.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(n_prompt));
  const size_t n_gen = std::min(n_past - n_prompt, generated.size());
  ctx_tokens.insert(ctx_tokens.end(), generated.begin(), generated.begin() + static_cast<std::ptrdiff_t>(n_gen));
}

Result<GenerateResult> Engine::Impl::run(const std::vector<int32_t>& tokens, const GenerationOptions& o,
                                         const TextCallback& cb) {
  cancel.store(false);
  if (tokens.size() > static_cast<size_t>(ctx->n_ctx())) {
    return err("the prompt has ", tokens.size(), " tokens, more than the context of ", ctx->n_ctx(),
               " (load the model with a larger context)");
  }
  // Whatever the context shares with the new prompt stays; the rest is dropped (a regenerated answer, an edited
  // question). At least the last prompt token is evaluated again, for its logits.
  size_t n_cached = common_prefix(ctx_tokens, tokens);
  if (n_cached == tokens.size() && n_cached > 0) --n_cached;
  if (n_cached < ctx_tokens.size()) {
    FKV_TRY(ctx->truncate(static_cast<int>(n_cached)));
    ctx_tokens.resize(n_cached);
  }
  GenerateParams params;
  params.max_tokens = o.max_tokens;
  params.ignore_eos = o.ignore_eos;
  params.sampler = sampler_params(o);
  params.stop = o.stop;
  params.cancel = &cancel;
  if (o.progress) {
    params.prefill_progress = [&o](int64_t done, int64_t total) { return o.progress({Stage::prompt, done, total}); };
  }
  GenerateResult r;
  r.text.reserve(static_cast<size_t>(std::clamp(o.max_tokens, 0, 1 << 16)) * 4);
  const auto on_piece = [&](std::string_view piece) {
    r.text.append(piece);
    return cb ? cb(piece) : true;
  };
  const std::span<const int32_t> fresh = std::span(tokens).subspan(n_cached);
  Result<GenerateStats> stats = fkv::generate(*ctx, fresh, params, on_piece);
  kv_damage.clear();
  if (!stats.ok()) {
    kv_damage = ctx->kv_damage();  // the reset below forgets it
    ctx->reset();  // what a failed call left in the cache is not worth reasoning about
    ctx_tokens.clear();
    return stats.status();
  }
  record_context(tokens, stats->tokens);
  r.n_prompt_tokens = static_cast<int>(tokens.size());
  r.n_cached_tokens = static_cast<int>(n_cached);
  r.n_generated = stats->n_generated;
  r.prefill_s = stats->prefill_s;
  r.decode_s = stats->decode_s;
  if (r.prefill_s > 0) r.prefill_tokens_per_s = stats->n_prompt / r.prefill_s;
  if (r.decode_s > 0) r.decode_tokens_per_s = r.n_generated / r.decode_s;
  r.stop_reason = stats->stop_reason;
  return r;
}

Engine::Engine() : impl_(std::make_unique<Impl>()) {}
Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::create(const EngineOptions& options) {
  FKV_TRY(apply_isa(options.isa));
  std::unique_ptr<Engine> e(new Engine());
  e->impl_->library_path = options.library_path;
  return e;
}

Status Engine::load_model(const std::string& path, const ModelOptions& options) {
  FKV_TRY(options.validate());
  ContextParams cp;
  cp.n_ctx = options.n_ctx == 0 ? 4096 : options.n_ctx;  // 0 (automatic) is resolved once the model is read
  cp.n_threads = options.n_threads;
  cp.page_size = options.page_size;
  cp.backend = options.backend;
  cp.device = options.device;
  cp.kv_type = kv_dtype(options.kv_type);
  cp.prefill = options.prefill;
  cp.host_kv_cap_bytes = options.host_kv_mib > 0 ? static_cast<uint64_t>(options.host_kv_mib) << 20
                                                 : physical_memory_bytes() / 2;
  FKV_TRY(apply_retrieval(options.retrieval, cp));
  FKV_TRY(cp.validate());
  std::optional<ChatTemplate> tmpl;
  if (!options.chat_template.empty()) {
    FKV_ASSIGN_OR_RETURN(tmpl, chat_template_from_name(options.chat_template));
  }
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::load(path, options.rope, weight_backing(options.backend)));
  if (options.n_ctx == 0) {
    const int train = model->config().n_ctx_train;
    cp.n_ctx = train > 0 ? std::min(train, kAutoContextMax) : 4096;
    cp.n_ctx = (cp.n_ctx + cp.page_size - 1) / cp.page_size * cp.page_size;
  }
  FKV_ASSIGN_OR_RETURN(std::unique_ptr<Context> ctx, Context::create(*model, cp));
  impl_->base_params = cp;
  impl_->auto_ctx = options.n_ctx == 0;
  std::string template_error;
  if (!tmpl) {
    Result<ChatTemplate> detected = detect_chat_template(model->gguf());
    if (detected.ok()) {
      tmpl = *detected;
    } else {
      template_error = detected.message();
    }
  }
  impl_->ctx.reset();  // the old context refers to the old model
  impl_->doc.reset();
  impl_->model_fingerprint = model_fingerprint(model->gguf());
  if (options.rope.active()) {
    // The keys depend on the rotation: snapshots made under another RoPE scaling are another model's.
    const ModelConfig& rc = model->config();
    impl_->model_fingerprint += std::string("-") + rope_scaling_name(options.rope.scaling) + std::to_string(rc.rope_factor) +
                                "x" + std::to_string(rc.rope_orig_ctx);
  }
  impl_->tokenizer_hash = tokenizer_hash(model->gguf());
  impl_->model = std::move(model);
  impl_->ctx = std::move(ctx);
  impl_->ctx->set_observer(impl_->observer);
  impl_->chat_template = tmpl;
  impl_->template_error = std::move(template_error);
  impl_->document_completion =
      options.chat_template.empty() && impl_->model->gguf().find("tokenizer.chat_template") == nullptr;
  impl_->ctx_tokens.clear();
  return {};
}

ModelInfo Engine::model_info() const {
  ModelInfo info;
  if (!impl_->model) return info;
  const Model& m = *impl_->model;
  const ModelConfig& c = m.config();
  info.loaded = true;
  info.path = m.path();
  info.name = c.name;
  info.architecture = arch_name(c.arch);
  info.n_layers = c.n_layers;
  info.n_embd = c.n_embd;
  info.n_heads = c.n_heads;
  info.n_kv_heads = c.n_kv_heads;
  info.head_dim = c.head_dim;
  info.n_ff = c.n_ff;
  info.n_vocab = c.n_vocab;
  info.n_ctx_train = c.n_ctx_train;
  info.n_ctx = impl_->ctx->n_ctx();
  info.context_memory = impl_->ctx->params().context_memory;
  info.chat_template = impl_->chat_template ? chat_template_name(*impl_->chat_template) : "unknown";
  info.file_bytes = m.gguf().file_size();
  info.weight_bytes = m.weight_bytes();
  const uint64_t elem = impl_->ctx->params().kv_type == DType::F32 ? 4 : 2;
  info.kv_bytes_per_token = 2ull * static_cast<uint64_t>(c.n_layers) * static_cast<uint64_t>(c.n_embd_kv()) * elem;
  info.backend = impl_->ctx->backend().kind;
  info.backend_note = impl_->ctx->backend().note;
  info.isa = cpu::active_isa_label();
  return info;
}

Result<GenerateResult> Engine::generate(const std::string& prompt, const GenerationOptions& options,
                                        const TextCallback& on_text) {
  FKV_TRY(impl_->check_loaded());
  const Tokenizer& tok = impl_->model->tokenizer();
  std::vector<int32_t> tokens;
  if (options.raw) {
    FKV_ASSIGN_OR_RETURN(tokens, tok.encode(prompt, tok.add_bos_default(), /*parse_special=*/true));
  } else {
    std::vector<ChatMessage> messages;
    if (!options.system_prompt.empty()) messages.push_back({"system", options.system_prompt});
    messages.push_back({"user", prompt});
    FKV_ASSIGN_OR_RETURN(tokens, impl_->tokenize_chat(messages));
  }
  return impl_->run(tokens, options, on_text);
}

Result<GenerateResult> Engine::chat(const std::vector<Message>& history, const GenerationOptions& options,
                                    const TextCallback& on_text) {
  FKV_TRY(impl_->check_loaded());
  if (history.empty() || history.back().role != "user") {
    return err("chat: the history must end with a user message, found ",
               history.empty() ? std::string("no messages") : "a '" + history.back().role + "' message");
  }
  std::vector<ChatMessage> messages;
  messages.reserve(history.size());
  for (const Message& m : history) messages.push_back({m.role, m.content});
  FKV_ASSIGN_OR_RETURN(const std::vector<int32_t> tokens, impl_->tokenize_chat(messages));
  return impl_->run(tokens, options, on_text);
}

Status Engine::set_retrieval(const RetrievalOptions& options) {
  FKV_TRY(impl_->check_loaded());
  ContextParams cp = impl_->ctx->params();
  FKV_TRY(apply_retrieval(options, cp));
  FKV_TRY(impl_->ctx->set_policy(cp.policy, cp.budget, cp.correction_tau));
  impl_->base_params.policy = cp.policy;
  impl_->base_params.budget = cp.budget;
  impl_->base_params.correction_tau = cp.correction_tau;
  return {};
}

void Engine::set_observer(TelemetryObserver* observer) {
  impl_->observer = observer;
  if (impl_->ctx) impl_->ctx->set_observer(observer);
}

EngineStats Engine::stats() const {
  EngineStats s;
  if (!impl_->ctx) return s;
  const Context& c = *impl_->ctx;
  s.n_ctx = c.n_ctx();
  s.n_tokens = c.n_past();
  s.n_ctx_train = impl_->model->config().n_ctx_train;
  s.context_memory = c.params().context_memory;
  const ModelConfig& mc = impl_->model->config();
  const uint64_t elem = c.params().kv_type == DType::F32 ? 4 : 2;
  s.kv_host_bytes = 2ull * static_cast<uint64_t>(mc.n_layers) * static_cast<uint64_t>(mc.n_embd_kv()) * elem *
                    static_cast<uint64_t>(s.n_tokens);
  s.kv_file_bytes = c.mapped_bytes();
  s.kv_file_resident_bytes = c.mapped_resident_bytes();
  s.kv_file_read_bytes = c.paged_in_bytes();
  s.kv_file_wait_s = c.file_wait_s();
  // Records are page-aligned in the file, so its bytes may exceed the KV's own; what is not resident is not host.
  s.kv_host_bytes = s.kv_host_bytes - std::min(s.kv_host_bytes, s.kv_file_bytes) + s.kv_file_resident_bytes;
  s.policy = c.params().policy;
  s.retrieval = c.stats();
  return s;
}

void Engine::cancel() { impl_->cancel.store(true); }

void Engine::reset() {
  if (impl_->ctx) impl_->ctx->reset();
  impl_->ctx_tokens.clear();
  impl_->doc.reset();
}

}  // namespace fkv
