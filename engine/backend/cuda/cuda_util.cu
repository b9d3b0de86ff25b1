// CUDA/cuBLAS errors as Status and the RAII owners declared in cuda_util.h.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>
#include <utility>

#include "backend/cuda/cuda_util.h"

namespace fkv::cuda {

Status cuda_status(int code, const char* call) {
  const auto e = static_cast<cudaError_t>(code);
  if (e == cudaSuccess) return {};
  // Clears the error from CUDA's last-error slot (sticky errors stay in the context whatever we do).
  cudaGetLastError();
  return err(call, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

Status cublas_status(int code, const char* call) {
  const auto s = static_cast<cublasStatus_t>(code);
  if (s == CUBLAS_STATUS_SUCCESS) return {};
  return err(call, ": ", cublasGetStatusName(s), " (", cublasGetStatusString(s), ")");
}

Status launch_status(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return {};
  return err("launch of kernel ", kernel, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

// ---- DeviceBuffer ----

DeviceBuffer::~DeviceBuffer() {
  if (ptr_ != nullptr) cudaFree(ptr_);  // a destructor cannot report; a failed free means the context is already lost
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

// Factories spell out Result<T>(std::move(local)): in C++17, nvcc's dialect here, a move-only local is not moved into
// Result's converting constructor implicitly, and plain `return std::move(x)` draws the host compiler's redundant-move.
Result<DeviceBuffer> DeviceBuffer::allocate(size_t bytes) {
  DeviceBuffer b;
  if (bytes == 0) return Result<DeviceBuffer>(std::move(b));
  const std::string call = "cudaMalloc(" + std::to_string(bytes) + " bytes)";
  FKV_TRY(cuda_status(cudaMalloc(&b.ptr_, bytes), call.c_str()));
  b.bytes_ = bytes;
  return Result<DeviceBuffer>(std::move(b));
}

namespace {

Status check_range(size_t offset, size_t bytes, size_t size, const char* what) {
  if (offset > size || bytes > size - offset)
    return err(what, ": expected ", bytes, " bytes at offset ", offset, " to fit in a buffer of ", size,
               " bytes, found they do not");
  return {};
}

}  // namespace

Status DeviceBuffer::upload(const void* host, size_t bytes, StreamHandle stream, size_t offset) {
  FKV_TRY(check_range(offset, bytes, bytes_, "DeviceBuffer::upload"));
  if (bytes == 0) return {};
  FKV_CUDA_TRY(cudaMemcpyAsync(static_cast<char*>(ptr_) + offset, host, bytes, cudaMemcpyHostToDevice, stream));
  return {};
}

Status DeviceBuffer::download(void* host, size_t bytes, StreamHandle stream, size_t offset) const {
  FKV_TRY(check_range(offset, bytes, bytes_, "DeviceBuffer::download"));
  if (bytes == 0) return {};
  FKV_CUDA_TRY(cudaMemcpyAsync(host, static_cast<const char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost, stream));
  return {};
}

Status DeviceBuffer::zero(StreamHandle stream) {
  if (bytes_ == 0) return {};
  FKV_CUDA_TRY(cudaMemsetAsync(ptr_, 0, bytes_, stream));
  return {};
}

// ---- PinnedBuffer ----

PinnedBuffer::~PinnedBuffer() {
  if (ptr_ != nullptr) cudaFreeHost(ptr_);
}

PinnedBuffer::PinnedBuffer(PinnedBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr) cudaFreeHost(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

Result<PinnedBuffer> PinnedBuffer::allocate(size_t bytes) {
  PinnedBuffer b;
  if (bytes == 0) return Result<PinnedBuffer>(std::move(b));
  const std::string call = "cudaMallocHost(" + std::to_string(bytes) + " bytes)";
  FKV_TRY(cuda_status(cudaMallocHost(&b.ptr_, bytes), call.c_str()));
  b.bytes_ = bytes;
  return Result<PinnedBuffer>(std::move(b));
}

// ---- Stream ----

Stream::~Stream() {
  if (s_ != nullptr) cudaStreamDestroy(s_);
}

Stream::Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    if (s_ != nullptr) cudaStreamDestroy(s_);
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}

Result<Stream> Stream::create() {
  Stream s;
  FKV_CUDA_TRY(cudaStreamCreateWithFlags(&s.s_, cudaStreamNonBlocking));
  return Result<Stream>(std::move(s));
}

Status Stream::synchronize() const {
  FKV_CUDA_TRY(cudaStreamSynchronize(s_));
  return {};
}

// ---- Event ----

Event::~Event() {
  if (e_ != nullptr) cudaEventDestroy(e_);
}

Event::Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (e_ != nullptr) cudaEventDestroy(e_);
    e_ = std::exchange(o.e_, nullptr);
  }
  return *this;
}

Result<Event> Event::create(bool timing) {
  Event e;
  const unsigned flags = timing ? cudaEventDefault : cudaEventDisableTiming;
  FKV_CUDA_TRY(cudaEventCreateWithFlags(&e.e_, flags));
  return Result<Event>(std::move(e));
}

Status Event::record(StreamHandle stream) {
  FKV_CUDA_TRY(cudaEventRecord(e_, stream));
  return {};
}

Status Event::wait_on(StreamHandle stream) const {
  FKV_CUDA_TRY(cudaStreamWaitEvent(stream, e_, 0));
  return {};
}

Status Event::synchronize() const {
  FKV_CUDA_TRY(cudaEventSynchronize(e_));
  return {};
}

Result<float> Event::elapsed_ms(const Event& start, const Event& end) {
  float ms = 0.f;
  FKV_CUDA_TRY(cudaEventElapsedTime(&ms, start.e_, end.e_));
  return ms;
}

// ---- DeviceContext ----

void DeviceContext::release() {
  // The handle is bound to the compute stream, so it goes first; the stream member is destroyed after this.
  if (blas_ != nullptr) cublasDestroy(blas_);
  blas_ = nullptr;
}

DeviceContext::~DeviceContext() { release(); }

DeviceContext::DeviceContext(DeviceContext&& o) noexcept
    : device_(std::exchange(o.device_, -1)), blas_(std::exchange(o.blas_, nullptr)), compute_(std::move(o.compute_)) {}

DeviceContext& DeviceContext::operator=(DeviceContext&& o) noexcept {
  if (this != &o) {
    release();
    device_ = std::exchange(o.device_, -1);
    blas_ = std::exchange(o.blas_, nullptr);
    compute_ = std::move(o.compute_);
  }
  return *this;
}

Result<DeviceContext> DeviceContext::create(int device) {
  int n_devices = 0;
  FKV_CUDA_TRY(cudaGetDeviceCount(&n_devices));
  if (device < 0 || device >= n_devices)
    return err("CUDA device index: expected 0..", n_devices - 1, ", found ", device);
  FKV_CUDA_TRY(cudaSetDevice(device));
  DeviceContext ctx;
  ctx.device_ = device;
  FKV_ASSIGN_OR_RETURN(ctx.compute_, Stream::create());
  FKV_CUBLAS_TRY(cublasCreate(&ctx.blas_));
  FKV_CUBLAS_TRY(cublasSetStream(ctx.blas_, ctx.compute_.handle()));
  return Result<DeviceContext>(std::move(ctx));
}

Status DeviceContext::make_current() const {
  if (device_ < 0) return err("DeviceContext::make_current: expected a created context, found an empty one");
  FKV_CUDA_TRY(cudaSetDevice(device_));
  return {};
}

}  // namespace fkv::cuda
