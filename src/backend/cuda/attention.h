// Attention on the CUDA backend: rotary embedding and the KV cache write (apart or in one kernel), the tiled
// flash prefill for multi-token sequences (flash_prefill.cuh) and the per-row kernels for the rest
// (attention_kernels.cuh), split-K over the keys when a decode batch has too few (row, KV head) pairs to fill
// the GPU.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include <cuda_runtime.h>

#include "backend/cuda/device_arena.h"
#include "backend/cuda/device_batch.h"
#include "backend/cuda/device_context.h"
#include "backend/cuda/kv_cache.h"
#include "backend/ops.h"

namespace keel::backend::cuda {

class AttentionKernels {
 public:
  AttentionKernels(const DeviceContext& ctx, DeviceArena& memory, const DeviceBatch& batch, const KvCache& kv)
      : ctx_(ctx), memory_(memory), batch_(batch), kv_(kv) {}

  Status reserve(const ForwardLimits& limits);
  // A new batch is on the device: the first prefill attention of this forward makes its tile list.
  void begin_forward() { flash_tiles_rows_ = 0; }

  void rope(Tensor& x, int head_dim, int rotary_dim, int first_row, const RopeTable& table);
  void write_kv(int layer, const Tensor& k, const Tensor& v);
  // Backend::rope_write_kv in one kernel; false where that kernel does not apply (the caller runs the three ops).
  bool rope_write_kv(int layer, Tensor& q, Tensor& k, const Tensor& v, int head_dim, int rotary_dim,
                     const RopeTable& table);
  void attention(int layer, const Tensor& q, const AttentionParams& p, Tensor& out);

 private:
  static constexpr int kMaxSplits = 32;

  bool flash_prefill(int layer, const Tensor& q, const AttentionParams& p, Tensor& out);
  const float* resident_table(const RopeTable& t);

  const DeviceContext& ctx_;
  DeviceArena& memory_;
  const DeviceBatch& batch_;
  const KvCache& kv_;
  // KEEL_FLASH_PREFILL=0 sends prefill back through the per-row kernels, to measure what the tiled one buys.
  bool flash_prefill_on_ = env_on("KEEL_FLASH_PREFILL");
  std::unordered_map<int, DeviceArray<float>> rope_tables_;
  DeviceArray<float> inv_freq_, split_ml_, split_acc_;
  DeviceArray<int32_t> share_counts_;
  DeviceArray<int2> flash_tiles_;
  std::vector<int2> flash_tiles_host_;
  int flash_tiles_rows_ = 0;  // rows per tile of the uploaded list; 0: none yet this forward
};

}  // namespace keel::backend::cuda
