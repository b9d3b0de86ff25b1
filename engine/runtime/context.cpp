// The forward pass. Reads top to bottom like the model's equations; every buffer is sized in create(), so eval()
// never allocates on the decode path.
#include "runtime/context.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"
#include "core/option_ranges.h"
#include "core/thread_pool.h"
#include "kv/kv_cache.h"
#include "kv/page_summary.h"
#include "kv/policy.h"
#include "kv/virtual_layout.h"
#include "model/rope.h"
#include "runtime/gpu_context.h"
#include "store/kv_snapshot.h"

namespace fkv {

namespace {
constexpr const char* kMemoryNeedsRetrieval =
    "policy full attends every token at its true distance, and this context reaches past the model's trained window: "
    "choose a policy that retrieves (freekv, quest, arkvale) or streaming";

// The mean of n rows of `width` floats (a chunk's queries, one row per token) into out.
void mean_rows(const float* rows, int n, size_t width, std::vector<float>& out) {
  out.assign(width, 0.f);
  for (int t = 0; t < n; ++t)
    for (size_t i = 0; i < width; ++i) out[i] += rows[static_cast<size_t>(t) * width + i];
  for (float& v : out) v /= static_cast<float>(n);
}
}  // namespace

Status ContextParams::validate() const {
  if (n_ctx < 1 || n_ctx > (1 << 24)) return err("context size must be 1..16777216 tokens, found ", n_ctx);
  FKV_TRY(check_page_size(page_size));
  if (n_batch < 1 || n_batch > 8192) return err("prefill batch must be 1..8192 tokens, found ", n_batch);
  FKV_TRY(check_threads(n_threads));
  if (kv_type != DType::F16 && kv_type != DType::BF16 && kv_type != DType::F32)
    return err("KV cache type must be F16, BF16 or F32, found ", dtype_name(kv_type));
  if (context_memory && policy == Policy::full) return err(kMemoryNeedsRetrieval);
  if (auto_dense_tokens < 0) return err("auto prefill's dense part must be >= 0 tokens, found ", auto_dense_tokens);
  if (context_memory && backend == Backend::cuda) return err("context memory needs the CPU backend");
  return check_device(device);
}

// Most ranges a decode step's page list is cut into per KV head (flash-decoding split).
constexpr int kMaxSplit = 16;

struct Context::Impl {
  const Model* model = nullptr;
  ContextParams params;
  BackendChoice backend;
  std::unique_ptr<GpuContext> gpu;  // set when the context runs on CUDA; nothing below is allocated then
  std::unique_ptr<ThreadPool> pool;
  KvCache cache;
  PageSummaries summaries;
  std::unique_ptr<AttentionPolicy> policy;  // decode steps
  std::unique_ptr<AttentionPolicy> exact;   // dense prefill: every page
  std::unique_ptr<AttentionPolicy> prefill_selector;  // retrieval prefill: quest over the prefill budget
  int64_t dense_until = 0;  // prefill chunks ending within this many tokens attend densely (Prefill::automatic)
  std::vector<float> q_mean;                          // (n_heads, head_dim) a chunk's mean query

  // Context memory (ContextParams::context_memory).
  bool memory = false;
  std::vector<float> q_pre;          // (n_batch, n_heads, head_dim) queries before RoPE
  std::vector<float> q_frame;        // (n_heads, head_dim) the selection's query, rotated to the scoring distance
  std::vector<float> cs_score_prefill;  // (head_dim / 2, 2) rotation to the prefill budget's local window length
  std::vector<float> cs_score_decode;   // same for the decode budget
  std::vector<uint8_t> moved_k;      // (n_kv_heads, max_moved, page_size, head_dim) keys of moved pages, rotated
  std::vector<float> moved_q;        // (n_kv_heads, max_moved, group, head_dim) a decode query per moved page
  int max_moved = 0;                 // pages a head can move: sinks + retrieved of the larger budget
  struct MovedPage {
    int head, entry, shift;
  };
  std::vector<MovedPage> moved;      // this layer's pages to rotate
  std::vector<int> shifts;           // scratch of kv/virtual_layout.h
  PageSelection selection;
  RetrievalStats stats;
  TelemetryObserver* observer = nullptr;
  int64_t step = 0;
  uint64_t last_paged_in = 0;  // the cache's paged_in_bytes() at the last recorded layer step
  double last_file_wait_s = 0;  // and its file_wait_s()

  std::vector<float> inv_freq_global;  // (head_dim / 2) RoPE frequencies of global layers
  std::vector<float> inv_freq_local;   // (head_dim / 2) sliding-window layers
  float rope_scale_global = 1.f;       // multiplies cos and sin (YaRN's magnitude correction; 1 without YaRN)
  float rope_scale_local = 1.f;
  // Decode's rotations of moved pages (move_pages) by shift, 0 <= shift <= n_pages_cap: a layer's selection, and so
  // its shifts, mostly stays from one step to the next, where each rotation costs head_dim / 2 sines and cosines.
  std::vector<float> rotations;    // (n_pages_cap + 1, head_dim) cos/sin pairs of R(-shift pages), sized on first use
  std::vector<uint8_t> rotation_known;  // (n_pages_cap + 1)

  // Activations of one chunk (n_batch tokens).
  std::vector<float> x;        // (n_batch, n_embd) residual stream
  std::vector<float> xb;       // (n_batch, n_embd) normed input / block output
  std::vector<float> q;        // (n_batch, n_heads, head_dim)
  std::vector<float> k;        // (n_batch, n_kv_heads, head_dim)
  std::vector<float> v;        // (n_batch, n_kv_heads, head_dim)
  std::vector<float> att;      // (n_batch, n_heads, head_dim)
  std::vector<float> hb;       // (n_batch, n_ff) gate
  std::vector<float> hb2;      // (n_batch, n_ff) up
  std::vector<float> cos_sin;  // (n_batch, head_dim / 2, 2)
  std::vector<cpu::AttnPage> pages;  // (n_kv_heads, n_pages_cap) page lists handed to attention
  std::vector<int> n_sel;            // (n_kv_heads) pages selected per KV head this layer
  std::vector<float> part_acc;       // (n_kv_heads, kMaxSplit, group, head_dim) decode partial attention states
  std::vector<float> part_m;         // (n_kv_heads, kMaxSplit, group) running max
  std::vector<float> part_l;         // (n_kv_heads, kMaxSplit, group) running sum
  std::vector<uint8_t> mm_scratch;   // encoded matmul inputs

  void matmul(const cpu::MatrixView& w, const float* in, int n, float* out) {
    cpu::matmul(w, in, n, out, w.n_rows, mm_scratch.data(), *pool);
  }
  void forward(const int32_t* tokens, int n, LogitsMode mode, float* logits);
  void attention_layer(int il, int pos0, int n);
  void prefill_attention(int pos0, int n, int window, int n_pages_cap);
  void decode_attention(int pos0, int window, int n_pages_cap);
  void fill_rope(const std::vector<float>& inv_freq, float scale, int pos0, int n);
  void gather_pages(int kv_head, int n_tokens, cpu::AttnPage* out);
  void record(int il, const SelectCounters& sc);
  void summarise_sealed(int il, int n_tokens);
  void set_memory_budgets();
  void frame_query(int n, bool prefill);
  void move_pages(int n_pages, const Budget& b, int n_pages_cap, bool decode);

  // What a policy sees of this context; the context's page size wins over the budget's.
  PolicyContext policy_context(const Budget& budget, float tau) const {
    const ModelConfig& c = model->config();
    PolicyContext pc{&cache, &summaries, budget, tau, c.n_layers, c.n_kv_heads, c.n_heads, c.head_dim,
                     cache.capacity_tokens() / params.page_size};
    pc.budget.page_size = params.page_size;
    pc.speculate_inline = params.speculation == Speculation::inline_;
    pc.pool = pool.get();
    return pc;
  }
};

namespace {

constexpr size_t kRetrievalTail = 32;  // tokens of a long prompt's end evaluated as their own chunk

size_t max_scratch(const Model& m, int n_batch) {
  size_t s = cpu::matmul_scratch_bytes(m.weights().output.type, m.weights().output.n_cols, n_batch);
  for (const LayerWeights& l : m.weights().layers)
    for (const cpu::MatrixView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      s = std::max(s, cpu::matmul_scratch_bytes(w->type, w->n_cols, n_batch));
  return s;
}

}  // namespace

Context::~Context() = default;

Result<std::unique_ptr<Context>> Context::create(const Model& model, const ContextParams& params) {
  FKV_TRY(params.validate());
  const ModelConfig& c = model.config();
  std::unique_ptr<Context> ctx(new Context());
  ctx->impl_ = std::make_unique<Impl>();
  Impl& s = *ctx->impl_;
  s.model = &model;
  s.params = params;
  if (s.params.speculation == Speculation::automatic) {
    const int threads = params.n_threads > 0 ? params.n_threads : ThreadPool::default_threads();
    s.params.speculation = threads >= ThreadPool::default_threads() ? Speculation::inline_ : Speculation::background;
  }
  s.params.n_batch = std::min(params.n_batch, params.n_ctx);
  FKV_ASSIGN_OR_RETURN(s.backend, choose_backend(params.backend, params.policy, params.device));
  if (s.backend.kind == Backend::cuda) {
    auto gpu = GpuContext::create(model, s.params);  // s.params.n_batch: the chunk the GPU runs too
    if (gpu.ok()) {
      s.gpu = std::move(gpu).value();
      return ctx;
    }
    // Out of device memory or a driver that cannot run this build: "auto" still works, on the CPU.
    if (params.backend == Backend::cuda) return err("backend cuda: ", gpu.message(), "; use backend cpu instead");
    s.backend = BackendChoice{Backend::cpu, params.device, "auto: " + gpu.message() + "; running on the CPU"};
  }
  s.pool = std::make_unique<ThreadPool>(params.n_threads > 0 ? params.n_threads : ThreadPool::default_threads());
  KvGeometry g{c.n_layers, c.n_kv_heads, c.head_dim, params.page_size, params.kv_type};
  FKV_ASSIGN_OR_RETURN(s.cache, KvCache::create(g, params.n_ctx));
  FKV_TRY(s.summaries.init(g, s.cache.capacity_tokens() / params.page_size));
  s.memory = params.context_memory;
  // Context memory scores its long ranges from 8-bit codes of the summaries (kv/page_summary.h); FKV_SUMMARY_CODES=0
  // in the environment keeps the F16 pass, to compare the two.
  const char* codes_env = std::getenv("FKV_SUMMARY_CODES");
  if (s.memory && !(codes_env != nullptr && std::string_view(codes_env) == "0")) FKV_TRY(s.summaries.enable_codes());
  if (s.memory) {
    s.q_pre.resize(static_cast<size_t>(s.params.n_batch) * c.n_embd_q());
    s.q_frame.resize(static_cast<size_t>(c.n_embd_q()));
    s.params.prefill = Prefill::retrieval;  // a dense prompt would see distances past the trained window
  }
  FKV_ASSIGN_OR_RETURN(s.exact, make_policy(Policy::full, s.policy_context(params.budget, params.correction_tau)));
  if (s.params.prefill == Prefill::automatic) s.dense_until = std::max(0, params.auto_dense_tokens);
  if (s.params.prefill != Prefill::dense) {
    // Whole pages; the recent window holds the local window, the chunk and the page the chunk starts inside.
    const int ps = params.page_size;
    const auto pages_of = [ps](int tokens) { return (tokens + ps - 1) / ps * ps; };
    Budget b = params.prefill_budget;
    b.page_size = ps;
    b.sink_tokens = pages_of(b.sink_tokens);
    b.recent_tokens = pages_of(b.recent_tokens) + pages_of(s.params.n_batch) + ps;
    b.retrieved_tokens = pages_of(b.retrieved_tokens);
    FKV_ASSIGN_OR_RETURN(s.prefill_selector, make_policy(Policy::quest, s.policy_context(b, params.correction_tau)));
    s.params.prefill_budget = b;
  }
  FKV_TRY(ctx->set_policy(params.policy, params.budget, params.correction_tau));
  s.observer = params.observer;

  const float* rf = model.weights().rope_freqs;
  const bool gemma = c.arch == Arch::Gemma3;  // gemma scales only its global layers' RoPE
  s.inv_freq_global = rope_inv_freq(c, rf, c.rope_base, true);
  s.inv_freq_local = rope_inv_freq(c, rf, c.rope_base_local, !gemma);
  s.rope_scale_global = rope_mscale(c, true);
  s.rope_scale_local = rope_mscale(c, !gemma);
  if (s.memory) s.set_memory_budgets();

  const size_t nb = static_cast<size_t>(s.params.n_batch);
  s.x.resize(nb * c.n_embd);
  s.xb.resize(nb * c.n_embd);
  s.q.resize(nb * c.n_embd_q());
  s.k.resize(nb * c.n_embd_kv());
  s.v.resize(nb * c.n_embd_kv());
  s.att.resize(nb * c.n_embd_q());
  s.hb.resize(nb * c.n_ff);
  s.hb2.resize(nb * c.n_ff);
  s.cos_sin.resize(nb * c.head_dim);
  s.pages.resize(static_cast<size_t>(c.n_kv_heads) * (s.cache.capacity_tokens() / params.page_size));
  s.mm_scratch.resize(max_scratch(model, s.params.n_batch));
  s.n_sel.resize(static_cast<size_t>(c.n_kv_heads));
  s.part_acc.resize(static_cast<size_t>(c.n_heads) * kMaxSplit * c.head_dim);
  s.part_m.resize(static_cast<size_t>(c.n_heads) * kMaxSplit);
  s.part_l.resize(static_cast<size_t>(c.n_heads) * kMaxSplit);
  s.selection.indptr.reserve(static_cast<size_t>(c.n_kv_heads) + 1);
  s.selection.indices.reserve(s.pages.size());
  s.selection.k_blocks.reserve(s.pages.size());
  s.selection.v_blocks.reserve(s.pages.size());
  return ctx;
}

int Context::n_past() const { return impl_->gpu ? impl_->gpu->n_past() : impl_->cache.n_tokens(); }
int Context::n_ctx() const { return impl_->params.n_ctx; }
const BackendChoice& Context::backend() const { return impl_->backend; }
Speculation Context::speculation() const { return impl_->params.speculation; }
void Context::reset() {
  if (impl_->gpu) return impl_->gpu->reset();
  impl_->policy->reset();
  impl_->cache.set_n_tokens(0);
  impl_->cache.unmap_all();
  impl_->summaries.reset();
  impl_->stats = RetrievalStats{};
}
Status Context::truncate(int n_tokens) {
  Impl& s = *impl_;
  if (s.gpu) return s.gpu->truncate(n_tokens);
  if (n_tokens < 0 || n_tokens > s.cache.n_tokens())
    return err("truncate: expected 0..", s.cache.n_tokens(), " tokens (those in the context), found ", n_tokens);
  s.policy->reset();
  s.cache.set_n_tokens(n_tokens);
  // A page that is partial again loses its summary; it is rebuilt when the page fills up anew.
  const int sealed = n_tokens / s.params.page_size;
  for (int l = 0; l < s.model->config().n_layers; ++l)
    s.summaries.set_n_built(l, std::min(s.summaries.n_built(l), sealed));
  s.stats = RetrievalStats{};
  return {};
}
const RetrievalStats& Context::stats() const { return impl_->stats; }

int64_t Context::exact_prefill_tokens() const {
  const Impl& s = *impl_;
  if (s.memory) return 0;
  if (!s.prefill_selector) return std::numeric_limits<int64_t>::max();
  return std::max<int64_t>(s.params.prefill_budget.total_tokens(), s.dense_until);
}

Status Context::save_kv(const std::string& path, const SnapshotMeta& meta, int first_page,
                        const ByteProgress& progress) const {
  if (impl_->gpu) return err("KV snapshots need the CPU backend: this context's KV cache lives on the GPU");
  return save_kv_snapshot(path, meta, impl_->cache, impl_->summaries, first_page, progress);
}

Status Context::load_kv(const PageFileReader& file, const SnapshotMeta& meta) {
  Impl& s = *impl_;
  if (s.gpu) return err("KV snapshots need the CPU backend: this context's KV cache lives on the GPU");
  s.policy->reset();
  s.stats = RetrievalStats{};
  if (file.info().first_page == 0) reset();
  return load_kv_snapshot(file, meta, s.cache, s.summaries, s.pool.get());
}

Status Context::map_kv(std::shared_ptr<const PageFileReader> file, const SnapshotMeta& meta) {
  Impl& s = *impl_;
  if (s.gpu) return err("KV snapshots need the CPU backend: this context's KV cache lives on the GPU");
  s.policy->reset();
  s.stats = RetrievalStats{};
  if (file->info().first_page == 0) reset();
  Status st = map_kv_snapshot(std::move(file), meta, s.cache, s.summaries, s.pool.get());
  if (!st.ok()) reset();
  return st;
}

uint64_t Context::mapped_resident_bytes() const { return impl_->cache.mapped_resident_bytes(); }
uint64_t Context::paged_in_bytes() const { return impl_->cache.paged_in_bytes(); }
double Context::file_wait_s() const { return impl_->cache.file_wait_s(); }
const KvCache& Context::kv_cache() const { return impl_->cache; }
std::string Context::kv_damage() const { return impl_->cache.damage(); }
uint64_t Context::mapped_bytes() const { return impl_->cache.mapped_bytes(); }

Status Context::set_policy(Policy policy, const Budget& budget, float correction_tau) {
  Impl& s = *impl_;
  if (s.gpu && policy != Policy::full) {
    return err("policy '", policy_name(policy),
               "' needs the CPU backend: the CUDA backend attends to every page (policy full)");
  }
  if (s.gpu) return {};
  if (s.memory && policy == Policy::full) return err(kMemoryNeedsRetrieval);
  const PolicyContext pc = s.policy_context(budget, correction_tau);
  FKV_ASSIGN_OR_RETURN(s.policy, make_policy(policy, pc));
  s.params.policy = policy;
  s.params.budget = pc.budget;
  s.params.correction_tau = correction_tau;
  s.stats = RetrievalStats{};
  if (s.memory && !s.inv_freq_global.empty()) s.set_memory_budgets();
  return {};
}
void Context::set_observer(TelemetryObserver* observer) { impl_->observer = observer; }
const Model& Context::model() const { return *impl_->model; }
const ContextParams& Context::params() const { return impl_->params; }

Status Context::eval(std::span<const int32_t> tokens, LogitsMode mode, std::span<float> logits) {
  Impl& s = *impl_;
  const int n_vocab = s.model->config().n_vocab;
  const size_t n = tokens.size();
  if (n == 0) return err("nothing to evaluate: the token list is empty");
  if (static_cast<size_t>(n_past()) + n > static_cast<size_t>(s.params.n_ctx))
    return err("context overflow: ", n_past(), " tokens held + ", n, " new > context size ", s.params.n_ctx);
  for (size_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= n_vocab)
      return err("token id ", tokens[i], " at index ", i, " is outside the vocabulary (0..", n_vocab - 1, ")");
  const size_t need = (mode == LogitsMode::All ? n : 1) * static_cast<size_t>(n_vocab);
  if (logits.size() < need) return err("logits buffer holds ", logits.size(), " floats, ", need, " needed");
  if (s.gpu) return s.gpu->eval(tokens, mode == LogitsMode::All, logits);

  // A retrieval prefill that has to choose selects with each chunk's mean query, so the prompt's tail (where a
  // question sits) is a chunk of its own rather than the end of a chunk of document text.
  size_t body = n;
  const size_t budget = static_cast<size_t>(s.params.prefill_budget.total_tokens());
  const size_t tail = std::min(kRetrievalTail, static_cast<size_t>(s.params.n_batch));  // the buffers hold n_batch
  const size_t exact = std::max(budget, static_cast<size_t>(s.dense_until));
  if (s.prefill_selector && n > tail && static_cast<size_t>(n_past()) + n > exact) body = n - tail;
  const int n_before = n_past();
  size_t i = 0;
  while (i < n) {
    const size_t end = i < body ? std::min(body, i + static_cast<size_t>(s.params.n_batch)) : n;
    const int chunk = static_cast<int>(end - i);
    const bool last = end == n;
    float* out = mode == LogitsMode::All ? logits.data() + i * n_vocab : (last ? logits.data() : nullptr);
    s.forward(tokens.data() + i, chunk, mode, out);
    i = end;
  }
  // A page read from its file that failed its check was attended as zeros: the result is void. The cache stays as it
  // was before the call (the new tokens are dropped) so the caller can say which file is damaged and recompute.
  if (const std::string damage = s.cache.damage(); !damage.empty()) {
    (void)truncate(n_before);
    return err("the saved KV is damaged: ", damage);
  }
  return {};
}

// A scale of exactly 1 (every model without YaRN) leaves cos and sin bit for bit as computed.
void Context::Impl::fill_rope(const std::vector<float>& inv_freq, float scale, int pos0, int n) {
  const size_t half = inv_freq.size();
  for (int t = 0; t < n; ++t)
    for (size_t i = 0; i < half; ++i) {
      if (memory) {  // positions past 2^20 need double-precision angles (kv/virtual_layout.h)
        const double a = static_cast<double>(pos0 + t) * static_cast<double>(inv_freq[i]);
        cos_sin[(t * half + i) * 2] = static_cast<float>(std::cos(a)) * scale;
        cos_sin[(t * half + i) * 2 + 1] = static_cast<float>(std::sin(a)) * scale;
        continue;
      }
      const float a = static_cast<float>(pos0 + t) * inv_freq[i];
      cos_sin[(t * half + i) * 2] = std::cos(a) * scale;
      cos_sin[(t * half + i) * 2 + 1] = std::sin(a) * scale;
    }
}

// Turns head kv_head's part of the selection into page views for the attention kernels.
void Context::Impl::gather_pages(int kv_head, int n_tokens, cpu::AttnPage* out) {
  const int ps = params.page_size;
  const int b = selection.indptr[static_cast<size_t>(kv_head)];
  const int e = selection.indptr[static_cast<size_t>(kv_head) + 1];
  n_sel[static_cast<size_t>(kv_head)] = e - b;
  for (int i = b; i < e; ++i) {
    const int p = selection.indices[static_cast<size_t>(i)];
    out[i - b] = {selection.k_blocks[static_cast<size_t>(i)], selection.v_blocks[static_cast<size_t>(i)], p * ps,
                  std::min(ps, n_tokens - p * ps)};
  }
}

// Builds the summaries of layer il's pages that filled up, now that their keys are stored.
// Under context memory a page's summary is of its keys rotated back to the page's start (frame_query scores it).
void Context::Impl::summarise_sealed(int il, int n_tokens) {
  const int sealed = n_tokens / params.page_size;
  // freekv's speculation for this layer may still be scoring its pages (a recode rewrites them all)
  if (sealed > summaries.n_built(il)) policy->sync(il);
  float cs[cpu::kMaxHeadDim];
  const bool neox = model->config().rope_style == RopeStyle::Neox;
  for (int p = summaries.n_built(il); p < sealed; ++p) {
    if (!memory) {
      summaries.build(il, p, cache);
      continue;
    }
    rotation_by(inv_freq_global, -static_cast<int64_t>(p) * params.page_size, cs);
    summaries.build(il, p, cache, cs, neox);
  }
  summaries.set_n_built(il, sealed);
  summaries.update_codes(il);
}

// Context memory's scoring distances and the room for moved pages, from the prefill and decode budgets.
void Context::Impl::set_memory_budgets() {
  const ModelConfig& c = model->config();
  const size_t half = static_cast<size_t>(c.head_dim) / 2;
  cs_score_prefill.resize(2 * half);
  cs_score_decode.resize(2 * half);
  rotation_by(inv_freq_global, params.prefill_budget.recent_tokens, cs_score_prefill.data());
  rotation_by(inv_freq_global, params.budget.recent_tokens, cs_score_decode.data());
  const auto movable = [](const Budget& b) { return b.sink_pages() + b.retrieved_pages(); };
  max_moved = std::max(movable(params.prefill_budget), movable(params.budget));
  const size_t page = static_cast<size_t>(params.page_size) * c.head_dim * row_bytes(params.kv_type, 1);
  moved_k.resize(static_cast<size_t>(c.n_kv_heads) * max_moved * page);
  moved_q.resize(static_cast<size_t>(c.n_heads) * max_moved * c.head_dim);
  moved.reserve(static_cast<size_t>(c.n_kv_heads) * max_moved);
  shifts.reserve(pages.size());
}

// The selection's query under context memory: the chunk's mean query before RoPE (one token's when decoding), rotated
// to the budget's local window length, so every page is scored at a distance the model was trained on.
void Context::Impl::frame_query(int n, bool prefill) {
  const ModelConfig& c = model->config();
  mean_rows(q_pre.data(), n, static_cast<size_t>(c.n_embd_q()), q_frame);
  const float* cs = prefill ? cs_score_prefill.data() : cs_score_decode.data();
  const bool neox = c.rope_style == RopeStyle::Neox;
  for (int h = 0; h < c.n_heads; ++h) cpu::rope_head(&q_frame[static_cast<size_t>(h) * c.head_dim], cs, c.head_dim, neox);
}

// Context memory: the selected pages before the local window are attended as if they lay right before it
// (kv/virtual_layout.h), q . R(d)k being the key moved d positions later. A prefill chunk's many queries meet each
// moved page, so its stored keys are rotated into moved_k; a decode step's one query is rotated the other way for
// each moved page instead (R(-d)q . k), into moved_q, which costs a group of queries rather than a page of keys.
void Context::Impl::move_pages(int n_pages, const Budget& b, int n_pages_cap, bool decode) {
  const ModelConfig& c = model->config();
  const int local_begin = local_window_begin(n_pages, b.sink_pages(), b.recent_pages());
  moved.clear();
  for (int h = 0; h < c.n_kv_heads; ++h) {
    const int e0 = selection.indptr[static_cast<size_t>(h)];
    const int e1 = selection.indptr[static_cast<size_t>(h) + 1];
    const int m = virtual_shifts({selection.indices.data() + e0, static_cast<size_t>(e1 - e0)}, local_begin, shifts);
    for (int j = 0; j < m; ++j) {
      const int shift = shifts[static_cast<size_t>(j)];
      // A selection that moves pages holds at most the budget's sinks and retrieved pages before the local window.
      if (shift != 0 && j < max_moved) moved.push_back({h, j, shift});
    }
  }
  if (moved.empty()) return;
  const int hd = c.head_dim;
  const int group = c.group_size();
  const bool neox = c.rope_style == RopeStyle::Neox;
  if (decode) {
    if (rotation_known.size() < static_cast<size_t>(n_pages_cap) + 1) {
      rotation_known.assign(static_cast<size_t>(n_pages_cap) + 1, 0);
      rotations.resize(rotation_known.size() * hd);
    }
    for (const MovedPage& mp : moved) {
      const size_t slot = static_cast<size_t>(mp.head) * max_moved + mp.entry;
      float* mq = &moved_q[slot * group * hd];
      std::copy_n(&q[static_cast<size_t>(mp.head) * group * hd], static_cast<size_t>(group) * hd, mq);
      // Pages move toward the window, by 1..n_pages_cap pages; any other shift is computed each time.
      const size_t r = static_cast<size_t>(mp.shift);
      float own[cpu::kMaxHeadDim];
      float* cs = r < rotation_known.size() ? &rotations[r * hd] : own;
      if (cs == own || rotation_known[r] == 0) {
        rotation_by(inv_freq_global, -static_cast<int64_t>(mp.shift) * params.page_size, cs);
        if (cs != own) rotation_known[r] = 1;
      }
      for (int g = 0; g < group; ++g) cpu::rope_head(mq + static_cast<size_t>(g) * hd, cs, hd, neox);
      pages[static_cast<size_t>(mp.head) * n_pages_cap + mp.entry].q = mq;
    }
    return;
  }
  const size_t row = static_cast<size_t>(hd) * row_bytes(params.kv_type, 1);
  const size_t page_bytes = row * params.page_size;
  for (const MovedPage& mp : moved)
    pages[static_cast<size_t>(mp.head) * n_pages_cap + mp.entry].k =
        moved_k.data() + (static_cast<size_t>(mp.head) * max_moved + mp.entry) * page_bytes;
  struct Job {
    Impl* s;
    int n_pages_cap;
    size_t row;
  } job{this, n_pages_cap, row};
  pool->parallel_for(static_cast<int64_t>(moved.size()), 1, [jp = &job](int64_t begin, int64_t end) {
    Impl& s = *jp->s;
    const ModelConfig& c = s.model->config();
    const int hd = c.head_dim;
    const bool neox = c.rope_style == RopeStyle::Neox;
    float cs[cpu::kMaxHeadDim];
    float key[cpu::kMaxHeadDim];
    int cs_shift = -1;
    for (int64_t i = begin; i < end; ++i) {
      const MovedPage& mp = s.moved[static_cast<size_t>(i)];
      const size_t e = static_cast<size_t>(s.selection.indptr[static_cast<size_t>(mp.head)] + mp.entry);
      const uint8_t* src = s.selection.k_blocks[e];
      auto* dst = const_cast<uint8_t*>(s.pages[static_cast<size_t>(mp.head) * jp->n_pages_cap + mp.entry].k);
      if (mp.shift != cs_shift)
        rotation_by(s.inv_freq_global, static_cast<int64_t>(mp.shift) * s.params.page_size, cs);
      cs_shift = mp.shift;
      for (int j = 0; j < s.params.page_size; ++j) {
        cpu::load_kv_row(s.params.kv_type, src + j * jp->row, key, hd);
        cpu::rope_head(key, cs, hd, neox);
        cpu::store_kv_row(s.params.kv_type, key, dst + j * jp->row, hd);
      }
    }
  });
}

// Counts a decode step's selection in the running totals and hands it to the observer, if any.
void Context::Impl::record(int il, const SelectCounters& sc) {
  RetrievalCounters counted = sc;
  counted.pages_selected = selection.indptr.back();
  // What came in from a page file since the previous layer step (a reset starts the count again from 0).
  const uint64_t paged_in = cache.paged_in_bytes();
  counted.bytes_from_file = paged_in >= last_paged_in ? paged_in - last_paged_in : paged_in;
  last_paged_in = paged_in;
  const double waited = cache.file_wait_s();
  counted.file_wait_s = waited >= last_file_wait_s ? waited - last_file_wait_s : waited;
  last_file_wait_s = waited;
  stats.layer_steps += 1;
  stats += counted;
  if (observer == nullptr) return;
  LayerStepEvent e;
  static_cast<RetrievalCounters&>(e) = counted;
  e.step = step;
  e.layer = il;
  e.policy = policy->kind();
  e.n_kv_heads = model->config().n_kv_heads;
  e.sel_indptr = selection.indptr.data();
  e.sel_pages = selection.indices.data();
  e.cosine = sc.cosine;
  e.corrected = sc.corrected;
  observer->on_layer_step(e);
}

// Attention of tokens pos0..pos0+n-1 of layer il; their K and V are already in the cache.
void Context::Impl::attention_layer(int il, int pos0, int n) {
  const ModelConfig& c = model->config();
  const int n_tokens = pos0 + n;
  const int n_pages = (n_tokens + params.page_size - 1) / params.page_size;
  const bool local = c.layer_local[static_cast<size_t>(il)] != 0;
  const int window = local ? c.sliding_window : 0;
  const int n_pages_cap = static_cast<int>(pages.size()) / c.n_kv_heads;

  // Page lists per KV head: the policy chooses for a decode step; prefill (n > 1) attends everything it may see.
  const int first_page = window > 0 ? std::max(0, pos0 - window + 1) / params.page_size : 0;
  SelectionQuery query{il, c.n_kv_heads, c.group_size(), c.head_dim, pos0, n_pages, first_page, local, q.data()};
  SelectCounters sc;
  const bool memory_layer = memory && !local;
  if (memory_layer) {
    frame_query(n, n > 1);
    query.q = q_frame.data();
  }
  if (n > 1 && prefill_selector && !local && pos0 + n > dense_until) {
    // The chunk's tokens share one selection, made with their mean query at the chunk's last position.
    if (!memory_layer) {
      mean_rows(q.data(), n, static_cast<size_t>(c.n_heads) * c.head_dim, q_mean);
      query.q = q_mean.data();
    }
    query.pos = pos0 + n - 1;
    prefill_selector->select(query, selection, sc);
  } else {
    (n == 1 ? policy : exact)->select(query, selection, sc);
  }
  for (int h = 0; h < c.n_kv_heads; ++h) gather_pages(h, n_tokens, pages.data() + h * n_pages_cap);
  if (memory_layer) move_pages(n_pages, n > 1 ? params.prefill_budget : params.budget, n_pages_cap, n == 1);
  if (n == 1) record(il, sc);

  if (n == 1) {
    decode_attention(pos0, window, n_pages_cap);
    policy->after_attention(query);
  } else {
    prefill_attention(pos0, n, window, n_pages_cap);
  }
}

// Prefill: one work item per (tile of tokens, KV head); the group's query heads are contiguous in q and att. A tile's
// tokens are attended together (cpu::attend_causal), so each key and value block is converted once for all of them.
void Context::Impl::prefill_attention(int pos0, int n, int window, int n_pages_cap) {
  const ModelConfig& c = model->config();
  const int group = c.group_size();
  bool own_query = false;  // a page scored with its own query cannot share a tile's
  for (int h = 0; h < c.n_kv_heads && !own_query; ++h)
    for (int i = 0; i < n_sel[static_cast<size_t>(h)] && !own_query; ++i)
      own_query = pages[static_cast<size_t>(h) * n_pages_cap + i].q != nullptr;
  const int tile = own_query || c.head_dim > cpu::kMaxTileHeadDim ? 1 : std::clamp(cpu::kMaxTileRows / group, 1, 8);
  struct Job {
    Impl* s;
    int pos0, n, window, n_pages_cap, tile;
  } job{this, pos0, n, window, n_pages_cap, tile};
  const int64_t n_tiles = (n + tile - 1) / tile;
  // Captures one pointer, so std::function keeps it inline.
  pool->parallel_for(n_tiles * c.n_kv_heads, 1, [jp = &job](int64_t begin, int64_t end) {
    Impl& s = *jp->s;
    const ModelConfig& c = s.model->config();
    const int hd = c.head_dim;
    const int group = c.group_size();
    const int64_t stride = static_cast<int64_t>(c.n_heads) * hd;
    float m[cpu::kMaxGroup];
    float l[cpu::kMaxGroup];
    for (int64_t item = begin; item < end; ++item) {
      const int t0 = static_cast<int>(item / c.n_kv_heads) * jp->tile;
      const int kvh = static_cast<int>(item % c.n_kv_heads);
      const int n_tok = std::min(jp->tile, jp->n - t0);
      const size_t off = (static_cast<size_t>(t0) * c.n_heads + static_cast<size_t>(kvh) * group) * hd;
      const cpu::AttnPage* pages = s.pages.data() + kvh * jp->n_pages_cap;
      const int n_sel = s.n_sel[static_cast<size_t>(kvh)];
      if (jp->tile > 1) {
        cpu::attend_causal(s.q.data() + off, stride, n_tok, group, pages, n_sel, s.params.kv_type, hd, c.attn_scale,
                           jp->pos0 + t0, jp->window, s.att.data() + off, stride);
        continue;
      }
      const int pos = jp->pos0 + t0;
      const int lo = jp->window > 0 ? std::max(0, pos - jp->window + 1) : 0;
      float* out = s.att.data() + off;
      cpu::attend_partial(s.q.data() + off, group, pages, n_sel, s.params.kv_type, hd, c.attn_scale, lo, pos, out, m, l);
      for (int g = 0; g < group; ++g) {
        const float inv = l[g] > 0.f ? 1.f / l[g] : 0.f;
        for (int d = 0; d < hd; ++d) out[g * hd + d] *= inv;
      }
    }
  });
}

// Decode: the page list of each KV head is cut into up to kMaxSplit ranges so that even one KV head keeps every thread
// busy at long context (flash-decoding); partial softmax states are merged afterwards.
void Context::Impl::decode_attention(int pos0, int window, int n_pages_cap) {
  const ModelConfig& c = model->config();
  const int want = 2 * pool->size();
  const int n_split = std::clamp((want + c.n_kv_heads - 1) / c.n_kv_heads, 1, kMaxSplit);
  struct Job {
    Impl* s;
    int pos0, lo, n_pages_cap, n_split;
  } job{this, pos0, window > 0 ? std::max(0, pos0 - window + 1) : 0, n_pages_cap, n_split};
  pool->parallel_for(static_cast<int64_t>(c.n_kv_heads) * n_split, 1, [jp = &job](int64_t begin, int64_t end) {
    Impl& s = *jp->s;
    const ModelConfig& c = s.model->config();
    const int hd = c.head_dim;
    const int group = c.group_size();
    for (int64_t item = begin; item < end; ++item) {
      const int kvh = static_cast<int>(item / jp->n_split);
      const int part = static_cast<int>(item % jp->n_split);
      const int n_sel = s.n_sel[static_cast<size_t>(kvh)];
      const int p0 = n_sel * part / jp->n_split;
      const int p1 = n_sel * (part + 1) / jp->n_split;
      const size_t slot = static_cast<size_t>(kvh) * kMaxSplit + part;
      cpu::attend_partial(s.q.data() + static_cast<size_t>(kvh) * group * hd, group,
                          s.pages.data() + kvh * jp->n_pages_cap + p0, p1 - p0, s.params.kv_type, hd, c.attn_scale,
                          jp->lo, jp->pos0, &s.part_acc[slot * group * hd], &s.part_m[slot * group],
                          &s.part_l[slot * group]);
    }
  });
  const int group = c.group_size();
  for (int kvh = 0; kvh < c.n_kv_heads; ++kvh) {
    const size_t slot = static_cast<size_t>(kvh) * kMaxSplit;
    cpu::attend_merge(&part_acc[slot * group * c.head_dim], &part_m[slot * group], &part_l[slot * group], n_split, group,
                      c.head_dim, &att[static_cast<size_t>(kvh) * group * c.head_dim]);
  }
}

void Context::Impl::forward(const int32_t* tokens, int n, LogitsMode mode, float* logits) {
  const ModelConfig& c = model->config();
  const ModelWeights& w = model->weights();
  const int d = c.n_embd;
  const int hd = c.head_dim;
  const int pos0 = cache.n_tokens();
  const bool neox = c.rope_style == RopeStyle::Neox;

  // 1. Token embeddings (scaled for gemma).
  const size_t embd_row = row_bytes(w.tok_embd.type, d);
  for (int t = 0; t < n; ++t) {
    const auto* row = static_cast<const uint8_t*>(w.tok_embd.data) + static_cast<size_t>(tokens[t]) * embd_row;
    cpu::dequantize_row(w.tok_embd.type, row, x.data() + static_cast<size_t>(t) * d, d);
    if (c.embd_scale != 1.f)
      for (int i = 0; i < d; ++i) x[static_cast<size_t>(t) * d + i] *= c.embd_scale;
  }

  for (int il = 0; il < c.n_layers; ++il) {
    const LayerWeights& L = w.layers[static_cast<size_t>(il)];
    const bool local = c.layer_local[static_cast<size_t>(il)] != 0;

    // 2. Attention block: h = norm(x); q, k, v = projections; per-head norms (gemma); RoPE; cache; attend; project.
    for (int t = 0; t < n; ++t) cpu::rms_norm(&x[t * d], L.attn_norm, &xb[t * d], d, c.norm_eps);
    matmul(L.wq, xb.data(), n, q.data());
    matmul(L.wk, xb.data(), n, k.data());
    matmul(L.wv, xb.data(), n, v.data());
    for (int t = 0; t < n; ++t) {
      if (L.bq != nullptr) {
        for (int i = 0; i < c.n_embd_q(); ++i) q[static_cast<size_t>(t) * c.n_embd_q() + i] += L.bq[i];
        for (int i = 0; i < c.n_embd_kv(); ++i) k[static_cast<size_t>(t) * c.n_embd_kv() + i] += L.bk[i];
        for (int i = 0; i < c.n_embd_kv(); ++i) v[static_cast<size_t>(t) * c.n_embd_kv() + i] += L.bv[i];
      }
    }
    if (local) fill_rope(inv_freq_local, rope_scale_local, pos0, n);
    else fill_rope(inv_freq_global, rope_scale_global, pos0, n);
    for (int t = 0; t < n; ++t) {
      const float* cs = &cos_sin[static_cast<size_t>(t) * hd];
      for (int h = 0; h < c.n_heads; ++h) {
        float* qh = &q[(static_cast<size_t>(t) * c.n_heads + h) * hd];
        if (L.q_norm != nullptr) cpu::rms_norm(qh, L.q_norm, qh, hd, c.norm_eps);
        if (memory) std::copy(qh, qh + hd, &q_pre[(static_cast<size_t>(t) * c.n_heads + h) * hd]);
        cpu::rope_head(qh, cs, hd, neox);
      }
      for (int h = 0; h < c.n_kv_heads; ++h) {
        float* kh = &k[(static_cast<size_t>(t) * c.n_kv_heads + h) * hd];
        if (L.k_norm != nullptr) cpu::rms_norm(kh, L.k_norm, kh, hd, c.norm_eps);
        cpu::rope_head(kh, cs, hd, neox);
      }
    }
    cache.write(il, pos0, n, k.data(), v.data());
    summarise_sealed(il, pos0 + n);
    attention_layer(il, pos0, n);
    // Pages read in place from a file: the ones this layer did not touch lately go back to it past the cap.
    if (params.host_kv_cap_bytes > 0) cache.trim(params.host_kv_cap_bytes);
    matmul(L.wo, att.data(), n, xb.data());
    for (int t = 0; t < n; ++t) {
      if (L.post_attn_norm != nullptr) cpu::rms_norm(&xb[t * d], L.post_attn_norm, &xb[t * d], d, c.norm_eps);
      for (int i = 0; i < d; ++i) x[static_cast<size_t>(t) * d + i] += xb[static_cast<size_t>(t) * d + i];
    }

    // 3. Feed-forward block: x += down(act(gate(h)) * up(h)), h = norm(x).
    for (int t = 0; t < n; ++t) cpu::rms_norm(&x[t * d], L.ffn_norm, &xb[t * d], d, c.norm_eps);
    matmul(L.w_gate, xb.data(), n, hb.data());
    matmul(L.w_up, xb.data(), n, hb2.data());
    const int64_t n_ff_total = static_cast<int64_t>(n) * c.n_ff;
    if (c.act == Activation::Silu) {
      cpu::silu_mul(hb.data(), hb2.data(), n_ff_total);
    } else {
      cpu::gelu_mul(hb.data(), hb2.data(), n_ff_total);
    }
    matmul(L.w_down, hb2.data(), n, xb.data());
    for (int t = 0; t < n; ++t) {
      if (L.post_ffn_norm != nullptr) cpu::rms_norm(&xb[t * d], L.post_ffn_norm, &xb[t * d], d, c.norm_eps);
      for (int i = 0; i < d; ++i) x[static_cast<size_t>(t) * d + i] += xb[static_cast<size_t>(t) * d + i];
    }
  }
  cache.set_n_tokens(pos0 + n);
  if (n == 1) {
    ++step;
  } else {
    // What a prefill chunk read from a page file is not a decode step's: the next step counts from here.
    last_paged_in = cache.paged_in_bytes();
    last_file_wait_s = cache.file_wait_s();
  }

  // 4. Output: final norm and logits, for every token or only the last one.
  if (logits == nullptr) return;
  const int first = mode == LogitsMode::All ? 0 : n - 1;
  for (int t = first; t < n; ++t) cpu::rms_norm(&x[t * d], w.output_norm, &xb[t * d], d, c.norm_eps);
  matmul(w.output, &xb[static_cast<size_t>(first) * d], n - first, logits);
}

}  // namespace fkv
