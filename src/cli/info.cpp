#include <nlohmann/json.hpp>

#include <cstdio>

#include "base/units.h"
#include "cli/commands.h"
#include "runtime/load_model.h"

namespace keel::cli {

namespace {

int run_info(const std::string& dir, bool as_json) {
  model::LoadOptions options;
  options.max_batch_tokens = 1;
  options.kv_blocks = 1;
  auto lm = runtime::load_model(dir, "cpu", options);
  if (!lm.ok()) return report(lm.status());
  const model::ModelConfig& c = lm->model->config();
  const model::ModelWeights& w = lm->model->weights();
  int sliding = 0, moe = 0;
  for (auto& l : c.layers) sliding += l.sliding, moe += l.moe;
  // KV per token as a server stores it: the weights' dtype (bf16/f16) or f32.
  const uint64_t kv_per_token = 2ull * c.num_layers * c.num_kv_heads * c.head_dim * dtype_size(w.dtype);
  nlohmann::ordered_json j;
  j["architecture"] = c.architecture;
  j["family"] = model::arch_name(c.arch);
  j["parameters"] = w.parameter_count;
  j["dtype"] = dtype_name(w.dtype);
  j["weight_bytes"] = w.bytes;
  // Packed weights by format: "mlx-affine 4-bit g64: 170 tensors, 1234 bytes"; the rest are plain dtype.
  if (!w.quant_use.empty()) {
    std::string q;
    for (auto& [what, use] : w.quant_use)
      q += fmt::format("{}{}: {} tensors, {}", q.empty() ? "" : "; ", what, use.tensors, format_bytes(use.bytes));
    j["quantization"] = q;
  }
  j["layers"] = c.num_layers;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["attention_heads"] = c.num_heads;
  j["kv_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["context_length"] = c.max_position_embeddings;
  j["rope"] = model::rope_type_name(c.rope.type);
  j["rope_theta"] = c.rope.theta;
  j["sliding_window"] = c.sliding_window;
  j["sliding_layers"] = sliding;
  if (c.num_experts > 0) {
    j["experts"] = c.num_experts;
    j["experts_per_token"] = c.num_experts_per_tok;
    j["moe_layers"] = moe;
  }
  j["tied_embeddings"] = c.tie_word_embeddings;
  j["kv_bytes_per_token"] = kv_per_token;
  j["kv_bytes_full_context"] = kv_per_token * c.max_position_embeddings;
  if (as_json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  for (auto& [key, value] : j.items()) {
    std::string v = value.is_string() ? value.get<std::string>() : value.dump();
    if (key.find("bytes") != std::string::npos) v += " (" + format_bytes(value.get<uint64_t>()) + ")";
    std::printf("%-24s %s\n", key.c_str(), v.c_str());
  }
  return 0;
}

}  // namespace

void add_info(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("info", "Architecture, parameters, dtype, context and memory of a model directory");
  static std::string dir;
  static bool as_json = false;
  cmd->add_option("MODEL_DIR", dir, "Hugging Face model directory")->required();
  cmd->add_flag("--json", as_json, "Print JSON");
  cmd->callback([&ctx] { ctx.exit_code = run_info(dir, as_json); });
}

}  // namespace keel::cli
