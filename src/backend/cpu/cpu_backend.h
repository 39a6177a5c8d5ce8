// The CPU backend: the reference oracle. Plain loops, fp32 activations and accumulation, weights read in their
// stored dtype (F32/F16/BF16, or packed MLX/GGUF codes dequantized a row at a time) straight from the
// memory-mapped checkpoint, OpenMP across cores.
#pragma once

#include <memory>
#include <vector>

#include "backend/ops.h"

namespace keel::backend {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }

  Result<Tensor> weight(DType dtype, int64_t rows, int64_t cols, const void* host) override;
  // Quantized weights stay packed in the mapping; gemm and embed dequantize a row at a time in f32.
  bool keeps_quantized() const override { return true; }
  Result<Tensor> quant_weight(const format::QuantMatrix& m) override;
  Result<Tensor> alloc(DType dtype, int64_t rows, int64_t cols) override;
  Status alloc_kv(const KvLayout& layout) override;
  const KvLayout& kv_layout() const override { return kv_layout_; }
  void copy_to_host(const Tensor& src, float* dst) override;
  void copy_from_host(const float* src, Tensor& dst) override;
  void copy_kv_block_to_host(int block, void* dst) override;
  void copy_kv_block_from_host(const void* src, int block) override;
  uint64_t bytes_allocated() const override { return bytes_allocated_; }
  uint64_t allocations() const override { return allocations_; }
  Status reserve_forward(const ForwardLimits& limits) override;

  void embed(const Tensor& table, const int32_t* tokens, int n, float scale, Tensor& out) override;
  void rms_norm(const Tensor& x, const Tensor& w, float eps, bool add_one, Tensor& out) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void gemm(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override;
  void rope(Tensor& x, int head_dim, int rotary_dim, const BatchMeta& batch, int first_row,
            const RopeTable& table) override;
  void write_kv(int layer, const Tensor& k, const Tensor& v, const BatchMeta& batch) override;
  void attention(int layer, const Tensor& q, const BatchMeta& batch, const AttentionParams& params,
                 Tensor& out) override;
  void glu(const Tensor& gate, const Tensor& up, GluActivation act, Tensor& out) override;
  void moe(const Tensor& x, const MoeWeights& w, Tensor& out) override;
  void softcap(Tensor& x, float cap) override;
  // cpu_gated_deltanet.cpp: the recurrent form, token by token (exact in f32).
  Status alloc_recurrent_state(const RecurrentStateLayout& layout) override;
  Status gated_delta_net(int layer, const Tensor& qkv, const Tensor& z, const Tensor& b, const Tensor& a,
                         const GatedDeltaNetWeights& w, const GatedDeltaNetParams& p, const BatchMeta& batch,
                         Tensor& out) override;
  Status sigmoid_mul(const Tensor& x, const Tensor& gate, Tensor& out) override;
  // One slot's state of one linear-attention layer, for tests.
  const float* ssm_state(int layer, int slot) const {
    return ssm_state_.data() + (static_cast<size_t>(layer) * state_layout_.num_slots + slot) * state_layout_.ssm_floats;
  }
  void gather_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor& out) override;
  // The reference (backend/sampling.h) itself, one row per thread.
  void sample_rows(const Tensor& logits, const SampleParams* params, int rows, int32_t* out) override;

  // The raw KV of one layer, for tests.
  const float* k_cache(int layer) const { return k_cache_[layer].data(); }
  const float* v_cache(int layer) const { return v_cache_[layer].data(); }

 private:
  std::vector<std::unique_ptr<float[]>> buffers_;
  std::vector<std::vector<float>> k_cache_, v_cache_;
  KvLayout kv_layout_;
  RecurrentStateLayout state_layout_;
  std::vector<float> conv_state_, ssm_state_;  // [layer][slot][floats]
  uint64_t bytes_allocated_ = 0;
  uint64_t allocations_ = 0;
  // MoE scratch, grown on first use and reused.
  std::vector<float> moe_x_, moe_gate_, moe_up_, moe_y_;
};

}  // namespace keel::backend
