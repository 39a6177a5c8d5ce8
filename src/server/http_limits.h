// HttpLimits: what one client, and all of them together, may hold of the HTTP layer. Enforced by Transport
// (transport.h) with a status naming the limit; planned by the memory plan's http line (planned_bytes()).
// docs/HTTP.md "Limits".
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include <fmt/format.h>

namespace keel::server {

// Connections above max_connections kept for GET /health and /metrics.
inline constexpr int kReservedConnections = 64;
// A request body takes up to this many times its bytes while it is handled: the body, its parsed JSON, the
// prompt text, the tokenizer's pieces, the token ids and the answer. Measured: a 25 MB /tokenize of English words
// on the demo model's tokenizer raised the peak RSS by 483 MB, 18.4 times the body (docs/DECISIONS.md).
inline constexpr size_t kBodyWorkFactor = 20;

struct HttpLimits {
  // Connections open at once; beyond it a request gets 503 (GET /health and /metrics are still answered, from
  // kReservedConnections more).
  int max_connections = 2048;
  size_t max_body_bytes = 32u << 20;        // one request's body, sized or chunked (413)
  size_t max_header_bytes = 32u << 10;      // request line + headers (431)
  int max_header_count = 100;               // header lines (431)
  size_t max_header_line_bytes = 8u << 10;  // one header line (431); the request line: 414
  // From a request's first byte to its last body byte (408). Not the time to answer it.
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds keep_alive_timeout{5000};  // idle wait for the next request on a connection
  std::chrono::milliseconds write_timeout{30000};      // one blocked write to a client that does not read
  // Request bodies held in memory at once, all connections together (429 beyond). A body counts from its
  // Content-Length (or each chunk) until its response is written.
  size_t max_body_bytes_in_flight = 32u << 20;
  // /v1/responses' stored responses (previous_response_id; response_store.h): at most this many, and this many
  // bytes of their JSON text, least recently used dropped first.
  size_t responses_store_max_entries = 1024;
  size_t responses_store_max_bytes = 64u << 20;

  // What one open connection holds besides its body: the head, the read buffer, its thread's stack in use.
  size_t connection_bytes() const { return max_header_bytes + (32u << 10); }
  // The most these limits let HTTP hold at once: the memory plan's http line.
  size_t planned_bytes() const {
    return static_cast<size_t>(max_connections + kReservedConnections) * connection_bytes() +
           max_body_bytes_in_flight * kBodyWorkFactor + responses_store_max_bytes;
  }
  std::string plan_detail() const {
    return fmt::format("{} connections x {} KiB + {} MiB of bodies in flight x {} + {} MiB of stored responses "
                       "(--max-connections, --max-body-bytes-in-flight, --responses-store-max-size)",
                       max_connections + kReservedConnections, connection_bytes() >> 10,
                       max_body_bytes_in_flight >> 20, kBodyWorkFactor, responses_store_max_bytes >> 20);
  }
};

}  // namespace keel::server
