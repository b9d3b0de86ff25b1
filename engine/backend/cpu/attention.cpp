// Paged attention: the query heads of a GQA group score blocks of keys together, with one online-softmax rescale per block.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "backend/cpu/ops.h"
#include "backend/cpu/quant.h"

namespace fkv::cpu {

namespace avx2 {
float dot_f32(const float* k, const float* q, int n);
void axpy_f32(float a, const float* v, float* y, int n);
float exp_sub_max(float* x, int n, float mx);
void score_block(const float* q, int n_q, const float* k, int nb, int hd, float scale, float* s, int ld);
void accumulate_block(const float* w, int ld, int n_q, const float* v, int nb, int hd, float* acc);
void score_rows_t(const float* q, int n_rows, const float* kt, int nb, int hd, float scale, float* s, int ld);
void transpose_keys(const float* k, int nb, int hd, float* kt);
}  // namespace avx2

// The same two tiles with AVX-512 (attention_avx512.cpp): call only where vnni_active().
namespace avx512 {
void score_rows_t(const float* q, int n_rows, const float* kt, int nb, int hd, float scale, float* s, int ld);
void accumulate_block(const float* w, int ld, int n_q, const float* v, int nb, int hd, float* acc);
}  // namespace avx512

namespace {

constexpr int kBlock = 64;           // most keys scored per online-softmax step
constexpr int kBlockFloats = 8192;   // converted rows kept on the stack (32 KiB): kBlock rows of head_dim <= 128

// Converts nb rows of a key or value block to floats; F32 blocks are used in place.
const float* load_rows(DType kv, const uint8_t* rows, int nb, int hd, float* buf) {
  const int64_t n = static_cast<int64_t>(nb) * hd;
  switch (kv) {
    case DType::F32: return reinterpret_cast<const float*>(rows);
    case DType::F16: f16_to_f32_row(reinterpret_cast<const uint16_t*>(rows), buf, n); return buf;
    default: {
      const auto* r = reinterpret_cast<const uint16_t*>(rows);
      for (int64_t i = 0; i < n; ++i) buf[i] = bf16_to_f32(r[i]);
      return buf;
    }
  }
}

struct Kernels {
  void (*score)(const float* q, int n_q, const float* k, int nb, int hd, float scale, float* s, int ld);
  float (*exp_sub_max)(float* x, int n, float mx);  // x[i] = exp(x[i] - mx); returns the sum
  void (*accumulate)(const float* w, int ld, int n_q, const float* v, int nb, int hd, float* acc);
  void (*score_keys)(const float* q, int n_rows, const float* k, int nb, int hd, float scale, float* s, int ld,
                     float* kt);
};

void score_scalar(const float* q, int n_q, const float* k, int nb, int hd, float scale, float* s, int ld) {
  for (int j = 0; j < nb; ++j)
    for (int g = 0; g < n_q; ++g) {
      float d = 0.f;
      for (int i = 0; i < hd; ++i) d += q[g * hd + i] * k[j * hd + i];
      s[g * ld + j] = d * scale;
    }
}
float exp_sub_max_scalar(float* x, int n, float mx) {
  float sum = 0.f;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  return sum;
}
void accumulate_scalar(const float* w, int ld, int n_q, const float* v, int nb, int hd, float* acc) {
  for (int g = 0; g < n_q; ++g)
    for (int j = 0; j < nb; ++j)
      for (int i = 0; i < hd; ++i) acc[g * hd + i] += w[g * ld + j] * v[j * hd + i];
}

// The prefill tile's scores (attend_causal): rows of queries against a block of keys. AVX2 scores the keys
// transposed into kt (hd, kBlock), which its register tile broadcasts queries against; the scalar kernel reads them
// as they are.
void score_keys_avx2(const float* q, int n_rows, const float* k, int nb, int hd, float scale, float* s, int ld,
                     float* kt) {
  avx2::transpose_keys(k, nb, hd, kt);
  avx2::score_rows_t(q, n_rows, kt, nb, hd, scale, s, ld);
}
void score_keys_avx512(const float* q, int n_rows, const float* k, int nb, int hd, float scale, float* s, int ld,
                       float* kt) {
  avx2::transpose_keys(k, nb, hd, kt);
  avx512::score_rows_t(q, n_rows, kt, nb, hd, scale, s, ld);
}
void score_keys_scalar(const float* q, int n_rows, const float* k, int nb, int hd, float scale, float* s, int ld,
                       float* /*kt*/) {
  score_scalar(q, n_rows, k, nb, hd, scale, s, ld);
}

Kernels kernels() {
  if (vnni_active()) return {avx2::score_block, avx2::exp_sub_max, avx512::accumulate_block, score_keys_avx512};
  if (active_isa() == Isa::Avx2)
    return {avx2::score_block, avx2::exp_sub_max, avx2::accumulate_block, score_keys_avx2};
  return {score_scalar, exp_sub_max_scalar, accumulate_scalar, score_keys_scalar};
}

struct BlockArgs {
  const Kernels* kn;
  const float* q;  // (n_q, head_dim)
  int n_q, head_dim;
  DType kv;
  float scale;
  float* acc;  // (n_q, head_dim)
  float* m;    // (n_q)
  float* l;    // (n_q)
};

// One block of nb keys for every head of the group: score, rescale the running state, accumulate values.
void attend_block(const BlockArgs& a, const uint8_t* k, const uint8_t* v, int nb) {
  float buf[kBlockFloats];      // (nb, head_dim) converted keys, then values
  float s[kMaxGroup * kBlock];  // (n_q, kBlock) scores, then weights
  const int hd = a.head_dim;
  a.kn->score(a.q, a.n_q, load_rows(a.kv, k, nb, hd, buf), nb, hd, a.scale, s, kBlock);
  for (int g = 0; g < a.n_q; ++g) {
    float* sg = s + g * kBlock;
    const float m_new = std::max(a.m[g], *std::max_element(sg, sg + nb));
    // Rescales what was accumulated under the old maximum. The maximum seldom moves after the first blocks, and an
    // unchanged one needs no exp (exp(0) is 1 exactly, so the results are the same bits).
    const float corr = m_new == a.m[g] ? 1.f : std::exp(a.m[g] - m_new);
    if (corr != 1.f)
      for (int d = 0; d < hd; ++d) a.acc[g * hd + d] *= corr;
    a.l[g] = a.l[g] * corr + a.kn->exp_sub_max(sg, nb, m_new);
    a.m[g] = m_new;
  }
  a.kn->accumulate(s, kBlock, a.n_q, load_rows(a.kv, v, nb, hd, buf), nb, hd, a.acc);
}

}  // namespace

void attend_partial(const float* q, int n_q, const AttnPage* pages, int n_pages, DType kv, int head_dim, float scale,
                    int lo, int hi, float* acc, float* m, float* l) {
  const Kernels kn = kernels();
  std::fill(acc, acc + static_cast<size_t>(n_q) * head_dim, 0.f);
  std::fill(m, m + n_q, -std::numeric_limits<float>::infinity());
  std::fill(l, l + n_q, 0.f);
  BlockArgs args{&kn, q, n_q, head_dim, kv, scale, acc, m, l};
  const size_t row = static_cast<size_t>(head_dim) * (kv == DType::F32 ? 4 : 2);
  const int block = std::min(kBlock, kBlockFloats / head_dim);
  for (int p = 0; p < n_pages; ++p) {
    const AttnPage& pg = pages[p];
    args.q = pg.q != nullptr ? pg.q : q;
    const int j0 = std::max(0, lo - pg.pos0);
    const int j1 = std::min(pg.len, hi - pg.pos0 + 1);
    for (int j = j0; j < j1; j += block) attend_block(args, pg.k + j * row, pg.v + j * row, std::min(block, j1 - j));
  }
}

void attend_causal(const float* q, int64_t q_stride, int n_tok, int n_q, const AttnPage* pages, int n_pages, DType kv,
                   int head_dim, float scale, int pos0, int window, float* out, int64_t out_stride) {
  const Kernels kn = kernels();
  const int hd = head_dim;
  const int n_rows = n_tok * n_q;
  // Per thread, reused: a prefill calls this for every (tile of tokens, KV head) of every layer. Value-initialised
  // once: the AVX2 score kernel reads kt's columns past a short block's keys (and drops those scores), which then
  // hold zeros or an earlier block's keys.
  struct Scratch {
    float q[kMaxTileRows * kMaxTileHeadDim];
    float acc[kMaxTileRows * kMaxTileHeadDim];
    float kt[kMaxTileHeadDim * kBlock];  // keys transposed: (hd, kBlock)
    float rows[kBlock * kMaxTileHeadDim];  // converted keys, then values: (nb, hd)
    float s[kMaxTileRows * kBlock];
    float m[kMaxTileRows], l[kMaxTileRows];
  };
  thread_local std::unique_ptr<Scratch> scratch;
  if (!scratch) scratch = std::make_unique<Scratch>();
  Scratch& w = *scratch;
  for (int t = 0; t < n_tok; ++t) std::copy_n(q + t * q_stride, static_cast<size_t>(n_q) * hd, w.q + t * n_q * hd);
  std::fill(w.acc, w.acc + static_cast<size_t>(n_rows) * hd, 0.f);
  std::fill(w.m, w.m + n_rows, -std::numeric_limits<float>::infinity());
  std::fill(w.l, w.l + n_rows, 0.f);
  const auto lo_of = [&](int t) { return window > 0 ? std::max(0, pos0 + t - window + 1) : 0; };
  const int lo_all = lo_of(0), hi_all = pos0 + n_tok - 1;
  const size_t row = static_cast<size_t>(hd) * (kv == DType::F32 ? 4 : 2);
  for (int p = 0; p < n_pages; ++p) {
    const AttnPage& pg = pages[p];
    const int j0 = std::max(0, lo_all - pg.pos0);
    const int j1 = std::min(pg.len, hi_all - pg.pos0 + 1);
    for (int j = j0; j < j1; j += kBlock) {
      const int nb = std::min(kBlock, j1 - j);
      const int kp0 = pg.pos0 + j;  // position of the block's first key
      kn.score_keys(w.q, n_rows, load_rows(kv, pg.k + j * row, nb, hd, w.rows), nb, hd, scale, w.s, kBlock, w.kt);
      for (int t = 0; t < n_tok; ++t) {
        // Keys outside token t's range (after it, or before its window) get no weight.
        const int a = std::clamp(lo_of(t) - kp0, 0, nb), b = std::clamp(pos0 + t - kp0 + 1, 0, nb);
        for (int g = 0; g < n_q; ++g) {
          const int r = t * n_q + g;
          float* sr = w.s + r * kBlock;
          if (a >= b) {  // nothing visible in this block
            std::fill(sr, sr + nb, 0.f);
            continue;
          }
          const float m_new = std::max(w.m[r], *std::max_element(sr + a, sr + b));
          const float corr = m_new == w.m[r] ? 1.f : std::exp(w.m[r] - m_new);  // as in attend_block
          if (corr != 1.f)
            for (int d = 0; d < hd; ++d) w.acc[r * hd + d] *= corr;
          w.l[r] = w.l[r] * corr + kn.exp_sub_max(sr + a, b - a, m_new);
          w.m[r] = m_new;
          std::fill(sr, sr + a, 0.f);
          std::fill(sr + b, sr + nb, 0.f);
        }
      }
      kn.accumulate(w.s, kBlock, n_rows, load_rows(kv, pg.v + j * row, nb, hd, w.rows), nb, hd, w.acc);
    }
  }
  for (int t = 0; t < n_tok; ++t)
    for (int g = 0; g < n_q; ++g) {
      const int r = t * n_q + g;
      const float inv = w.l[r] > 0.f ? 1.f / w.l[r] : 0.f;
      float* o = out + t * out_stride + static_cast<int64_t>(g) * hd;
      for (int d = 0; d < hd; ++d) o[d] = w.acc[r * hd + d] * inv;
    }
}

void attend_merge(const float* acc, const float* m, const float* l, int n_parts, int n_q, int head_dim, float* out) {
  for (int g = 0; g < n_q; ++g) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int c = 0; c < n_parts; ++c) mx = std::max(mx, m[c * n_q + g]);
    float* o = out + static_cast<size_t>(g) * head_dim;
    std::fill(o, o + head_dim, 0.f);
    if (mx == -std::numeric_limits<float>::infinity()) continue;  // no visible key
    float sum = 0.f;
    for (int c = 0; c < n_parts; ++c) {
      const float w = std::exp(m[c * n_q + g] - mx);
      sum += w * l[c * n_q + g];
      const float* a = acc + (static_cast<size_t>(c) * n_q + g) * head_dim;
      for (int d = 0; d < head_dim; ++d) o[d] += w * a[d];
    }
    const float inv = 1.f / sum;
    for (int d = 0; d < head_dim; ++d) o[d] *= inv;
  }
}

void attend(const float* q, const AttnPage* pages, int n_pages, DType kv, int head_dim, float scale, int lo, int hi,
            float* out) {
  float m = 0.f;
  float l = 0.f;
  attend_partial(q, 1, pages, n_pages, kv, head_dim, scale, lo, hi, out, &m, &l);
  if (l > 0.f) {
    const float inv = 1.f / l;
    for (int d = 0; d < head_dim; ++d) out[d] *= inv;
  }
}

}  // namespace fkv::cpu
