// Upload of a model's weights to the device (see device_weights.h). The model's tensors become a list of jobs
// (name, host bytes, shape, destination field); plan_upload sizes that list on the host, DeviceWeights::upload runs it.
// Every piece goes host mapping -> pinned staging half -> device, on the context's stream; the two staging halves
// alternate, and an event per half says when its last transfer has read it, so the host fills one half while the
// other is in flight. Matrices arrive a whole number of rows at a time in one device chunk buffer and are
// dequantized from there into their F16 home; the kernel and the next transfer into the chunk share the stream, so
// the chunk is never overwritten while a kernel still reads it. F16 matrices and F32 vectors need no decoding and go
// straight to their home.
//
// tests/gpu/test_cuda_dequant.cpp checks an upload against the CPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "backend/cuda/dequant.h"
#include "backend/cuda/device_weights.h"
#include "model/model.h"

namespace fkv::cuda {

namespace {

// One tensor to upload and the field of DeviceModelWeights that receives it (exactly one of matrix / vector is set).
struct Job {
  std::string name;            // the GGUF tensor name, for messages
  const void* host = nullptr;  // (n_rows, row_bytes(type, n_cols)) in the mapping
  DType type = DType::F32;
  int64_t n_rows = 0;
  int64_t n_cols = 0;
  DeviceMatrix* matrix = nullptr;
  const float** vector = nullptr;

  size_t raw_bytes() const { return static_cast<size_t>(n_rows) * row_bytes(type, n_cols); }
  size_t device_bytes() const {
    return matrix != nullptr ? static_cast<size_t>(n_rows * n_cols) * sizeof(uint16_t) : raw_bytes();
  }
};

void add_matrix(std::vector<Job>& jobs, std::string name, const cpu::MatrixView& m, DeviceMatrix* dst) {
  if (m.data == nullptr) return;
  Job j;
  j.name = std::move(name);
  j.host = m.data;
  j.type = m.type;
  j.n_rows = m.n_rows;
  j.n_cols = m.n_cols;
  j.matrix = dst;
  jobs.push_back(std::move(j));
}

void add_vector(std::vector<Job>& jobs, std::string name, const float* v, int n, const float** dst) {
  if (v == nullptr) return;
  Job j;
  j.name = std::move(name);
  j.host = v;
  j.n_rows = 1;
  j.n_cols = n;
  j.vector = dst;
  jobs.push_back(std::move(j));
}

void add_layer(std::vector<Job>& jobs, const LayerWeights& l, const ModelConfig& c, int il, DeviceLayerWeights& d) {
  const std::string p = "blk." + std::to_string(il) + ".";
  add_vector(jobs, p + "attn_norm.weight", l.attn_norm, c.n_embd, &d.attn_norm);
  add_matrix(jobs, p + "attn_q.weight", l.wq, &d.wq);
  add_matrix(jobs, p + "attn_k.weight", l.wk, &d.wk);
  add_matrix(jobs, p + "attn_v.weight", l.wv, &d.wv);
  add_matrix(jobs, p + "attn_output.weight", l.wo, &d.wo);
  add_vector(jobs, p + "attn_q.bias", l.bq, c.n_embd_q(), &d.bq);
  add_vector(jobs, p + "attn_k.bias", l.bk, c.n_embd_kv(), &d.bk);
  add_vector(jobs, p + "attn_v.bias", l.bv, c.n_embd_kv(), &d.bv);
  add_vector(jobs, p + "attn_q_norm.weight", l.q_norm, c.head_dim, &d.q_norm);
  add_vector(jobs, p + "attn_k_norm.weight", l.k_norm, c.head_dim, &d.k_norm);
  add_vector(jobs, p + "post_attention_norm.weight", l.post_attn_norm, c.n_embd, &d.post_attn_norm);
  add_vector(jobs, p + "ffn_norm.weight", l.ffn_norm, c.n_embd, &d.ffn_norm);
  add_matrix(jobs, p + "ffn_gate.weight", l.w_gate, &d.w_gate);
  add_matrix(jobs, p + "ffn_up.weight", l.w_up, &d.w_up);
  add_matrix(jobs, p + "ffn_down.weight", l.w_down, &d.w_down);
  add_vector(jobs, p + "post_ffw_norm.weight", l.post_ffn_norm, c.n_embd, &d.post_ffn_norm);
}

bool output_is_tied(const ModelWeights& w) { return w.output.data == w.tok_embd.data; }

// The jobs for every tensor of `model`, aimed at the fields of `out` (whose layer list is sized here). A tied output
// is no job: it is pointed at the token embedding afterwards.
std::vector<Job> collect_jobs(const Model& model, DeviceModelWeights& out) {
  const ModelWeights& w = model.weights();
  const ModelConfig& c = model.config();
  std::vector<Job> jobs;
  out.layers.assign(w.layers.size(), DeviceLayerWeights{});
  add_matrix(jobs, "token_embd.weight", w.tok_embd, &out.tok_embd);
  add_vector(jobs, "output_norm.weight", w.output_norm, c.n_embd, &out.output_norm);
  if (!output_is_tied(w)) add_matrix(jobs, "output.weight", w.output, &out.output);
  add_vector(jobs, "rope_freqs.weight", w.rope_freqs, c.head_dim / 2, &out.rope_freqs);
  for (size_t il = 0; il < w.layers.size(); ++il)
    add_layer(jobs, w.layers[il], c, static_cast<int>(il), out.layers[il]);
  return jobs;
}

UploadPlan plan_jobs(const std::vector<Job>& jobs) {
  UploadPlan p;
  for (const Job& j : jobs) {
    p.raw_bytes += j.raw_bytes();
    p.resident_bytes += j.device_bytes();
    p.max_tensor_bytes = std::max(p.max_tensor_bytes, j.raw_bytes());
    if (j.matrix != nullptr) p.max_row_bytes = std::max(p.max_row_bytes, row_bytes(j.type, j.n_cols));
    ++p.n_tensors;
  }
  return p;
}

std::string describe(const Job& j) {
  if (j.vector != nullptr) return j.name + " (F32 " + std::to_string(j.n_cols) + ")";
  return j.name + " (" + dtype_name(j.type) + " " + std::to_string(j.n_rows) + " x " + std::to_string(j.n_cols) +
         " -> F16)";
}

// Moves host bytes to device buffers through the pinned staging halves and dequantizes matrices on the way.
class Uploader {
 public:
  Uploader(StreamHandle stream, const UploadOptions& options, size_t total)
      : stream_(stream), options_(options), total_(total) {}
  // Pending transfers read the staging memory and write the chunk: both must be idle before they are freed.
  ~Uploader() { cudaStreamSynchronize(stream_); }
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  // Allocates two staging halves and the device chunk of `half` bytes each.
  Status prepare(size_t half) {
    half_ = half;
    FKV_ASSIGN_OR_RETURN(staging_, PinnedBuffer::allocate(2 * half));
    FKV_ASSIGN_OR_RETURN(chunk_, DeviceBuffer::allocate(half));
    for (Event& e : ready_) {
      FKV_ASSIGN_OR_RETURN(e, Event::create());
    }
    return {};
  }

  Status run(const Job& j, DeviceBuffer& home) {
    if (j.matrix != nullptr && j.type != DType::F16) return run_matrix(j, home);
    // F32 vectors and F16 matrices are already in their device encoding.
    const auto* src = static_cast<const uint8_t*>(j.host);
    const size_t bytes = j.raw_bytes();
    for (size_t off = 0; off < bytes; off += half_) FKV_TRY(stage(src + off, std::min(half_, bytes - off), home, off));
    return {};
  }

  size_t done() const { return done_; }

  Status finish() {
    FKV_CUDA_TRY(cudaStreamSynchronize(stream_));
    return {};
  }

 private:
  Status run_matrix(const Job& j, DeviceBuffer& home) {
    const auto* src = static_cast<const uint8_t*>(j.host);
    const size_t rb = row_bytes(j.type, j.n_cols);
    const int64_t step = rows_per_chunk(j.n_rows, rb, half_);
    for (int64_t r0 = 0; r0 < j.n_rows; r0 += step) {
      const int64_t n = std::min(step, j.n_rows - r0);
      FKV_TRY(stage(src + static_cast<size_t>(r0) * rb, static_cast<size_t>(n) * rb, chunk_, 0));
      uint16_t* dst = home.as<uint16_t>() + r0 * j.n_cols;  // rows [r0, r0 + n) of (n_rows, n_cols) f16
      FKV_TRY(dequantize_to_f16(j.type, chunk_.data(), n, j.n_cols, dst, stream_));
    }
    return {};
  }

  // One piece of at most half_ bytes: wait until this half's previous transfer has read it, refill it, send it.
  Status stage(const uint8_t* src, size_t bytes, DeviceBuffer& dst, size_t offset) {
    Event& ready = ready_[slot_];
    FKV_TRY(ready.synchronize());  // an event never recorded is complete
    uint8_t* half = staging_.as<uint8_t>() + slot_ * half_;
    std::memcpy(half, src, bytes);
    FKV_TRY(dst.upload(half, bytes, stream_, offset));
    FKV_TRY(ready.record(stream_));
    slot_ ^= 1;
    done_ += bytes;
    if (options_.progress && !options_.progress(done_, total_))
      return err("cancelled after ", done_, " of ", total_, " bytes");
    return {};
  }

  StreamHandle stream_;
  const UploadOptions& options_;
  size_t total_;
  size_t half_ = 0;
  size_t done_ = 0;
  int slot_ = 0;
  PinnedBuffer staging_;  // (2, half_) bytes
  DeviceBuffer chunk_;    // (half_) bytes: whole raw rows of the matrix being decoded
  Event ready_[2];        // recorded after the transfer out of each staging half
};

}  // namespace

int64_t rows_per_chunk(int64_t n_rows, size_t row_bytes, size_t chunk_bytes) {
  if (n_rows <= 0) return 0;
  if (row_bytes == 0) return n_rows;
  const auto fit = static_cast<int64_t>(std::min<size_t>(chunk_bytes / row_bytes, static_cast<size_t>(n_rows)));
  return std::max<int64_t>(fit, 1);
}

UploadPlan plan_upload(const Model& model) {
  DeviceModelWeights scratch;
  return plan_jobs(collect_jobs(model, scratch));
}

Result<DeviceWeights> DeviceWeights::upload(const Model& model, const DeviceContext& ctx,
                                            const UploadOptions& options) {
  FKV_TRY(ctx.make_current());
  DeviceWeights dw;
  const std::vector<Job> jobs = collect_jobs(model, dw.weights_);
  const UploadPlan plan = plan_jobs(jobs);
  for (const Job& j : jobs)
    if (j.matrix != nullptr && !dequant_supported(j.type))
      return err("device weights: ", describe(j), " has a type the device cannot decode");
  Uploader up(ctx.stream(), options, plan.raw_bytes);
  // A half holds at least one row, and never more than the largest tensor needs.
  const size_t half =
      std::max({std::min(options.staging_bytes / 2, plan.max_tensor_bytes), plan.max_row_bytes, size_t{1}});
  if (Status s = up.prepare(half); !s.ok()) return err("device weights: staging ", half, " bytes x 2: ", s.message());
  dw.buffers_.reserve(jobs.size());
  for (const Job& j : jobs) {
    Result<DeviceBuffer> home = DeviceBuffer::allocate(j.device_bytes());
    if (!home.ok()) return err("device weights: ", describe(j), ": ", home.message());
    if (Status s = up.run(j, *home); !s.ok()) return err("device weights: ", describe(j), ": ", s.message());
    if (j.matrix != nullptr) *j.matrix = DeviceMatrix{home->as<const uint16_t>(), j.n_rows, j.n_cols};
    if (j.vector != nullptr) *j.vector = home->as<const float>();
    dw.resident_bytes_ += home->bytes();
    dw.buffers_.push_back(std::move(home).value());
  }
  if (Status s = up.finish(); !s.ok()) return err("device weights: waiting for the upload: ", s.message());
  if (output_is_tied(model.weights())) dw.weights_.output = dw.weights_.tok_embd;
  dw.bytes_uploaded_ = up.done();
  return Result<DeviceWeights>(std::move(dw));
}

}  // namespace fkv::cuda
