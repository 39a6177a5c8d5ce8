// A GGUF file's metadata as the config.json transformers would have written, parsed by parse_config, so one
// set of checks covers both. llama.cpp's conventions that differ from transformers' are undone here (gemma's
// norms stored as 1 + w) or in format/gguf.cpp (llama's q/k row order).
#include "model/gguf_config.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace keel::model {

using nlohmann::json;

Result<ModelConfig> config_from_gguf(const format::GgufFile& f) {
  const std::string& arch = f.architecture();
  const std::string where = f.path();
  static const std::map<std::string, std::string> classes = {
      {"llama", "LlamaForCausalLM"},   {"qwen2", "Qwen2ForCausalLM"},       {"qwen3", "Qwen3ForCausalLM"},
      {"qwen3moe", "Qwen3MoeForCausalLM"}, {"gemma3", "Gemma3ForCausalLM"}};
  auto cls = classes.find(arch);
  if (cls == classes.end())
    return unsupported("{}: GGUF architecture '{}' is not supported (supported: llama, qwen2, qwen3, qwen3moe, gemma3)",
                       where, arch);
  auto meta = [&](const std::string& key) -> const json* { return f.get(arch + "." + key); };
  json c = json::object();
  c["architectures"] = json::array({cls->second});
  c["torch_dtype"] = "float32";
  auto copy = [&](const char* key, const char* hf) {
    if (const json* v = meta(key)) c[hf] = *v;
  };
  copy("context_length", "max_position_embeddings");
  copy("embedding_length", "hidden_size");
  copy("feed_forward_length", "intermediate_size");
  copy("block_count", "num_hidden_layers");
  copy("attention.head_count", "num_attention_heads");
  copy("attention.head_count_kv", "num_key_value_heads");
  copy("attention.layer_norm_rms_epsilon", "rms_norm_eps");
  copy("attention.key_length", "head_dim");
  copy("rope.freq_base", "rope_theta");
  copy("attention.sliding_window", "sliding_window");
  copy("expert_count", "num_experts");
  copy("expert_used_count", "num_experts_per_tok");
  copy("expert_feed_forward_length", "moe_intermediate_size");
  copy("final_logit_softcapping", "final_logit_softcapping");
  // GGUF arrays of one value per layer (some converters) are not read; a scalar is required.
  for (const char* key : {"num_attention_heads", "num_key_value_heads", "intermediate_size"})
    if (c.contains(key) && c[key].is_array())
      return unsupported("{}: per-layer {} (an array in the GGUF metadata) is not supported", where, key);
  const format::GgufTensor* embd = f.find("token_embd.weight");
  if (embd == nullptr) return not_found("{}: no token_embd.weight tensor", where);
  c["vocab_size"] = embd->dims.size() == 2 ? embd->dims[1] : 0;
  c["tie_word_embeddings"] = f.find("output.weight") == nullptr;
  c["attention_bias"] = f.find("blk.0.attn_q.bias") != nullptr;
  c["mlp_bias"] = f.find("blk.0.ffn_gate.bias") != nullptr;
  if (const json* v = f.get("tokenizer.ggml.bos_token_id")) c["bos_token_id"] = *v;
  if (const json* v = f.get("tokenizer.ggml.eos_token_id")) c["eos_token_id"] = *v;
  // llama.cpp keeps llama3-style rope scaling as a rope_freqs tensor, not as parameters keel reads.
  if (f.find("rope_freqs.weight") != nullptr)
    return unsupported("{}: rope_freqs.weight (llama3 rope scaling stored as factors) is not supported yet", where);
  if (const json* type = meta("rope.scaling.type"); type && type->is_string() && *type != "none") {
    json rs = {{"rope_type", *type}};
    if (const json* v = meta("rope.scaling.factor")) rs["factor"] = *v;
    if (const json* v = meta("rope.scaling.original_context_length")) rs["original_max_position_embeddings"] = *v;
    c["rope_scaling"] = rs;
  }
  if (arch == "qwen3moe") {
    // Dense layers are the ones without a router; llama.cpp always renormalises the top-k weights.
    json dense = json::array();
    const int layers = c.value("num_hidden_layers", 0);
    for (int i = 0; i < layers; i++)
      if (f.find("blk." + std::to_string(i) + ".ffn_gate_inp.weight") == nullptr) dense.push_back(i);
    c["mlp_only_layers"] = dense;
    c["norm_topk_prob"] = true;
    if (const json* v = meta("expert_weights_norm"); v && v->is_boolean()) c["norm_topk_prob"] = *v;
    if (!c.contains("intermediate_size")) c["intermediate_size"] = c.value("moe_intermediate_size", 0);
  }
  if (arch == "gemma3") {
    // llama.cpp: every 6th layer global unless the file says otherwise; local rope base 10000.
    int pattern = 6;
    if (const json* v = meta("attention.sliding_window_pattern"); v && v->is_number_integer()) pattern = v->get<int>();
    c["sliding_window_pattern"] = pattern;
    c["rope_local_base_freq"] = 10000.0;
    c["hidden_activation"] = "gelu_pytorch_tanh";
    if (c.contains("head_dim")) c["query_pre_attn_scalar"] = c["head_dim"];
  }
  KEEL_ASSIGN_OR_RETURN(ModelConfig config, parse_config(c.dump(), where));
  if (config.arch == Arch::kGemma3) {
    // convert_hf_to_gguf.py stores gemma's norm weights as 1 + w; the embedding scale is sqrt(hidden) in f32.
    config.norm_add_one = false;
    config.embed_scale = std::sqrt(static_cast<float>(config.hidden_size));
  }
  return config;
}

}  // namespace keel::model
