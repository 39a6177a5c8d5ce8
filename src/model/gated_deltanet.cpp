#include "model/gated_deltanet.h"

namespace keel::model {

using backend::Tensor;

Status alloc_hybrid_workspace(const ModelConfig& c, backend::Backend& backend, int64_t T, HybridWorkspace* ws) {
  const LinearAttnConfig& l = c.linear;
  auto alloc = [&](int64_t cols, Tensor* t, DType dtype = DType::kF32) -> Status {
    KEEL_ASSIGN_OR_RETURN(*t, backend.alloc(dtype, T, cols));
    return Status();
  };
  KEEL_RETURN_IF_ERROR(alloc(l.conv_dim(), &ws->qkv));
  KEEL_RETURN_IF_ERROR(alloc(l.value_dim(), &ws->z));
  KEEL_RETURN_IF_ERROR(alloc(l.num_v_heads, &ws->b));
  KEEL_RETURN_IF_ERROR(alloc(l.num_v_heads, &ws->a));
  KEEL_RETURN_IF_ERROR(alloc(l.value_dim(), &ws->core, backend.act_dtype()));
  if (c.attn_output_gate) KEEL_RETURN_IF_ERROR(alloc(c.q_size(), &ws->gate));
  if (c.shared_expert_intermediate_size > 0) {
    KEEL_RETURN_IF_ERROR(alloc(c.hidden_size, &ws->shared));
    KEEL_RETURN_IF_ERROR(alloc(1, &ws->shared_logit));
  }
  return Status();
}

backend::RecurrentStateLayout recurrent_state_layout(const ModelConfig& c, int slots) {
  backend::RecurrentStateLayout layout;
  layout.num_layers = c.num_linear_layers();
  layout.num_slots = slots;
  layout.conv_floats = c.linear.conv_state_floats();
  layout.ssm_floats = c.linear.ssm_state_floats();
  return layout;
}

Status gated_deltanet_block(backend::Backend& B, const ModelConfig& c, const LayerWeights& L, int state_layer,
                            const Tensor& h, const backend::BatchMeta& meta, HybridWorkspace& ws, Tensor& out) {
  const int64_t T = h.rows;
  Tensor qkv = ws.qkv.row_slice(0, T), z = ws.z.row_slice(0, T), b = ws.b.row_slice(0, T), a = ws.a.row_slice(0, T),
         core = ws.core.row_slice(0, T);
  const backend::Backend::Projection proj[4] = {
      {&L.lin_qkv, nullptr, &qkv}, {&L.lin_z, nullptr, &z}, {&L.lin_b, nullptr, &b}, {&L.lin_a, nullptr, &a}};
  B.gemm_many(h, proj, 4);
  backend::GatedDeltaNetParams p;
  p.num_k_heads = c.linear.num_k_heads;
  p.num_v_heads = c.linear.num_v_heads;
  p.k_head_dim = c.linear.k_head_dim;
  p.v_head_dim = c.linear.v_head_dim;
  p.conv_kernel = c.linear.conv_kernel;
  p.norm_eps = c.rms_norm_eps;
  KEEL_RETURN_IF_ERROR(B.gated_delta_net(state_layer, qkv, z, b, a, L.lin, p, meta, core));
  B.gemm(core, L.lin_out, nullptr, out);
  return Status();
}

Status add_shared_expert(backend::Backend& B, const ModelConfig& c, const LayerWeights& L, const Tensor& h,
                         void* gate_buf, void* up_buf, void* act_buf, HybridWorkspace& ws, Tensor& mlp) {
  const int64_t T = h.rows, S = c.shared_expert_intermediate_size;
  Tensor gate{gate_buf, DType::kF32, T, S}, up{up_buf, DType::kF32, T, S}, act{act_buf, B.act_dtype(), T, S};
  Tensor shared = ws.shared.row_slice(0, T), logit = ws.shared_logit.row_slice(0, T);
  B.gemm_glu(h, L.shared_gate, L.shared_up, backend::GluActivation::kSilu, gate, up, act);
  B.gemm(act, L.shared_down, nullptr, shared);
  B.gemm(h, L.shared_expert_gate, nullptr, logit);
  KEEL_RETURN_IF_ERROR(B.sigmoid_mul(shared, logit, shared));
  B.add(mlp, shared, mlp);
  return Status();
}

}  // namespace keel::model
