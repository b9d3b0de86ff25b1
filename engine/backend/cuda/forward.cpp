// The dense CUDA forward pass (see forward.h): the host-side recipe, reading top to bottom like Context::forward,
// each step one op of backend/cuda/ops.h, kv_kernels.h or forward_kernels.h on the device context's stream.
//
// Attention: decode steps of global layers run kv_kernels' paged_attention over a CSR table naming every page of
// the context (slot s holds page s); prefill chunks and sliding-window layers run dense_attention, which masks to
// [window start, position] inside a page. K and V are written as F16 rows at their positions: with slot s holding
// page s, NHD page rows are token-major, so writing them is an f32 -> f16 conversion into the layer's cache.
//
// tests/gpu/test_cuda_forward.cpp compares the logits of prefill, decode and chunked prefill with the CPU context.
#include "backend/cuda/forward.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_util.h"
#include "backend/cuda/device_weights.h"
#include "backend/cuda/forward_kernels.h"
#include "backend/cuda/kv_kernels.h"
#include "backend/cuda/ops.h"
#include "model/model.h"
#include "model/rope.h"

namespace fkv::cuda {

namespace {

// Rows of logits computed per output matmul: a chunk of n_batch tokens wanting every token's logits runs the output
// in slices, so the logits buffer stays (kLogitRows, n_vocab) whatever n_batch is (8192 x a 262k vocabulary is 8 GiB).
constexpr int kLogitRows = 128;
constexpr int kPagesPerSplit = 8;  // decode attention: pages one split of paged_attention walks
constexpr int kMaxForwardSplits = 64;

// A weight matrix on the device in the precision its matmul reads: f32 set for the F32 path, else f16.
struct Mat {
  const float* f32 = nullptr;     // (n_rows, n_cols)
  const uint16_t* f16 = nullptr;  // (n_rows, n_cols)
  int n_rows = 0;
  int n_cols = 0;
};

Mat from_device(const DeviceMatrix& m) {
  return {nullptr, m.data, static_cast<int>(m.n_rows), static_cast<int>(m.n_cols)};
}

using Layer = LayerTensors<Mat>;

bool all_f32(const ModelWeights& w) {
  if (w.tok_embd.type != DType::F32 || w.output.type != DType::F32) return false;
  for (const LayerWeights& l : w.layers)
    for (const cpu::MatrixView* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      if (m->type != DType::F32) return false;
  return true;
}


}  // namespace

struct CudaForward::Impl {
  const Model* model = nullptr;
  DeviceContext ctx;
  DeviceWeights device_weights;     // the F16 path's weights
  std::vector<DeviceBuffer> owned;  // the F32 path's weights and the RoPE frequencies
  bool f32 = false;
  Mat tok_embd;                            // (n_vocab, n_embd)
  const float* output_norm = nullptr;      // (n_embd)
  Mat output;                              // (n_vocab, n_embd)
  std::vector<Layer> layers;               // (n_layers)
  const float* inv_freq_global = nullptr;  // (head_dim / 2)
  const float* inv_freq_local = nullptr;   // (head_dim / 2)
  float rope_scale_global = 1.f;           // cos/sin multiplier (YaRN's magnitude correction; 1 without YaRN)
  float rope_scale_local = 1.f;

  int n_ctx = 0;
  int page_size = 0;
  int n_pages_cap = 0;  // pages per layer: ceil(n_ctx / page_size)
  int n_batch = 0;
  int n_past = 0;
  bool paged_decode = false;  // the group fits paged_attention's shared memory

  DeviceBuffer k_cache, v_cache;   // (n_layers, n_pages_cap, page_size, n_kv_heads, head_dim) f16 each
  DeviceBuffer x, xb;              // (n_batch, n_embd) residual stream, normed input / block output
  DeviceBuffer q, att;             // (n_batch, n_heads, head_dim)
  DeviceBuffer k, v;               // (n_batch, n_kv_heads, head_dim)
  DeviceBuffer hb, hb2;            // (n_batch, n_ff) gate, up
  DeviceBuffer a16;                // (n_batch, max(n_embd, n_embd_q, n_ff)) f16 matmul inputs
  DeviceBuffer row_scale;          // (n_batch) their rows' scales (matmul_f16_scaled)
  DeviceBuffer logits;             // (min(n_batch, kLogitRows), n_vocab)
  DeviceBuffer ints;               // tokens (n_batch), positions (n_batch), page table (see table_*)
  DeviceBuffer workspace;          // paged_attention_workspace_floats(n_heads, head_dim, kMaxForwardSplits)
  std::vector<int32_t> host_ints;  // staging of `ints`

  StreamHandle stream() const { return ctx.stream(); }
  size_t kv_layer_elems() const {
    const ModelConfig& c = model->config();
    return static_cast<size_t>(n_pages_cap) * page_size * c.n_embd_kv();
  }
  // Offsets into `ints`: tokens, positions, then indptr (n_kv_heads + 1), last_page_len (n_kv_heads), indices.
  size_t table_indptr() const { return 2 * static_cast<size_t>(n_batch); }
  size_t table_last() const { return table_indptr() + model->config().n_kv_heads + 1; }
  size_t table_indices() const { return table_last() + model->config().n_kv_heads; }

  Result<const float*> upload_floats(const float* host, size_t n);
  Result<Mat> upload_matrix(const cpu::MatrixView& m);
  Status upload_f32_weights();
  Status upload_f16_weights();
  Status allocate(DeviceBuffer& b, size_t bytes);
  Status allocate_state();
  Status matmul(const Mat& w, const DeviceBuffer& in, int n, float* out);
  Status upload_step(const int32_t* tokens, int n);
  Status attention(int il, int n);
  Status attention_block(int il, int n);
  Status ffn_block(int il, int n);
  Status output_logits(int first, int n_out, float* logits_host);
  Status forward(const int32_t* tokens, int n, int first, float* logits_host);
};

Result<const float*> CudaForward::Impl::upload_floats(const float* host, size_t n) {
  if (host == nullptr) return static_cast<const float*>(nullptr);  // an absent tensor stays absent
  FKV_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::allocate(n * sizeof(float)));
  FKV_TRY(b.upload(host, n * sizeof(float), stream()));
  owned.push_back(std::move(b));
  return static_cast<const float*>(owned.back().as<float>());
}

Result<Mat> CudaForward::Impl::upload_matrix(const cpu::MatrixView& m) {
  FKV_ASSIGN_OR_RETURN(const float* p,
                       upload_floats(static_cast<const float*>(m.data), static_cast<size_t>(m.n_rows * m.n_cols)));
  return Mat{p, nullptr, static_cast<int>(m.n_rows), static_cast<int>(m.n_cols)};
}

Status CudaForward::Impl::upload_f32_weights() {
  const ModelConfig& c = model->config();
  const ModelWeights& w = model->weights();
  const auto embd = static_cast<size_t>(c.n_embd);
  FKV_ASSIGN_OR_RETURN(tok_embd, upload_matrix(w.tok_embd));
  FKV_ASSIGN_OR_RETURN(output_norm, upload_floats(w.output_norm, embd));
  if (w.output.data == w.tok_embd.data) {
    output = tok_embd;  // tied: one copy serves both
  } else {
    FKV_ASSIGN_OR_RETURN(output, upload_matrix(w.output));
  }
  const auto nq = static_cast<size_t>(c.n_embd_q()), nkv = static_cast<size_t>(c.n_embd_kv());
  const auto hd = static_cast<size_t>(c.head_dim);
  for (const LayerWeights& l : w.layers) {
    Layer d;
    FKV_ASSIGN_OR_RETURN(d.attn_norm, upload_floats(l.attn_norm, embd));
    FKV_ASSIGN_OR_RETURN(d.wq, upload_matrix(l.wq));
    FKV_ASSIGN_OR_RETURN(d.wk, upload_matrix(l.wk));
    FKV_ASSIGN_OR_RETURN(d.wv, upload_matrix(l.wv));
    FKV_ASSIGN_OR_RETURN(d.wo, upload_matrix(l.wo));
    FKV_ASSIGN_OR_RETURN(d.bq, upload_floats(l.bq, nq));
    FKV_ASSIGN_OR_RETURN(d.bk, upload_floats(l.bk, nkv));
    FKV_ASSIGN_OR_RETURN(d.bv, upload_floats(l.bv, nkv));
    FKV_ASSIGN_OR_RETURN(d.q_norm, upload_floats(l.q_norm, hd));
    FKV_ASSIGN_OR_RETURN(d.k_norm, upload_floats(l.k_norm, hd));
    FKV_ASSIGN_OR_RETURN(d.post_attn_norm, upload_floats(l.post_attn_norm, embd));
    FKV_ASSIGN_OR_RETURN(d.ffn_norm, upload_floats(l.ffn_norm, embd));
    FKV_ASSIGN_OR_RETURN(d.w_gate, upload_matrix(l.w_gate));
    FKV_ASSIGN_OR_RETURN(d.w_up, upload_matrix(l.w_up));
    FKV_ASSIGN_OR_RETURN(d.w_down, upload_matrix(l.w_down));
    FKV_ASSIGN_OR_RETURN(d.post_ffn_norm, upload_floats(l.post_ffn_norm, embd));
    layers.push_back(d);
  }
  return {};
}

Status CudaForward::Impl::upload_f16_weights() {
  FKV_ASSIGN_OR_RETURN(device_weights, DeviceWeights::upload(*model, ctx));
  const DeviceModelWeights& w = device_weights.weights();
  tok_embd = from_device(w.tok_embd);
  output_norm = w.output_norm;
  output = from_device(w.output);
  for (const DeviceLayerWeights& l : w.layers)
    layers.push_back(map_matrices<Mat>(l, from_device));
  return {};
}

Status CudaForward::Impl::allocate(DeviceBuffer& b, size_t bytes) {
  FKV_ASSIGN_OR_RETURN(b, DeviceBuffer::allocate(bytes));
  return {};
}

Status CudaForward::Impl::allocate_state() {
  const ModelConfig& c = model->config();
  const auto nb = static_cast<size_t>(n_batch);
  const size_t f = sizeof(float);
  FKV_TRY(allocate(k_cache, kv_layer_elems() * c.n_layers * sizeof(uint16_t)));
  FKV_TRY(allocate(v_cache, kv_layer_elems() * c.n_layers * sizeof(uint16_t)));
  FKV_TRY(allocate(x, nb * c.n_embd * f));
  FKV_TRY(allocate(xb, nb * c.n_embd * f));
  FKV_TRY(allocate(q, nb * c.n_embd_q() * f));
  FKV_TRY(allocate(att, nb * c.n_embd_q() * f));
  FKV_TRY(allocate(k, nb * c.n_embd_kv() * f));
  FKV_TRY(allocate(v, nb * c.n_embd_kv() * f));
  FKV_TRY(allocate(hb, nb * c.n_ff * f));
  FKV_TRY(allocate(hb2, nb * c.n_ff * f));
  FKV_TRY(allocate(a16, nb * std::max({c.n_embd, c.n_embd_q(), c.n_ff}) * sizeof(uint16_t)));
  FKV_TRY(allocate(row_scale, nb * f));
  FKV_TRY(allocate(logits, std::min(nb, static_cast<size_t>(kLogitRows)) * c.n_vocab * f));
  host_ints.assign(table_indices() + static_cast<size_t>(c.n_kv_heads) * n_pages_cap, 0);
  FKV_TRY(allocate(ints, host_ints.size() * sizeof(int32_t)));
  FKV_TRY(allocate(workspace, paged_attention_workspace_floats(c.n_heads, c.head_dim, kMaxForwardSplits) * f));
  const size_t smem = 4 * static_cast<size_t>(c.group_size()) * (2 * c.head_dim + page_size + 3);
  paged_decode = smem <= kMaxAttentionSharedBytes;
  return {};
}

// out = in . w^T for n rows; the F16 path converts the activations row-scaled, so none past 65504 becomes inf.
Status CudaForward::Impl::matmul(const Mat& w, const DeviceBuffer& in, int n, float* out) {
  if (w.f32 != nullptr) return matmul_f32(ctx, in.as<float>(), w.f32, out, n, w.n_cols, w.n_rows, stream());
  const F16Staging staging{a16.as<uint16_t>(), row_scale.as<float>()};
  return matmul_f16_scaled(ctx, in.as<float>(), w.f16, out, n, w.n_cols, w.n_rows, staging, stream());
}

// Uploads the chunk's tokens and positions and, for a decode step, the page table naming every page of the context.
Status CudaForward::Impl::upload_step(const int32_t* tokens, int n) {
  const int n_kv = model->config().n_kv_heads;
  std::copy(tokens, tokens + n, host_ints.begin());
  for (int t = 0; t < n; ++t) host_ints[static_cast<size_t>(n_batch + t)] = n_past + t;
  size_t used = table_indptr();
  if (n == 1) {
    const int n_tokens = n_past + 1;
    const int n_pages = (n_tokens + page_size - 1) / page_size;
    for (int h = 0; h <= n_kv; ++h) host_ints[table_indptr() + h] = h * n_pages;
    for (int h = 0; h < n_kv; ++h) host_ints[table_last() + h] = n_tokens - (n_pages - 1) * page_size;
    for (int h = 0; h < n_kv; ++h)
      for (int p = 0; p < n_pages; ++p) host_ints[table_indices() + static_cast<size_t>(h) * n_pages + p] = p;
    used = table_indices() + static_cast<size_t>(n_kv) * n_pages;
  }
  // A copy from pageable memory returns once the data is staged, so host_ints may be refilled next step.
  return ints.upload(host_ints.data(), used * sizeof(int32_t), stream());
}

// Attention of the chunk's n tokens of layer il (their K and V already written) into `att`.
Status CudaForward::Impl::attention(int il, int n) {
  const ModelConfig& c = model->config();
  const bool local = c.layer_local[static_cast<size_t>(il)] != 0;
  const uint16_t* k_layer = k_cache.as<uint16_t>() + kv_layer_elems() * il;  // (n_pages_cap * page_size, n_kv, hd)
  const uint16_t* v_layer = v_cache.as<uint16_t>() + kv_layer_elems() * il;
  if (n == 1 && !local && paged_decode) {
    const int n_pages = (n_past + page_size) / page_size;  // pages holding positions 0 .. n_past
    PagedAttentionArgs a;
    a.q = q.as<float>();
    a.pages = {k_layer, v_layer, n_pages_cap, page_size, c.n_kv_heads, c.head_dim};
    const int32_t* tb = ints.as<int32_t>();
    a.table = {tb + table_indptr(), tb + table_indices(), tb + table_last()};
    a.n_heads = c.n_heads;
    a.max_pages = n_pages;
    a.n_splits = std::clamp((n_pages + kPagesPerSplit - 1) / kPagesPerSplit, 1, kMaxForwardSplits);
    a.scale = c.attn_scale;
    a.workspace = workspace.as<float>();
    a.out = att.as<float>();
    return paged_attention(a, stream());
  }
  DenseAttentionArgs a;
  a.q = q.as<float>();
  a.k = k_layer;
  a.v = v_layer;
  a.n_cache_tokens = n_pages_cap * page_size;
  a.n_tokens = n;
  a.pos0 = n_past;
  a.n_heads = c.n_heads;
  a.n_kv_heads = c.n_kv_heads;
  a.head_dim = c.head_dim;
  a.window = local ? c.sliding_window : 0;
  a.scale = c.attn_scale;
  a.out = att.as<float>();
  return dense_attention(a, stream());
}

// x += post_norm(wo . attend(rope(norm_qk(q)), rope(norm_qk(k)), v)), q, k, v = projections of norm(x) (+ biases).
Status CudaForward::Impl::attention_block(int il, int n) {
  const ModelConfig& c = model->config();
  const Layer& L = layers[static_cast<size_t>(il)];
  const StreamHandle s = stream();
  const bool local = c.layer_local[static_cast<size_t>(il)] != 0;
  const float* inv_freq = local ? inv_freq_local : inv_freq_global;
  const float rope_scale = local ? rope_scale_local : rope_scale_global;
  const int32_t* positions = ints.as<int32_t>() + n_batch;
  FKV_TRY(rms_norm(x.as<float>(), L.attn_norm, xb.as<float>(), n, c.n_embd, c.norm_eps, s));
  FKV_TRY(matmul(L.wq, xb, n, q.as<float>()));
  FKV_TRY(matmul(L.wk, xb, n, k.as<float>()));
  FKV_TRY(matmul(L.wv, xb, n, v.as<float>()));
  if (L.bq != nullptr) {
    FKV_TRY(add_bias_rows(q.as<float>(), L.bq, n, c.n_embd_q(), s));
    FKV_TRY(add_bias_rows(k.as<float>(), L.bk, n, c.n_embd_kv(), s));
    FKV_TRY(add_bias_rows(v.as<float>(), L.bv, n, c.n_embd_kv(), s));
  }
  if (L.q_norm != nullptr) {
    FKV_TRY(rms_norm(q.as<float>(), L.q_norm, q.as<float>(), n * c.n_heads, c.head_dim, c.norm_eps, s));
    FKV_TRY(rms_norm(k.as<float>(), L.k_norm, k.as<float>(), n * c.n_kv_heads, c.head_dim, c.norm_eps, s));
  }
  const bool neox = c.rope_style == RopeStyle::Neox;
  FKV_TRY(rope(q.as<float>(), positions, inv_freq, n, c.n_heads, c.head_dim, neox, rope_scale, s));
  FKV_TRY(rope(k.as<float>(), positions, inv_freq, n, c.n_kv_heads, c.head_dim, neox, rope_scale, s));
  const size_t row0 = kv_layer_elems() * il + static_cast<size_t>(n_past) * c.n_embd_kv();  // position n_past
  const int64_t n_kv = static_cast<int64_t>(n) * c.n_embd_kv();
  FKV_TRY(f32_to_f16(k.as<float>(), k_cache.as<uint16_t>() + row0, n_kv, s));
  FKV_TRY(f32_to_f16(v.as<float>(), v_cache.as<uint16_t>() + row0, n_kv, s));
  FKV_TRY(attention(il, n));
  FKV_TRY(matmul(L.wo, att, n, xb.as<float>()));
  if (L.post_attn_norm != nullptr)
    FKV_TRY(rms_norm(xb.as<float>(), L.post_attn_norm, xb.as<float>(), n, c.n_embd, c.norm_eps, s));
  return add_inplace(x.as<float>(), xb.as<float>(), static_cast<int64_t>(n) * c.n_embd, s);
}

// x += post_norm(down(act(gate(h)) * up(h))), h = norm(x).
Status CudaForward::Impl::ffn_block(int il, int n) {
  const ModelConfig& c = model->config();
  const Layer& L = layers[static_cast<size_t>(il)];
  const StreamHandle s = stream();
  FKV_TRY(rms_norm(x.as<float>(), L.ffn_norm, xb.as<float>(), n, c.n_embd, c.norm_eps, s));
  FKV_TRY(matmul(L.w_gate, xb, n, hb.as<float>()));
  FKV_TRY(matmul(L.w_up, xb, n, hb2.as<float>()));
  const int64_t n_ff = static_cast<int64_t>(n) * c.n_ff;
  if (c.act == Activation::Silu) {
    FKV_TRY(silu_mul(hb.as<float>(), hb2.as<float>(), n_ff, s));
  } else {
    FKV_TRY(gelu_mul(hb.as<float>(), hb2.as<float>(), n_ff, s));
  }
  FKV_TRY(matmul(L.w_down, hb2, n, xb.as<float>()));
  if (L.post_ffn_norm != nullptr)
    FKV_TRY(rms_norm(xb.as<float>(), L.post_ffn_norm, xb.as<float>(), n, c.n_embd, c.norm_eps, s));
  return add_inplace(x.as<float>(), xb.as<float>(), static_cast<int64_t>(n) * c.n_embd, s);
}

// Final norm and logits of the chunk's tokens first .. first + n_out - 1, in slices of at most kLogitRows rows.
Status CudaForward::Impl::output_logits(int first, int n_out, float* logits_host) {
  const ModelConfig& c = model->config();
  const StreamHandle s = stream();
  const int slice = std::min(n_batch, kLogitRows);
  for (int r = 0; r < n_out; r += slice) {
    const int rows = std::min(slice, n_out - r);
    const float* x_rows = x.as<float>() + static_cast<size_t>(first + r) * c.n_embd;
    FKV_TRY(rms_norm(x_rows, output_norm, xb.as<float>(), rows, c.n_embd, c.norm_eps, s));
    FKV_TRY(matmul(output, xb, rows, logits.as<float>()));
    // A copy to pageable memory returns once the host has the data, so the next slice may overwrite `logits`.
    FKV_TRY(logits.download(logits_host + static_cast<size_t>(r) * c.n_vocab,
                            static_cast<size_t>(rows) * c.n_vocab * sizeof(float), s));
  }
  return {};
}

// One chunk of n tokens at n_past: 1. embeddings, 2. layers, 3. final norm and logits of tokens first .. n - 1 (none
// when logits_host is null). n_past moves only once the device has finished without a fault.
Status CudaForward::Impl::forward(const int32_t* tokens, int n, int first, float* logits_host) {
  const ModelConfig& c = model->config();
  const StreamHandle s = stream();
  FKV_TRY(upload_step(tokens, n));
  const int32_t* tok = ints.as<int32_t>();
  if (tok_embd.f32 != nullptr) {
    FKV_TRY(embed_f32(tok_embd.f32, c.n_vocab, c.n_embd, tok, n, c.embd_scale, x.as<float>(), s));
  } else {
    FKV_TRY(embed_f16(tok_embd.f16, c.n_vocab, c.n_embd, tok, n, c.embd_scale, x.as<float>(), s));
  }
  for (int il = 0; il < c.n_layers; ++il) {
    FKV_TRY(attention_block(il, n));
    FKV_TRY(ffn_block(il, n));
  }
  if (logits_host != nullptr) FKV_TRY(output_logits(first, n - first, logits_host));
  FKV_CUDA_TRY(cudaStreamSynchronize(s));
  n_past += n;
  return {};
}

CudaForward::CudaForward() = default;
CudaForward::~CudaForward() = default;

Result<std::unique_ptr<CudaForward>> CudaForward::create(const Model& model, int device, int n_ctx, int page_size,
                                                         int n_batch) {
  const ModelConfig& c = model.config();
  if (n_ctx < 1 || n_ctx > (1 << 24)) return err("CudaForward: context size must be 1..16777216 tokens, found ", n_ctx);
  if (page_size < 1 || page_size > 4096) return err("CudaForward: page size must be 1..4096 tokens, found ", page_size);
  if (n_batch < 1 || n_batch > 8192) return err("CudaForward: prefill batch must be 1..8192 tokens, found ", n_batch);
  if (c.head_dim > kMaxDenseHeadDim)
    return err("CudaForward: head_dim must be at most ", kMaxDenseHeadDim, ", found ", c.head_dim);
  std::unique_ptr<CudaForward> f(new CudaForward());
  f->impl_ = std::make_unique<Impl>();
  Impl& s = *f->impl_;
  s.model = &model;
  s.n_ctx = n_ctx;
  s.page_size = page_size;
  s.n_pages_cap = (n_ctx + page_size - 1) / page_size;
  s.n_batch = std::min(n_batch, n_ctx);
  FKV_ASSIGN_OR_RETURN(s.ctx, DeviceContext::create(device));
  s.f32 = all_f32(model.weights());
  FKV_TRY(s.f32 ? s.upload_f32_weights() : s.upload_f16_weights());
  const bool gemma = c.arch == Arch::Gemma3;  // gemma scales only its global layers' RoPE
  const float* divisors = model.weights().rope_freqs;
  const std::vector<float> global = rope_inv_freq(c, divisors, c.rope_base, true);
  const std::vector<float> local = rope_inv_freq(c, divisors, c.rope_base_local, !gemma);
  FKV_ASSIGN_OR_RETURN(s.inv_freq_global, s.upload_floats(global.data(), global.size()));
  FKV_ASSIGN_OR_RETURN(s.inv_freq_local, s.upload_floats(local.data(), local.size()));
  s.rope_scale_global = rope_mscale(c, true);
  s.rope_scale_local = rope_mscale(c, !gemma);
  FKV_TRY(s.allocate_state());
  // The uploads above read pageable host vectors that go out of scope here.
  FKV_CUDA_TRY(cudaStreamSynchronize(s.stream()));
  return f;
}

Status CudaForward::eval(std::span<const int32_t> tokens, bool all_logits, std::span<float> logits_host) {
  Impl& s = *impl_;
  const int n_vocab = s.model->config().n_vocab;
  const size_t n = tokens.size();
  if (n == 0) return err("CudaForward::eval: nothing to evaluate, the token list is empty");
  if (static_cast<size_t>(s.n_past) + n > static_cast<size_t>(s.n_ctx))
    return err("CudaForward::eval: context overflow: ", s.n_past, " tokens held + ", n, " new > context size ",
               s.n_ctx);
  for (size_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= n_vocab)
      return err("CudaForward::eval: token id ", tokens[i], " at index ", i, " is outside the vocabulary (0..",
                 n_vocab - 1, ")");
  const size_t need = (all_logits ? n : 1) * static_cast<size_t>(n_vocab);
  if (logits_host.size() < need)
    return err("CudaForward::eval: logits buffer holds ", logits_host.size(), " floats, ", need, " needed");
  FKV_TRY(s.ctx.make_current());
  const int n_past0 = s.n_past;
  for (size_t i = 0; i < n; i += static_cast<size_t>(s.n_batch)) {
    const int chunk = static_cast<int>(std::min(n - i, static_cast<size_t>(s.n_batch)));
    const bool last = i + static_cast<size_t>(chunk) == n;
    float* out = all_logits ? logits_host.data() + i * n_vocab : (last ? logits_host.data() : nullptr);
    const Status st = s.forward(tokens.data() + i, chunk, all_logits ? 0 : chunk - 1, out);
    if (!st.ok()) {
      s.n_past = n_past0;  // the earlier chunks' K and V past n_past are simply overwritten later
      return st;
    }
  }
  return {};
}

void CudaForward::reset() { impl_->n_past = 0; }
// Positions past n are simply overwritten by the next eval(), as after a failed chunk.
Status CudaForward::truncate(int n_tokens) {
  if (n_tokens < 0 || n_tokens > impl_->n_past) {
    return err("CudaForward::truncate: expected 0..", impl_->n_past, " tokens (those held), found ", n_tokens);
  }
  impl_->n_past = n_tokens;
  return Status();
}
int CudaForward::n_past() const { return impl_->n_past; }
int CudaForward::n_ctx() const { return impl_->n_ctx; }
int CudaForward::max_batch() const { return impl_->n_batch; }
bool CudaForward::f32_matmul() const { return impl_->f32; }

}  // namespace fkv::cuda
