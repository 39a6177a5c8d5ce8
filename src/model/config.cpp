#include "model/config.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "base/dtype.h"
#include "base/json_parse.h"
#include "format/quant.h"
#include "model/gguf_config.h"
#include "model/hybrid_config.h"

namespace keel::model {

using nlohmann::json;

const char* arch_name(Arch arch) {
  switch (arch) {
    case Arch::kLlama: return "llama";
    case Arch::kMistral: return "mistral";
    case Arch::kQwen2: return "qwen2";
    case Arch::kQwen3: return "qwen3";
    case Arch::kQwen3Moe: return "qwen3_moe";
    case Arch::kGemma3: return "gemma3";
    case Arch::kQwen3Next: return "qwen3_next";
    case Arch::kQwen3_5: return "qwen3_5";
    case Arch::kQwen3_5Moe: return "qwen3_5_moe";
  }
  return "?";
}

const char* rope_type_name(RopeType type) {
  switch (type) {
    case RopeType::kDefault: return "default";
    case RopeType::kLinear: return "linear";
    case RopeType::kDynamic: return "dynamic";
    case RopeType::kLlama3: return "llama3";
    case RopeType::kYarn: return "yarn";
  }
  return "?";
}

namespace {

// Typed field access with errors that name the file, the field, and expected vs got.
class Fields {
 public:
  Fields(const json& j, std::string where) : j_(j), where_(std::move(where)) {}

  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  Status get_int(const char* key, int* out, bool required) const {
    if (!has(key)) return required ? missing(key) : Status();
    const json& v = j_[key];
    if (!v.is_number_integer()) return type_error(key, "an integer", v);
    *out = v.get<int>();
    return Status();
  }
  Status get_double(const char* key, double* out, bool required) const {
    if (!has(key)) return required ? missing(key) : Status();
    const json& v = j_[key];
    if (!v.is_number()) return type_error(key, "a number", v);
    *out = v.get<double>();
    return Status();
  }
  Status get_bool(const char* key, bool* out) const {
    if (!has(key)) return Status();
    const json& v = j_[key];
    if (!v.is_boolean()) return type_error(key, "true or false", v);
    *out = v.get<bool>();
    return Status();
  }
  Status get_string(const char* key, std::string* out) const {
    if (!has(key)) return Status();
    const json& v = j_[key];
    if (!v.is_string()) return type_error(key, "a string", v);
    *out = v.get<std::string>();
    return Status();
  }
  Status missing(const char* key) const {
    return not_found("{}: required field '{}' is missing", where_, key);
  }
  Status type_error(const char* key, const char* expected, const json& got) const {
    return invalid_argument("{}: {} must be {}, got {}", where_, key, expected, got.dump());
  }
  const std::string& where() const { return where_; }

 private:
  const json& j_;
  std::string where_;
};

Result<RopeType> parse_rope_type(const std::string& name, const std::string& where) {
  if (name == "default" || name.empty()) return RopeType::kDefault;
  if (name == "linear") return RopeType::kLinear;
  if (name == "dynamic") return RopeType::kDynamic;
  if (name == "llama3") return RopeType::kLlama3;
  if (name == "yarn") return RopeType::kYarn;
  return unsupported("{}: rope type '{}' (expected default, linear, dynamic, llama3 or yarn)", where, name);
}

// Reads one rope parameter object: the 5.x rope_parameters entry or the 4.x rope_scaling object, with
// `theta` and `partial` already set from the surrounding config.
Status parse_rope_object(const json& obj, const std::string& where, int max_position_embeddings,
                         RopeConfig* rope) {
  if (!obj.is_object()) return invalid_argument("{} must be an object, got {}", where, obj.dump());
  Fields f(obj, where);
  std::string type;
  KEEL_RETURN_IF_ERROR(f.get_string("rope_type", &type));
  if (type.empty()) KEEL_RETURN_IF_ERROR(f.get_string("type", &type));  // 4.x spelling
  KEEL_ASSIGN_OR_RETURN(rope->type, parse_rope_type(type, where));
  KEEL_RETURN_IF_ERROR(f.get_double("rope_theta", &rope->theta, false));
  KEEL_RETURN_IF_ERROR(f.get_double("partial_rotary_factor", &rope->partial_rotary_factor, false));
  const bool scaled = rope->type != RopeType::kDefault;
  const bool needs_factor = rope->type == RopeType::kLinear || rope->type == RopeType::kDynamic ||
                            rope->type == RopeType::kLlama3;
  rope->factor = 0.0;
  KEEL_RETURN_IF_ERROR(f.get_double("factor", &rope->factor, needs_factor));
  if (scaled && rope->factor == 0.0 && rope->type != RopeType::kYarn) return f.missing("factor");
  if (!scaled) rope->factor = 1.0;
  if (rope->type == RopeType::kLlama3) {
    KEEL_RETURN_IF_ERROR(f.get_double("low_freq_factor", &rope->low_freq_factor, true));
    KEEL_RETURN_IF_ERROR(f.get_double("high_freq_factor", &rope->high_freq_factor, true));
    KEEL_RETURN_IF_ERROR(f.get_int("original_max_position_embeddings", &rope->original_max_position_embeddings, true));
    if (rope->high_freq_factor <= rope->low_freq_factor)
      return invalid_argument("{}: high_freq_factor={} must exceed low_freq_factor={}", where,
                              rope->high_freq_factor, rope->low_freq_factor);
  }
  if (rope->type == RopeType::kYarn) {
    rope->original_max_position_embeddings = max_position_embeddings;
    KEEL_RETURN_IF_ERROR(f.get_int("original_max_position_embeddings", &rope->original_max_position_embeddings, false));
    if (rope->factor == 0.0)  // transformers 5 derives it from the context extension
      rope->factor = static_cast<double>(max_position_embeddings) / rope->original_max_position_embeddings;
    KEEL_RETURN_IF_ERROR(f.get_double("beta_fast", &rope->beta_fast, false));
    KEEL_RETURN_IF_ERROR(f.get_double("beta_slow", &rope->beta_slow, false));
    KEEL_RETURN_IF_ERROR(f.get_double("attention_factor", &rope->attention_factor, false));
    KEEL_RETURN_IF_ERROR(f.get_double("mscale", &rope->mscale, false));
    KEEL_RETURN_IF_ERROR(f.get_double("mscale_all_dim", &rope->mscale_all_dim, false));
    KEEL_RETURN_IF_ERROR(f.get_bool("truncate", &rope->truncate));
  }
  if (scaled && rope->factor <= 0) return invalid_argument("{}: factor={} must be positive", where, rope->factor);
  return Status();
}

Result<Arch> parse_arch(const json& j, const std::string& where, std::string* architecture) {
  std::string model_type;
  if (j.contains("model_type") && j["model_type"].is_string()) model_type = j["model_type"];
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    *architecture = j["architectures"][0];
  const std::string& a = *architecture;
  if (a == "LlamaForCausalLM" || (a.empty() && model_type == "llama")) return Arch::kLlama;
  if (a == "MistralForCausalLM" || (a.empty() && model_type == "mistral")) return Arch::kMistral;
  if (a == "Qwen2ForCausalLM" || (a.empty() && model_type == "qwen2")) return Arch::kQwen2;
  if (a == "Qwen3ForCausalLM" || (a.empty() && model_type == "qwen3")) return Arch::kQwen3;
  if (a == "Qwen3MoeForCausalLM" || (a.empty() && model_type == "qwen3_moe")) return Arch::kQwen3Moe;
  if (a == "Gemma3ForCausalLM" || (a.empty() && model_type == "gemma3_text")) return Arch::kGemma3;
  if (std::optional<Arch> hybrid = hybrid_arch(a, model_type)) return *hybrid;
  return unsupported(
      "{}: architecture '{}' (model_type '{}') is not supported; expected one of LlamaForCausalLM, "
      "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM, Gemma3ForCausalLM, "
      "Qwen3NextForCausalLM, Qwen3_5ForConditionalGeneration, Qwen3_5MoeForConditionalGeneration",
      where, a, model_type);
}

Result<MlxQuantParams> parse_mlx_params(const json& obj, const std::string& where, const MlxQuantParams* fallback) {
  MlxQuantParams p = fallback ? *fallback : MlxQuantParams{};
  Fields f(obj, where);
  KEEL_RETURN_IF_ERROR(f.get_int("bits", &p.bits, fallback == nullptr));
  KEEL_RETURN_IF_ERROR(f.get_int("group_size", &p.group_size, fallback == nullptr));
  KEEL_RETURN_IF_ERROR(format::check_mlx_params(p.bits, p.group_size, where));
  return p;
}

}  // namespace

std::optional<MlxQuantParams> Quantization::for_module(const std::string& module) const {
  auto it = modules.find(module);
  if (it != modules.end()) return it->second;
  return defaults;
}

Status parse_quantization(const json& j, const std::string& where, Quantization* out) {
  const char* key = j.contains("quantization") && !j["quantization"].is_null() ? "quantization"
                    : j.contains("quantization_config") && !j["quantization_config"].is_null() ? "quantization_config"
                                                                                                : nullptr;
  if (key == nullptr) return Status();
  const json& q = j[key];
  const std::string w = fmt::format("{}: {}", where, key);
  if (!q.is_object()) return invalid_argument("{} must be an object, got {}", w, q.dump());
  // transformers' methods name themselves; mlx-lm's entry has no quant_method (or mode "affine").
  if (q.contains("quant_method")) {
    return unsupported("{}: quant_method {} is not supported (keel reads MLX affine checkpoints, whose config has "
                       "bits and group_size, and GGUF files: Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, F16, BF16, F32)",
                       w, q["quant_method"].dump());
  }
  if (q.contains("mode") && q["mode"] != "affine")
    return unsupported("{}: mode {} is not supported (MLX affine only)", w, q["mode"].dump());
  KEEL_ASSIGN_OR_RETURN(out->defaults, parse_mlx_params(q, w, nullptr));
  for (auto& [name, v] : q.items()) {
    if (v.is_boolean()) {
      // true: the default; false: stored unquantized.
      if (!v.get<bool>()) out->modules[name] = std::nullopt;
      else out->modules[name] = out->defaults;
    } else if (v.is_object()) {
      KEEL_ASSIGN_OR_RETURN(MlxQuantParams p, parse_mlx_params(v, fmt::format("{}.{}", w, name), &out->defaults));
      out->modules[name] = p;
    }
  }
  out->mlx = true;
  return Status();
}

Result<ModelConfig> parse_config(const std::string& text, const std::string& where) {
  Result<json> parsed = parse_json_bounded<json>(text, kModelFileJsonDepth, where);
  if (!parsed.ok()) return Status(Code::kCorruption, parsed.status().message());
  json j = std::move(parsed).value();
  if (!j.is_object()) return corruption("{}: expected a JSON object", where);
  // Multimodal wrappers keep the language model's fields under text_config.
  if (j.contains("text_config") && j["text_config"].is_object() && !j.contains("hidden_size")) {
    json inner = j["text_config"];
    if (!inner.contains("architectures") && inner.contains("model_type") && inner["model_type"] == "gemma3_text")
      inner["architectures"] = json::array({"Gemma3ForCausalLM"});
    // mlx-vlm keeps the quantization beside text_config: it applies to the language model's weights too.
    for (const char* key : {"quantization", "quantization_config"})
      if (j.contains(key) && !inner.contains(key)) inner[key] = j[key];
    lift_multimodal_fields(j, inner);
    j = inner;
  }
  Fields f(j, where);
  ModelConfig c;
  KEEL_ASSIGN_OR_RETURN(c.arch, parse_arch(j, where, &c.architecture));
  KEEL_RETURN_IF_ERROR(parse_quantization(j, where, &c.quantization));
  const bool gemma = c.arch == Arch::kGemma3;
  const bool hybrid = is_hybrid_arch(c.arch);

  KEEL_RETURN_IF_ERROR(f.get_int("vocab_size", &c.vocab_size, true));
  KEEL_RETURN_IF_ERROR(f.get_int("hidden_size", &c.hidden_size, true));
  // Qwen3.5-MoE has no dense MLP (its config has no intermediate_size): its shared expert's width stands in.
  if (c.arch == Arch::kQwen3_5Moe)
    KEEL_RETURN_IF_ERROR(f.get_int("shared_expert_intermediate_size", &c.intermediate_size, true));
  else
    KEEL_RETURN_IF_ERROR(f.get_int("intermediate_size", &c.intermediate_size, true));
  KEEL_RETURN_IF_ERROR(f.get_int("num_hidden_layers", &c.num_layers, true));
  KEEL_RETURN_IF_ERROR(f.get_int("num_attention_heads", &c.num_heads, true));
  c.num_kv_heads = c.num_heads;
  KEEL_RETURN_IF_ERROR(f.get_int("num_key_value_heads", &c.num_kv_heads, false));
  c.max_position_embeddings = gemma ? 131072 : 2048;
  KEEL_RETURN_IF_ERROR(f.get_int("max_position_embeddings", &c.max_position_embeddings, false));
  double eps = 1e-6;
  KEEL_RETURN_IF_ERROR(f.get_double("rms_norm_eps", &eps, false));
  c.rms_norm_eps = static_cast<float>(eps);
  c.tie_word_embeddings = gemma;
  KEEL_RETURN_IF_ERROR(f.get_bool("tie_word_embeddings", &c.tie_word_embeddings));
  KEEL_RETURN_IF_ERROR(f.get_string("dtype", &c.dtype));
  if (c.dtype.empty()) KEEL_RETURN_IF_ERROR(f.get_string("torch_dtype", &c.dtype));

  for (auto [name, value] : {std::pair{"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
                             {"intermediate_size", c.intermediate_size}, {"num_hidden_layers", c.num_layers},
                             {"num_attention_heads", c.num_heads}, {"num_key_value_heads", c.num_kv_heads},
                             {"max_position_embeddings", c.max_position_embeddings}}) {
    if (value <= 0) return invalid_argument("{}: {}={} must be positive", where, name, value);
  }
  if (c.num_heads % c.num_kv_heads != 0)
    return invalid_argument("{}: num_key_value_heads={} does not divide num_attention_heads={}", where,
                            c.num_kv_heads, c.num_heads);
  if (!f.has("head_dim") && c.hidden_size % c.num_heads != 0)
    return invalid_argument("{}: hidden_size={} is not a multiple of num_attention_heads={} and no head_dim is given",
                            where, c.hidden_size, c.num_heads);
  c.head_dim = gemma || hybrid ? 256 : c.hidden_size / c.num_heads;
  KEEL_RETURN_IF_ERROR(f.get_int("head_dim", &c.head_dim, false));
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    return invalid_argument("{}: head_dim={} must be positive and even", where, c.head_dim);
  // q_size() and kv_size() are ints; so is every size the forward pass derives from them.
  if (int64_t{c.num_heads} * c.head_dim > std::numeric_limits<int>::max())
    return invalid_argument("{}: num_attention_heads={} x head_dim={} does not fit a 32-bit size", where, c.num_heads,
                            c.head_dim);

  // Biases.
  bool attention_bias = false;
  KEEL_RETURN_IF_ERROR(f.get_bool("attention_bias", &attention_bias));
  KEEL_RETURN_IF_ERROR(f.get_bool("mlp_bias", &c.mlp_bias));
  switch (c.arch) {
    case Arch::kQwen2: c.qkv_bias = true; c.o_bias = false; break;
    case Arch::kMistral: c.qkv_bias = c.o_bias = false; break;
    default: c.qkv_bias = c.o_bias = attention_bias; break;
  }
  if (c.arch != Arch::kLlama) c.mlp_bias = false;
  c.qk_norm = c.arch == Arch::kQwen3 || c.arch == Arch::kQwen3Moe || gemma || hybrid;
  c.norm_add_one = hybrid;  // zero-centered RMSNorm weights (Gemma3RMSNorm), except the gated one

  // Activation.
  std::string act = gemma ? "gelu_pytorch_tanh" : "silu";
  KEEL_RETURN_IF_ERROR(f.get_string(gemma ? "hidden_activation" : "hidden_act", &act));
  if (act == "silu" || act == "swish") c.activation = Activation::kSilu;
  else if (act == "gelu_pytorch_tanh" || act == "gelu_tanh") c.activation = Activation::kGeluTanh;
  else return unsupported("{}: activation '{}' (expected silu or gelu_pytorch_tanh)", where, act);

  // Attention scale and soft-caps.
  double scalar = c.head_dim;
  if (gemma) {
    KEEL_RETURN_IF_ERROR(f.get_double("query_pre_attn_scalar", &scalar, false));
    // transformers 5 reads attn_logit_softcapping for gemma3 but never passes it to attention (released
    // Gemma 3 checkpoints set it to null); keel follows the reference, so AttentionParams::softcap stays 0.
    double cap = 0;
    KEEL_RETURN_IF_ERROR(f.get_double("final_logit_softcapping", &cap, false));
    c.final_softcap = static_cast<float>(cap);
    c.norm_add_one = true;
    c.sandwich_norms = true;
  }
  c.attn_scale = static_cast<float>(1.0 / std::sqrt(scalar));

  // RoPE: 5.x rope_parameters (flat or per layer type) or 4.x rope_theta + rope_scaling.
  const double default_theta = gemma ? 1000000.0 : 10000.0;
  double partial = hybrid ? 0.25 : 1.0;  // Qwen3NextConfig's default
  KEEL_RETURN_IF_ERROR(f.get_double("partial_rotary_factor", &partial, false));
  c.rope.theta = default_theta;
  c.rope.partial_rotary_factor = partial;
  KEEL_RETURN_IF_ERROR(f.get_double("rope_theta", &c.rope.theta, false));
  c.rope_local = c.rope;
  c.rope_local.theta = 10000.0;
  KEEL_RETURN_IF_ERROR(f.get_double("rope_local_base_freq", &c.rope_local.theta, false));
  if (f.has("rope_parameters")) {
    const json& rp = j["rope_parameters"];
    if (rp.is_object() && (rp.contains("full_attention") || rp.contains("sliding_attention"))) {
      if (rp.contains("full_attention"))
        KEEL_RETURN_IF_ERROR(parse_rope_object(rp["full_attention"], where + ": rope_parameters.full_attention",
                                               c.max_position_embeddings, &c.rope));
      if (rp.contains("sliding_attention"))
        KEEL_RETURN_IF_ERROR(parse_rope_object(rp["sliding_attention"],
                                               where + ": rope_parameters.sliding_attention",
                                               c.max_position_embeddings, &c.rope_local));
    } else {
      KEEL_RETURN_IF_ERROR(parse_rope_object(rp, where + ": rope_parameters", c.max_position_embeddings, &c.rope));
    }
  } else if (f.has("rope_scaling")) {
    KEEL_RETURN_IF_ERROR(parse_rope_object(j["rope_scaling"], where + ": rope_scaling", c.max_position_embeddings,
                                           &c.rope));
  }
  if (!gemma) c.rope_local = c.rope;
  // Checked in floating point before rotary_dim() casts it to int (found by fuzz/model_config: a factor of 1e300
  // overflowed the cast). Sliding layers build their rope table from rope_local's factor.
  for (const RopeConfig* rope : {&c.rope, &c.rope_local}) {
    const double dim = c.head_dim * rope->partial_rotary_factor;
    if (!(dim >= 1 && dim <= c.head_dim) || static_cast<int>(dim) % 2 != 0)
      return invalid_argument("{}: partial_rotary_factor={} gives a rotary dimension of {} for head_dim={}", where,
                              rope->partial_rotary_factor, dim, c.head_dim);
  }

  // Which layers slide: 5.x layer_types, else each family's 4.x fields.
  c.layers.assign(c.num_layers, LayerSpec{});
  KEEL_RETURN_IF_ERROR(f.get_int("sliding_window", &c.sliding_window, false));
  if (f.has("layer_types")) {
    const json& lt = j["layer_types"];
    if (!lt.is_array() || lt.size() != static_cast<size_t>(c.num_layers))
      return invalid_argument("{}: layer_types must be a list of {} entries (num_hidden_layers), got {}", where,
                              c.num_layers, lt.dump());
    for (int i = 0; i < c.num_layers; i++) {
      if (lt[i] == "sliding_attention") c.layers[i].sliding = true;
      else if (hybrid && lt[i] == "linear_attention") c.layers[i].linear = true;
      else if (lt[i] != "full_attention")
        return unsupported("{}: layer_types[{}]={} (expected full_attention or sliding_attention)", where, i,
                           lt[i].dump());
    }
  } else if (hybrid) {
    KEEL_RETURN_IF_ERROR(hybrid_layer_pattern(j, where, &c));
  } else if (gemma) {
    int pattern = 6;
    KEEL_RETURN_IF_ERROR(f.get_int("sliding_window_pattern", &pattern, false));
    if (pattern <= 0) return invalid_argument("{}: sliding_window_pattern={} must be positive", where, pattern);
    for (int i = 0; i < c.num_layers; i++) c.layers[i].sliding = (i + 1) % pattern != 0;
  } else if (c.arch == Arch::kMistral) {
    for (auto& l : c.layers) l.sliding = c.sliding_window > 0;
  } else if (c.arch == Arch::kQwen2 || c.arch == Arch::kQwen3 || c.arch == Arch::kQwen3Moe) {
    bool use_sliding = false;
    int max_window_layers = c.num_layers;
    KEEL_RETURN_IF_ERROR(f.get_bool("use_sliding_window", &use_sliding));
    KEEL_RETURN_IF_ERROR(f.get_int("max_window_layers", &max_window_layers, false));
    for (int i = 0; i < c.num_layers; i++) c.layers[i].sliding = use_sliding && i >= max_window_layers;
  }
  bool any_sliding = false;
  for (auto& l : c.layers) any_sliding |= l.sliding;
  if (any_sliding && c.sliding_window <= 0)
    return invalid_argument("{}: sliding-window layers need a positive sliding_window, got {}", where,
                            c.sliding_window);
  if (!any_sliding) c.sliding_window = 0;

  // MoE.
  if (c.arch == Arch::kQwen3Moe || c.arch == Arch::kQwen3Next || c.arch == Arch::kQwen3_5Moe) {
    c.norm_topk_prob = hybrid;  // Qwen3NextConfig's default; Qwen3.5-MoE's router always renormalizes
    KEEL_RETURN_IF_ERROR(f.get_int("num_experts", &c.num_experts, false));
    if (c.num_experts == 0) KEEL_RETURN_IF_ERROR(f.get_int("num_local_experts", &c.num_experts, false));
    if (c.num_experts <= 0) return f.missing("num_experts");
    KEEL_RETURN_IF_ERROR(f.get_int("num_experts_per_tok", &c.num_experts_per_tok, true));
    KEEL_RETURN_IF_ERROR(f.get_int("moe_intermediate_size", &c.moe_intermediate_size, true));
    if (c.arch != Arch::kQwen3_5Moe) KEEL_RETURN_IF_ERROR(f.get_bool("norm_topk_prob", &c.norm_topk_prob));
    int sparse_step = 1;
    KEEL_RETURN_IF_ERROR(f.get_int("decoder_sparse_step", &sparse_step, false));
    if (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.num_experts)
      return invalid_argument("{}: num_experts_per_tok={} must be in [1, num_experts={}]", where,
                              c.num_experts_per_tok, c.num_experts);
    if (c.moe_intermediate_size <= 0)
      return invalid_argument("{}: moe_intermediate_size={} must be positive", where, c.moe_intermediate_size);
    if (sparse_step <= 0) return invalid_argument("{}: decoder_sparse_step={} must be positive", where, sparse_step);
    std::vector<bool> dense_only(c.num_layers, false);
    if (f.has("mlp_only_layers")) {
      const json& m = j["mlp_only_layers"];
      if (!m.is_array()) return f.type_error("mlp_only_layers", "a list of layer indices", m);
      for (auto& v : m) {
        if (!v.is_number_integer() || v.get<int>() < 0 || v.get<int>() >= c.num_layers)
          return invalid_argument("{}: mlp_only_layers entry {} is not a layer index in [0, {})", where, v.dump(),
                                  c.num_layers);
        dense_only[v.get<int>()] = true;
      }
    }
    for (int i = 0; i < c.num_layers; i++) c.layers[i].moe = !dense_only[i] && (i + 1) % sparse_step == 0;
    if (c.arch == Arch::kQwen3_5Moe)  // every layer, whatever a config says of sparse steps
      for (auto& l : c.layers) l.moe = true;
  }
  if (hybrid) KEEL_RETURN_IF_ERROR(parse_hybrid_fields(j, where, &c));

  // Special tokens.
  KEEL_RETURN_IF_ERROR(f.get_int("bos_token_id", &c.bos_token_id, false));
  if (f.has("eos_token_id")) {
    const json& e = j["eos_token_id"];
    if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int>());
    else if (e.is_array()) {
      for (auto& v : e) {
        if (!v.is_number_integer()) return f.type_error("eos_token_id", "an integer or a list of integers", e);
        c.eos_token_ids.push_back(v.get<int>());
      }
    } else return f.type_error("eos_token_id", "an integer or a list of integers", e);
  }

  if (gemma) {
    // transformers multiplies by sqrt(hidden) cast to the weights' dtype: bf16 rounds it (sqrt(3840) -> 62.0).
    float scale = std::sqrt(static_cast<float>(c.hidden_size));
    if (c.dtype == "bfloat16") scale = bf16_to_float(float_to_bf16(scale));
    else if (c.dtype == "float16") scale = f16_to_float(float_to_f16(scale));
    c.embed_scale = scale;
  }
  return c;
}

Result<ModelConfig> load_config(env::Env* env, const std::string& model_dir) {
  if (format::is_gguf_path(model_dir) && !env->is_directory(model_dir)) {
    KEEL_ASSIGN_OR_RETURN(auto gguf, format::GgufFile::open(env, model_dir));
    return config_from_gguf(*gguf);
  }
  const std::string path = env::join_path(model_dir, "config.json");
  KEEL_ASSIGN_OR_RETURN(std::string text, env->read_file(path));
  return parse_config(text, path);
}

}  // namespace keel::model
