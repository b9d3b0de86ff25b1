// A model's weights on the device, uploaded once at load: every matrix dequantized to F16 (the layout matmul_f16
// reads), norms, biases and rope divisors kept as F32. The raw GGUF bytes travel from the mapping through one pinned
// staging buffer (two halves, so copying the next piece out of the mapping overlaps the transfer of the last) into a
// reusable device chunk, are dequantized there, and are freed when the upload ends: the device never holds a whole
// quantized copy beside the F16 one.
//
// Plain C++: included by host code and tests; the device work lives in device_weights.cu and dequant.cu.
//
// tests/gpu/test_cuda_dequant.cpp checks the host-side planning (sizes, chunking) without a device and a synthetic
// model's upload row by row against the CPU dequantization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "backend/cuda/cuda_util.h"
#include "fkv/status.h"
#include "model/tensors.h"

namespace fkv {
class Model;
}

namespace fkv::cuda {

// A weight matrix on the device: n_rows rows of n_cols F16 values (IEEE binary16 bits), row-major, no padding.
struct DeviceMatrix {
  const uint16_t* data = nullptr;  // (n_rows, n_cols) f16
  int64_t n_rows = 0;
  int64_t n_cols = 0;
};

// The device twin of LayerWeights / ModelWeights: same tensors, matrices as F16 on the device.
using DeviceLayerWeights = LayerTensors<DeviceMatrix>;
using DeviceModelWeights = ModelTensors<DeviceMatrix>;

struct UploadOptions {
  // Pinned staging bytes, split into two halves; each half (and the device chunk) grows to hold at least one row.
  size_t staging_bytes = size_t{64} << 20;
  // Called after each piece with the raw bytes uploaded so far and the total; returning false cancels the upload.
  std::function<bool(size_t done, size_t total)> progress;
};

// Host-side sizes of an upload, known before anything is allocated (callers check them against free memory).
struct UploadPlan {
  size_t raw_bytes = 0;         // bytes read from the file and copied to the device (each tensor once)
  size_t resident_bytes = 0;    // device bytes the uploaded weights keep: F16 matrices plus F32 vectors
  size_t max_row_bytes = 0;     // the longest raw matrix row, the least a staging half must hold
  size_t max_tensor_bytes = 0;  // the largest raw tensor, the most a staging half needs
  int n_tensors = 0;            // tensors uploaded (a tied output counts once)
};
UploadPlan plan_upload(const Model& model);

// Rows of a matrix moved per piece: as many whole rows of `row_bytes` as fit in `chunk_bytes`, at least 1, at most
// n_rows (0 for an empty matrix).
int64_t rows_per_chunk(int64_t n_rows, size_t row_bytes, size_t chunk_bytes);

// Owner of a model's device weights. Move-only; the device memory lives as long as this object.
class DeviceWeights {
 public:
  DeviceWeights() = default;
  DeviceWeights(DeviceWeights&&) noexcept = default;
  DeviceWeights& operator=(DeviceWeights&&) noexcept = default;
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;

  // Uploads every tensor of `model` on ctx's device and stream, and waits for it to finish. Failures (out of memory,
  // a cancelled upload, a device fault) are a Status naming the tensor and, for allocations, the bytes asked for;
  // nothing stays allocated after a failure.
  static Result<DeviceWeights> upload(const Model& model, const DeviceContext& ctx, const UploadOptions& options = {});

  const DeviceModelWeights& weights() const { return weights_; }
  // Raw bytes copied host -> device (plan_upload's raw_bytes once the upload has finished).
  size_t bytes_uploaded() const { return bytes_uploaded_; }
  // Device bytes held by the weights.
  size_t resident_bytes() const { return resident_bytes_; }

 private:
  std::vector<DeviceBuffer> buffers_;  // one per uploaded tensor; the views in weights_ point into them
  DeviceModelWeights weights_;
  size_t bytes_uploaded_ = 0;
  size_t resident_bytes_ = 0;
};

}  // namespace fkv::cuda
