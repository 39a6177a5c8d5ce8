#include "server/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <thread>

#include "server/auth.h"
#include "server/request_fields.h"
#include "server/transport.h"

namespace keel::server {

namespace {

constexpr int kListenBacklog = 1024;  // capped by net.core.somaxconn
constexpr auto kDump = nlohmann::ordered_json::error_handler_t::replace;

ApiFlavor flavor_of_path(const std::string& path) {
  return path.rfind("/v1/messages", 0) == 0 ? ApiFlavor::kAnthropic : ApiFlavor::kOpenAI;
}

}  // namespace

Server::Server(ServerOptions options, ServedModel model)
    : options_(std::move(options)),
      model_(std::move(model)),
      metrics_(std::make_shared<Metrics>()),
      created_(static_cast<int64_t>(std::time(nullptr))),
      rng_(std::random_device{}()) {
  const std::string source = model_.chat_template ? model_.chat_template->source() : "";
  if (!model_.tool_call_format) model_.tool_call_format = detect_tool_call_format(source);
  if (!model_.reasoning_format) model_.reasoning_format = detect_reasoning_format(source);
  responses_ = std::make_unique<ResponseStore>(options_.http.responses_store_max_entries,
                                               options_.http.responses_store_max_bytes);
  // What the transport refuses before any handler runs gets the route's error shape, and is counted.
  http_ = std::make_unique<Transport>(options_.http, [this](const std::string& path, const std::string& message,
                                                           httplib::Response& res) {
    ApiError error{res.status, message, "", "", res.status == 429 || res.status == 503 ? 1 : 0};
    send_error(res, error, flavor_of_path(path));
    metrics_->count_request("other", res.status);
  });
  // SO_REUSEADDR only (httplib's default adds SO_REUSEPORT, which lets a second server share the port), and the
  // socket kept to widen its backlog after bind.
  http_->set_socket_options([this](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd_ = fd;
  });
  install_routes();
}

Server::~Server() {
  if (http_->is_running()) http_->stop();
}

void Server::send_json(httplib::Response& res, const json& body, int status) const {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, kDump), "application/json");
}

void Server::send_error(httplib::Response& res, const ApiError& error, ApiFlavor flavor) const {
  if (error.retry_after_s > 0) res.set_header("Retry-After", std::to_string(error.retry_after_s));
  send_json(res, error.to_json(flavor), error.status);
}

bool Server::authorized(const httplib::Request& req) const {
  if (options_.api_key.empty()) return true;
  // Both headers are always compared, each in constant time (auth.h).
  const bool by_x_api_key = secret_equal(req.get_header_value("x-api-key"), options_.api_key);
  const std::string authorization = req.get_header_value("Authorization");
  std::string_view bearer = authorization;
  const bool has_bearer = bearer.substr(0, 7) == "Bearer ";
  const bool by_bearer = secret_equal(has_bearer ? bearer.substr(7) : std::string_view(), options_.api_key);
  return by_x_api_key || (has_bearer && by_bearer);
}

void Server::add_route(const char* method, const std::string& pattern, ApiFlavor flavor, Handler handler) {
  auto wrapped = [this, pattern, flavor, handler](const httplib::Request& req, httplib::Response& res) {
    try {
      if (pattern != "/health" && !authorized(req)) {
        send_error(res, ApiError::unauthorized(), flavor);
      } else {
        (this->*handler)(req, res);
      }
    } catch (const std::exception& e) {
      send_error(res, ApiError::internal(fmt::format("internal error: {}", e.what())), flavor);
    } catch (...) {
      send_error(res, ApiError::internal("internal error"), flavor);
    }
    metrics_->count_request(pattern, res.status);
  };
  if (std::string(method) == "GET") {
    http_->Get(pattern, wrapped);
  } else if (std::string(method) == "DELETE") {
    http_->Delete(pattern, wrapped);
  } else {
    http_->Post(pattern, wrapped);
  }
}

void Server::install_routes() {
  add_route("GET", "/health", ApiFlavor::kOpenAI, &Server::health);
  add_route("GET", "/metrics", ApiFlavor::kOpenAI, &Server::metrics_text);
  add_route("GET", "/v1/models", ApiFlavor::kOpenAI, &Server::list_models);
  add_route("GET", "/v1/models/(.+)", ApiFlavor::kOpenAI, &Server::get_model);
  add_route("POST", "/v1/chat/completions", ApiFlavor::kOpenAI, &Server::chat);
  add_route("POST", "/v1/completions", ApiFlavor::kOpenAI, &Server::completions);
  add_route("POST", "/v1/messages", ApiFlavor::kAnthropic, &Server::messages);
  add_route("POST", "/v1/responses", ApiFlavor::kOpenAI, &Server::responses);
  add_route("GET", "/v1/responses/([^/]+)", ApiFlavor::kOpenAI, &Server::get_response);
  add_route("DELETE", "/v1/responses/([^/]+)", ApiFlavor::kOpenAI, &Server::delete_response);
  add_route("POST", "/v1/messages/count_tokens", ApiFlavor::kAnthropic, &Server::count_tokens);
  add_route("POST", "/tokenize", ApiFlavor::kOpenAI, &Server::tokenize);
  add_route("POST", "/detokenize", ApiFlavor::kOpenAI, &Server::detokenize);

  // httplib's own answers (unknown path, malformed HTTP, body too large) get a JSON error body too. This runs
  // for every status >= 400, so it leaves the handlers' own error bodies alone.
  http_->set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                       httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    ApiError error{res.status, "", "", "", 0};
    if (res.status == 404) {
      error.message = fmt::format("no route for {} {}", req.method, req.path);
    } else if (res.status == 413) {
      error.message = fmt::format("request body is larger than {} bytes", options_.http.max_body_bytes);
    } else {
      error.message = fmt::format("malformed HTTP request ({})", res.status);
    }
    send_error(res, error, flavor_of_path(req.path));
    metrics_->count_request("other", res.status);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http_->set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
    send_error(res, ApiError::internal("internal error"), flavor_of_path(req.path));
  });
}

Result<int> Server::bind() {
  // httplib 0.11 writes with send(2) flags 0: a client that hung up would raise SIGPIPE and kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  int port = options_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(options_.host);
    if (port < 0) return io_error("cannot bind {} on any port", options_.host);
  } else if (!http_->bind_to_port(options_.host, port)) {
    return io_error("cannot bind {}:{} (in use, or not an address of this machine?)", options_.host, port);
  }
  // httplib listens with a backlog of 5: a burst of clients (a benchmark's 64 at once) overflows it and the
  // kernel's SYN retries add a second to their first token. listen(2) again widens it.
  if (listen_fd_ >= 0) ::listen(listen_fd_, kListenBacklog);
  return port;
}

int Server::open_connections() const { return http_->open_connections(); }
size_t Server::body_bytes_in_flight() const { return http_->body_bytes_in_flight(); }

void Server::run() { http_->listen_after_bind(); }

void Server::shutdown() {
  std::call_once(shutdown_once_, [this] {
    draining_ = true;
    model_.generator->drain();
    auto deadline = std::chrono::steady_clock::now() + options_.shutdown_grace;
    while (in_flight_ > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::set<uint64_t> ids;
    {
      std::lock_guard lock(mu_);
      ids = active_;
    }
    for (uint64_t id : ids) model_.generator->cancel(id);
    // Cancelled requests answer within one generator step; don't wait on a stuck one forever.
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (in_flight_ > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    http_->stop();
  });
}

std::string Server::new_id(const char* prefix) {
  std::lock_guard lock(mu_);
  return fmt::format("{}{:016x}{:08x}", prefix, rng_(), static_cast<uint32_t>(rng_()));
}

Result<std::string> Server::check_model(const std::string& requested) const {
  if (requested.empty()) return model_.name;
  if (requested == model_.name ||
      std::find(model_.aliases.begin(), model_.aliases.end(), requested) != model_.aliases.end()) {
    return requested;
  }
  return not_found("model '{}' not found; this server serves '{}'", requested, model_.name);
}

json Server::model_card(const std::string& id) const {
  return json{{"id", id},
              {"object", "model"},
              {"created", created_},
              {"owned_by", "keel"},
              {"max_model_len", model_.generator->max_model_len()}};
}

void Server::health(const httplib::Request&, httplib::Response& res) {
  if (std::string failure = model_.generator->failure(); !failure.empty()) {
    send_json(res, json{{"status", "unhealthy"}, {"error", failure}}, 503);
  } else if (draining_) {
    send_json(res, json{{"status", "draining"}}, 503);
  } else {
    send_json(res, json{{"status", "ok"}});
  }
}

void Server::metrics_text(const httplib::Request&, httplib::Response& res) {
  res.set_content(metrics_->render(model_.generator->stats()), "text/plain; version=0.0.4");
}

void Server::list_models(const httplib::Request&, httplib::Response& res) {
  json data = json::array({model_card(model_.name)});
  for (const std::string& alias : model_.aliases) data.push_back(model_card(alias));
  send_json(res, json{{"object", "list"}, {"data", std::move(data)}});
}

void Server::get_model(const httplib::Request& req, httplib::Response& res) {
  std::string id = req.matches.size() > 1 ? std::string(req.matches[1]) : "";
  Result<std::string> found = id.empty() ? Result<std::string>(not_found("model '' not found")) : check_model(id);
  if (!found.ok()) {
    send_error(res, ApiError::not_found(fmt::format("model '{}' not found; this server serves '{}'", id, model_.name),
                                        "model_not_found"),
               ApiFlavor::kOpenAI);
    return;
  }
  send_json(res, model_card(*found));
}

}  // namespace keel::server
