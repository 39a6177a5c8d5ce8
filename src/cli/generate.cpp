// keel generate (one completion) and keel run (an interactive chat in the terminal), both streaming, both through
// engine::Engine as keel serve is (the same admission, steps and token choice). keel generate with
// --tensor-parallel or --pipeline-parallel runs as a group (runtime/launcher.h); rank 0 alone prints.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/flags.h"
#include "engine/engine.h"
#include "runtime/load_model.h"
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
  // The request for `prompt`: the model's end-of-sequence ids stop it (the engine adds them) and so do the
  // tokenizer's, unless --ignore-eos.
  engine::Request request(std::vector<int32_t> prompt, const tokenizer::Tokenizer* tok) const {
    engine::Request r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling = sampling();
    r.ignore_eos = ignore_eos;
    if (!ignore_eos && tok != nullptr) r.stop_token_ids = tok->eos_ids();
    return r;
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
  // One sequence: the engine's step budget is the model's (a prompt prefills in chunks of max_batch_tokens).
  engine::EngineOptions eo;
  eo.max_num_seqs = 1;
  eo.max_num_batched_tokens = m->model->max_batch_tokens();
  eo.prefix_caching = false;
  eo.leader = m->leader.get();
  // Text streams as it comes when the model has a tokenizer; --ids prints the ids on one line at the end.
  std::optional<tokenizer::StreamDecoder> stream;
  if (tok && !a.ids_only) stream.emplace(*tok, /*skip_special=*/true);
  Result<std::vector<int32_t>> out = [&] {
    engine::Engine engine(m->model.get(), eo);
    return engine.generate(a.s.request(ids, tok ? &*tok : nullptr), [&](int32_t id) {
      if (stream) {
        std::fputs(stream->step(id).c_str(), stdout);
        std::fflush(stdout);
      }
      return true;
    });
  }();
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
  if (Status s = a.s.sampling().validate(); !s.ok()) return report(s);
  auto tok = tokenizer::Tokenizer::load(a.dir);
  if (!tok.ok()) return report(tok.status());
  auto tmpl = ChatTemplate::load(a.dir);
  if (!tmpl.ok()) return report(tmpl.status());
  model::LoadOptions o;
  o.max_batch_tokens = 512;
  auto lm = runtime::load_model(a.dir, a.s.backend, o);  // KV for the model's whole context
  if (!lm.ok()) return report(lm.status());
  // One conversation; its turns share their prefix, whose KV the prefix cache keeps between turns.
  engine::EngineOptions eo;
  eo.max_num_seqs = 1;
  eo.max_num_batched_tokens = lm->model->max_batch_tokens();
  engine::Engine engine(lm->model.get(), eo);
  const int context = engine.max_model_len();
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
    engine::Request request = a.s.request(tok->encode(*prompt, /*add_special=*/false), &*tok);
    // A long conversation gets what the context leaves; one that fills it is refused at admission.
    const int left = context - static_cast<int>(request.prompt.size());
    if (left > 0) request.max_tokens = std::min(request.max_tokens, left);
    tokenizer::StreamDecoder stream(*tok, /*skip_special=*/true);
    std::string reply;
    auto out = engine.generate(std::move(request), [&](int32_t id) {
      std::string piece = stream.step(id);
      reply += piece;
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
      return true;
    });
    if (!out.ok() && out.status().code() == Code::kInvalidArgument) {
      std::fprintf(stderr, "error: %s This turn is dropped.\n", out.status().message().c_str());
      messages.erase(messages.end() - 1);
      continue;
    }
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
