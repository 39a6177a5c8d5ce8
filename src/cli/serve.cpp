// keel serve: loads a model (the bundled demo model when no directory is given), starts the engine and the HTTP
// server, and shuts down cleanly on SIGINT/SIGTERM: stop admitting, let in-flight requests finish (or cancel
// them after a grace period), close the listener, exit 0.
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "cli/load_model.h"
#include "engine/engine.h"
#include "server/engine_generator.h"
#include "server/server.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace keel::cli {

namespace {

struct ServeArgs {
  std::string dir, host = "127.0.0.1", api_key, served_model_name, backend = "cpu";
  int port = 8080;
  int max_model_len = 0;  // 0: the model's context
  int max_num_seqs = 64;
  int max_num_batched_tokens = 512;
};

// The KV pool this command reserves when the memory governor does not size it: every sequence can hold a full
// context, up to 2 GiB (the demo model's whole 64 x 2048-token pool is 384 MiB in f32), and never less than one
// full context.
constexpr uint64_t kKvBudgetBytes = 2ull << 30;

std::string demo_model_dir() {
  std::error_code ec;
  std::filesystem::path here = std::filesystem::read_symlink("/proc/self/exe", ec);
  for (const std::filesystem::path& p : {std::filesystem::path(KEEL_SOURCE_DIR) / "models" / "demo",
                                         here.parent_path() / ".." / "models" / "demo"}) {
    if (std::filesystem::exists(p / "config.json", ec)) return p.lexically_normal().string();
  }
  return "";
}

// Waits for SIGINT/SIGTERM (blocked in every thread) and shuts the server down.
void wait_for_signal(server::Server* http) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "keel: %s received; finishing in-flight requests\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  http->shutdown();
}

int run_serve(ServeArgs a) {
  // Block the shutdown signals before any thread starts, so only the waiting thread receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  if (a.dir.empty()) {
    a.dir = demo_model_dir();
    if (a.dir.empty()) return report(not_found("no MODEL_DIR given and the bundled demo model was not found"));
  }
  auto config = model::load_config(env::Env::posix(), a.dir);
  if (!config.ok()) return report(config.status());
  const int context = config->max_position_embeddings;
  if (a.max_model_len <= 0 || (context > 0 && a.max_model_len > context)) {
    if (a.max_model_len > context && context > 0) {
      std::fprintf(stderr, "keel: --max-model-len %d is above the model's context; using %d\n", a.max_model_len,
                   context);
    }
    a.max_model_len = context;
  }
  if (a.max_model_len <= 0) return report(invalid_argument("--max-model-len: the model's config gives no context"));

  auto tokenizer = tokenizer::Tokenizer::load(a.dir);
  if (!tokenizer.ok()) return report(tokenizer.status());
  std::unique_ptr<ChatTemplate> chat_template;
  if (auto t = ChatTemplate::load(a.dir); t.ok()) {
    chat_template = std::make_unique<ChatTemplate>(std::move(t).value());
  } else if (t.status().code() == Code::kNotFound) {
    std::fprintf(stderr, "keel: %s; chat routes will answer 400\n", t.status().message().c_str());
  } else {
    return report(t.status());
  }

  model::LoadOptions options;
  options.max_batch_tokens = a.max_num_batched_tokens;
  const uint64_t blocks_per_seq = (a.max_model_len + options.block_size - 1) / options.block_size;
  const uint64_t kv_block_bytes = 2ull * config->num_layers * config->num_kv_heads * config->head_dim * 4 *
                                  options.block_size;
  uint64_t blocks = blocks_per_seq * a.max_num_seqs;
  if (blocks * kv_block_bytes > kKvBudgetBytes) blocks = std::max(blocks_per_seq, kKvBudgetBytes / kv_block_bytes);
  options.kv_blocks = static_cast<int>(blocks);
  auto lm = load_model(a.dir, a.backend, options);
  if (!lm.ok()) return report(lm.status());

  engine::EngineOptions eo;
  eo.max_num_seqs = a.max_num_seqs;
  eo.max_num_batched_tokens = a.max_num_batched_tokens;
  eo.max_model_len = a.max_model_len;
  engine::Engine engine(lm->model.get(), eo);
  server::EngineGenerator generator(&engine, a.max_model_len);

  server::ServerOptions so;
  so.host = a.host;
  so.port = a.port;
  so.api_key = a.api_key;
  std::string name = a.served_model_name;
  if (name.empty()) name = std::filesystem::path(a.dir).lexically_normal().filename().string();
  if (name.empty()) name = std::filesystem::path(a.dir).lexically_normal().parent_path().filename().string();
  server::Server http(so, {name, &generator, &*tokenizer, chat_template.get()});
  auto port = http.bind();
  if (!port.ok()) return report(port.status());
  std::fprintf(stderr, "keel: serving %s (%s, context %d, %d KV blocks) on http://%s:%d\n", name.c_str(),
               a.dir.c_str(), a.max_model_len, options.kv_blocks, a.host.c_str(), *port);

  std::thread signals(wait_for_signal, &http);
  http.run();
  // The listener stopped; if no signal did it, wake the waiting thread so it can finish too.
  pthread_kill(signals.native_handle(), SIGTERM);
  signals.join();
  std::fprintf(stderr, "keel: stopped\n");
  return 0;
}

}  // namespace

void add_serve(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("serve", "Serve a model over HTTP (OpenAI and Anthropic APIs)");
  static ServeArgs a;
  cmd->add_option("MODEL_DIR", a.dir, "Hugging Face model directory (default: the bundled demo model)");
  cmd->add_option("--host", a.host, "Address to bind")->capture_default_str();
  cmd->add_option("--port", a.port, "Port to listen on")->capture_default_str()->check(CLI::Range(1, 65535));
  cmd->add_option("--api-key", a.api_key, "Require this key (Authorization: Bearer or x-api-key) except on /health");
  cmd->add_option("--served-model-name", a.served_model_name, "Model name in the API (default: the directory name)");
  cmd->add_option("--backend", a.backend, "auto|cpu|cuda")->capture_default_str();
  cmd->add_option("--max-model-len", a.max_model_len, "Longest prompt + completion (default: the model's context)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-num-seqs", a.max_num_seqs, "Sequences in the running batch")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-num-batched-tokens", a.max_num_batched_tokens, "Tokens per engine step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->callback([&ctx] { ctx.exit_code = run_serve(a); });
}

}  // namespace keel::cli
