// keel serve: checks the platform, plans the memory, loads a model (the bundled demo model when no directory is
// given), starts the engine and the HTTP server, and shuts down cleanly on SIGINT/SIGTERM: stop admitting, let
// in-flight requests finish (or cancel them after a grace period), close the listener, release every reservation,
// check the ledger, exit 0.
#include <pthread.h>
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "base/log.h"
#include "base/units.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "doctor/platform.h"
#include "doctor/startup.h"
#include "env/env.h"
#include "server/auth.h"

namespace keel::cli {

namespace {

struct ServeArgs {
  runtime::ServeOptions serving;
  bool strict_platform = false;
  std::string api_key_file;
  std::string max_body_bytes = "32MB";
  std::string max_body_bytes_in_flight = "32MB";
  std::string responses_store_max_size = "64MB";
  double request_timeout_s = 10;
};

// The HTTP flags into the server's limits, and the API key from wherever it was given (never the command line,
// where every user of the machine can read it, unless --api-key says so).
Status prepare_http(ServeArgs& a) {
  runtime::ServeOptions& o = a.serving;
  const char* from_env = std::getenv("KEEL_API_KEY");
  KEEL_ASSIGN_OR_RETURN(o.api_key, server::resolve_api_key(o.api_key, a.api_key_file, from_env, *env::Env::posix()));
  auto body = parse_bytes(a.max_body_bytes);
  if (!body.ok()) return body.status().with_context("--max-body-bytes");
  auto in_flight = parse_bytes(a.max_body_bytes_in_flight);
  if (!in_flight.ok()) return in_flight.status().with_context("--max-body-bytes-in-flight");
  if (*body == 0 || *in_flight < *body) {
    return invalid_argument("--max-body-bytes-in-flight {} must be at least --max-body-bytes {} (and that above 0)",
                            a.max_body_bytes_in_flight, a.max_body_bytes);
  }
  auto store = parse_bytes(a.responses_store_max_size);
  if (!store.ok()) return store.status().with_context("--responses-store-max-size");
  o.http.responses_store_max_bytes = *store;
  o.http.max_body_bytes = *body;
  o.http.max_body_bytes_in_flight = *in_flight;
  o.http.request_timeout = std::chrono::milliseconds(static_cast<int64_t>(a.request_timeout_s * 1000));
  if (o.api_key.empty() && !server::is_loopback_host(o.host)) {
    std::fprintf(stderr,
                 "keel: warning: binding %s, an address other machines can reach, without an API key: anyone who "
                 "can connect can use the model (set --api-key-file or KEEL_API_KEY)\n",
                 o.host.c_str());
  }
  return Status();
}

// Every connection is a socket: the soft limit on open files goes up to the hard one (commonly 1024 -> 524288),
// and must cover --max-connections or the connections past it are refused by accept(2), not answered with 503.
void raise_open_files_limit(const runtime::ServeOptions& o) {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
    ::getrlimit(RLIMIT_NOFILE, &r);
  }
  const rlim_t needed = static_cast<rlim_t>(o.http.max_connections + server::kReservedConnections + 64);
  std::fprintf(stderr, "keel: open files limit %llu%s\n", static_cast<unsigned long long>(r.rlim_cur),
               r.rlim_cur < needed ? fmt::format(" (below the {} that --max-connections {} needs: raise the hard "
                                                 "limit, ulimit -Hn)",
                                                 needed, o.http.max_connections)
                                         .c_str()
                                   : "");
}

// Waits for SIGINT/SIGTERM (blocked in every thread) and shuts the server down.
void wait_for_signal(runtime::Serving* serving) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  log::info(fmt::format("{} received; finishing in-flight requests", sig == SIGINT ? "SIGINT" : "SIGTERM"));
  serving->shutdown();
}

// The known issues that match this machine (keel doctor's platform half). Returns false when --strict-platform
// must refuse to start.
bool check_platform(bool strict) {
  auto source = doctor::host_probe_source(env::Env::posix());
  const std::vector<doctor::Finding> findings = doctor::startup_findings(doctor::probe_platform(*source, ""));
  for (const doctor::Finding& f : findings) {
    if (f.severity == doctor::Severity::kInfo) continue;
    std::string evidence;
    for (const std::string& e : f.evidence) evidence += (evidence.empty() ? "" : "; ") + e;
    log::write(f.severity == doctor::Severity::kCritical ? log::Level::kError : log::Level::kWarn,
               fmt::format("platform: {} [{}]{}{}{}{}", f.title, f.id, evidence.empty() ? "" : ": ", evidence,
                           f.advice.empty() ? "" : " — ", f.advice));
  }
  if (strict && doctor::has_critical(findings)) {
    std::fprintf(stderr,
                 "error: --strict-platform: a critical known issue matches this machine (see above; keel doctor "
                 "explains it)\n");
    return false;
  }
  return true;
}

int run_serve(ServeArgs a) {
  // The launcher of a tensor/pipeline-parallel group, or one of its followers, ends here.
  if (std::optional<int> code = runtime::dispatch_serve_rank(a.serving)) return *code;
  // Block the shutdown signals before any thread starts, so only the waiting thread receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  if (!check_platform(a.strict_platform)) return 1;
  if (Status s = prepare_http(a); !s.ok()) return report(s);
  raise_open_files_limit(a.serving);
  auto serving = runtime::Serving::start(a.serving);
  if (!serving.ok()) return report(serving.status());

  std::thread signals(wait_for_signal, serving->get());
  (*serving)->run();
  if (std::string failure = (*serving)->failure(); !failure.empty()) {
    // A failed group: the device or NCCL may never answer again, so no teardown that could wait on them.
    std::fprintf(stderr, "error: %s\n", failure.c_str());
    std::fflush(stderr);
    std::_Exit(1);
  }
  // The listener stopped; if no signal did it, wake the waiting thread so it can finish too.
  pthread_kill(signals.native_handle(), SIGTERM);
  signals.join();
  if (Status s = (*serving)->finish(); !s.ok()) return report(s);
  log::info("stopped");
  if (a.serving.rank) runtime::exit_rank(0);  // a group's rank 0 leaves without its destructors, as the followers do
  return 0;
}

}  // namespace

void add_serve(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("serve", "Serve a model over HTTP (OpenAI and Anthropic APIs)");
  static ServeArgs a;
  runtime::ServeOptions& o = a.serving;
  cmd->add_option("MODEL_DIR", o.dir, "Hugging Face model directory (default: the bundled demo model)");
  cmd->add_option("--synthetic", o.synthetic,
                  "Serve a synthetic model of this shape (random bf16 weights, byte tokenizer) instead of MODEL_DIR");
  cmd->add_option("--host", o.host, "Address to bind")->capture_default_str();
  cmd->add_option("--port", o.port, "Port to listen on (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", o.api_key,
                  "Require this key (Authorization: Bearer or x-api-key) except on /health; visible in ps: prefer "
                  "--api-key-file or KEEL_API_KEY");
  cmd->add_option("--api-key-file", a.api_key_file, "Read the API key from the first line of FILE");
  cmd->add_option("--max-connections", o.http.max_connections, "Open connections at once (503 beyond)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-concurrent-requests", o.max_concurrent_requests,
                  "Requests parsing, tokenizing or generating at once (429 beyond)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-body-bytes", a.max_body_bytes, "Largest request body, sized or chunked (413 beyond)")
      ->capture_default_str();
  cmd->add_option("--max-body-bytes-in-flight", a.max_body_bytes_in_flight,
                  "Request bodies held at once, all connections together (429 beyond)")
      ->capture_default_str();
  cmd->add_option("--responses-store-max-entries", o.http.responses_store_max_entries,
                  "Responses kept for /v1/responses' previous_response_id (least recently used dropped; 0: none)")
      ->capture_default_str();
  cmd->add_option("--responses-store-max-size", a.responses_store_max_size,
                  "Bytes of JSON those stored responses may take (planned in the http line)")
      ->capture_default_str();
  cmd->add_option("--request-timeout", a.request_timeout_s,
                  "Seconds to receive a whole request, head and body (408 beyond)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--served-model-name", o.served_model_names,
                  "Model name in the API (default: the directory name); repeat for aliases requests may use")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--sse-keepalive", o.sse_keepalive_s,
                  "Seconds a stream may stay silent (a long prefill) before an SSE comment keeps it alive; 0: never")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--backend", o.backend, "auto|cpu|cuda")->capture_default_str();
  cmd->add_option("--tool-call-parser", o.tool_call_parser,
                  "How the model writes tool calls: auto (from the chat template) | hermes | qwen3_coder | "
                  "llama3_json | mistral | gemma3 | none")
      ->capture_default_str();
  cmd->add_option("--reasoning-parser", o.reasoning_parser,
                  "How the model writes reasoning: auto (think when the chat template has <think>) | think | none")
      ->capture_default_str();
  add_memory_flags(cmd, o);
  add_dist_flags(cmd, o.dist);
  cmd->add_flag("--strict-platform", a.strict_platform,
                "Refuse to start when a critical known issue matches this machine (keel doctor)");
  cmd->callback([&ctx] { ctx.exit_code = run_serve(a); });
}

}  // namespace keel::cli
