#include "backend/cuda/attention.h"

#include <algorithm>

#include "backend/cuda/attention_kernels.cuh"
#include "backend/cuda/dtype_dispatch.cuh"
#include "backend/cuda/flash_prefill.cuh"
#include "backend/cuda/rope_kv_kernels.cuh"

namespace keel::backend::cuda {

Status AttentionKernels::reserve(const ForwardLimits& limits) {
  memory_.reserve(inv_freq_, 4096, true);
  // Split-K partials: only used while rows x KV heads < the SM count, so at most 2 x SMs + SMs shares.
  const size_t shares = static_cast<size_t>(3 * ctx_.sm_count);
  memory_.reserve(split_ml_, shares * kMaxGroup * 2, true);
  memory_.reserve(split_acc_, shares * kMaxGroup * 256, true);
  // One counter per (row, KV head) of a split-K launch (fewer than the SMs), zero between launches.
  memory_.reserve(share_counts_, static_cast<size_t>(ctx_.sm_count), true);
  KEEL_CUDA_RETURN(cudaMemsetAsync(share_counts_.ptr, 0, share_counts_.capacity * sizeof(int32_t), ctx_.stream),
                   "clear split-K counters");
  memory_.reserve(flash_tiles_, static_cast<size_t>(limits.max_tokens), true);  // a prefill tile holds >= 1 token
  return Status();
}

void AttentionKernels::rope(Tensor& x, int head_dim, int rotary_dim, int first_row, const RopeTable& table) {
  const float* inv_freq = resident_table(table);
  const int heads = static_cast<int>(x.cols / head_dim);
  const int64_t n = x.rows * heads * (rotary_dim / 2);
  ctx_.launch(rope_kernel, blocks_for(n, 256), 256, 0, static_cast<float*>(x.data), x.rows, heads, head_dim, rotary_dim,
              batch_.positions() + first_row, inv_freq, table.attention_factor);
}

void AttentionKernels::write_kv(int layer, const Tensor& k, const Tensor& v) {
  const int64_t width = static_cast<int64_t>(kv_.layout.num_kv_heads) * kv_.layout.head_dim;
  const int64_t n = k.rows * width;
  dispatch(kv_.layout.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    ctx_.launch(write_kv_kernel<T>, blocks_for(n, 256), 256, 0, static_cast<const float*>(k.data),
                static_cast<const float*>(v.data), batch_.slots(), k.rows, width, static_cast<T*>(kv_.k[layer]),
                static_cast<T*>(kv_.v[layer]));
  });
}

// One kernel instead of three (rope q, rope k, write_kv): a warp per head of q and of k.
bool AttentionKernels::rope_write_kv(int layer, Tensor& q, Tensor& k, const Tensor& v, int head_dim, int rotary_dim,
                                     const RopeTable& table) {
  const int heads = static_cast<int>(q.cols / head_dim), kv_heads = static_cast<int>(k.cols / head_dim);
  if (!ctx_.fuse || kv_heads != kv_.layout.num_kv_heads || head_dim != kv_.layout.head_dim ||
      head_dim > 32 * kMaxDimsPerLane)
    return false;
  const float* inv_freq = resident_table(table);
  const int64_t warps = q.rows * (heads + kv_heads);
  constexpr int kWarpsPerBlock = 4;
  dispatch(kv_.layout.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    ctx_.launch(rope_write_kv_kernel<T>, blocks_for(warps, kWarpsPerBlock), kWarpsPerBlock * 32, 0,
                static_cast<float*>(q.data), static_cast<float*>(k.data), static_cast<const float*>(v.data), q.rows,
                heads, kv_heads, head_dim, rotary_dim, batch_.positions(), inv_freq, table.attention_factor,
                batch_.slots(), static_cast<T*>(kv_.k[layer]), static_cast<T*>(kv_.v[layer]));
  });
  return true;
}

// The multi-token sequences of a batch (prompts, chunks over KV history) run the tiled tensor-core kernel;
// single-token ones (decodes, alone or mixed in) keep the per-row kernels below.
bool AttentionKernels::flash_prefill(int layer, const Tensor& q, const AttentionParams& p, Tensor& out) {
  const int group = p.num_heads / p.num_kv_heads;
  if (!flash_prefill_on_ || !batch_.has_prefill() || kv_.layout.dtype == DType::kF32 ||
      !flash_prefill_supports(p.head_dim, group))
    return false;
  const int rows = flash_prefill_rows(p.head_dim);
  if (rows != flash_tiles_rows_) {
    flash_prefill_tiles(batch_.host_seqs(), rows / group, &flash_tiles_host_);
    memory_.upload(flash_tiles_, flash_tiles_host_.data(), flash_tiles_host_.size(), ctx_.stream);
    flash_tiles_rows_ = rows;
  }
  if (flash_tiles_host_.empty()) return true;
  dispatch(kv_.layout.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if constexpr (!std::is_same_v<T, float>) {
      KEEL_CUDA_CHECK(launch_flash_prefill<T>(static_cast<const float*>(q.data), static_cast<const T*>(kv_.k[layer]),
                                              static_cast<const T*>(kv_.v[layer]), batch_.seqs(), batch_.block_tables(),
                                              flash_tiles_.ptr, static_cast<int>(flash_tiles_host_.size()), p.num_heads,
                                              p.num_kv_heads, p.head_dim, kv_.layout.block_size, p.scale,
                                              p.sliding_window, p.softcap, static_cast<T*>(out.data), ctx_.stream));
    }
  });
  return true;
}

void AttentionKernels::attention(int layer, const Tensor& q, const AttentionParams& p, Tensor& out) {
  // flash: the multi-token sequences are done; the kernels below skip them.
  const bool flash = flash_prefill(layer, q, p, out);
  if (flash && !batch_.has_single_rows()) return;
  const int group = p.num_heads / p.num_kv_heads;
  const int dpl = p.head_dim / 32;
  if (group <= kMaxGroup && p.head_dim % 32 == 0 && (dpl == 1 || dpl == 2 || dpl == 4 || dpl == 8)) {
    // One block per (query row, KV head): K/V read once for the whole query group. When that gives too few
    // blocks to fill the GPU (decode), each row's keys are split across blocks and joined afterwards.
    const int64_t tasks = q.rows * p.num_kv_heads;
    int splits = 1;
    if (tasks < ctx_.sm_count && !flash)  // (the combine kernel writes every row)
      splits = static_cast<int>(std::min<int64_t>(kMaxSplits, (2 * ctx_.sm_count + tasks - 1) / tasks));
    if (static_cast<size_t>(tasks * splits * group * p.head_dim) > split_acc_.capacity) splits = 1;
    // The last share of each (row, KV head) joins them (no combine kernel) where there are counters for all.
    int* counts =
        ctx_.fuse && splits > 1 && static_cast<size_t>(tasks) <= share_counts_.capacity ? share_counts_.ptr : nullptr;
    dim3 grid(static_cast<unsigned>(q.rows), static_cast<unsigned>(p.num_kv_heads), static_cast<unsigned>(splits));
    const size_t smem = (static_cast<size_t>(group) * p.head_dim + static_cast<size_t>(group) * kTileKeys +
                         static_cast<size_t>(kWarps) * group * p.head_dim) * sizeof(float);
    dispatch(kv_.layout.dtype, [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      auto group_kernel = [&](auto kernel) {
        if (smem > 48 * 1024)
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
        ctx_.launch(kernel, grid, kTileKeys, smem, static_cast<const float*>(q.data),
                    static_cast<const T*>(kv_.k[layer]), static_cast<const T*>(kv_.v[layer]), batch_.positions(),
                    batch_.row_seq(), batch_.seqs(), batch_.block_tables(), p.num_heads, p.num_kv_heads, p.head_dim,
                    kv_.layout.block_size, p.scale, p.sliding_window, p.softcap, static_cast<T*>(out.data), splits,
                    split_ml_.ptr, split_acc_.ptr, counts, flash);
      };
      switch (dpl) {
        case 1: group_kernel(attention_group_kernel<T, 1>); break;
        case 2: group_kernel(attention_group_kernel<T, 2>); break;
        case 4: group_kernel(attention_group_kernel<T, 4>); break;
        default: group_kernel(attention_group_kernel<T, 8>); break;
      }
      if (splits > 1 && counts == nullptr) {
        const dim3 rows_heads(static_cast<unsigned>(q.rows), static_cast<unsigned>(p.num_kv_heads));
        ctx_.launch(attention_combine_kernel<T>, rows_heads, 256, 0, split_ml_.ptr, split_acc_.ptr, p.num_heads,
                    p.num_kv_heads, p.head_dim, splits, static_cast<T*>(out.data));
      }
    });
    return;
  }
  const int64_t tasks = q.rows * p.num_heads;
  const int warps = 4;
  dispatch(kv_.layout.dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    ctx_.launch(attention_kernel<T>, blocks_for(tasks, warps), warps * 32, 0, static_cast<const float*>(q.data),
                static_cast<const T*>(kv_.k[layer]), static_cast<const T*>(kv_.v[layer]), batch_.positions(),
                batch_.row_seq(), batch_.seqs(), batch_.block_tables(), q.rows, p.num_heads, p.num_kv_heads, p.head_dim,
                kv_.layout.block_size, p.scale, p.sliding_window, p.softcap, static_cast<T*>(out.data), flash);
  });
}

// Fixed tables live on the device from their first use; per-call ones go through a scratch buffer.
const float* AttentionKernels::resident_table(const RopeTable& t) {
  if (t.id < 0) {
    memory_.upload(inv_freq_, t.inv_freq.data(), t.inv_freq.size(), ctx_.stream);
    return inv_freq_.ptr;
  }
  auto it = rope_tables_.find(t.id);
  if (it != rope_tables_.end()) return it->second.ptr;
  DeviceArray<float>& a = rope_tables_[t.id];
  memory_.upload(a, t.inv_freq.data(), t.inv_freq.size(), ctx_.stream);
  return a.ptr;
}

}  // namespace keel::backend::cuda
