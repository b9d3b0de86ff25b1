// Element-wise and attention kernels of the CPU forward pass. Scalar code that compilers vectorise, plus AVX2 versions
// of the attention inner loops (dot and axpy against F16 key/value rows), chosen by cpu::active_isa().
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace fkv::cpu {

// y = x / sqrt(mean(x^2) + eps) * w    x, y, w: (n); y may alias x
void rms_norm(const float* x, const float* w, float* y, int n, float eps);

// x = x * silu(g) or x * gelu_tanh(g), element-wise over n (the gated FFN's activation)
void silu_mul(const float* g, float* x, int64_t n);
void gelu_mul(const float* g, float* x, int64_t n);

// Rotates one head (head_dim floats) at angles pos * inv_freq[i]; `neox` pairs (i, i + d/2), otherwise (2i, 2i+1).
// cos_sin: (head_dim / 2, 2) precomputed for this position (times the model's RoPE magnitude, 1 unless YaRN).
void rope_head(float* x, const float* cos_sin, int head_dim, bool neox);

// One KV row (n elements) in the cache's element type (F16, BF16 or F32) to floats and back (F16 and BF16 round to
// nearest even).
void load_kv_row(DType t, const uint8_t* src, float* dst, int n);
void store_kv_row(DType t, const float* src, uint8_t* dst, int n);

// One page of keys and values of one KV head: (len, head_dim) rows in the cache's element type, at positions pos0...
struct AttnPage {
  const uint8_t* k = nullptr;  // (len, head_dim)
  const uint8_t* v = nullptr;  // (len, head_dim)
  int pos0 = 0;
  int len = 0;
  // (n_q, head_dim) the query attend_partial scores this page with instead of the call's: context memory rotates
  // the query rather than a moved page's keys when one query meets them (runtime/context.cpp). Null: the call's.
  const float* q = nullptr;
};

// out = softmax(scale * q.K^T) V over the pages' keys whose positions lie in [lo, hi] (online softmax, page by page).
// q, out: (head_dim). kv: F16, BF16 or F32. out is all zeros when no key is visible.
void attend(const float* q, const AttnPage* pages, int n_pages, DType kv, int head_dim, float scale, int lo, int hi,
            float* out);

// The query heads that share one KV head (a GQA group) attend together: each key and value row is read and converted
// once for the whole group. Writes the unnormalised partial state of an online softmax over these pages, so a long page
// list can be split across threads and merged (attend_merge): acc (n_q, head_dim), m (n_q) running max, l (n_q) sum.
// Limits: n_q <= kMaxGroup, head_dim <= kMaxHeadDim (ModelConfig::validate enforces both).
constexpr int kMaxGroup = 64;
constexpr int kMaxHeadDim = 1024;
void attend_partial(const float* q, int n_q, const AttnPage* pages, int n_pages, DType kv, int head_dim, float scale,
                    int lo, int hi, float* acc, float* m, float* l);

// Prefill: the query rows of n_tok consecutive tokens of one GQA group, attended together so that each key and value
// block is read and converted once for all of them. Token t (position pos0 + t) sees the keys at positions
// [lo_t, pos0 + t], lo_t = max(0, pos0 + t - window + 1) with a sliding window, else 0. Its n_q rows are
// q + t * q_stride (floats); its normalised outputs go to out + t * out_stride (zeros where no key is visible).
// Pages must not carry their own query (AttnPage::q). Limits: n_tok * n_q <= kMaxTileRows, head_dim <= kMaxTileHeadDim.
constexpr int kMaxTileRows = 64;
constexpr int kMaxTileHeadDim = 256;
void attend_causal(const float* q, int64_t q_stride, int n_tok, int n_q, const AttnPage* pages, int n_pages, DType kv,
                   int head_dim, float scale, int pos0, int window, float* out, int64_t out_stride);

// Combines n_parts partial states of n_q heads into normalised outputs: acc (n_parts, n_q, head_dim), m and l
// (n_parts, n_q) -> out (n_q, head_dim). Heads that saw no key get zeros.
void attend_merge(const float* acc, const float* m, const float* l, int n_parts, int n_q, int head_dim, float* out);

namespace ref {
void attend(const float* q, const AttnPage* pages, int n_pages, DType kv, int head_dim, float scale, int lo, int hi,
            float* out);
}

}  // namespace fkv::cpu

namespace fkv::cpu {

// Upper bound of sum_g q_g . k over every key k of a page whose channel-wise key minimum and maximum are mn and mx:
// sum_g sum_c max(q_gc * mn_c, q_gc * mx_c). Each term is q_gc * mx_c when q_gc > 0 and q_gc * mn_c otherwise, so the
// group's sum is one dot product: sum_c neg_c * mn_c + pos_c * mx_c with neg_c = sum_g min(q_gc, 0) and
// pos_c = sum_g max(q_gc, 0). Splitting the query once per selection makes scoring a page cost 2 * head_dim
// multiply-adds whatever the group size.

// q: (group, head_dim) -> out: (2, head_dim) = (neg, pos).
void split_group_query(const float* q, int group, int head_dim, float* out);
// summaries: n pages of F16 codes, page i at summaries + i * stride elements, each starting with (2, head_dim) =
// (min, max); q_split: (2, head_dim) from split_group_query; out: (n) bounds. Dispatches to AVX2 when active.
void page_bounds(const float* q_split, const uint16_t* summaries, size_t stride, int n, int head_dim, float* out);
// The bounds of n_heads heads whose (2, head_dim) blocks follow each other in every page (page i, head h at
// summaries + i * stride + h * 2 * head_dim), in one pass over the pages: q_splits (n_heads, 2, head_dim); head h's
// bound of page i goes to out[h * out_stride + i] (out_stride >= n: a run of pages can fill its part of a longer
// row). Each page's blocks are then read once for all heads, where one head at a time would have the memory bring in
// the whole page for each (on a book's thousands of pages, the pass is bound by those reads). Each head's bounds
// equal page_bounds' for it, bit for bit.
void page_bounds_heads(const float* q_splits, const uint16_t* summaries, size_t stride, int n, int n_heads, int head_dim,
                       float* out, size_t out_stride);

// Page scores from 8-bit codes (kv/page_summary.h): pages come in blocks of kCodeBlockPages, a block holding `cols`
// codes per page interleaved by four, [cols / 4][kCodeBlockPages][4]. For pages [first, first + n) (block b holds
// pages [b * kCodeBlockPages, (b + 1) * kCodeBlockPages)) out[i] = sum over c of q[c] * code(first + i, c), exactly
// (the integer sum as a float, exact while |sum| < 2^24: cols <= 512). `blocks` points at block 0; cols is a multiple
// of 4.
inline constexpr int kCodeBlockPages = 16;
void code_scores(const int8_t* q, const uint8_t* blocks, int cols, int first, int n, float* out);

// F16 codes of x rounded toward -infinity and toward +infinity (NaN stays NaN; past F16's range: the largest finite
// value or an infinity, as the direction says).
uint16_t f16_round_down(float x);
uint16_t f16_round_up(float x);
// A page summary's (2, head_dim) = (min, max) floats to F16, the minima rounded down and the maxima up, so bounds
// computed from the F16 values still hold. Dispatches to AVX2 (F16C's directed rounding) when active.
void summary_to_f16(const float* mn_mx, uint16_t* out, int head_dim);

namespace ref {
void code_scores(const int8_t* q, const uint8_t* blocks, int cols, int first, int n, float* out);
void summary_to_f16(const float* mn_mx, uint16_t* out, int head_dim);
// The definition, term by term: the reference the split form is tested against.
float page_bound(const float* q, int group, const float* mn, const float* mx, int head_dim);
void page_bounds(const float* q_split, const uint16_t* summaries, size_t stride, int n, int head_dim, float* out);
void page_bounds_heads(const float* q_splits, const uint16_t* summaries, size_t stride, int n, int n_heads, int head_dim,
                       float* out, size_t out_stride);
}

}  // namespace fkv::cpu
