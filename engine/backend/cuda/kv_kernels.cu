// CUDA kernels over device-resident KV pages (see kv_kernels.h). Written to be plainly correct first: one block per
// (KV head, split) for attention with the whole GQA group in shared memory, one warp per page for bounds, k rounds of
// a block-wide argmax for top-k, one block per staged K or V block for the scatter. Index math is in size_t wherever a
// product can pass 2^31; every launch is followed by cudaGetLastError.
//
// tests/gpu/test_cuda_kv.cpp compares every kernel with the CPU backend.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "backend/cuda/kv_kernels.h"

namespace fkv::cuda {

namespace {

constexpr int kAttnThreads = 128;
constexpr int kBoundWarps = 8;     // pages scored per block of the bounds kernel, one per warp
constexpr int kTopKThreads = 256;  // a power of two: the argmax reduction halves it

Status check_launch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    return err("CUDA launch of ", kernel, " failed: ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
  return {};
}

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

__device__ float f16(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

// ---- paged decode attention -----------------------------------------------------------------------------------------

struct AttnShape {
  int group, head_dim, page_size, n_heads, pages_per_split, n_splits;
  float scale;
};

// Shared state of one block: the group's queries and accumulators, one page of scores, running max and sum.
struct AttnSmem {
  float* q;     // (group, head_dim)
  float* acc;   // (group, head_dim) unnormalised output
  float* s;     // (group, page_size) scores, then softmax weights
  float* m;     // (group) running max
  float* l;     // (group) running sum of weights
  float* corr;  // (group) rescale of acc for the current page
};

__device__ AttnSmem carve_attn_smem(float* base, const AttnShape& d) {
  AttnSmem sm;
  sm.q = base;
  sm.acc = sm.q + d.group * d.head_dim;
  sm.s = sm.acc + d.group * d.head_dim;
  sm.m = sm.s + d.group * d.page_size;
  sm.l = sm.m + d.group;
  sm.corr = sm.l + d.group;
  return sm;
}

// One page (len >= 1 tokens of KV head h in `slot`) for the whole group: 1. scores, 2. online-softmax update,
// 3. rescale and accumulate values. Every thread of the block calls it (it synchronises).
__device__ void attend_page(const AttnSmem& sm, const DevicePages& pg, const AttnShape& d, int h, int slot, int len) {
  const int D = d.head_dim;
  const size_t row0 = static_cast<size_t>(slot) * d.page_size;  // first token row of the slot
  for (int i = threadIdx.x; i < d.group * len; i += blockDim.x) {
    const int g = i / len, t = i % len;
    const uint16_t* k = pg.k + ((row0 + t) * pg.n_kv_heads + h) * D;  // (head_dim)
    float dot = 0.f;
    for (int c = 0; c < D; ++c) dot += sm.q[g * D + c] * f16(k[c]);
    sm.s[g * d.page_size + t] = dot * d.scale;
  }
  __syncthreads();
  for (int g = threadIdx.x; g < d.group; g += blockDim.x) {
    float* s = sm.s + g * d.page_size;
    float mx = sm.m[g];
    for (int t = 0; t < len; ++t) mx = fmaxf(mx, s[t]);
    float sum = 0.f;
    for (int t = 0; t < len; ++t) {
      s[t] = mx == -INFINITY ? 0.f : expf(s[t] - mx);
      sum += s[t];
    }
    // exp(-inf) is 0: the first visible page discards nothing but an empty accumulator.
    sm.corr[g] = sm.m[g] == -INFINITY ? 0.f : expf(sm.m[g] - mx);
    sm.l[g] = sm.l[g] * sm.corr[g] + sum;
    sm.m[g] = mx;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < d.group * D; i += blockDim.x) {
    const int g = i / D, c = i % D;
    const float* w = sm.s + g * d.page_size;
    float a = sm.acc[i] * sm.corr[g];
    for (int t = 0; t < len; ++t) a += w[t] * f16(pg.v[((row0 + t) * pg.n_kv_heads + h) * D + c]);
    sm.acc[i] = a;
  }
  __syncthreads();
}

// grid (n_kv_heads, n_splits): the partial state of KV head h's group over its split of the page list.
// part_acc (n_splits, n_heads, head_dim), part_m and part_l (n_splits, n_heads).
__global__ void attend_split_kernel(const float* q, DevicePages pg, PageTable tb, AttnShape d, float* part_acc,
                                    float* part_m, float* part_l) {
  extern __shared__ float smem[];
  const AttnSmem sm = carve_attn_smem(smem, d);
  const int h = blockIdx.x, split = blockIdx.y;
  const int D = d.head_dim;
  const float* qh = q + static_cast<size_t>(h) * d.group * D;  // (group, head_dim)
  for (int i = threadIdx.x; i < d.group * D; i += blockDim.x) {
    sm.q[i] = qh[i];
    sm.acc[i] = 0.f;
  }
  for (int g = threadIdx.x; g < d.group; g += blockDim.x) {
    sm.m[g] = -INFINITY;
    sm.l[g] = 0.f;
  }
  __syncthreads();
  const int begin = tb.indptr[h];
  const int count = max(0, tb.indptr[h + 1] - begin);
  const int p0 = split * d.pages_per_split;
  // The last split takes any remainder, so a list longer than max_pages is still attended in full.
  const int p1 = split == d.n_splits - 1 ? count : min(count, p0 + d.pages_per_split);
  for (int p = p0; p < p1; ++p) {
    const int slot = tb.indices[begin + p];
    const int len = p == count - 1 ? min(max(tb.last_page_len[h], 0), d.page_size) : d.page_size;
    if (slot < 0 || slot >= pg.n_slots || len == 0) continue;  // block-uniform: no thread skips a barrier alone
    attend_page(sm, pg, d, h, slot, len);
  }
  const size_t head0 = static_cast<size_t>(split) * d.n_heads + static_cast<size_t>(h) * d.group;
  for (int i = threadIdx.x; i < d.group * D; i += blockDim.x) part_acc[head0 * D + i] = sm.acc[i];
  for (int g = threadIdx.x; g < d.group; g += blockDim.x) {
    part_m[head0 + g] = sm.m[g];
    part_l[head0 + g] = sm.l[g];
  }
}

// grid (n_heads): combines the splits of one query head, as cpu::attend_merge does.
__global__ void attend_merge_kernel(const float* part_acc, const float* part_m, const float* part_l, int n_splits,
                                    int n_heads, int head_dim, float* out) {
  const int qh = blockIdx.x;
  float mx = -INFINITY;
  for (int s = 0; s < n_splits; ++s) mx = fmaxf(mx, part_m[static_cast<size_t>(s) * n_heads + qh]);
  float* o = out + static_cast<size_t>(qh) * head_dim;
  for (int c = threadIdx.x; c < head_dim; c += blockDim.x) {
    if (mx == -INFINITY) {  // no visible key
      o[c] = 0.f;
      continue;
    }
    float sum = 0.f, a = 0.f;
    for (int s = 0; s < n_splits; ++s) {
      const size_t i = static_cast<size_t>(s) * n_heads + qh;
      const float w = expf(part_m[i] - mx);  // 0 for a split that saw no key (m = -inf)
      sum += w * part_l[i];
      a += w * part_acc[i * head_dim + c];
    }
    o[c] = a / sum;
  }
}

Status check_attention_args(const PagedAttentionArgs& a, size_t smem) {
  const DevicePages& p = a.pages;
  if (!a.q || !a.out || !a.workspace || !p.k || !p.v || !a.table.indptr || !a.table.indices || !a.table.last_page_len)
    return err("paged attention: every buffer must be set (q, out, workspace, pages, page table), found a null one");
  if (p.n_kv_heads < 1 || p.head_dim < 1 || p.page_size < 1 || p.n_slots < 0)
    return err("paged attention: page geometry must be positive, found ", p.n_kv_heads, " KV heads, head_dim ",
               p.head_dim, ", page_size ", p.page_size, ", ", p.n_slots, " slots");
  if (a.n_heads < 0 || a.n_heads % p.n_kv_heads != 0)
    return err("paged attention: n_heads must be a multiple of the ", p.n_kv_heads, " KV heads, found ", a.n_heads);
  if (a.n_splits < 1 || a.n_splits > kMaxSplits)
    return err("paged attention: n_splits must be in [1, ", kMaxSplits, "], found ", a.n_splits);
  if (a.max_pages < 0) return err("paged attention: max_pages must be >= 0, found ", a.max_pages);
  if (smem > kMaxAttentionSharedBytes)
    return err("paged attention: a group of ", a.n_heads / p.n_kv_heads, " heads of dim ", p.head_dim,
               " with pages of ", p.page_size, " needs ", smem, " bytes of shared memory, at most ",
               kMaxAttentionSharedBytes, " supported");
  return {};
}

// ---- page bounds and top-k ------------------------------------------------------------------------------------------

// grid (n_kv_heads): q_split[h] = (sum_g min(q_g, 0), sum_g max(q_g, 0)) over the group of KV head h.
__global__ void split_query_kernel(const float* q, int group, int head_dim, float* q_split) {
  const int h = blockIdx.x;
  const float* qh = q + static_cast<size_t>(h) * group * head_dim;  // (group, head_dim)
  float* out = q_split + static_cast<size_t>(h) * 2 * head_dim;     // (2, head_dim)
  for (int c = threadIdx.x; c < head_dim; c += blockDim.x) {
    float neg = 0.f, pos = 0.f;
    for (int g = 0; g < group; ++g) {
      const float x = qh[g * head_dim + c];
      neg += fminf(x, 0.f);
      pos += fmaxf(x, 0.f);
    }
    out[c] = neg;
    out[head_dim + c] = pos;
  }
}

// grid (ceil(n_pages / kBoundWarps), n_kv_heads), kBoundWarps warps: warp w scores one page against one head.
__global__ void page_bounds_kernel(const float* q_split, const float* summaries, int n_pages, int n_kv_heads,
                                   int head_dim, float* scores) {
  const int h = blockIdx.y;
  const int page = blockIdx.x * kBoundWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (page >= n_pages) return;  // whole warps leave together, so the shuffles below see full warps
  const float* qs = q_split + static_cast<size_t>(h) * 2 * head_dim;                          // (2, head_dim)
  const float* mm = summaries + (static_cast<size_t>(page) * n_kv_heads + h) * 2 * head_dim;  // (2, head_dim)
  float s = 0.f;
  for (int c = lane; c < 2 * head_dim; c += 32) s += qs[c] * mm[c];
  for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
  if (lane == 0) scores[static_cast<size_t>(h) * n_pages + page] = s;
}

// a ranks before b: higher score, then lower index; index -1 means "no candidate".
__device__ bool ranks_before(float sa, int ia, float sb, int ib) {
  if (ia < 0) return false;
  if (ib < 0) return true;
  return sa > sb || (sa == sb && ia < ib);
}

// The best untaken column among those thread `tid` owns (tid, tid + kTopKThreads, ...).
__device__ void best_owned(const float* s, const unsigned char* taken, int n, float& bs, int& bi) {
  bs = -INFINITY;
  bi = -1;
  for (int i = threadIdx.x; i < n; i += kTopKThreads)
    if (!taken[i] && ranks_before(s[i], i, bs, bi)) {
      bs = s[i];
      bi = i;
    }
}

// Block-wide argmax of every thread's candidate; all threads get the winner's index.
__device__ int block_argmax(float bs, int bi, float* red_s, int* red_i) {
  red_s[threadIdx.x] = bs;
  red_i[threadIdx.x] = bi;
  __syncthreads();
  for (int off = kTopKThreads / 2; off > 0; off >>= 1) {
    if (threadIdx.x < off &&
        ranks_before(red_s[threadIdx.x + off], red_i[threadIdx.x + off], red_s[threadIdx.x], red_i[threadIdx.x])) {
      red_s[threadIdx.x] = red_s[threadIdx.x + off];
      red_i[threadIdx.x] = red_i[threadIdx.x + off];
    }
    __syncthreads();
  }
  const int winner = red_i[0];
  __syncthreads();  // red_* is rewritten by the next round
  return winner;
}

// Writes the taken columns in ascending order: each thread counts a contiguous run, thread 0 scans the counts.
__device__ void write_taken(const unsigned char* taken, int n, int32_t page0, int* counts, int32_t* out) {
  const int per = (n + kTopKThreads - 1) / kTopKThreads;
  const int lo = min(n, threadIdx.x * per), hi = min(n, lo + per);
  int c = 0;
  for (int i = lo; i < hi; ++i) c += taken[i];
  counts[threadIdx.x] = c;
  __syncthreads();
  if (threadIdx.x == 0) {
    int run = 0;
    for (int t = 0; t < kTopKThreads; ++t) {
      const int x = counts[t];
      counts[t] = run;
      run += x;
    }
  }
  __syncthreads();
  int at = counts[threadIdx.x];
  for (int i = lo; i < hi; ++i)
    if (taken[i]) out[at++] = page0 + i;
}

// grid (n_kv_heads), kTopKThreads threads; dynamic shared: n_pages floats then n_pages flags.
__global__ void top_k_kernel(const float* scores, int n_pages, int k, int32_t page0, int32_t* out) {
  extern __shared__ float top_smem[];
  __shared__ float red_s[kTopKThreads];
  __shared__ int red_i[kTopKThreads];
  __shared__ int counts[kTopKThreads];
  float* s = top_smem;                                                   // (n_pages)
  unsigned char* taken = reinterpret_cast<unsigned char*>(s + n_pages);  // (n_pages)
  const float* row = scores + static_cast<size_t>(blockIdx.x) * n_pages;
  const int kk = min(k, n_pages);
  for (int i = threadIdx.x; i < n_pages; i += kTopKThreads) {
    s[i] = isnan(row[i]) ? -INFINITY : row[i];  // NaN ranks last, as in fkv::select_top_k
    taken[i] = kk == n_pages ? 1 : 0;
  }
  __syncthreads();
  if (kk < n_pages) {
    float bs;
    int bi;
    best_owned(s, taken, n_pages, bs, bi);
    for (int r = 0; r < kk; ++r) {
      const int w = block_argmax(bs, bi, red_s, red_i);
      if (w >= 0 && w % kTopKThreads == static_cast<int>(threadIdx.x)) {  // only the owner's candidate changes
        taken[w] = 1;
        best_owned(s, taken, n_pages, bs, bi);
      }
    }
    __syncthreads();
  }
  write_taken(taken, n_pages, page0, counts, out + static_cast<size_t>(blockIdx.x) * k);
}

// ---- recall scatter -------------------------------------------------------------------------------------------------

// grid (n, 2 (K, V)): block i's staged (page_size, head_dim) rows go to rows [slot, :, head, :] of the pool, moved in
// 16-bit units (every supported dtype is a whole number of them).
__global__ void scatter_kernel(ScatterArgs a) {
  const int i = blockIdx.x, kv = blockIdx.y;
  const int head = a.meta[2 * i], slot = a.meta[2 * i + 1];
  if (head < 0 || head >= a.n_kv_heads || slot < 0 || slot >= a.n_slots) return;
  const int units = a.head_dim * a.elem_bytes / 2;  // 16-bit units per row
  const size_t block_units = static_cast<size_t>(a.page_size) * units;
  const auto* src = reinterpret_cast<const uint16_t*>(a.staged) + (static_cast<size_t>(i) * 2 + kv) * block_units;
  auto* dst = reinterpret_cast<uint16_t*>(kv == 0 ? a.k_pool : a.v_pool);
  for (size_t j = threadIdx.x; j < block_units; j += blockDim.x) {
    const size_t t = j / units, u = j % units;
    dst[((static_cast<size_t>(slot) * a.page_size + t) * a.n_kv_heads + head) * units + u] = src[j];
  }
}

}  // namespace

size_t paged_attention_workspace_floats(int n_heads, int head_dim, int n_splits) {
  const size_t parts = static_cast<size_t>(n_splits) * n_heads;
  return parts * head_dim + 2 * parts;
}

Status paged_attention(const PagedAttentionArgs& a, void* stream) {
  const int n_kv = a.pages.n_kv_heads;
  const int group = n_kv > 0 ? a.n_heads / n_kv : 0;
  const size_t smem = sizeof(float) * static_cast<size_t>(group) *
                      (2 * static_cast<size_t>(a.pages.head_dim) + static_cast<size_t>(a.pages.page_size) + 3);
  FKV_TRY(check_attention_args(a, smem));
  if (a.n_heads == 0) return {};
  AttnShape d{group, a.pages.head_dim, a.pages.page_size, a.n_heads, 1, a.n_splits, a.scale};
  d.pages_per_split = a.max_pages > 0 ? (a.max_pages + a.n_splits - 1) / a.n_splits : 1;
  const size_t parts = static_cast<size_t>(a.n_splits) * a.n_heads;
  float* part_acc = a.workspace;                        // (n_splits, n_heads, head_dim)
  float* part_m = part_acc + parts * a.pages.head_dim;  // (n_splits, n_heads)
  float* part_l = part_m + parts;                       // (n_splits, n_heads)
  attend_split_kernel<<<dim3(n_kv, a.n_splits), kAttnThreads, smem, as_stream(stream)>>>(a.q, a.pages, a.table, d,
                                                                                         part_acc, part_m, part_l);
  FKV_TRY(check_launch("attend_split_kernel"));
  const int merge_threads = a.pages.head_dim < 256 ? 128 : 256;
  attend_merge_kernel<<<a.n_heads, merge_threads, 0, as_stream(stream)>>>(part_acc, part_m, part_l, a.n_splits,
                                                                          a.n_heads, a.pages.head_dim, a.out);
  return check_launch("attend_merge_kernel");
}

Status page_bounds(const PageBoundsArgs& a, void* stream) {
  if (!a.q || !a.summaries || !a.q_split || !a.scores)
    return err("page bounds: q, summaries, q_split and scores must be set, found a null one");
  if (a.n_pages < 0 || a.n_kv_heads < 1 || a.group < 1 || a.head_dim < 1 || a.n_kv_heads > 65535)
    return err("page bounds: expected n_pages >= 0, 1..65535 KV heads, group >= 1 and head_dim >= 1, found ", a.n_pages,
               ", ", a.n_kv_heads, ", ", a.group, ", ", a.head_dim);
  split_query_kernel<<<a.n_kv_heads, 128, 0, as_stream(stream)>>>(a.q, a.group, a.head_dim, a.q_split);
  FKV_TRY(check_launch("split_query_kernel"));
  if (a.n_pages == 0) return {};
  const dim3 grid((a.n_pages + kBoundWarps - 1) / kBoundWarps, a.n_kv_heads);
  page_bounds_kernel<<<grid, kBoundWarps * 32, 0, as_stream(stream)>>>(a.q_split, a.summaries, a.n_pages, a.n_kv_heads,
                                                                       a.head_dim, a.scores);
  return check_launch("page_bounds_kernel");
}

Status top_k_pages(const TopKArgs& a, void* stream) {
  if (!a.scores || !a.out) return err("top-k pages: scores and out must be set, found a null one");
  if (a.k < 1 || a.k > kMaxTopK) return err("top-k pages: k must be in [1, ", kMaxTopK, "], found ", a.k);
  if (a.n_pages < 0 || a.n_pages > kMaxTopKPages)
    return err("top-k pages: n_pages must be in [0, ", kMaxTopKPages, "], found ", a.n_pages);
  if (a.n_kv_heads < 0) return err("top-k pages: n_kv_heads must be >= 0, found ", a.n_kv_heads);
  if (a.n_pages == 0 || a.n_kv_heads == 0) return {};
  const size_t smem = static_cast<size_t>(a.n_pages) * (sizeof(float) + 1);
  top_k_kernel<<<a.n_kv_heads, kTopKThreads, smem, as_stream(stream)>>>(a.scores, a.n_pages, a.k, a.page0, a.out);
  return check_launch("top_k_kernel");
}

Status scatter_staged(const ScatterArgs& a, void* stream) {
  if (!a.staged || !a.meta || !a.k_pool || !a.v_pool)
    return err("recall scatter: staged, meta and both pools must be set, found a null one");
  if (a.elem_bytes != 2 && a.elem_bytes != 4)
    return err("recall scatter: element size must be 2 or 4 bytes, found ", a.elem_bytes);
  if (a.n < 0 || a.page_size < 1 || a.n_kv_heads < 1 || a.head_dim < 1 || a.n_slots < 0)
    return err("recall scatter: expected n >= 0 and a positive geometry, found n ", a.n, ", page_size ", a.page_size,
               ", ", a.n_kv_heads, " KV heads, head_dim ", a.head_dim, ", ", a.n_slots, " slots");
  if (a.n == 0) return {};
  scatter_kernel<<<dim3(a.n, 2), 256, 0, as_stream(stream)>>>(a);
  return check_launch("scatter_kernel");
}

}  // namespace fkv::cuda
