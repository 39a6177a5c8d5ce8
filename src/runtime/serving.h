// The serving stack `keel serve` and `keel bench serve` share: plan the memory, load the model into what the plan
// reserved, start the engine, warm it up, bind the HTTP server. Torn down in reverse, with the ledger checked.
//
//   KEEL_ASSIGN_OR_RETURN(auto stack, Serving::start(options));
//   stack->run();         // until another thread calls stack->shutdown()
//   KEEL_RETURN_IF_ERROR(stack->finish());
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "runtime/launcher.h"
#include "server/http_limits.h"

namespace keel::runtime {

struct ServeOptions {
  std::string dir;  // "": the bundled demo model
  // A synthetic shape (model/synthetic.h: llama3-8b, ...) with random bf16 weights and the synthetic byte
  // tokenizer instead of a model directory: serving benchmarks of real shapes without a download.
  std::string synthetic;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port
  std::string api_key, backend = "cpu";
  // --served-model-name, repeatable: the first is the name /v1/models lists first and answers carry by default;
  // every one is accepted in requests (and listed), so a client that insists on its own model name (Claude Code's
  // claude-opus-..., Codex's gpt-...) can be served under it. Empty: the directory's name.
  std::vector<std::string> served_model_names;
  int sse_keepalive_s = 10;  // --sse-keepalive: seconds of silence before a stream gets ": keep-alive" (0: never)
  // How the model writes tool calls and reasoning (server/tool_call_format.h): a parser's name, or "auto" to
  // pick it from the chat template.
  std::string tool_call_parser = "auto", reasoning_parser = "auto";
  int max_concurrent_requests = 256;  // requests parsing or generating at once (429 beyond)
  server::HttpLimits http;            // connections, request size and time (server/http_limits.h)
  int max_model_len = 0;  // 0: the model's context
  int max_num_seqs = 64;
  int max_num_batched_tokens = 512;
  int block_size = 16;
  std::string max_process_memory = "80%";
  double gpu_memory_utilization = 0.9;
  std::string hot_cache_max_size = "0";
  std::string ssd_cache_dir;  // "": no SSD tier
  std::string ssd_cache_max_size = "100GB";
  std::string ssd_write_policy = "through";  // through | back
  std::string alloc_log;  // "": none
  bool quiet = false;     // no plan table or start-up lines (bench serve)
  DistOptions dist;       // --tensor-parallel, --pipeline-parallel (runtime/launcher.h)
  std::optional<RankEnv> rank;  // set on rank 0 of a group (by dispatch_serve_rank)
};

// The bundled demo model's directory, or "" when it cannot be found.
std::string demo_model_dir();

// First thing keel serve does: the launcher of a group or one of its followers runs here to the end and
// returns its exit code; rank 0 of a group (options.rank set) and a lone server get nullopt (runtime/launcher.h).
std::optional<int> dispatch_serve_rank(ServeOptions& options);

class Serving {
 public:
  // Everything up to a bound listener. Fails with the memory plan's message when the model cannot fit.
  static Result<std::unique_ptr<Serving>> start(ServeOptions options);
  ~Serving();

  int port() const;
  const std::string& model_name() const;
  void run();       // serves until shutdown()
  void shutdown();  // safe from any thread
  // Why the engine stopped for good ("" while healthy); run() then returns by itself.
  std::string failure() const;
  // After run() returned: releases every reservation and checks that the ledger balances.
  Status finish();

  struct Parts;

 private:
  explicit Serving(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace keel::runtime
