// The recall executor: moves a layer's planned page blocks from the host tier (KvCache, HND) into the device pool (NHD)
// through two pinned staging buffers, following the schedule and staging layout of kv/recall_chunks.h. For chunk j
// in buffer b = j % 2: 1. wait until the scatter that last read b is done, 2. gather the blocks into pinned staging b
// on the host, 3. copy it to device staging b on the copy stream, 4. record "copied", 5. the compute stream waits
// for it and 6. scatters into the pool, 7. records "reusable". Gathering chunk j + 1 overlaps steps 3-6 of chunk j.
// Plain C++ header; CUDA objects stay behind an opaque state.
//
// The planner and the gather are unit-tested on the CPU; tests/gpu/test_cuda_kv.cpp checks every byte lands where
// the plan says.
#pragma once

#include <cstdint>
#include <memory>

#include "fkv/status.h"
#include "kv/kv_cache.h"
#include "kv/recall_chunks.h"

namespace fkv::cuda {

// The device pool of one layer, written by recall and read by paged attention (kv_kernels.h), whose rows are F16.
struct DevicePool {
  uint8_t* k = nullptr;  // device (n_slots, page_size, n_kv_heads, head_dim)
  uint8_t* v = nullptr;  // device (n_slots, page_size, n_kv_heads, head_dim)
  int n_slots = 0;
};

class RecallPipeline {
 public:
  // Reserves two pinned and two device staging buffers of chunk_items blocks each and a copy stream. Scatters run on
  // compute_stream (an opaque cudaStream_t; nullptr is the legacy default stream), so work enqueued there after
  // run() sees the recalled pages. The scatter moves bytes unchanged into an F16 pool, so a geometry of any other
  // element type (a BF16 or F32 host cache) is refused, before any CUDA call.
  static Result<RecallPipeline> create(const KvGeometry& g, int chunk_items, void* compute_stream);

  RecallPipeline(RecallPipeline&& other) noexcept;
  RecallPipeline& operator=(RecallPipeline&& other) noexcept;
  RecallPipeline(const RecallPipeline&) = delete;
  RecallPipeline& operator=(const RecallPipeline&) = delete;
  ~RecallPipeline();

  // Recalls blocks[0, n) of layer l into `pool`. Every block is checked first (check_recall_blocks): a bad one is an
  // error before any byte moves. Returns the payload bytes moved. On return the host has gathered every chunk (the
  // cache may change again) and every scatter is enqueued on the compute stream.
  Result<uint64_t> run(const KvCache& cache, int l, const RecallBlock* blocks, int n, const DevicePool& pool);

  // Blocks the host until every scatter enqueued so far has finished.
  Status synchronize();

  int chunk_items() const;
  // Chunks the last run() moved (its schedule), for telemetry and tests.
  int last_chunks() const;

 private:
  struct State;
  explicit RecallPipeline(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace fkv::cuda
