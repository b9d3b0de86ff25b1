// The double-buffered recall executor (see recall_pipeline.h). Host code only: the scatter kernel is in kv_kernels.cu.
//
#include <cuda_runtime.h>

#include <utility>
#include <vector>

#include "backend/cuda/kv_kernels.h"
#include "backend/cuda/recall_pipeline.h"

namespace fkv::cuda {

namespace {

Status check_call(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return {};
  return err(call, " failed: ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

bool same_layout(const KvGeometry& a, const KvGeometry& b) {
  return a.n_kv_heads == b.n_kv_heads && a.head_dim == b.head_dim && a.page_size == b.page_size && a.dtype == b.dtype;
}

}  // namespace

struct RecallPipeline::State {
  KvGeometry g;
  int chunk_items = 0;
  size_t staging_bytes = 0;  // recall_staging_bytes(g, chunk_items)
  cudaStream_t compute = nullptr;
  cudaStream_t copy = nullptr;                // owned
  uint8_t* host[kRecallBuffers] = {};         // pinned (staging_bytes) each
  uint8_t* device[kRecallBuffers] = {};       // device (staging_bytes) each
  cudaEvent_t copied[kRecallBuffers] = {};    // staging b is on the device
  cudaEvent_t reusable[kRecallBuffers] = {};  // the scatter that read staging b is done
  std::vector<RecallChunk> chunks;            // the last run's schedule

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  // Release errors are ignored: there is nobody left to report them to, and the memory goes back with the context.
  ~State() {
    if (copy) cudaStreamSynchronize(copy);
    for (int b = 0; b < kRecallBuffers; ++b) {
      if (reusable[b]) cudaEventSynchronize(reusable[b]);
      if (copied[b]) cudaEventDestroy(copied[b]);
      if (reusable[b]) cudaEventDestroy(reusable[b]);
      if (device[b]) cudaFree(device[b]);
      if (host[b]) cudaFreeHost(host[b]);
    }
    if (copy) cudaStreamDestroy(copy);
  }

  Status reserve() {
    FKV_TRY(
        check_call(cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking), "cudaStreamCreateWithFlags (recall copy)"));
    for (int b = 0; b < kRecallBuffers; ++b) {
      FKV_TRY(check_call(cudaHostAlloc(reinterpret_cast<void**>(&host[b]), staging_bytes, cudaHostAllocDefault),
                         "cudaHostAlloc (pinned recall staging)"));
      FKV_TRY(
          check_call(cudaMalloc(reinterpret_cast<void**>(&device[b]), staging_bytes), "cudaMalloc (recall staging)"));
      FKV_TRY(check_call(cudaEventCreateWithFlags(&copied[b], cudaEventDisableTiming), "cudaEventCreate (copied)"));
      FKV_TRY(check_call(cudaEventCreateWithFlags(&reusable[b], cudaEventDisableTiming), "cudaEventCreate (reusable)"));
    }
    return {};
  }

  // Steps 3-7 of one chunk: copy staging b to the device, then scatter it on the compute stream once it has landed.
  Status ship(const RecallChunk& c, const DevicePool& pool) {
    const int b = c.buffer;
    const size_t data = static_cast<size_t>(c.n) * 2 * g.head_block_bytes();
    const size_t meta_at = recall_meta_offset(g, chunk_items);
    const size_t meta = static_cast<size_t>(c.n) * 2 * sizeof(int32_t);
    FKV_TRY(check_call(cudaMemcpyAsync(device[b], host[b], data, cudaMemcpyHostToDevice, copy),
                       "cudaMemcpyAsync (recall staging data)"));
    FKV_TRY(check_call(cudaMemcpyAsync(device[b] + meta_at, host[b] + meta_at, meta, cudaMemcpyHostToDevice, copy),
                       "cudaMemcpyAsync (recall staging meta)"));
    FKV_TRY(check_call(cudaEventRecord(copied[b], copy), "cudaEventRecord (copied)"));
    FKV_TRY(check_call(cudaStreamWaitEvent(compute, copied[b], 0), "cudaStreamWaitEvent (copied)"));
    ScatterArgs sa;
    sa.staged = device[b];
    sa.meta = reinterpret_cast<const int32_t*>(device[b] + meta_at);
    sa.n = c.n;
    sa.page_size = g.page_size;
    sa.n_kv_heads = g.n_kv_heads;
    sa.head_dim = g.head_dim;
    sa.elem_bytes = static_cast<int>(g.elem_bytes());
    sa.n_slots = pool.n_slots;
    sa.k_pool = pool.k;
    sa.v_pool = pool.v;
    FKV_TRY(scatter_staged(sa, compute));
    return check_call(cudaEventRecord(reusable[b], compute), "cudaEventRecord (reusable)");
  }
};

RecallPipeline::RecallPipeline(std::unique_ptr<State> s) : s_(std::move(s)) {}
RecallPipeline::RecallPipeline(RecallPipeline&& other) noexcept = default;
RecallPipeline& RecallPipeline::operator=(RecallPipeline&& other) noexcept = default;
RecallPipeline::~RecallPipeline() = default;

Result<RecallPipeline> RecallPipeline::create(const KvGeometry& g, int chunk_items, void* compute_stream) {
  FKV_TRY(g.validate());
  if (g.dtype != DType::F16)
    return err("recall pipeline: the device pool holds F16 rows, found a ", dtype_name(g.dtype),
               " KV cache: its bytes would be read as F16; use KV cache type F16 with the CUDA backend");
  if (chunk_items < 1) return err("recall pipeline: chunk size must be >= 1 block, found ", chunk_items);
  auto s = std::make_unique<State>();
  s->g = g;
  s->chunk_items = chunk_items;
  s->staging_bytes = recall_staging_bytes(g, chunk_items);
  s->compute = static_cast<cudaStream_t>(compute_stream);
  FKV_TRY(s->reserve());
  return RecallPipeline(std::move(s));
}

Result<uint64_t> RecallPipeline::run(const KvCache& cache, int l, const RecallBlock* blocks, int n,
                                     const DevicePool& pool) {
  State& s = *s_;
  if (!same_layout(cache.geometry(), s.g))
    return err("recall pipeline: the cache's layout (", cache.geometry().n_kv_heads, " KV heads, head_dim ",
               cache.geometry().head_dim, ", page_size ", cache.geometry().page_size, ", ",
               dtype_name(cache.geometry().dtype), ") differs from the one the pipeline was made for (",
               s.g.n_kv_heads, ", ", s.g.head_dim, ", ", s.g.page_size, ", ", dtype_name(s.g.dtype), ")");
  if (l < 0 || l >= cache.geometry().n_layers)
    return err("recall pipeline: layer must be in [0, ", cache.geometry().n_layers, "), found ", l);
  if (n > 0 && (!pool.k || !pool.v)) return err("recall pipeline: the device pool's K and V must be set, found null");
  FKV_TRY(check_recall_blocks(cache, blocks, n, pool.n_slots));
  FKV_TRY(plan_recall_chunks(n, s.chunk_items, s.chunks));
  uint64_t bytes = 0;
  for (const RecallChunk& c : s.chunks) {
    FKV_TRY(check_call(cudaEventSynchronize(s.reusable[c.buffer]), "cudaEventSynchronize (recall staging reuse)"));
    bytes += gather_recall_chunk(cache, l, blocks, c, s.chunk_items, s.host[c.buffer]);
    FKV_TRY(s.ship(c, pool));
  }
  return bytes;
}

Status RecallPipeline::synchronize() {
  for (int b = 0; b < kRecallBuffers; ++b)
    FKV_TRY(check_call(cudaEventSynchronize(s_->reusable[b]), "cudaEventSynchronize (recall done)"));
  return {};
}

int RecallPipeline::chunk_items() const { return s_->chunk_items; }
int RecallPipeline::last_chunks() const { return static_cast<int>(s_->chunks.size()); }

}  // namespace fkv::cuda
