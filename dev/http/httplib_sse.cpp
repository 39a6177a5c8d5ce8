// The transport benchmark's httplib side: keel's Transport (src/server/transport.h, cpp-httplib 0.53.1 under it)
// serving GET /stream?tokens=N as keel serves a completion stream: a chunked content provider that waits up to
// 100 ms for the next token (generation.cpp's kStreamPoll) and writes what came. GET /health answers "ok".
//   httplib_sse PORT [STEP_MS]
#include <sys/socket.h>

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>

#include "server/transport.h"
#include "ticker.h"

namespace {

struct Queue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<int64_t, bool>> tokens;
};

}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 8090;
  Ticker ticker(std::chrono::milliseconds(argc > 2 ? std::atoi(argv[2]) : 20));
  keel::server::HttpLimits limits;
  limits.max_connections = 4096;
  keel::server::Transport http(limits, [](const std::string&, const std::string& message, httplib::Response& res) {
    res.set_content(message, "text/plain");
  });
  http.Get("/health", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
  http.Get("/stream", [&ticker](const httplib::Request& req, httplib::Response& res) {
    const int tokens = req.has_param("tokens") ? std::stoi(req.get_param_value("tokens")) : 100;
    auto queue = std::make_shared<Queue>();
    const uint64_t id = ticker.add(tokens, [queue](int64_t ns, bool last) {
      {
        std::lock_guard lock(queue->mu);
        queue->tokens.emplace_back(ns, last);
      }
      queue->cv.notify_one();
    });
    res.set_chunked_content_provider(
        "text/event-stream",
        [queue](size_t, httplib::DataSink& sink) {
          std::deque<std::pair<int64_t, bool>> ready;
          {
            std::unique_lock lock(queue->mu);
            queue->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return !queue->tokens.empty(); });
            ready.swap(queue->tokens);
          }
          std::string out;
          bool last = false;
          for (auto [ns, end] : ready) {
            out += "data: " + std::to_string(ns) + "\n\n";
            last = last || end;
          }
          if (last) out += "data: [DONE]\n\n";
          if (!out.empty() && !sink.write(out.data(), out.size())) return false;
          if (last) sink.done();
          return true;
        },
        [&ticker, id](bool) { ticker.remove(id); });
  });
  int listen_fd = -1;  // listened on again with keel serve's backlog of 1024 (httplib's is 128)
  http.set_socket_options([&listen_fd](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = fd;
  });
  if (!http.bind_to_port("127.0.0.1", port)) {
    std::fprintf(stderr, "cannot bind 127.0.0.1:%d\n", port);
    return 1;
  }
  ::listen(listen_fd, 1024);
  std::fprintf(stderr, "httplib_sse: listening on 127.0.0.1:%d\n", port);
  http.listen_after_bind();
}
