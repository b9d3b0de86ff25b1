#include "runtime/gpu_context.h"

#include "runtime/context.h"

#ifdef FKV_HAVE_CUDA
#include "backend/cuda/forward.h"
#endif

namespace fkv {

namespace {

// What the CUDA backend cannot do with these parameters, checked the same in every build so the refusal does not
// depend on a device being present.
Status check_gpu_params(const ContextParams& params) {
  if (params.kv_type != DType::F16)
    return err("the CUDA backend keeps its KV cache in F16 (its attention kernels read F16 only), found KV type ",
               dtype_name(params.kv_type), ": use F16, or backend cpu for ", dtype_name(params.kv_type));
  return {};
}

}  // namespace

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

Result<std::unique_ptr<GpuContext>> GpuContext::create(const Model& model, const ContextParams& params) {
  FKV_TRY(check_gpu_params(params));
  std::unique_ptr<GpuContext> g(new GpuContext());
  FKV_ASSIGN_OR_RETURN(g->impl_->forward, cuda::CudaForward::create(model, params.device, params.n_ctx,
                                                                    params.page_size, params.n_batch));
  return g;
}

Status GpuContext::eval(std::span<const int32_t> tokens, bool all_logits, std::span<float> logits) {
  return impl_->forward->eval(tokens, all_logits, logits);
}
int GpuContext::n_past() const { return impl_->forward->n_past(); }
int GpuContext::n_batch() const { return impl_->forward->max_batch(); }
void GpuContext::reset() { impl_->forward->reset(); }
Status GpuContext::truncate(int n_tokens) { return impl_->forward->truncate(n_tokens); }

#else

Result<std::unique_ptr<GpuContext>> GpuContext::create(const Model&, const ContextParams& params) {
  FKV_TRY(check_gpu_params(params));
  return err("this build has no CUDA backend (configured with FKV_CUDA=OFF or without nvcc)");
}
// Unreachable: create() never returns a GpuContext in this build.
Status GpuContext::eval(std::span<const int32_t>, bool, std::span<float>) { return err("no CUDA backend"); }
int GpuContext::n_past() const { return 0; }
int GpuContext::n_batch() const { return 0; }
void GpuContext::reset() {}
Status GpuContext::truncate(int) { return err("no CUDA backend"); }

#endif

}  // namespace fkv
