#include "model/hybrid_weights.h"

namespace keel::model {

namespace {

// Rows of a bound tensor; empty while only counting (count_weights binds nothing).
backend::Tensor rows_of(const backend::Tensor& t, int64_t row0, int64_t n) {
  return t.empty() ? backend::Tensor{} : t.row_slice(row0, n);
}

// qwen3_next's in_proj_qkvz holds, per key-head group g, [q_g (dk), k_g (dk), v_g (r*dv), z_g (r*dv)] with r value
// heads per key head; in_proj_ba holds [b_g (r), a_g (r)]. The permutations gather each part over the groups, in
// group order, which is the order transformers' reshape gives the heads.
std::vector<int64_t> group_parts_perm(int groups, const std::vector<int64_t>& part_sizes) {
  int64_t group_rows = 0;
  for (int64_t n : part_sizes) group_rows += n;
  std::vector<int64_t> perm;
  int64_t offset = 0;
  for (int64_t n : part_sizes) {
    for (int g = 0; g < groups; g++)
      for (int64_t j = 0; j < n; j++) perm.push_back(g * group_rows + offset + j);
    offset += n;
  }
  return perm;
}

Status bind_linear_attention(const ModelConfig& c, const std::string& la, TensorBinder& b, LayerWeights& L) {
  const LinearAttnConfig& l = c.linear;
  const int64_t H = c.hidden_size, kd = l.key_dim(), vd = l.value_dim(), nv = l.num_v_heads;
  const int64_t r = l.num_v_heads / l.num_k_heads, dk = l.k_head_dim, dv = l.v_head_dim;
  if (l.fused_qkvz) {
    backend::Tensor qkvz, ba;
    KEEL_RETURN_IF_ERROR(b.bind_permuted(la + "in_proj_qkvz.weight", 2 * kd + 2 * vd, H,
                                         group_parts_perm(l.num_k_heads, {dk, dk, r * dv, r * dv}),
                                         "2*key_dim + 2*value_dim x hidden_size", &qkvz));
    L.lin_qkv = rows_of(qkvz, 0, 2 * kd + vd);
    L.lin_z = rows_of(qkvz, 2 * kd + vd, vd);
    KEEL_RETURN_IF_ERROR(b.bind_permuted(la + "in_proj_ba.weight", 2 * nv, H, group_parts_perm(l.num_k_heads, {r, r}),
                                         "2*linear_num_value_heads x hidden_size", &ba));
    L.lin_b = rows_of(ba, 0, nv);
    L.lin_a = rows_of(ba, nv, nv);
  } else {
    KEEL_RETURN_IF_ERROR(b.bind(la + "in_proj_qkv.weight", 2 * kd + vd, H, "2*key_dim + value_dim x hidden_size",
                                &L.lin_qkv));
    KEEL_RETURN_IF_ERROR(b.bind(la + "in_proj_z.weight", vd, H, "value_dim x hidden_size", &L.lin_z));
    KEEL_RETURN_IF_ERROR(b.bind(la + "in_proj_b.weight", nv, H, "linear_num_value_heads x hidden_size", &L.lin_b));
    KEEL_RETURN_IF_ERROR(b.bind(la + "in_proj_a.weight", nv, H, "linear_num_value_heads x hidden_size", &L.lin_a));
  }
  const int64_t conv_dim = l.conv_dim();
  KEEL_RETURN_IF_ERROR(b.bind_viewed(la + "conv1d.weight", {conv_dim, 1, l.conv_kernel}, conv_dim, l.conv_kernel,
                                     "2*key_dim + value_dim x 1 x linear_conv_kernel_dim", &L.lin.conv));
  KEEL_RETURN_IF_ERROR(b.bind(la + "A_log", nv, 0, "linear_num_value_heads", &L.lin.A_log));
  KEEL_RETURN_IF_ERROR(b.bind(la + "dt_bias", nv, 0, "linear_num_value_heads", &L.lin.dt_bias));
  KEEL_RETURN_IF_ERROR(b.bind(la + "norm.weight", dv, 0, "linear_value_head_dim", &L.lin.norm));
  return b.bind(la + "out_proj.weight", H, vd, "hidden_size x value_dim", &L.lin_out);
}

// q_proj's rows are, per head, its query (head_dim rows) then its output gate: the queries of all heads first.
Status bind_gated_attention(const ModelConfig& c, const std::string& a, TensorBinder& b, LayerWeights& L) {
  const int64_t H = c.hidden_size, D = c.head_dim, Q = c.q_size(), KV = c.kv_size();
  if (c.qkv_bias || c.o_bias) return unsupported("{}: attention_bias in a hybrid model is not supported", a);
  std::vector<int64_t> perm;
  for (int part = 0; part < 2; part++)
    for (int64_t h = 0; h < c.num_heads; h++)
      for (int64_t d = 0; d < D; d++) perm.push_back(h * 2 * D + part * D + d);
  backend::Tensor q_and_gate;
  KEEL_RETURN_IF_ERROR(b.bind_permuted(a + "q_proj.weight", 2 * Q, H, perm, "2*num_attention_heads*head_dim x "
                                       "hidden_size (query and output gate)", &q_and_gate));
  L.q = rows_of(q_and_gate, 0, Q);
  L.attn_gate = rows_of(q_and_gate, Q, Q);
  KEEL_RETURN_IF_ERROR(b.bind(a + "k_proj.weight", KV, H, "num_key_value_heads*head_dim x hidden_size", &L.k));
  KEEL_RETURN_IF_ERROR(b.bind(a + "v_proj.weight", KV, H, "num_key_value_heads*head_dim x hidden_size", &L.v));
  KEEL_RETURN_IF_ERROR(b.bind(a + "o_proj.weight", H, Q, "hidden_size x num_attention_heads*head_dim", &L.o));
  KEEL_RETURN_IF_ERROR(b.bind(a + "q_norm.weight", D, 0, "head_dim", &L.q_norm));
  return b.bind(a + "k_norm.weight", D, 0, "head_dim", &L.k_norm);
}

Status bind_mlp(const ModelConfig& c, bool moe, const std::string& m, TensorBinder& b, LayerWeights& L) {
  const int64_t H = c.hidden_size;
  if (!moe) {
    const int64_t I = c.intermediate_size;
    KEEL_RETURN_IF_ERROR(b.bind(m + "gate_proj.weight", I, H, "intermediate_size x hidden_size", &L.gate));
    KEEL_RETURN_IF_ERROR(b.bind(m + "up_proj.weight", I, H, "intermediate_size x hidden_size", &L.up));
    return b.bind(m + "down_proj.weight", H, I, "hidden_size x intermediate_size", &L.down);
  }
  const int64_t I = c.moe_intermediate_size;
  const int E = c.num_experts;
  L.moe.top_k = c.num_experts_per_tok;
  L.moe.norm_topk_prob = c.norm_topk_prob;
  L.moe.activation = backend::GluActivation::kSilu;
  KEEL_RETURN_IF_ERROR(b.bind(m + "gate.weight", E, H, "num_experts x hidden_size", &L.moe.router));
  L.moe.experts.resize(E);
  // transformers 5 may save the experts fused (gate_up_proj [E, 2I, H], down_proj [E, H, I]); Hub checkpoints of
  // Qwen3-Next store one tensor per expert.
  const bool fused = b.has(m + "experts.gate_up_proj") && !b.has(m + "experts.0.gate_proj.weight");
  for (int e = 0; e < E; e++) {
    backend::ExpertWeights& ex = L.moe.experts[e];
    if (fused) {
      const std::string gu = m + "experts.gate_up_proj", dn = m + "experts.down_proj";
      const char* what = "num_experts x 2*moe_intermediate_size x hidden_size";
      KEEL_RETURN_IF_ERROR(b.bind_expert_slice(gu, E, 2 * I, H, e, 0, I, what, &ex.gate));
      KEEL_RETURN_IF_ERROR(b.bind_expert_slice(gu, E, 2 * I, H, e, I, I, what, &ex.up));
      KEEL_RETURN_IF_ERROR(b.bind_expert_slice(dn, E, H, I, e, 0, H, "num_experts x hidden_size x "
                                               "moe_intermediate_size", &ex.down));
      continue;
    }
    const std::string x = fmt::format("{}experts.{}.", m, e);
    KEEL_RETURN_IF_ERROR(b.bind(x + "gate_proj.weight", I, H, "moe_intermediate_size x hidden_size", &ex.gate));
    KEEL_RETURN_IF_ERROR(b.bind(x + "up_proj.weight", I, H, "moe_intermediate_size x hidden_size", &ex.up));
    KEEL_RETURN_IF_ERROR(b.bind(x + "down_proj.weight", H, I, "hidden_size x moe_intermediate_size", &ex.down));
  }
  const int64_t S = c.shared_expert_intermediate_size;
  if (S == 0) return Status();
  const std::string se = m + "shared_expert.";
  KEEL_RETURN_IF_ERROR(b.bind(se + "gate_proj.weight", S, H, "shared_expert_intermediate_size x hidden_size",
                              &L.shared_gate));
  KEEL_RETURN_IF_ERROR(b.bind(se + "up_proj.weight", S, H, "shared_expert_intermediate_size x hidden_size",
                              &L.shared_up));
  KEEL_RETURN_IF_ERROR(b.bind(se + "down_proj.weight", H, S, "hidden_size x shared_expert_intermediate_size",
                              &L.shared_down));
  return b.bind(m + "shared_expert_gate.weight", 1, H, "1 x hidden_size", &L.shared_expert_gate);
}

}  // namespace

Status bind_hybrid_layer(const ModelConfig& c, int i, const std::string& p, TensorBinder& b, LayerWeights& L) {
  const int64_t H = c.hidden_size;
  KEEL_RETURN_IF_ERROR(b.bind(p + "input_layernorm.weight", H, 0, "hidden_size", &L.input_norm));
  KEEL_RETURN_IF_ERROR(b.bind(p + "post_attention_layernorm.weight", H, 0, "hidden_size", &L.post_attn_norm));
  if (c.layers[i].linear) KEEL_RETURN_IF_ERROR(bind_linear_attention(c, p + "linear_attn.", b, L));
  else KEEL_RETURN_IF_ERROR(bind_gated_attention(c, p + "self_attn.", b, L));
  return bind_mlp(c, c.layers[i].moe, p + "mlp.", b, L);
}

}  // namespace keel::model
