// Dispatch between the scalar reference and the AVX2 kernels, and the matmul driver.
#include "backend/cpu/quant.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "backend/cpu/quant_impl.h"

namespace fkv::cpu {

namespace {

Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();  // detected_isa() may run from a static initializer, before libgcc has probed the CPU
  // F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c". The avx2 check
  // already includes the OS's consent to save YMM state.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) return Isa::Avx2;
#endif
  return Isa::Scalar;
}

// FKV_ISA=scalar forces the reference kernels everywhere (comparing results and speed across ISAs without a rebuild).
Isa initial_isa() {
  const char* env = std::getenv("FKV_ISA");
  if (env != nullptr && std::string_view(env) == "scalar") return Isa::Scalar;
  return detected_isa();
}

bool detect_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // libgcc and compiler-rt report the AVX-512 features only where the OS saves the ZMM state.
  return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

std::atomic<bool>& vnni_on() {
  static std::atomic<bool> on{[] {
    const char* env = std::getenv("FKV_VNNI");
    return !(env != nullptr && std::string_view(env) == "0");
  }()};
  return on;
}

std::atomic<Isa>& active() {
  static std::atomic<Isa> isa{initial_isa()};
  return isa;
}

constexpr int64_t kRowGrain = 16;             // rows per parallel_for grain, and the row tile walked against all tokens
constexpr size_t kScratchAlign = 64;          // matmul aligns its scratch itself, so callers may pass any buffer
constexpr size_t kTokChunkBytes = 512 << 10;  // encoded activations kept hot in L2 while a row tile walks them

// Where AVX-512 is on, its one-token dots take over the types it has them for (the decode matmul's rows).
VecDotFn vec_dot_fn(Isa isa, DType t) {
  if (isa != Isa::Avx2) return ref::vec_dot_fn(t);
  if (vnni_active()) {
    if (const VecDotFn fn = vnni::vec_dot_fn(t)) return fn;
  }
  return avx2::vec_dot_fn(t);
}

void quantize_row_isa(Isa isa, DType t, const float* x, void* y, int64_t n) {
  if (isa == Isa::Avx2) {
    switch (t) {
      case DType::Q8_0:
        avx2::quantize_row_q8_0(x, y, n);
        return;
      case DType::Q8_K:
        avx2::quantize_row_q8_k(x, y, n);
        return;
      case DType::F16:
        avx2::f32_to_f16_row(x, static_cast<uint16_t*>(y), n);
        return;
      default:
        break;
    }
  }
  ref::quantize_row(t, x, y, n);
}

// Rows [r0, r1) of y for every token, one dot per (row, token); W is walked in row tiles so a tile stays in cache
// across the tokens.
void matmul_rows(VecDotFn dot, const MatrixView& w, const uint8_t* xq, size_t x_stride, int64_t n_tok, float* y,
                 int64_t ldy, int64_t r0, int64_t r1) {
  const size_t w_stride = row_bytes(w.type, w.n_cols);
  const auto* wd = static_cast<const uint8_t*>(w.data);
  for (int64_t rt = r0; rt < r1; rt += kRowGrain) {
    const int64_t rt_end = std::min(r1, rt + kRowGrain);
    for (int64_t t = 0; t < n_tok; ++t) {
      const uint8_t* xt = xq + static_cast<size_t>(t) * x_stride;
      for (int64_t r = rt; r < rt_end; ++r) y[t * ldy + r] = dot(wd + static_cast<size_t>(r) * w_stride, xt, w.n_cols);
    }
  }
}

// Bytes of one group of interleaved activations of type xt (Q8_K or Q8_0) for rows of n_cols.
size_t group_bytes(DType xt, int64_t n_cols) {
  return xt == DType::Q8_K ? static_cast<size_t>(n_cols / kQK) * sizeof(GroupQ8_K)
                           : static_cast<size_t>(n_cols / kQ32) * sizeof(GroupQ8_0);
}

// The same product with the tiled kernel: each call covers a row tile against up to `width` tokens. Tokens are
// taken in chunks whose encoded rows fit L2, so a row tile re-reads them from cache rather than from memory.
// xi, where the kernel takes interleaved activations: their groups, one per `width` tokens.
void matmul_tiles(TileFn tile, int64_t width, const MatrixView& w, const uint8_t* xq, size_t x_stride,
                  const uint8_t* xi, int64_t n_tok, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const size_t w_stride = row_bytes(w.type, w.n_cols);
  const auto* wd = static_cast<const uint8_t*>(w.data);
  const size_t xi_group = xi != nullptr ? group_bytes(vec_dot_type(w.type), w.n_cols) : 0;
  const int64_t tok_chunk = std::max<int64_t>(width, static_cast<int64_t>(kTokChunkBytes / x_stride) / width * width);
  for (int64_t tc = 0; tc < n_tok; tc += tok_chunk) {
    const int64_t tc_end = std::min(n_tok, tc + tok_chunk);
    for (int64_t rt = r0; rt < r1; rt += kRowGrain) {
      const int64_t n_rows = std::min(r1, rt + kRowGrain) - rt;
      for (int64_t t = tc; t < tc_end; t += width) {
        TileArgs a{};
        a.w = wd + static_cast<size_t>(rt) * w_stride;
        a.w_stride = w_stride;
        a.n_rows = n_rows;
        a.x = xq + static_cast<size_t>(t) * x_stride;
        a.x_stride = x_stride;
        a.n_tok = static_cast<int>(std::min<int64_t>(width, tc_end - t));
        a.n = w.n_cols;
        a.y = y + t * ldy + rt;
        a.ldy = ldy;
        if (xi != nullptr) a.xi = xi + static_cast<size_t>(t / width) * xi_group;
        tile(a);
      }
    }
  }
}

}  // namespace

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

Isa active_isa() { return active().load(std::memory_order_relaxed); }

void set_active_isa(Isa isa) {
  if (isa == Isa::Avx2 && detected_isa() != Isa::Avx2) isa = Isa::Scalar;
  active().store(isa, std::memory_order_relaxed);
}

const char* isa_name(Isa isa) { return isa == Isa::Avx2 ? "avx2" : "scalar"; }

bool vnni_detected() {
  static const bool v = detect_vnni();
  return v;
}

bool vnni_active() {
  return active_isa() == Isa::Avx2 && vnni_detected() && vnni_on().load(std::memory_order_relaxed);
}

void set_vnni(bool on) { vnni_on().store(on, std::memory_order_relaxed); }
bool vnni_enabled() { return vnni_on().load(std::memory_order_relaxed); }

const char* active_isa_label() { return vnni_active() ? "avx2+vnni" : isa_name(active_isa()); }

void f16_to_f32_row(const uint16_t* x, float* y, int64_t n) {
  if (active_isa() == Isa::Avx2) {
    avx2::f16_to_f32_row(x, y, n);
  } else {
    ref::f16_to_f32_row(x, y, n);
  }
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
  if (active_isa() == Isa::Avx2) {
    avx2::f32_to_f16_row(x, y, n);
  } else {
    ref::f32_to_f16_row(x, y, n);
  }
}

DType vec_dot_type(DType weight) {
  switch (weight) {
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
      return DType::Q8_0;
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return DType::Q8_K;
    default:
      return DType::F32;
  }
}

void quantize_row(DType t, const float* x, void* y, int64_t n) { quantize_row_isa(active_isa(), t, x, y, n); }

void dequantize_row(DType t, const void* x, float* y, int64_t n) {
  if (t == DType::F16) {
    f16_to_f32_row(static_cast<const uint16_t*>(x), y, n);
  } else {
    ref::dequantize_row(t, x, y, n);  // decoding is off the hot path (embedding lookups), the reference suffices
  }
}

float vec_dot(DType t, const void* w, const void* x, int64_t n) {
  const VecDotFn fn = vec_dot_fn(active_isa(), t);
  return fn != nullptr ? fn(w, x, n) : 0.0f;
}

size_t matmul_scratch_bytes(DType t, int64_t n_cols, int64_t n_tok) {
  const DType xt = vec_dot_type(t);
  if (xt == DType::F32) return 0;  // f32 partners read x in place
  size_t bytes = static_cast<size_t>(n_tok) * row_bytes(xt, n_cols) + kScratchAlign;
  // Room for the interleaved copy the VNNI tiles read (whether or not this CPU will use them).
  if (n_tok > 1)
    bytes += static_cast<size_t>((n_tok + kGroupTokens - 1) / kGroupTokens) * group_bytes(xt, n_cols) + kScratchAlign;
  return bytes;
}

void matmul(const MatrixView& w, const float* x, int64_t n_tok, float* y, int64_t ldy, void* scratch,
            ThreadPool& pool) {
  if (n_tok <= 0 || w.n_rows <= 0) return;
  // Everything the workers need sits in one struct so each lambda captures a single reference and std::function
  // keeps it inline: the decode loop must not allocate.
  struct Job {
    const MatrixView& w;
    const float* x;
    int64_t n_tok;
    float* y;
    int64_t ldy;
    Isa isa;
    DType xt;
    const uint8_t* xq;
    uint8_t* enc;
    size_t x_stride;
    TileFn tile;
    VecDotFn dot;
    uint8_t* xi;    // interleaved activations, for a tile of vnni::tile_lanes_fn
    int64_t width;  // tokens per tile call
    bool lanes;     // the tile takes interleaved activations
  } job{w,
        x,
        n_tok,
        y,
        ldy,
        active_isa(),
        vec_dot_type(w.type),
        reinterpret_cast<const uint8_t*>(x),
        nullptr,
        static_cast<size_t>(w.n_cols) * sizeof(float),
        nullptr,
        nullptr,
        nullptr,
        tile_tokens(w.type),
        false};
  if (job.isa == Isa::Avx2 && n_tok > 1) {
    if (vnni_active()) {
      job.tile = vnni::tile_lanes_fn(w.type);
      if (job.tile != nullptr) {
        job.width = kGroupTokens;
        job.lanes = true;
      }
    }
    if (job.tile == nullptr) job.tile = avx2::tile_fn(w.type);
  }
  if (job.xt != DType::F32) {
    const size_t pad = (kScratchAlign - reinterpret_cast<uintptr_t>(scratch) % kScratchAlign) % kScratchAlign;
    job.enc = static_cast<uint8_t*>(scratch) + pad;
    job.x_stride = row_bytes(job.xt, w.n_cols);
    job.xq = job.enc;
    if (job.lanes) {
      const uintptr_t end = reinterpret_cast<uintptr_t>(job.enc + static_cast<size_t>(n_tok) * job.x_stride);
      job.xi = job.enc + static_cast<size_t>(n_tok) * job.x_stride + (kScratchAlign - end % kScratchAlign);
    }
    // Each worker encodes whole groups of tokens, and interleaves them where the tile reads them so.
    pool.parallel_for((n_tok + job.width - 1) / job.width, 1, [&job](int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t t0 = g * job.width, t1 = std::min(job.n_tok, t0 + job.width);
        uint8_t* enc = job.enc + static_cast<size_t>(t0) * job.x_stride;
        for (int64_t t = t0; t < t1; ++t) {
          quantize_row_isa(job.isa, job.xt, job.x + t * job.w.n_cols,
                           job.enc + static_cast<size_t>(t) * job.x_stride, job.w.n_cols);
        }
        if (job.xi == nullptr) continue;
        uint8_t* xi = job.xi + static_cast<size_t>(g) * group_bytes(job.xt, job.w.n_cols);
        const int n = static_cast<int>(t1 - t0);
        if (job.xt == DType::Q8_K) {
          vnni::interleave_q8_k(enc, job.x_stride, n, job.w.n_cols, reinterpret_cast<GroupQ8_K*>(xi));
        } else {
          vnni::interleave_q8_0(enc, job.x_stride, n, job.w.n_cols, reinterpret_cast<GroupQ8_0*>(xi));
        }
      }
    });
  }
  job.dot = vec_dot_fn(job.isa, w.type);
  pool.parallel_for(w.n_rows, kRowGrain, [&job](int64_t r0, int64_t r1) {
    if (job.tile != nullptr) {
      matmul_tiles(job.tile, job.width, job.w, job.xq, job.x_stride, job.xi, job.n_tok, job.y, job.ldy, r0, r1);
    } else {
      matmul_rows(job.dot, job.w, job.xq, job.x_stride, job.n_tok, job.y, job.ldy, r0, r1);
    }
  });
}

}  // namespace fkv::cpu
