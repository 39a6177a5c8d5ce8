// CUDA graphs of decode steps, one per key (the engine's batch shape): captured once on the compute stream,
// replayed every step after. A graph's kernels read the batch's metadata from fixed device buffers
// (device_batch.h), so one graph stays valid as the sequences grow.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <unordered_map>

#include "backend/cuda/device_context.h"
#include "base/status.h"

namespace keel::backend::cuda {

class DecodeGraphs {
 public:
  explicit DecodeGraphs(const DeviceContext& ctx) : ctx_(ctx) {}
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;
  ~DecodeGraphs();

  // Launches the graph of `key`; false when there is none yet.
  bool replay(uint64_t key);
  void begin_capture();
  // The work queued since begin_capture becomes the graph of `key`.
  Status end_capture(uint64_t key);
  // Between begin_capture and end_capture: nothing may come to the host (the MoE op picks its fused kernels).
  bool capturing() const { return capturing_; }

 private:
  const DeviceContext& ctx_;
  std::unordered_map<uint64_t, cudaGraphExec_t> graphs_;
  bool capturing_ = false;
};

}  // namespace keel::backend::cuda
