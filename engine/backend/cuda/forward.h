// A dense CUDA forward pass: the model's weights and a KV cache of n_ctx tokens resident on one device, every page
// attended to at every step (no retrieval yet; the FreeKV pipeline builds on this later). It exists so that the CUDA
// backend can be checked end to end against the CPU reference (runtime/context.h): same tokens in, same logits out.
//
// Numerics: models whose matrices are all F32 run their matmuls in F32 (matmul_f32, weights uploaded as they are);
// any other model runs F16 weights from DeviceWeights with row-scaled F16 activations and F32 accumulation
// (matmul_f16_scaled: activations past F16's range stay finite, as in the CPU's F32 activations). The KV cache is F16
// in NHD pages, as the CPU context's default F16 cache (the only KV type this backend accepts).
//
// Plain C++20 header (included by host code and tests); the implementation is forward.cpp (host recipe) and
// forward.cu (its kernels).
//
// tests/gpu/test_cuda_forward.cpp compares the logits with the CPU.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "fkv/status.h"

namespace fkv {
class Model;
}

namespace fkv::cuda {

class CudaForward {
 public:
  ~CudaForward();
  CudaForward(const CudaForward&) = delete;
  CudaForward& operator=(const CudaForward&) = delete;

  // Uploads the weights of `model` to `device` and allocates the KV cache (n_ctx tokens in pages of page_size) and
  // every scratch buffer for chunks of min(n_batch, n_ctx) tokens, so eval() never allocates. `model` must outlive
  // the result.
  static Result<std::unique_ptr<CudaForward>> create(const Model& model, int device, int n_ctx, int page_size,
                                                     int n_batch);

  // Appends `tokens` at position n_past(), in chunks of at most max_batch() tokens (a single token runs as a decode
  // step over the page table). Writes (n_vocab) logits of the last token to `logits_host`, or (tokens.size(), n_vocab)
  // when all_logits. Errors (empty input, token out of range, overflow, a small logits buffer) leave the cache as
  // before; a device fault mid-way leaves n_past() unchanged too.
  Status eval(std::span<const int32_t> tokens, bool all_logits, std::span<float> logits_host);

  void reset();  // forget every token
  Status truncate(int n_tokens);  // forget the tokens after the first n_tokens (0..n_past())
  int n_past() const;
  int n_ctx() const;
  int max_batch() const;    // tokens per forward chunk: min(n_batch, n_ctx) of create()
  bool f32_matmul() const;  // true when the matmuls run in F32 (every matrix of the model is F32)

 private:
  CudaForward();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fkv::cuda
