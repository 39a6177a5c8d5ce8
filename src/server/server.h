// Server: keel's HTTP API (OpenAI and Anthropic compatible) over a Generator. Text handling is per request
// here — chat template, tokenization, incremental detokenization, stop strings — so the engine sees token ids
// only. Handlers never throw past their boundary and never wait without a bound; see docs/HTTP.md.
//
//   server::Server http(options, {name, &generator, &tokenizer, &chat_template});
//   KEEL_ASSIGN_OR_RETURN(int port, http.bind());
//   http.run();        // until another thread calls http.shutdown()
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "grammar/grammar.h"
#include "server/api.h"
#include "server/generator.h"
#include "server/metrics.h"
#include "server/response_store.h"
#include "server/http_limits.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace keel::server {

class Transport;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;         // 0: any free port (bind() returns it)
  std::string api_key;     // "": no authentication
  // Requests in flight at once on the routes that parse a body (generation, /tokenize, /detokenize), counted
  // from before their JSON is parsed until their answer is written; beyond it they get 429 with Retry-After.
  int max_concurrent = 256;
  std::chrono::milliseconds shutdown_grace{30000};  // in-flight requests may finish within this, then are cancelled
  // A stream that has sent nothing for this long (a long prefill before the first token) gets an SSE comment line,
  // ": keep-alive", so proxies and clients with idle timeouts keep waiting. 0: never.
  std::chrono::milliseconds sse_keepalive{10000};
  HttpLimits http;  // connections, request size and time (transport.h), the responses store's bounds
};

struct ServedModel {
  std::string name;                                  // what /v1/models lists and requests must name
  Generator* generator = nullptr;
  const tokenizer::Tokenizer* tokenizer = nullptr;
  const ChatTemplate* chat_template = nullptr;       // null: chat routes answer 400
  // How the model writes tool calls and reasoning (--tool-call-parser, --reasoning-parser); unset: detected from
  // the chat template's source (tool_call_format.h).
  std::optional<ToolCallFormat> tool_call_format = std::nullopt;
  std::optional<ReasoningFormat> reasoning_format = std::nullopt;
  std::vector<std::string> aliases = {};             // more names requests may use (--served-model-name repeated)
};

class Server {
 public:
  Server(ServerOptions options, ServedModel model);
  ~Server();

  // Binds the listening socket; returns the port (the chosen one when options.port is 0).
  Result<int> bind();
  // Serves until shutdown(). Call after bind().
  void run();
  // Stops admitting (the generator drains, /health says 503), lets in-flight requests finish within the grace
  // period, cancels the rest, then closes the listener so run() returns. Safe from any thread, once or more.
  void shutdown();

  const Metrics& metrics() const { return *metrics_; }
  // The output formats in use, chosen by flag or detected from the chat template.
  ToolCallFormat tool_call_format() const { return *model_.tool_call_format; }
  ReasoningFormat reasoning_format() const { return *model_.reasoning_format; }
  int in_flight() const { return in_flight_.load(); }
  int open_connections() const;
  size_t body_bytes_in_flight() const;

 private:
  enum class Route { kChat, kCompletions, kMessages, kResponses };
  using Handler = void (Server::*)(const httplib::Request&, httplib::Response&);

  void install_routes();
  // Wraps a handler: authentication, exceptions → 500, request counting.
  void add_route(const char* method, const std::string& pattern, ApiFlavor flavor, Handler handler);
  bool authorized(const httplib::Request& req) const;
  void send_error(httplib::Response& res, const ApiError& error, ApiFlavor flavor) const;
  void send_json(httplib::Response& res, const json& body, int status = 200) const;

  void health(const httplib::Request& req, httplib::Response& res);
  void metrics_text(const httplib::Request& req, httplib::Response& res);
  void list_models(const httplib::Request& req, httplib::Response& res);
  void get_model(const httplib::Request& req, httplib::Response& res);
  void chat(const httplib::Request& req, httplib::Response& res);
  void completions(const httplib::Request& req, httplib::Response& res);
  void messages(const httplib::Request& req, httplib::Response& res);
  void responses(const httplib::Request& req, httplib::Response& res);
  void get_response(const httplib::Request& req, httplib::Response& res);
  void delete_response(const httplib::Request& req, httplib::Response& res);
  void count_tokens(const httplib::Request& req, httplib::Response& res);
  void tokenize(const httplib::Request& req, httplib::Response& res);
  void detokenize(const httplib::Request& req, httplib::Response& res);

  void generate(const httplib::Request& req, httplib::Response& res, Route route);
  // Builds the prompt ids of a parsed request (chat template or completion prompt).
  // `rendered` (when given) gets the chat template's output.
  Result<std::vector<int32_t>> prompt_ids(const GenerationSpec& spec, std::string* rendered = nullptr) const;
  // The requested model is this server's (its name, an alias, or ""): the name to answer with.
  Result<std::string> check_model(const std::string& requested) const;
  std::unique_ptr<OutputParser> output_parser(const GenerationSpec& spec, const std::string& rendered,
                                              Route route) const;
  std::string new_id(const char* prefix);
  // The served vocabulary's grammar compiler (structured output), built on first use: xgrammar's tables of a
  // 151k vocabulary take ~150 ms, which a server that never sees a schema should not pay.
  grammar::GrammarCompiler& grammar_compiler();
  // Sets spec.request.mask from spec.constraint (a 400 for a schema keel cannot enforce).
  Status apply_constraint(GenerationSpec& spec);
  // A fresh matcher for spec.constraint (set): one per sequence, as n > 1 choices each need their own.
  Result<std::shared_ptr<engine::TokenMask>> new_mask(const GenerationSpec& spec);
  json model_card(const std::string& id) const;

  ServerOptions options_;
  ServedModel model_;
  std::shared_ptr<Metrics> metrics_;
  std::unique_ptr<Transport> http_;
  std::unique_ptr<ResponseStore> responses_;
  int listen_fd_ = -1;  // the listening socket, seen through httplib's socket-options hook
  int64_t created_ = 0;

  std::atomic<int> in_flight_{0};
  std::atomic<bool> draining_{false};
  std::mutex mu_;
  std::set<uint64_t> active_;  // generator ids of in-flight requests, cancelled at the end of the grace period
  std::mt19937_64 rng_;
  std::once_flag shutdown_once_;
  std::once_flag grammar_once_;
  std::unique_ptr<grammar::GrammarCompiler> grammar_;
};

}  // namespace keel::server
