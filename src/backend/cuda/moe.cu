#include "backend/cuda/moe.h"

#include <algorithm>
#include <string>
#include <cstdlib>

#include "backend/cuda/dtype_dispatch.cuh"
#include "backend/cuda/row_copy_kernels.cuh"
#include "backend/cuda/moe_kernels.cuh"

namespace keel::backend::cuda {

void MoeKernels::reserve(const ForwardLimits& limits) {
  if (limits.num_experts <= 0) return;
  const size_t tokens = limits.max_tokens, experts = limits.num_experts;
  const size_t pairs = tokens * limits.experts_per_token;
  memory_.reserve(router_logits_, tokens * experts, true);
  memory_.reserve(topk_ids_, pairs, true);
  memory_.reserve(topk_weights_, pairs, true);
  memory_.reserve(pair_row_, pairs, true);
  memory_.reserve(row_token_, pairs, true);
  memory_.reserve(active_, 3 * experts + 1, true);
  memory_.reserve(gate_, pairs * limits.moe_intermediate, true);
  memory_.reserve(y_, pairs * limits.hidden, true);
  if (pairs > kMoeFusedMaxPairs) {  // the grouped-GEMM path's scratch
    memory_.reserve(grouped_x_, pairs * limits.hidden * dtype_size(ctx_.act), true);
    memory_.reserve(up_, pairs * limits.moe_intermediate, true);
    memory_.reserve(grouped_act_, pairs * limits.moe_intermediate * dtype_size(ctx_.act), true);
  }
}

// Route and run the experts on the device. Decode-sized batches (and anything captured in a graph) use the
// fused kernels, which read each chosen expert's weights once per step whatever its token count; large
// prefill batches group rows by expert and run cuBLAS GEMMs per expert, which needs the counts on the host.
void MoeKernels::run(const Tensor& x, const MoeWeights& w, bool capturing, Backend& ops, Tensor& out) {
  const int tokens = static_cast<int>(x.rows), hidden = static_cast<int>(x.cols);
  const int experts = static_cast<int>(w.experts.size()), top_k = w.top_k;
  if (tokens == 0) return;
  if (top_k < 1 || top_k > std::min(experts, kMoeMaxTopK)) {
    const std::string reason = "top_k=" + std::to_string(top_k) + " with " + std::to_string(experts) +
                               " experts (1..min(experts, " + std::to_string(kMoeMaxTopK) + ") supported)";
    fail_fatally("moe: top_k out of range", "MoeKernels::run", reason.c_str(), __FILE__, __LINE__);
  }
  const int64_t pairs = static_cast<int64_t>(tokens) * top_k;
  memory_.reserve(router_logits_, static_cast<size_t>(tokens) * experts);
  memory_.reserve(topk_ids_, pairs);
  memory_.reserve(topk_weights_, pairs);
  memory_.reserve(pair_row_, pairs);
  memory_.reserve(row_token_, pairs);
  memory_.reserve(active_, 3 * static_cast<size_t>(experts) + 1);
  const ExpertTable& table = expert_table(w);
  const bool vec = table.aligned && hidden % 8 == 0 && reinterpret_cast<uintptr_t>(x.data) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(w.router.data) % 16 == 0;
  const int nt = tokens == 1 ? 1 : tokens <= 4 ? 4 : 8;  // tokens per pass over a weight row
  dispatch(x.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const dim3 grid(static_cast<unsigned>((experts + kMoeWarps - 1) / kMoeWarps),
                    static_cast<unsigned>((tokens + nt - 1) / nt));
    auto launch = [&](auto kernel) {
      kernel<<<grid, kMoeWarps * 32, 0, ctx_.stream>>>(static_cast<const T*>(x.data),
                                                       static_cast<const T*>(w.router.data), tokens, experts, hidden,
                                                       router_logits_.ptr);
    };
    if (!vec) launch(moe_router_kernel<T, 8, false>);
    else if (nt == 1) launch(moe_router_kernel<T, 1, true>);
    else if (nt == 4) launch(moe_router_kernel<T, 4, true>);
    else launch(moe_router_kernel<T, 8, true>);
  });
  ctx_.check_launch();
  moe_topk_kernel<<<blocks_for(tokens, kTopkWarps), kTopkWarps * 32, kTopkWarps * experts * sizeof(float),
                    ctx_.stream>>>(router_logits_.ptr, tokens, experts, top_k, w.norm_topk_prob, topk_ids_.ptr,
                                   topk_weights_.ptr);
  ctx_.check_launch();
  moe_group_kernel<<<1, 256, 2 * experts * sizeof(int32_t), ctx_.stream>>>(
      topk_ids_.ptr, static_cast<int>(pairs), top_k, experts, pair_row_.ptr, row_token_.ptr, active_.ptr);
  ctx_.check_launch();
  // Rows per pass over an expert's weight row: a decode batch of 8 gives experts ~1 row each, and more
  // accumulators than that cost occupancy (104 registers a thread at 8, 54 at 4).
  const int expert_nt = tokens == 1 ? 1 : pairs <= 2 * experts ? 4 : 8;
  if (capturing || pairs <= static_cast<int64_t>(kMoeFusedMaxPairs)) fused_experts(x, w, table, vec, expert_nt);
  else grouped_gemms(x, w, ops);
  moe_combine_kernel<<<dim3(static_cast<unsigned>((hidden + kCombineThreads - 1) / kCombineThreads),
                            static_cast<unsigned>(tokens)),
                       kCombineThreads, 0, ctx_.stream>>>(y_.ptr, pair_row_.ptr, topk_weights_.ptr, top_k, hidden,
                                                          static_cast<float*>(out.data));
  ctx_.check_launch();
}

// Each MoE layer's expert pointers live on the device from its first use, keyed by its router; the model's
// first forward is eager, so no capture ever uploads one.
const MoeKernels::ExpertTable& MoeKernels::expert_table(const MoeWeights& w) {
  auto it = expert_tables_.find(w.router.data);
  if (it != expert_tables_.end()) return it->second;
  ExpertTable& t = expert_tables_[w.router.data];
  std::vector<ExpertPtrs> host;
  for (const ExpertWeights& ex : w.experts) {
    host.push_back({ex.gate.data, ex.up.data, ex.down.data});
    if (!ex.gate.empty()) t.inter = static_cast<int>(ex.gate.rows);
    for (const void* p : {ex.gate.data, ex.up.data, ex.down.data})
      t.aligned &= reinterpret_cast<uintptr_t>(p) % 16 == 0;
  }
  memory_.upload(t.ptrs, host.data(), host.size(), ctx_.stream);
  return t;
}

// Gate/up + activation, then down, for every active expert's rows: one grid row per possible active expert
// (min(experts, pairs)), the idle ones returning at once.
void MoeKernels::fused_experts(const Tensor& x, const MoeWeights& w, const ExpertTable& table, bool vec, int nt) {
  const int tokens = static_cast<int>(x.rows), hidden = static_cast<int>(x.cols);
  const int experts = static_cast<int>(w.experts.size()), inter = table.inter;
  const int64_t pairs = static_cast<int64_t>(tokens) * w.top_k;
  memory_.reserve(gate_, static_cast<size_t>(pairs) * std::max(inter, 1));
  memory_.reserve(y_, static_cast<size_t>(pairs) * hidden);
  const bool v = vec && inter % 8 == 0;
  const unsigned slots = static_cast<unsigned>(std::min<int64_t>(experts, pairs));
  const bool gelu = w.activation == GluActivation::kGeluTanh;
  dispatch(x.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    auto gate_up = [&](auto kernel) {
      if (inter == 0) return;  // no expert here: the down kernel writes zeros
      kernel<<<dim3(static_cast<unsigned>((inter + kMoeWarps - 1) / kMoeWarps), slots), kMoeWarps * 32, 0,
               ctx_.stream>>>(static_cast<const T*>(x.data), table.ptrs.ptr, active_.ptr, row_token_.ptr, experts,
                              hidden, inter, gelu, gate_.ptr);
    };
    auto down = [&](auto kernel) {
      kernel<<<dim3(static_cast<unsigned>((hidden + kMoeWarps - 1) / kMoeWarps), slots), kMoeWarps * 32, 0,
               ctx_.stream>>>(gate_.ptr, table.ptrs.ptr, active_.ptr, experts, hidden, inter, y_.ptr);
    };
    if (!v) gate_up(moe_gate_up_kernel<T, 8, false>), down(moe_down_kernel<T, 8, false>);
    else if (nt == 1) gate_up(moe_gate_up_kernel<T, 1, true>), down(moe_down_kernel<T, 1, true>);
    else if (nt == 4) gate_up(moe_gate_up_kernel<T, 4, true>), down(moe_down_kernel<T, 4, true>);
    else gate_up(moe_gate_up_kernel<T, 8, true>), down(moe_down_kernel<T, 8, true>);
  });
  ctx_.check_launch();
}

// Large eager batches: the active-expert list comes to the host (one sync per layer), each expert's rows are
// gathered together, and its GEMMs run on cuBLAS (tensor cores).
void MoeKernels::grouped_gemms(const Tensor& x, const MoeWeights& w, Backend& ops) {
  const int64_t hidden = x.cols, pairs = x.rows * w.top_k;
  const int experts = static_cast<int>(w.experts.size());
  const size_t xs = dtype_size(x.dtype);
  int64_t inter = 0;
  for (const ExpertWeights& ex : w.experts)
    if (!ex.gate.empty()) inter = ex.gate.rows;
  memory_.reserve(grouped_x_, pairs * hidden * xs);
  memory_.reserve(gate_, pairs * std::max<int64_t>(inter, 1));
  memory_.reserve(up_, pairs * std::max<int64_t>(inter, 1));
  memory_.reserve(grouped_act_, pairs * std::max<int64_t>(inter, 1) * xs);
  memory_.reserve(y_, pairs * hidden);
  active_host_.resize(3 * static_cast<size_t>(experts) + 1);
  KEEL_CUDA_CHECK(cudaMemcpyAsync(active_host_.data(), active_.ptr, active_host_.size() * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, ctx_.stream));
  KEEL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  dispatch(x.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    gather_rows_kernel<T><<<static_cast<unsigned>(pairs), 256, 0, ctx_.stream>>>(
        static_cast<const T*>(x.data), row_token_.ptr, hidden, reinterpret_cast<T*>(grouped_x_.ptr));
  });
  ctx_.check_launch();
  const int active = active_host_[3 * experts];
  for (int a = 0; a < active; a++) {
    const ExpertWeights& ex = w.experts[active_host_[a]];
    const int64_t first = active_host_[experts + a], n = active_host_[2 * experts + a];
    Tensor y{y_.ptr + first * hidden, DType::kF32, n, hidden};
    if (ex.gate.empty()) {  // another tensor-parallel rank's expert: contributes nothing here
      KEEL_CUDA_CHECK(cudaMemsetAsync(y.data, 0, y.nbytes(), ctx_.stream));
      continue;
    }
    Tensor xe{grouped_x_.ptr + first * hidden * xs, x.dtype, n, hidden};
    Tensor g{gate_.ptr, DType::kF32, n, inter}, u{up_.ptr, DType::kF32, n, inter};
    Tensor act{grouped_act_.ptr, x.dtype, n, inter};
    ops.gemm_glu(xe, ex.gate, ex.up, w.activation, g, u, act);
    ops.gemm(act, ex.down, nullptr, y);
  }
}

}  // namespace keel::backend::cuda
