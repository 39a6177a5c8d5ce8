// Transport: keel's HTTP/1.1 connection layer. cpp-httplib (vendored, third_party/cpp-httplib) parses the request
// line and headers again, routes and writes responses; this layer owns everything a hostile or slow client could
// hold, and bounds each: open connections, the bytes and lines of a request head, the bytes of a body (sized or
// chunked), the time to read a whole request, and the request bodies held in memory at once. A request reaches
// httplib only once it has been read in full within those bounds; a refused one is answered here, before any
// handler (authentication included) runs. One thread per connection: a long SSE stream holds its own thread,
// never a worker a short request waits for. docs/HTTP.md "Limits".
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>

#include <httplib.h>

#include "server/http_limits.h"

namespace keel::server {

class Transport : public httplib::Server {
 public:
  // Answers a request the transport refuses (408, 413, 414, 429, 431, 503, 400 for malformed framing): fills
  // `res` (status already set) with a body in the API's error shape for `path` and a message naming the limit.
  using Refusal = std::function<void(const std::string& path, const std::string& message, httplib::Response& res)>;

  Transport(HttpLimits limits, Refusal refusal);

  int open_connections() const { return open_connections_.load(); }
  size_t body_bytes_in_flight() const { return body_bytes_.load(); }
  const HttpLimits& limits() const { return limits_; }

 private:
  bool process_and_close_socket(socket_t sock) override;
  // Reserves `bytes` more of max_body_bytes_in_flight; false (and nothing reserved) when it would cross it.
  bool reserve_body(size_t bytes);
  void release_body(size_t bytes) { body_bytes_.fetch_sub(bytes); }

  HttpLimits limits_;
  Refusal refusal_;
  std::atomic<int> open_connections_{0};
  std::atomic<size_t> body_bytes_{0};
  friend class RequestReader;
};

}  // namespace keel::server
