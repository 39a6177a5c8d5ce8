// keel generate (one completion) and keel run (an interactive chat in the terminal), both streaming. keel generate
// with --tensor-parallel or --pipeline-parallel runs as a group (runtime/launcher.h); rank 0 alone prints.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/flags.h"
#include "runtime/load_model.h"
#include "engine/generate.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

namespace keel::cli {

namespace {

struct SamplingArgs {
  int max_tokens = 16;
  float temperature = 1.0f, top_p = 1.0f, min_p = 0.0f;
  int top_k = 0;
  uint64_t seed = 0;
  bool ignore_eos = false;
  std::string backend = "cpu";

  void add_to(CLI::App* cmd) {
    cmd->add_option("--max-tokens", max_tokens, "Tokens to generate");
    cmd->add_option("--temperature", temperature, "0 = greedy");
    cmd->add_option("--top-p", top_p, "Nucleus sampling");
    cmd->add_option("--top-k", top_k, "Keep the k most likely tokens (0 = off)");
    cmd->add_option("--min-p", min_p, "Drop tokens below min_p * the top probability");
    cmd->add_option("--seed", seed, "Sampling seed");
    cmd->add_option("--backend", backend, "auto|cpu|cuda");
    cmd->add_flag("--ignore-eos", ignore_eos, "Keep generating past end-of-sequence tokens");
  }
  engine::SamplingParams sampling() const {
    engine::SamplingParams p;
    p.temperature = temperature;
    p.top_p = top_p;
    p.top_k = top_k;
    p.min_p = min_p;
    p.seed = seed;
    return p;
  }
  engine::GenerateOptions options(const model::Model& m, const tokenizer::Tokenizer* tok) const {
    engine::GenerateOptions g;
    g.max_tokens = max_tokens;
    g.sampling = sampling();
    if (!ignore_eos) {
      g.stop_token_ids = m.config().eos_token_ids;
      if (tok != nullptr)
        for (int32_t e : tok->eos_ids()) g.stop_token_ids.push_back(e);
    }
    return g;
  }
};

// KV for the prompt and the completion, in blocks.
model::LoadOptions sized_for(size_t tokens) {
  model::LoadOptions o;
  o.max_batch_tokens = static_cast<int>(std::clamp<size_t>(tokens, 1, 512));
  o.kv_blocks = static_cast<int>((tokens + o.block_size - 1) / o.block_size) + 1;
  return o;
}

struct GenerateArgs {
  std::string dir, tokens, prompt;
  bool ids_only = false;
  SamplingArgs s;
  runtime::DistOptions dist;
};

int run_generate(const GenerateArgs& a) {
  std::optional<tokenizer::Tokenizer> tok;
  if (!a.prompt.empty() || !a.ids_only) {
    auto t = tokenizer::Tokenizer::load(a.dir);
    if (t.ok()) tok = std::move(*t);
    else if (!a.prompt.empty()) return report(t.status().with_context("--prompt needs the model's tokenizer"));
  }
  std::vector<int32_t> ids;
  if (!a.prompt.empty()) {
    ids = tok->encode(a.prompt, /*add_special=*/true);
    if (ids.empty()) return report(invalid_argument("--prompt: the text encodes to no tokens"));
  } else {
    auto parsed = parse_ids(a.tokens);
    if (!parsed.ok()) return report(parsed.status().with_context("--tokens"));
    ids = std::move(*parsed);
  }
  if (Status s = a.s.sampling().validate(); !s.ok()) return report(s);
  // The launcher of a group, or one of its followers, ends here (after the checks above, so bad input is refused
  // before any rank starts).
  std::optional<runtime::RankEnv> rank;
  if (std::optional<int> code = runtime::dispatch_model_rank(a.dir, a.s.backend, a.dist, &rank)) return *code;
  auto m = runtime::load_rank_model(a.dir, a.s.backend, a.dist, rank, sized_for(ids.size() + std::max(a.s.max_tokens, 0)));
  if (!m.ok()) return report(m.status());
  engine::GenerateOptions g = a.s.options(*m->model, tok ? &*tok : nullptr);
  g.leader = m->leader.get();
  // Text streams as it comes when the model has a tokenizer; --ids prints the ids on one line at the end.
  std::optional<tokenizer::StreamDecoder> stream;
  if (tok && !a.ids_only) stream.emplace(*tok, /*skip_special=*/true);
  auto out = engine::generate(*m->model, ids, g, [&](int32_t id) {
    if (stream) {
      std::fputs(stream->step(id).c_str(), stdout);
      std::fflush(stdout);
    }
    return true;
  });
  // A group's rank 0 leaves without its destructors once the followers are told (exit_rank).
  auto done = [&](int code) { return rank ? (runtime::exit_rank(code), code) : code; };
  if (Status s = runtime::end_followers(*m, out.status()); !s.ok()) return done(report(s));
  if (stream) {
    std::printf("%s\n", stream->flush().c_str());
    return done(0);
  }
  std::string line;
  for (size_t i = 0; i < out->size(); i++) line += (i ? " " : "") + std::to_string((*out)[i]);
  std::printf("%s\n", line.c_str());
  return done(0);
}

struct RunArgs {
  std::string dir, system;
  SamplingArgs s;
};

// Reads a line per user turn from stdin until EOF or /exit; each answer streams as it is sampled.
int run_chat(RunArgs a) {
  auto tok = tokenizer::Tokenizer::load(a.dir);
  if (!tok.ok()) return report(tok.status());
  auto tmpl = ChatTemplate::load(a.dir);
  if (!tmpl.ok()) return report(tmpl.status());
  model::LoadOptions o;
  o.max_batch_tokens = 512;
  auto lm = runtime::load_model(a.dir, a.s.backend, o);  // KV for the model's whole context
  if (!lm.ok()) return report(lm.status());
  const int context = lm->model->config().max_position_embeddings;
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
  std::fprintf(stderr, "keel run: %s (%s). Type a message; /exit or Ctrl-D to quit.\n",
               lm->model->config().architecture.c_str(), lm->backend->name().c_str());
  std::string line;
  while (true) {
    std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    auto prompt = tmpl->render(messages, nullptr, /*add_generation_prompt=*/true);
    if (!prompt.ok()) return report(prompt.status());
    std::vector<int32_t> ids = tok->encode(*prompt, /*add_special=*/false);
    engine::GenerateOptions g = a.s.options(*lm->model, &*tok);
    g.max_tokens = std::min(a.s.max_tokens, context - static_cast<int>(ids.size()));
    if (g.max_tokens <= 0) {
      std::fprintf(stderr, "error: the conversation (%zu tokens) fills the model's context of %d; start again\n",
                   ids.size(), context);
      messages.erase(messages.end() - 1);
      continue;
    }
    tokenizer::StreamDecoder stream(*tok, /*skip_special=*/true);
    std::string reply;
    auto out = engine::generate(*lm->model, ids, g, [&](int32_t id) {
      std::string piece = stream.step(id);
      reply += piece;
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
      return true;
    });
    if (!out.ok()) return report(out.status());
    const std::string tail = stream.flush();
    reply += tail;
    std::printf("%s\n", tail.c_str());
    messages.push_back({{"role", "assistant"}, {"content", reply}});
  }
  return 0;
}

}  // namespace

void add_generate(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("generate", "Generate a completion from a prompt (text or token ids)");
  static GenerateArgs a;
  cmd->add_option("MODEL_DIR", a.dir, "Hugging Face model directory")->required();
  auto* tokens = cmd->add_option("--tokens", a.tokens, "Prompt token ids, space-separated");
  auto* prompt = cmd->add_option("--prompt", a.prompt, "Prompt text (tokenized with the model's tokenizer)");
  tokens->excludes(prompt);
  a.s.add_to(cmd);
  cmd->add_flag("--ids", a.ids_only, "Print only the generated token ids, space-separated, on one line");
  add_dist_flags(cmd, a.dist);
  cmd->callback([&ctx, tokens, prompt] {
    if (tokens->count() == 0 && prompt->count() == 0) {
      ctx.exit_code = 2;
      std::fprintf(stderr, "error: generate needs --tokens or --prompt\n");
      return;
    }
    ctx.exit_code = run_generate(a);
  });
}

void add_run(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("run", "Chat with a model in the terminal (applies its chat template, streams)");
  static RunArgs a;
  a.s.max_tokens = 512;
  a.s.temperature = 0.7f;
  cmd->add_option("MODEL_DIR", a.dir, "Hugging Face model directory with tokenizer files")->required();
  cmd->add_option("--system", a.system, "A system prompt");
  a.s.add_to(cmd);
  cmd->callback([&ctx] { ctx.exit_code = run_chat(a); });
}

}  // namespace keel::cli
