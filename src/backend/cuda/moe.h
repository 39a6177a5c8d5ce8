// The mixture-of-experts op on the CUDA backend (moe_kernels.cuh has the grouping's layout): routing and top-k
// on the device, then the experts either as fused kernels that read each chosen expert's weights once per step
// (decode-sized batches, and anything captured in a graph) or, for large eager batches, as cuBLAS GEMMs per
// expert over its gathered rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "backend/cuda/device_arena.h"
#include "backend/cuda/device_context.h"
#include "backend/ops.h"

namespace keel::backend::cuda {

struct ExpertPtrs;  // moe_kernels.cuh

class MoeKernels {
 public:
  MoeKernels(const DeviceContext& ctx, DeviceArena& memory) : ctx_(ctx), memory_(memory) {}

  void reserve(const ForwardLimits& limits);
  // Backend::moe. capturing: a graph is being captured, so no count may come to the host. ops: the backend,
  // whose gemm and gemm_glu run the grouped path's per-expert products.
  void run(const Tensor& x, const MoeWeights& w, bool capturing, Backend& ops, Tensor& out);

 private:
  // Above this many (token, expert) pairs an eager forward runs cuBLAS GEMMs per expert instead of the fused
  // kernels, whose CUDA-core dot products cost more than the weight reads there (a 512-token prefill of
  // qwen3-30b-a3b: 4096 pairs, 39 GFLOP per layer).
  static constexpr size_t kMoeFusedMaxPairs = 1024;
  struct ExpertTable {
    DeviceArray<ExpertPtrs> ptrs;
    int inter = 0;        // moe_intermediate of the experts held here (0: none)
    bool aligned = true;  // every expert weight 16-byte aligned
  };

  const ExpertTable& expert_table(const MoeWeights& w);
  void fused_experts(const Tensor& x, const MoeWeights& w, const ExpertTable& table, bool vec, int nt);
  void grouped_gemms(const Tensor& x, const MoeWeights& w, Backend& ops);

  const DeviceContext& ctx_;
  DeviceArena& memory_;
  std::unordered_map<const void*, ExpertTable> expert_tables_;  // by router weight
  DeviceArray<float> router_logits_, topk_weights_, gate_, up_, y_;
  DeviceArray<int32_t> topk_ids_, pair_row_, row_token_, active_;
  DeviceArray<uint8_t> grouped_x_, grouped_act_;  // the grouped-GEMM path's rows and activations
  std::vector<int32_t> active_host_;
};

}  // namespace keel::backend::cuda
