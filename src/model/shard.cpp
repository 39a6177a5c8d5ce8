#include "model/shard.h"

namespace keel::model {

Result<ShardLayout> shard_layout(const ModelConfig& c, ShardSpec spec) {
  const int N = spec.size;
  if (N < 1 || spec.rank < 0 || spec.rank >= N)
    return invalid_argument("tensor-parallel rank {} of {} is out of range", spec.rank, N);
  const int P = spec.stages, L = c.num_layers;
  if (P < 1 || spec.stage < 0 || spec.stage >= P)
    return invalid_argument("pipeline stage {} of {} is out of range", spec.stage, P);
  if (P > 1 && P > L)
    return invalid_argument("--pipeline-parallel {} exceeds num_hidden_layers={}: every stage needs a layer", P, L);
  ShardLayout l;
  l.spec = spec;
  l.layer0 = spec.stage * L / P;
  l.layers = (spec.stage + 1) * L / P - l.layer0;
  l.embed = spec.stage == 0;
  l.head = spec.stage == P - 1;
  const int r = spec.rank;
  auto divides = [&](int n, const char* what) -> Status {
    if (n % N == 0) return Status();
    return invalid_argument("--tensor-parallel {} does not divide {}={}", N, what, n);
  };
  KEEL_RETURN_IF_ERROR(divides(c.num_heads, "num_attention_heads"));
  l.q_heads = c.num_heads / N;
  l.q_head0 = r * l.q_heads;
  // More ranks than KV heads: each KV head is replicated on N/K ranks, the ones whose q heads read it.
  if (c.num_kv_heads % N != 0 && N % c.num_kv_heads != 0)
    return invalid_argument("--tensor-parallel {} neither divides nor is a multiple of num_key_value_heads={}", N,
                            c.num_kv_heads);
  l.kv_heads = std::max(1, c.num_kv_heads / N);
  l.kv_head0 = r * c.num_kv_heads / N;
  // Checked over all layers, not just the stage's: every stage of a TP x PP grid refuses the same flags.
  bool dense = false, moe = false;
  for (auto& layer : c.layers) (layer.moe ? moe : dense) = true;
  if (dense) {
    KEEL_RETURN_IF_ERROR(divides(c.intermediate_size, "intermediate_size"));
    l.inter = c.intermediate_size / N;
    l.inter0 = r * l.inter;
  }
  if (moe) {
    KEEL_RETURN_IF_ERROR(divides(c.num_experts, "num_experts"));
    l.experts = c.num_experts / N;
    l.expert0 = r * l.experts;
  }
  KEEL_RETURN_IF_ERROR(divides(c.vocab_size, "vocab_size"));
  l.vocab = c.vocab_size / N;
  l.vocab0 = r * l.vocab;
  return l;
}

ModelConfig local_config(const ModelConfig& config, const ShardLayout& l) {
  ModelConfig c = config;
  c.num_heads = l.q_heads;
  c.num_kv_heads = l.kv_heads;
  if (l.inter > 0) c.intermediate_size = l.inter;
  c.num_layers = l.layers;
  if (config.layers.size() >= static_cast<size_t>(l.layer0 + l.layers))
    c.layers.assign(config.layers.begin() + l.layer0, config.layers.begin() + l.layer0 + l.layers);
  return c;
}

}  // namespace keel::model
