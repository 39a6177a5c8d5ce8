#include "engine/fingerprint.h"

#include <fmt/format.h>

namespace keel::engine {

cache::KvLayout cache_kv_layout(const backend::KvLayout& layout) {
  cache::KvLayout out;
  out.num_layers = static_cast<uint32_t>(layout.num_layers);
  out.num_kv_heads = static_cast<uint32_t>(layout.num_kv_heads);
  out.head_dim = static_cast<uint32_t>(layout.head_dim);
  out.block_size = static_cast<uint32_t>(layout.block_size);
  out.kv_dtype = layout.dtype;
  return out;
}

cache::ModelFingerprint config_fingerprint(const model::Model& model) {
  const model::ModelConfig& c = model.config();
  const std::string identity =
      fmt::format("config {} vocab={} hidden={} intermediate={} layers={} heads={} kv_heads={} head_dim={} "
                  "experts={}/{} moe_intermediate={} rope_theta={} sliding_window={}",
                  c.architecture, c.vocab_size, c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads,
                  c.num_kv_heads, c.head_dim, c.num_experts, c.num_experts_per_tok, c.moe_intermediate_size,
                  c.rope.theta, c.sliding_window);
  return cache::model_fingerprint(identity, dtype_name(model.weights().dtype), cache_kv_layout(model.kv_layout()));
}

Result<cache::ModelFingerprint> weights_fingerprint(env::Env* env, const std::string& dir, const model::Model& model) {
  KEEL_ASSIGN_OR_RETURN(std::string identity, cache::weights_identity(env, dir));
  return cache::model_fingerprint(identity, dtype_name(model.weights().dtype), cache_kv_layout(model.kv_layout()));
}

}  // namespace keel::engine
