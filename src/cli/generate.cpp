#include <cstdio>

#include "cli/commands.h"
#include "cli/load_model.h"
#include "engine/generate.h"

namespace keel::cli {

namespace {

struct GenerateArgs {
  std::string dir, tokens, prompt, backend = "cpu";
  int max_tokens = 16;
  float temperature = 1.0f, top_p = 1.0f, min_p = 0.0f;
  int top_k = 0;
  uint64_t seed = 0;
  bool ids_only = false, ignore_eos = false;
};

int run_generate(const GenerateArgs& a) {
  if (!a.prompt.empty())
    return report(unsupported("--prompt needs the tokenizer (keel tokenize); pass --tokens for now"));
  auto ids = parse_ids(a.tokens);
  if (!ids.ok()) return report(ids.status().with_context("--tokens"));
  model::LoadOptions options;
  options.max_batch_tokens = std::min<int>(512, static_cast<int>(ids->size()));
  options.kv_blocks =
      static_cast<int>((ids->size() + std::max(a.max_tokens, 0) + options.block_size - 1) / options.block_size);
  auto lm = load_model(a.dir, a.backend, options);
  if (!lm.ok()) return report(lm.status());
  engine::GenerateOptions g;
  g.max_tokens = a.max_tokens;
  g.sampling.temperature = a.temperature;
  g.sampling.top_p = a.top_p;
  g.sampling.top_k = a.top_k;
  g.sampling.min_p = a.min_p;
  g.sampling.seed = a.seed;
  if (!a.ignore_eos) g.stop_token_ids = lm->model->config().eos_token_ids;
  auto out = engine::generate(*lm->model, *ids, g);
  if (!out.ok()) return report(out.status());
  std::string line;
  for (size_t i = 0; i < out->size(); i++) line += (i ? " " : "") + std::to_string((*out)[i]);
  std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace

void add_generate(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("generate", "Generate tokens from a prompt");
  static GenerateArgs a;
  cmd->add_option("MODEL_DIR", a.dir, "Hugging Face model directory")->required();
  auto* tokens = cmd->add_option("--tokens", a.tokens, "Prompt token ids, space-separated");
  auto* prompt = cmd->add_option("--prompt", a.prompt, "Prompt text");
  tokens->excludes(prompt);
  cmd->add_option("--max-tokens", a.max_tokens, "Tokens to generate");
  cmd->add_option("--temperature", a.temperature, "0 = greedy");
  cmd->add_option("--top-p", a.top_p, "Nucleus sampling");
  cmd->add_option("--top-k", a.top_k, "Keep the k most likely tokens (0 = off)");
  cmd->add_option("--min-p", a.min_p, "Drop tokens below min_p * the top probability");
  cmd->add_option("--seed", a.seed, "Sampling seed");
  cmd->add_option("--backend", a.backend, "auto|cpu|cuda");
  cmd->add_flag("--ids", a.ids_only, "Print only the generated token ids");
  cmd->add_flag("--ignore-eos", a.ignore_eos, "Keep generating past end-of-sequence tokens");
  cmd->callback([&ctx, tokens, prompt] {
    if (tokens->count() == 0 && prompt->count() == 0) {
      ctx.exit_code = 2;
      std::fprintf(stderr, "error: generate needs --tokens or --prompt\n");
      return;
    }
    ctx.exit_code = run_generate(a);
  });
}

}  // namespace keel::cli
