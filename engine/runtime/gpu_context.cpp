#include "runtime/gpu_context.h"

#ifdef FKV_HAVE_CUDA
#include "backend/cuda/forward.h"
#endif

namespace fkv {

#ifdef FKV_HAVE_CUDA
struct GpuContext::Impl {
  std::unique_ptr<cuda::CudaForward> forward;
};
#else
struct GpuContext::Impl {};
#endif

GpuContext::GpuContext() : impl_(std::make_unique<Impl>()) {}
GpuContext::~GpuContext() = default;

#ifdef FKV_HAVE_CUDA

Result<std::unique_ptr<GpuContext>> GpuContext::create(const Model& model, int device, int n_ctx, int page_size) {
  std::unique_ptr<GpuContext> g(new GpuContext());
  FKV_ASSIGN_OR_RETURN(g->impl_->forward, cuda::CudaForward::create(model, device, n_ctx, page_size));
  return g;
}

Status GpuContext::eval(std::span<const int32_t> tokens, bool all_logits, std::span<float> logits) {
  return impl_->forward->eval(tokens, all_logits, logits);
}
int GpuContext::n_past() const { return impl_->forward->n_past(); }
void GpuContext::reset() { impl_->forward->reset(); }
Status GpuContext::truncate(int n_tokens) { return impl_->forward->truncate(n_tokens); }

#else

Result<std::unique_ptr<GpuContext>> GpuContext::create(const Model&, int, int, int) {
  return err("this build has no CUDA backend (configured with FKV_CUDA=OFF or without nvcc)");
}
// Unreachable: create() never returns a GpuContext in this build.
Status GpuContext::eval(std::span<const int32_t>, bool, std::span<float>) { return err("no CUDA backend"); }
int GpuContext::n_past() const { return 0; }
void GpuContext::reset() {}
Status GpuContext::truncate(int) { return err("no CUDA backend"); }

#endif

}  // namespace fkv
