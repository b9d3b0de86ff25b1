// CUDA KV kernels against the CPU backend (backend/cuda/kv_kernels.h, recall_pipeline.h): paged decode attention over
// NHD F16 pages vs cpu::attend (1e-3), for several group sizes, head dims, page sizes and split counts, with ragged
// last pages, an empty page list and a peaked softmax (one key's weight near 1: the split merge's rescale at its
// extreme); page bounds vs cpu::page_bounds (1e-5 relative to the terms' magnitude); top-k equal to
// fkv::select_top_k (ties, NaN, k >= n, 8192 pages with k 256); recall: every byte of the device pool equals
// WorkingSet::apply's slots after two rounds, for chunk sizes 1 (the double buffer wraps), 3 and more than the list,
// also with the scatters on a non-blocking stream; BF16 and F32 caches refused (the pool is F16).
// Argument checks and zero-size calls run everywhere; the rest skip with a clear message where no device exists.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"
#include "kv/page_summary.h"
#include "kv/recall_chunks.h"
#include "kv/working_set.h"
#include "support/recall_checks.h"
#ifdef FKV_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_util.h"
#include "backend/cuda/device.h"
#include "backend/cuda/kv_kernels.h"
#include "backend/cuda/recall_pipeline.h"
#endif

#ifdef FKV_HAVE_CUDA
namespace {

// Skips the calling test unless a CUDA device is usable.
#define REQUIRE_DEVICE()                                                                                         \
  do {                                                                                                           \
    auto devices_ = fkv::cuda::list_devices();                                                                   \
    if (!devices_.ok()) QSKIP(qPrintable("no CUDA device here: " + QString::fromStdString(devices_.message()))); \
  } while (0)

// Owns one device allocation; copies in and out check their result.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) {
    if (cudaMalloc(&p_, bytes == 0 ? 1 : bytes) != cudaSuccess) p_ = nullptr;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }
  bool ok() const { return p_ != nullptr; }

 private:
  void* p_ = nullptr;
};

template <class T>
bool upload(const DeviceBuffer& d, const std::vector<T>& h) {
  return d.ok() && cudaMemcpy(d.as<void>(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess;
}
template <class T>
bool download(std::vector<T>& h, const DeviceBuffer& d) {
  return cudaDeviceSynchronize() == cudaSuccess &&
         cudaMemcpy(h.data(), d.as<void>(), h.size() * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> out(n);
  for (float& x : out) x = u(rng);
  return out;
}

// Summaries of n_pages pages for one layer, min <= max per channel; integer-valued when `integral` (exact sums in any
// order, and many ties).
fkv::PageSummaries random_summaries(const fkv::KvGeometry& g, int n_pages, uint32_t seed, bool integral) {
  fkv::PageSummaries s;
  if (!s.init(g, n_pages).ok()) qFatal("cannot size page summaries");
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  std::vector<float> mm(2 * static_cast<size_t>(g.head_dim));  // (2, head_dim)
  for (int p = 0; p < n_pages; ++p)
    for (int h = 0; h < g.n_kv_heads; ++h) {
      for (int c = 0; c < g.head_dim; ++c) {
        float a = u(rng), b = u(rng);
        if (integral) a = std::round(a), b = std::round(b);
        mm[static_cast<size_t>(c)] = std::min(a, b);
        mm[static_cast<size_t>(g.head_dim + c)] = std::max(a, b);
      }
      s.store(0, p, h, mm.data());
    }
  s.set_n_built(0, n_pages);
  return s;
}

// Layer 0's summaries of pages [0, n_pages) as the floats the device kernel reads (the F16 values widen exactly).
std::vector<float> summaries_as_floats(const fkv::PageSummaries& s, int n_pages) {
  const int n_kv = s.geometry().n_kv_heads;
  const size_t block = 2 * static_cast<size_t>(s.head_dim());
  std::vector<float> out(static_cast<size_t>(n_pages) * s.page_stride());
  for (int p = 0; p < n_pages; ++p)
    for (int h = 0; h < n_kv; ++h) s.load(0, p, h, out.data() + static_cast<size_t>(p) * s.page_stride() + h * block);
  return out;
}

fkv::KvCache random_cache(const fkv::KvGeometry& g, int n_tok, uint64_t seed) {
  auto made = fkv::KvCache::create(g, n_tok);
  if (!made.ok()) qFatal("%s", made.message().c_str());
  fkv::KvCache cache = std::move(*made);
  const size_t n = static_cast<size_t>(n_tok) * g.n_kv_heads * g.head_dim;
  for (int l = 0; l < g.n_layers; ++l) {
    const std::vector<float> k =
        random_floats(n, static_cast<uint32_t>(seed + 2 * l), -4.f, 4.f);  // (n_tok, n_kv_heads, head_dim)
    const std::vector<float> v = random_floats(n, static_cast<uint32_t>(seed + 2 * l + 1), -4.f, 4.f);
    cache.write(l, 0, n_tok, k.data(), v.data());
  }
  cache.set_n_tokens(n_tok);
  return cache;
}

}  // namespace
#endif

#ifndef FKV_HAVE_CUDA
class TestCudaKv : public QObject {
  Q_OBJECT

 private slots:
  void noCudaBackend() { QSKIP("this build has no CUDA backend (FKV_CUDA=OFF or no nvcc)"); }
};
#else
class TestCudaKv : public QObject {
  Q_OBJECT

 private slots:
  // Validation comes before any CUDA call, so these run without a device.
  void badArgumentsAreErrorsBeforeAnyLaunch() {
    float host[4] = {};
    auto* f = host;
    auto* i = reinterpret_cast<int32_t*>(host);
    auto* h16 = reinterpret_cast<uint16_t*>(host);
    fkv::cuda::PagedAttentionArgs a;
    a.q = f, a.out = f, a.workspace = f, a.pages.k = h16, a.pages.v = h16;
    a.table = {i, i, i};
    a.pages.n_kv_heads = 2, a.pages.head_dim = 64, a.pages.page_size = 32, a.pages.n_slots = 4;
    a.n_heads = 8, a.max_pages = 4, a.n_splits = 0;
    expect_error(fkv::cuda::paged_attention(a, nullptr), "n_splits");
    a.n_splits = 2, a.n_heads = 5;
    expect_error(fkv::cuda::paged_attention(a, nullptr), "multiple");
    a.n_heads = 2 * 64, a.pages.head_dim = 256;
    expect_error(fkv::cuda::paged_attention(a, nullptr), "shared memory");
    a.n_heads = 8, a.pages.head_dim = 64, a.q = nullptr;
    expect_error(fkv::cuda::paged_attention(a, nullptr), "null");
    fkv::cuda::TopKArgs t{f, 2, 100, 0, 0, i};
    expect_error(fkv::cuda::top_k_pages(t, nullptr), "found 0");
    t.k = fkv::cuda::kMaxTopK + 1;
    expect_error(fkv::cuda::top_k_pages(t, nullptr), "k must be");
    t.k = 4, t.n_pages = fkv::cuda::kMaxTopKPages + 1;
    expect_error(fkv::cuda::top_k_pages(t, nullptr), "n_pages");
    fkv::cuda::PageBoundsArgs b{f, f, 10, 2, 0, 64, f, f};
    expect_error(fkv::cuda::page_bounds(b, nullptr), "group");
    fkv::cuda::ScatterArgs s;
    s.staged = reinterpret_cast<uint8_t*>(host), s.meta = i, s.k_pool = s.v_pool = reinterpret_cast<uint8_t*>(host);
    s.n = 1, s.page_size = 4, s.n_kv_heads = 1, s.head_dim = 4, s.n_slots = 1, s.elem_bytes = 3;
    expect_error(fkv::cuda::scatter_staged(s, nullptr), "element size");
    fkv::KvGeometry g{1, 2, 8, 4, fkv::DType::F16};
    auto pipe = fkv::cuda::RecallPipeline::create(g, 0, nullptr);
    QVERIFY(!pipe.ok());
    QVERIFY2(pipe.message().find("found 0") != std::string::npos, pipe.message().c_str());
  }

  // The pool is read as F16 by paged attention and the scatter copies bytes unchanged, so BF16 or F32 host rows would
  // be misread: the pipeline refuses them at creation, before any CUDA call (no device needed).
  void recallRefusesCachesOtherThanF16() {
    for (fkv::DType t : {fkv::DType::BF16, fkv::DType::F32}) {
      const fkv::KvGeometry g{1, 2, 8, 4, t};
      auto pipe = fkv::cuda::RecallPipeline::create(g, 4, nullptr);
      QVERIFY(!pipe.ok());
      QVERIFY2(pipe.message().find(std::string("found a ") + fkv::dtype_name(t) + " KV cache") != std::string::npos,
               pipe.message().c_str());
      QVERIFY2(pipe.message().find("use KV cache type F16") != std::string::npos, pipe.message().c_str());
    }
  }

  void zeroSizedCallsLaunchNothing() {
    float host[4] = {};
    auto* i = reinterpret_cast<int32_t*>(host);
    fkv::cuda::PagedAttentionArgs a;
    a.q = a.out = a.workspace = host;
    a.pages.k = a.pages.v = reinterpret_cast<uint16_t*>(host);
    a.table = {i, i, i};
    a.pages.n_kv_heads = 2, a.pages.head_dim = 64, a.pages.page_size = 32, a.n_heads = 0;
    QVERIFY(fkv::cuda::paged_attention(a, nullptr).ok());
    QVERIFY(fkv::cuda::top_k_pages({host, 2, 0, 8, 0, i}, nullptr).ok());
    QVERIFY(fkv::cuda::top_k_pages({host, 0, 10, 8, 0, i}, nullptr).ok());
    fkv::cuda::ScatterArgs s;
    s.staged = s.k_pool = s.v_pool = reinterpret_cast<uint8_t*>(host), s.meta = i;
    s.n = 0, s.page_size = 4, s.n_kv_heads = 1, s.head_dim = 4;
    QVERIFY(fkv::cuda::scatter_staged(s, nullptr).ok());
  }

  void attentionMatchesCpu_data() {
    QTest::addColumn<int>("n_kv");
    QTest::addColumn<int>("group");
    QTest::addColumn<int>("head_dim");
    QTest::addColumn<int>("page_size");
    QTest::addColumn<int>("n_splits");
    QTest::addColumn<bool>("empty_head");
    QTest::addColumn<float>("q_amp");  // queries in [-q_amp, q_amp]: 64 makes each softmax all but one-hot
    QTest::newRow("MHA, one split") << 2 << 1 << 64 << 16 << 1 << false << 1.f;
    QTest::newRow("GQA 4, 3 splits") << 2 << 4 << 128 << 32 << 3 << false << 1.f;
    QTest::newRow("GQA 8, more splits than pages") << 1 << 8 << 64 << 8 << 16 << false << 1.f;
    QTest::newRow("head 256, an empty list") << 3 << 2 << 256 << 16 << 4 << true << 1.f;
    QTest::newRow("peaked softmax, 3 splits") << 2 << 2 << 64 << 16 << 3 << false << 64.f;
  }
  void attentionMatchesCpu() {
    QFETCH(int, n_kv);
    QFETCH(int, group);
    QFETCH(int, head_dim);
    QFETCH(int, page_size);
    QFETCH(int, n_splits);
    QFETCH(bool, empty_head);
    QFETCH(float, q_amp);
    REQUIRE_DEVICE();
    const int n_slots = 12, n_heads = n_kv * group, D = head_dim;
    const size_t n_elem = static_cast<size_t>(n_slots) * page_size * n_kv * D;
    std::vector<uint16_t> k(n_elem), v(n_elem);  // (n_slots, page_size, n_kv_heads, head_dim) F16
    const std::vector<float> kf = random_floats(n_elem, 1, -1.f, 1.f), vf = random_floats(n_elem, 2, -1.f, 1.f);
    for (size_t e = 0; e < n_elem; ++e) k[e] = fkv::cpu::f32_to_f16(kf[e]), v[e] = fkv::cpu::f32_to_f16(vf[e]);
    const std::vector<float> q = random_floats(static_cast<size_t>(n_heads) * D, 3, -q_amp, q_amp);  // (n_heads, D)
    std::mt19937 rng(5);
    std::vector<int32_t> indptr{0}, indices, last(static_cast<size_t>(n_kv));
    int max_pages = 0;
    for (int h = 0; h < n_kv; ++h) {
      std::vector<int32_t> order(static_cast<size_t>(n_slots));
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng);
      const int n = empty_head && h == n_kv - 1 ? 0 : 1 + static_cast<int>(rng() % n_slots);
      indices.insert(indices.end(), order.begin(), order.begin() + n);
      indptr.push_back(static_cast<int32_t>(indices.size()));
      last[static_cast<size_t>(h)] = 1 + static_cast<int32_t>(rng() % page_size);
      max_pages = std::max(max_pages, n);
    }
    DeviceBuffer dk(n_elem * 2), dv(n_elem * 2), dq(q.size() * 4), dindptr(indptr.size() * 4),
        dindices(indices.size() * 4), dlast(last.size() * 4), dout(q.size() * 4),
        dws(fkv::cuda::paged_attention_workspace_floats(n_heads, D, n_splits) * 4);
    QVERIFY(upload(dk, k) && upload(dv, v) && upload(dq, q) && upload(dindptr, indptr) && upload(dlast, last));
    QVERIFY(indices.empty() || upload(dindices, indices));
    fkv::cuda::PagedAttentionArgs a;
    a.q = dq.as<float>(), a.out = dout.as<float>(), a.workspace = dws.as<float>();
    a.pages = {dk.as<uint16_t>(), dv.as<uint16_t>(), n_slots, page_size, n_kv, D};
    a.table = {dindptr.as<int32_t>(), dindices.as<int32_t>(), dlast.as<int32_t>()};
    a.n_heads = n_heads, a.max_pages = max_pages, a.n_splits = n_splits, a.scale = 1.f / std::sqrt(float(D));
    const fkv::Status st = fkv::cuda::paged_attention(a, nullptr);
    QVERIFY2(st.ok(), st.message().c_str());
    std::vector<float> out(q.size());
    QVERIFY(download(out, dout));
    for (int h = 0; h < n_kv; ++h)
      compare_head_with_cpu(k, v, q, indptr, indices, last, h, group, page_size, n_kv, D, a.scale, out);
  }

  void boundsMatchCpu() {
    REQUIRE_DEVICE();
    const fkv::KvGeometry g{1, 3, 64, 32, fkv::DType::F16};
    const int n_pages = 1000, group = 4, D = g.head_dim;
    const fkv::PageSummaries s = random_summaries(g, n_pages, 9, false);
    const std::vector<float> q = random_floats(static_cast<size_t>(g.n_kv_heads) * group * D, 4, -2.f, 2.f);
    const std::vector<float> summ = summaries_as_floats(s, n_pages);
    DeviceBuffer dq(q.size() * 4), ds(summ.size() * 4), dsplit(g.n_kv_heads * 2 * D * 4),
        dscores(g.n_kv_heads * n_pages * 4);
    QVERIFY(upload(dq, q) && upload(ds, summ));
    const fkv::Status st = fkv::cuda::page_bounds(
        {dq.as<float>(), ds.as<float>(), n_pages, g.n_kv_heads, group, D, dsplit.as<float>(), dscores.as<float>()},
        nullptr);
    QVERIFY2(st.ok(), st.message().c_str());
    std::vector<float> scores(static_cast<size_t>(g.n_kv_heads) * n_pages),
        split(static_cast<size_t>(g.n_kv_heads) * 2 * D);
    QVERIFY(download(scores, dscores) && download(split, dsplit));
    std::vector<float> want_split(2 * static_cast<size_t>(D)), want(n_pages);
    for (int h = 0; h < g.n_kv_heads; ++h) {
      fkv::cpu::split_group_query(q.data() + static_cast<size_t>(h) * group * D, group, D, want_split.data());
      for (int c = 0; c < 2 * D; ++c)
        QVERIFY(std::fabs(split[static_cast<size_t>(h * 2 * D + c)] - want_split[c]) <= 1e-6f);
      fkv::cpu::page_bounds(want_split.data(), s.kmin(0, 0, h), s.page_stride(), n_pages, D, want.data());
      for (int p = 0; p < n_pages; ++p) {
        float mag = 0.f;  // the terms' magnitude: what float rounding scales with
        for (int c = 0; c < 2 * D; ++c) mag += std::fabs(want_split[c] * summ[p * s.page_stride() + h * 2 * D + c]);
        const float got = scores[static_cast<size_t>(h) * n_pages + p];
        QVERIFY2(std::fabs(got - want[p]) <= 1e-5f * (1.f + mag),
                 qPrintable(QString("head %1 page %2: %3 vs %4").arg(h).arg(p).arg(got).arg(want[p])));
      }
    }
  }

  void topKMatchesSelectTopK_data() {
    QTest::addColumn<int>("n");
    QTest::addColumn<int>("k");
    QTest::addColumn<int>("lo");
    QTest::addColumn<int>("n_nan");
    QTest::addColumn<bool>("ties");
    QTest::newRow("8192 pages, k 256") << 8192 << 256 << 0 << 0 << false;
    QTest::newRow("offset range") << 700 << 17 << 41 << 0 << false;
    QTest::newRow("many ties") << 500 << 40 << 0 << 0 << true;
    QTest::newRow("NaN ranks last") << 300 << 250 << 7 << 60 << false;
    QTest::newRow("k >= n") << 5 << 8 << 3 << 0 << false;
    QTest::newRow("k 1, ties") << 1000 << 1 << 0 << 0 << true;
  }
  void topKMatchesSelectTopK() {
    QFETCH(int, n);
    QFETCH(int, k);
    QFETCH(int, lo);
    QFETCH(int, n_nan);
    QFETCH(bool, ties);
    REQUIRE_DEVICE();
    const fkv::KvGeometry g{1, 2, 32, 32, fkv::DType::F16};
    const int group = 2, D = g.head_dim;
    fkv::PageSummaries s = random_summaries(g, lo + n, 21, ties);
    std::mt19937 rng(8);
    for (int j = 0; j < n_nan; ++j)
      s.minmax(0, lo + static_cast<int>(rng() % n), static_cast<int>(rng() % 2))[0] = 0x7e00;  // F16 NaN
    const std::vector<float> q = query(g.n_kv_heads * group * D, ties);
    // The selection is tested on the CPU's own scores, so a rounding difference in the bounds cannot move a near-tie.
    std::vector<float> scores(static_cast<size_t>(g.n_kv_heads) * n), split(2 * static_cast<size_t>(D));
    for (int h = 0; h < g.n_kv_heads; ++h) {
      fkv::cpu::split_group_query(q.data() + h * group * D, group, D, split.data());
      fkv::cpu::page_bounds(split.data(), s.kmin(0, lo, h), s.page_stride(), n, D, scores.data() + h * n);
    }
    DeviceBuffer dscores(scores.size() * 4), dout(static_cast<size_t>(g.n_kv_heads) * k * 4);
    QVERIFY(upload(dscores, scores));
    const fkv::Status st =
        fkv::cuda::top_k_pages({dscores.as<float>(), g.n_kv_heads, n, k, lo, dout.as<int32_t>()}, nullptr);
    QVERIFY2(st.ok(), st.message().c_str());
    std::vector<int32_t> out(static_cast<size_t>(g.n_kv_heads) * k);
    QVERIFY(download(out, dout));
    compare_with_select_top_k(s, q, group, lo, n, k, out);
  }

  void boundsThenTopKEndToEnd() {
    REQUIRE_DEVICE();
    const fkv::KvGeometry g{1, 2, 32, 32, fkv::DType::F16};
    const int n = 2000, k = 64, group = 2, D = g.head_dim;
    const fkv::PageSummaries s = random_summaries(g, n, 33, true);  // integers: exact bounds in any summation order
    const std::vector<float> q = query(g.n_kv_heads * group * D, true);
    const std::vector<float> summ = summaries_as_floats(s, n);
    DeviceBuffer dq(q.size() * 4), ds(summ.size() * 4), dsplit(g.n_kv_heads * 2 * D * 4), dscores(g.n_kv_heads * n * 4),
        dout(g.n_kv_heads * k * 4);
    QVERIFY(upload(dq, q) && upload(ds, summ));
    fkv::Status st = fkv::cuda::page_bounds(
        {dq.as<float>(), ds.as<float>(), n, g.n_kv_heads, group, D, dsplit.as<float>(), dscores.as<float>()}, nullptr);
    QVERIFY2(st.ok(), st.message().c_str());
    st = fkv::cuda::top_k_pages({dscores.as<float>(), g.n_kv_heads, n, k, 0, dout.as<int32_t>()}, nullptr);
    QVERIFY2(st.ok(), st.message().c_str());
    std::vector<int32_t> out(static_cast<size_t>(g.n_kv_heads) * k);
    QVERIFY(download(out, dout));
    compare_with_select_top_k(s, q, group, 0, n, k, out);
  }

  void recallLandsWherePlanned_data() {
    QTest::addColumn<int>("chunk");
    QTest::addColumn<bool>("non_blocking");  // scatters on a non-blocking stream, as a DeviceContext's compute stream
    QTest::newRow("chunk 1: the double buffer wraps") << 1 << false;
    QTest::newRow("chunk 3") << 3 << false;
    QTest::newRow("chunk larger than the list") << 1000 << false;
    QTest::newRow("chunk 1 on a non-blocking stream") << 1 << true;
    QTest::newRow("chunk 3 on a non-blocking stream") << 3 << true;
  }
  void recallLandsWherePlanned() {
    QFETCH(int, chunk);
    QFETCH(bool, non_blocking);
    REQUIRE_DEVICE();
    const fkv::KvGeometry g{2, 3, 32, 8, fkv::DType::F16};
    const int n_pages = 20, n_slots = 6, l = 1;
    const fkv::KvCache cache = random_cache(g, n_pages * g.page_size - 3, 13);
    fkv::WorkingSet ws;
    QVERIFY(ws.init(g, n_slots).ok());
    const size_t pool_bytes = static_cast<size_t>(n_slots) * g.page_size * g.n_kv_heads * g.head_dim * 2;
    DeviceBuffer dk(pool_bytes), dv(pool_bytes);  // (n_slots, page_size, n_kv_heads, head_dim) each
    QVERIFY(dk.ok() && dv.ok());
    QVERIFY(cudaMemset(dk.as<void>(), 0xAB, pool_bytes) == cudaSuccess &&
            cudaMemset(dv.as<void>(), 0xCD, pool_bytes) == cudaSuccess);
    // A non-blocking stream does not wait for the legacy stream's memsets: the host does, before any scatter.
    QVERIFY(cudaDeviceSynchronize() == cudaSuccess);
    std::optional<fkv::cuda::Stream> stream;
    if (non_blocking) {
      auto s = fkv::cuda::Stream::create();
      QVERIFY2(s.ok(), s.message().c_str());
      stream.emplace(std::move(s).value());
    }
    auto pipe = fkv::cuda::RecallPipeline::create(g, chunk, stream ? stream->handle() : nullptr);
    QVERIFY2(pipe.ok(), pipe.message().c_str());
    std::mt19937 rng(17);
    for (int round = 0; round < 2; ++round) {  // the second round reuses resident pages and refills the rest
      std::vector<fkv::RecallBlock> blocks;
      for (int h = 0; h < g.n_kv_heads; ++h) {
        std::vector<int32_t> pages;
        for (int p = 0; p < n_pages; ++p)
          if (static_cast<int>(pages.size()) < n_slots && rng() % 2 == 0) pages.push_back(p);
        fkv::RecallPlan plan;
        ws.plan(l, h, pages.data(), static_cast<int>(pages.size()), plan);
        fkv::append_recall_blocks(h, plan, blocks);
        ws.apply(l, h, plan, cache);
      }
      const int n = static_cast<int>(blocks.size());
      QVERIFY(n >= 3);  // chunk 1 then uses buffer 0 twice
      auto moved = pipe->run(cache, l, blocks.data(), n, {dk.as<uint8_t>(), dv.as<uint8_t>(), n_slots});
      QVERIFY2(moved.ok(), moved.message().c_str());
      QCOMPARE(*moved, static_cast<uint64_t>(n) * 2 * g.head_block_bytes());
      QCOMPARE(pipe->last_chunks(), (n + chunk - 1) / chunk);
      const fkv::Status st = pipe->synchronize();
      QVERIFY2(st.ok(), st.message().c_str());
      std::vector<uint8_t> k_pool(pool_bytes), v_pool(pool_bytes);
      QVERIFY(download(k_pool, dk) && download(v_pool, dv));
      fkvtest::verify_pool(g, ws, l, n_slots, k_pool, v_pool);
      if (QTest::currentTestFailed()) return;
    }
  }

  void recallRejectsBadBlocks() {
    REQUIRE_DEVICE();
    const fkv::KvGeometry g{1, 2, 16, 4, fkv::DType::F16};
    const fkv::KvCache cache = random_cache(g, 3 * g.page_size, 3);
    const int n_slots = 2;
    const size_t pool_bytes = static_cast<size_t>(n_slots) * g.page_size * g.n_kv_heads * g.head_dim * 2;
    DeviceBuffer dk(pool_bytes), dv(pool_bytes);
    QVERIFY(cudaMemset(dk.as<void>(), 0xAB, pool_bytes) == cudaSuccess &&
            cudaMemset(dv.as<void>(), 0xAB, pool_bytes) == cudaSuccess);
    auto pipe = fkv::cuda::RecallPipeline::create(g, 1, nullptr);
    QVERIFY2(pipe.ok(), pipe.message().c_str());
    const fkv::RecallBlock blocks[] = {{0, 0, 0}, {1, 1, n_slots}};  // the second names a slot past the pool
    auto moved = pipe->run(cache, 0, blocks, 2, {dk.as<uint8_t>(), dv.as<uint8_t>(), n_slots});
    QVERIFY(!moved.ok());
    QVERIFY2(moved.message().find("slot") != std::string::npos, moved.message().c_str());
    std::vector<uint8_t> k_pool(pool_bytes);
    QVERIFY(download(k_pool, dk));
    for (uint8_t b : k_pool) QCOMPARE(b, uint8_t{0xAB});  // nothing moved, not even the valid first block
  }

 private:
  static void expect_error(const fkv::Status& s, const char* needle) {
    QVERIFY2(!s.ok(), needle);
    QVERIFY2(s.message().find(needle) != std::string::npos, s.message().c_str());
  }

  // Queries (n) in [-2, 2], whole numbers when `integral`.
  static std::vector<float> query(int n, bool integral) {
    std::vector<float> q = random_floats(static_cast<size_t>(n), 6, -2.f, 2.f);
    if (integral)
      for (float& x : q) x = std::round(x);
    return q;
  }

  // out (n_kv_heads, k): each head's first min(k, n) ids equal select_top_k's over [lo, lo + n).
  static void compare_with_select_top_k(const fkv::PageSummaries& s, const std::vector<float>& q, int group, int lo,
                                        int n, int k, const std::vector<int32_t>& out) {
    const int D = s.head_dim();
    std::vector<int32_t> want;
    std::vector<float> scratch;
    for (int h = 0; h < s.geometry().n_kv_heads; ++h) {
      fkv::select_top_k(s, 0, h, q.data() + h * group * D, group, lo, lo + n, k, want, scratch);
      QCOMPARE(static_cast<int>(want.size()), std::min(k, n));
      for (size_t j = 0; j < want.size(); ++j)
        QVERIFY2(out[static_cast<size_t>(h) * k + j] == want[j],
                 qPrintable(QString("head %1 rank %2: %3, cpu %4")
                                .arg(h)
                                .arg(j)
                                .arg(out[static_cast<size_t>(h) * k + j])
                                .arg(want[j])));
    }
  }

  // KV head h's query heads against cpu::attend over the same pages, gathered into HND blocks.
  static void compare_head_with_cpu(const std::vector<uint16_t>& k, const std::vector<uint16_t>& v,
                                    const std::vector<float>& q, const std::vector<int32_t>& indptr,
                                    const std::vector<int32_t>& indices, const std::vector<int32_t>& last, int h,
                                    int group, int P, int n_kv, int D, float scale, const std::vector<float>& out) {
    const int n = indptr[static_cast<size_t>(h) + 1] - indptr[static_cast<size_t>(h)];
    std::vector<uint16_t> kb(static_cast<size_t>(n) * P * D), vb(kb.size());  // (n, page_size, head_dim)
    std::vector<fkv::cpu::AttnPage> pages(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      const int slot = indices[static_cast<size_t>(indptr[static_cast<size_t>(h)] + i)];
      for (int t = 0; t < P; ++t) {
        const size_t src = ((static_cast<size_t>(slot) * P + t) * n_kv + h) * D,
                     dst = (static_cast<size_t>(i) * P + t) * D;
        std::copy(k.begin() + src, k.begin() + src + D, kb.begin() + dst);
        std::copy(v.begin() + src, v.begin() + src + D, vb.begin() + dst);
      }
      const size_t off = static_cast<size_t>(i) * P * D * 2;
      pages[static_cast<size_t>(i)] = {reinterpret_cast<const uint8_t*>(kb.data()) + off,
                                       reinterpret_cast<const uint8_t*>(vb.data()) + off, i * P,
                                       i == n - 1 ? last[static_cast<size_t>(h)] : P};
    }
    std::vector<float> want(static_cast<size_t>(D));
    for (int gq = 0; gq < group; ++gq) {
      const size_t qh = static_cast<size_t>(h) * group + gq;
      fkv::cpu::attend(q.data() + qh * D, pages.data(), n, fkv::DType::F16, D, scale, 0, n * P, want.data());
      for (int c = 0; c < D; ++c)
        QVERIFY2(std::fabs(out[qh * D + c] - want[static_cast<size_t>(c)]) <= 1e-3f,
                 qPrintable(QString("query head %1 dim %2: %3 vs cpu %4")
                                .arg(qh)
                                .arg(c)
                                .arg(out[qh * D + c])
                                .arg(want[static_cast<size_t>(c)])));
    }
  }
};
#endif

QTEST_APPLESS_MAIN(TestCudaKv)
#include "test_cuda_kv.moc"
