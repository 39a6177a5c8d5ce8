// RequestReader: reads one HTTP/1.1 request at a time from a connection, within HttpLimits: one deadline for the
// whole request (408), the head's bytes, line count and line length (431; the request line 414), the body's bytes
// whether sized or chunked (413 as soon as it is crossed; a Content-Length above the cap before any body byte is
// read), and the body bytes held by all connections (429). A request that fits comes back as bytes httplib can
// parse: the head with the body's framing replaced by its Content-Length, then the body, de-chunked.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "server/transport.h"

namespace keel::server {

struct ReadRequest {
  enum Outcome { kRequest, kClosed, kRefused };
  Outcome outcome = kClosed;
  int status = 0;       // kRefused: the status to answer with
  std::string message;  // kRefused: which limit, with the numbers
  std::string method;
  std::string path;     // without the query
  std::string bytes;    // kRequest: head + body for httplib
};

class RequestReader {
 public:
  RequestReader(int fd, const HttpLimits& limits, std::function<bool()> stopping,
                std::function<bool(size_t)> reserve, std::function<void(size_t)> release);
  ~RequestReader() { release(); }

  // Waits up to `idle` for the request's first byte (nothing arriving: kClosed), then reads it within
  // limits.request_timeout. The body stays reserved until release().
  ReadRequest read(std::chrono::milliseconds idle);
  // Returns the last request's body bytes to the in-flight budget.
  void release();

 private:
  enum class Fill { kMore, kEnd, kTimeout };
  // Appends what the socket has to buf_, waiting until `deadline` (and not past a stop).
  Fill fill(std::chrono::steady_clock::time_point deadline);
  ReadRequest refuse(ReadRequest request, int status, std::string message);
  bool reserve(size_t bytes);

  int fd_;
  const HttpLimits& limits_;
  std::function<bool()> stopping_;
  std::function<bool(size_t)> reserve_;
  std::function<void(size_t)> release_;
  std::string buf_;       // bytes read and not yet consumed (a pipelined next request's start)
  size_t reserved_ = 0;
};

}  // namespace keel::server
