// The CUDA side of a Context (runtime/context.h): the dense CUDA forward pass (backend/cuda/forward.h) behind an
// interface that exists in every build, so context.cpp needs no #ifdef. In a build without CUDA, create() fails
// with the reason and nothing else can be reached.
#pragma once

#include <memory>
#include <span>

#include "fkv/status.h"

namespace fkv {

class Model;
struct ContextParams;

class GpuContext {
 public:
  ~GpuContext();
  GpuContext(const GpuContext&) = delete;
  GpuContext& operator=(const GpuContext&) = delete;

  // Uploads the weights to params.device and allocates a KV cache of n_ctx tokens there; prompts run in chunks of
  // min(n_batch, n_ctx) tokens, as on the CPU. Refused before any device is touched: a kv_type other than F16 (the
  // device cache and its attention kernels hold F16 only). Out of device memory, a driver that cannot run this
  // build, or no device: an error that names the CUDA call and its reason.
  static Result<std::unique_ptr<GpuContext>> create(const Model& model, const ContextParams& params);

  // As Context::eval: `logits` holds (n_vocab) floats, or (tokens.size(), n_vocab) with all_logits.
  Status eval(std::span<const int32_t> tokens, bool all_logits, std::span<float> logits);
  int n_past() const;
  int n_batch() const;  // tokens per prompt chunk
  void reset();
  Status truncate(int n_tokens);

 private:
  GpuContext();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fkv
