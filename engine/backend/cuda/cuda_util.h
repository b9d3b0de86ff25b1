// Foundations of the CUDA backend: CUDA and cuBLAS errors as fkv::Status, RAII owners of device memory, pinned host
// memory, streams and events, and the DeviceContext (one device, its cuBLAS handle and its compute stream).
//
// Plain C++: this header is included by .cpp files and tests built by the host compiler, so CUDA's handle types appear
// only as the opaque struct pointers the CUDA headers themselves define (cudaStream_t is CUstream_st*, and so on).
//
// The error paths that need no device (status text, allocation failure) run in tests/gpu/test_cuda_ops.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fkv/status.h"

// The CUDA headers' own handle types, declared the same way so the typedefs there and these names agree.
struct CUstream_st;
struct CUevent_st;
struct cublasContext;

namespace fkv::cuda {

using StreamHandle = CUstream_st*;  // == cudaStream_t; nullptr is the legacy default stream
using EventHandle = CUevent_st*;    // == cudaEvent_t
using BlasHandle = cublasContext*;  // == cublasHandle_t

// A cudaError_t / cublasStatus_t (passed as its integer value so this header needs no CUDA header) as a Status whose
// message names the call: "cudaMalloc(1125899906842624 bytes): cudaErrorMemoryAllocation (out of memory)".
// A failed call also clears CUDA's last-error slot, so the next launch check does not report this error again.
Status cuda_status(int code, const char* call);
Status cublas_status(int code, const char* call);

// Status of the last kernel launch on this thread (cudaGetLastError), naming the kernel.
Status launch_status(const char* kernel);

// Owner of one cudaMalloc'd block. Move-only; an empty buffer (0 bytes) holds no allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Allocates on the current device; failure (out of memory, no device) is a Status naming cudaMalloc and the size.
  static Result<DeviceBuffer> allocate(size_t bytes);

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  template <class T>
  size_t count() const {
    return bytes_ / sizeof(T);
  }

  // Copies between host memory and this buffer, enqueued on `stream` (asynchronous for pinned host memory).
  // `bytes` + `offset` must fit in the buffer.
  Status upload(const void* host, size_t bytes, StreamHandle stream, size_t offset = 0);
  Status download(void* host, size_t bytes, StreamHandle stream, size_t offset = 0) const;
  // Sets every byte to zero, enqueued on `stream`.
  Status zero(StreamHandle stream);

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Owner of page-locked host memory (cudaMallocHost): the host end of asynchronous copies. Move-only.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& o) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  static Result<PinnedBuffer> allocate(size_t bytes);

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  template <class T>
  size_t count() const {
    return bytes_ / sizeof(T);
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Owner of a non-blocking stream (it does not synchronise with the legacy default stream). Move-only.
class Stream {
 public:
  Stream() = default;
  ~Stream();
  Stream(Stream&& o) noexcept;
  Stream& operator=(Stream&& o) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  static Result<Stream> create();

  StreamHandle handle() const { return s_; }
  // Blocks until the work queued so far has finished; reports any asynchronous error of that work.
  Status synchronize() const;

 private:
  StreamHandle s_ = nullptr;
};

// Owner of an event: orders work across streams and, when created with timing, measures it. Move-only.
class Event {
 public:
  Event() = default;
  ~Event();
  Event(Event&& o) noexcept;
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Events without timing are cheaper to record and wait on; timing is for benchmarks.
  static Result<Event> create(bool timing = false);

  EventHandle handle() const { return e_; }
  Status record(StreamHandle stream);
  // Makes `stream` wait (on the device, not the host) for the work this event was recorded after.
  Status wait_on(StreamHandle stream) const;
  Status synchronize() const;
  // Milliseconds between two recorded timing events, start then end.
  static Result<float> elapsed_ms(const Event& start, const Event& end);

 private:
  EventHandle e_ = nullptr;
};

// One device, made current on creation, with the cuBLAS handle and compute stream the ops run on. Move-only.
class DeviceContext {
 public:
  DeviceContext() = default;
  ~DeviceContext();
  DeviceContext(DeviceContext&& o) noexcept;
  DeviceContext& operator=(DeviceContext&& o) noexcept;
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

  // Fails with a message naming the call when the device does not exist or cuBLAS cannot start.
  static Result<DeviceContext> create(int device);

  int device() const { return device_; }
  BlasHandle blas() const { return blas_; }
  StreamHandle stream() const { return compute_.handle(); }
  // Makes this context's device current on the calling thread (CUDA keeps the current device per thread).
  Status make_current() const;

 private:
  void release();

  int device_ = -1;
  BlasHandle blas_ = nullptr;
  Stream compute_;
};

}  // namespace fkv::cuda

// Evaluate a CUDA runtime / cuBLAS call and return its failure as a Status naming the call's text.
#define FKV_CUDA_TRY(call) FKV_TRY(::fkv::cuda::cuda_status(static_cast<int>(call), #call))
#define FKV_CUBLAS_TRY(call) FKV_TRY(::fkv::cuda::cublas_status(static_cast<int>(call), #call))
