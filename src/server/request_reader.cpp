#include "server/request_reader.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

#include <fmt/format.h>

namespace keel::server {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 16384;
constexpr size_t kMaxChunkSizeLine = 1024;  // "1a2b;ext=..." before a chunk's data
// How often a wait looks at whether the server is stopping.
constexpr std::chrono::milliseconds kStopPoll{250};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// A decimal or hex size of at most 15 digits (below 2^60): no overflow, and anything that long is over every cap.
bool parse_size(std::string_view s, int base, size_t* out) {
  if (s.empty() || s.size() > 15) return false;
  size_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : base == 16 && c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : base == 16 && c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return false;
    v = v * static_cast<size_t>(base) + static_cast<size_t>(d);
  }
  *out = v;
  return true;
}

}  // namespace

RequestReader::RequestReader(int fd, const HttpLimits& limits, std::function<bool()> stopping,
                             std::function<bool(size_t)> reserve, std::function<void(size_t)> release)
    : fd_(fd), limits_(limits), stopping_(std::move(stopping)), reserve_(std::move(reserve)),
      release_(std::move(release)) {}

void RequestReader::release() {
  if (reserved_ > 0) release_(reserved_);
  reserved_ = 0;
}

bool RequestReader::reserve(size_t bytes) {
  if (!reserve_(bytes)) return false;
  reserved_ += bytes;
  return true;
}

RequestReader::Fill RequestReader::fill(Clock::time_point deadline) {
  while (true) {
    const auto now = Clock::now();
    if (now >= deadline) return Fill::kTimeout;
    if (stopping_()) return Fill::kEnd;
    auto wait = std::min<Clock::duration>(deadline - now, kStopPoll);
    pollfd p{fd_, POLLIN, 0};
    int n = ::poll(&p, 1, std::max<int>(1, std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fill::kEnd;
    if (n == 0) continue;
    const size_t old = buf_.size();
    buf_.resize(old + kReadChunk);
    ssize_t got = ::recv(fd_, buf_.data() + old, kReadChunk, 0);
    buf_.resize(old + static_cast<size_t>(std::max<ssize_t>(got, 0)));
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    return got > 0 ? Fill::kMore : Fill::kEnd;
  }
}

ReadRequest RequestReader::refuse(ReadRequest request, int status, std::string message) {
  request.outcome = ReadRequest::kRefused;
  request.status = status;
  request.message = std::move(message);
  return request;
}

ReadRequest RequestReader::read(std::chrono::milliseconds idle) {
  ReadRequest r;
  if (buf_.empty() && fill(Clock::now() + idle) != Fill::kMore) return r;
  const auto deadline = Clock::now() + limits_.request_timeout;
  auto timed_out = [&](ReadRequest req) {
    return refuse(std::move(req), 408,
                  fmt::format("the request was not received within {} ms (--request-timeout)",
                              limits_.request_timeout.count()));
  };

  // The head: lines up to an empty one, each checked as soon as it is complete (or too long to be).
  size_t start = 0;    // after leading empty lines, which RFC 9112 lets a server ignore
  size_t scanned = 0;  // offset of the first line not yet checked
  size_t head_end = std::string::npos;
  while (head_end == std::string::npos) {
    size_t nl;
    while ((nl = buf_.find('\n', scanned)) != std::string::npos) {
      size_t len = nl - scanned - (nl > scanned && buf_[nl - 1] == '\r' ? 1 : 0);
      const bool request_line = scanned == start;
      if (len == 0 && request_line) {
        start = scanned = nl + 1;
        continue;
      }
      if (len == 0) {
        head_end = nl + 1;
        break;
      }
      if (request_line && len > limits_.max_header_line_bytes) {
        return refuse(std::move(r), 414, fmt::format("request line of {} bytes is longer than {} bytes", len,
                                                     limits_.max_header_line_bytes));
      }
      if (len > limits_.max_header_line_bytes) {
        return refuse(std::move(r), 431, fmt::format("a header line of {} bytes is longer than {} bytes", len,
                                                     limits_.max_header_line_bytes));
      }
      scanned = nl + 1;
    }
    if (head_end != std::string::npos) break;
    const size_t head_bytes = buf_.size() - start;
    if (head_bytes > limits_.max_header_bytes) {
      return refuse(std::move(r), 431, fmt::format("request head is larger than {} bytes", limits_.max_header_bytes));
    }
    if (buf_.size() - scanned > limits_.max_header_line_bytes) {
      const bool request_line = scanned == start;
      return refuse(std::move(r), request_line ? 414 : 431,
                    fmt::format("{} is longer than {} bytes", request_line ? "request line" : "a header line",
                                limits_.max_header_line_bytes));
    }
    Fill f = fill(deadline);
    if (f == Fill::kTimeout) return timed_out(std::move(r));
    if (f == Fill::kEnd) return r;
  }
  if (head_end - start > limits_.max_header_bytes) {
    return refuse(std::move(r), 431, fmt::format("request head is larger than {} bytes", limits_.max_header_bytes));
  }

  // Split the head into lines; keep every header but the body's framing, which is rewritten below.
  std::string head;
  std::string content_length, transfer_encoding, expect;
  int header_count = 0;
  {
    std::string_view all(buf_.data() + start, head_end - start);
    bool first = true;
    while (!all.empty()) {
      size_t nl = all.find('\n');
      std::string_view line = all.substr(0, nl);
      all.remove_prefix(nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) break;
      if (first) {
        first = false;
        size_t sp = line.find(' ');
        r.method = std::string(line.substr(0, sp));
        std::string_view target = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
        target = target.substr(0, target.find(' '));
        r.path = std::string(target.substr(0, target.find('?')));
        head.append(line).append("\r\n");
        continue;
      }
      if (++header_count > limits_.max_header_count) {
        return refuse(std::move(r), 431, fmt::format("more than {} header lines", limits_.max_header_count));
      }
      size_t colon = line.find(':');
      std::string name = lower(trim(line.substr(0, colon)));
      std::string_view value = colon == std::string_view::npos ? std::string_view() : trim(line.substr(colon + 1));
      if (name == "content-length") {
        if (!content_length.empty() && content_length != value) {
          return refuse(std::move(r), 400, "conflicting Content-Length headers");
        }
        content_length = std::string(value);
      } else if (name == "transfer-encoding") {
        transfer_encoding += (transfer_encoding.empty() ? "" : ",") + lower(value);
      } else if (name == "expect") {
        expect = lower(value);
      } else {
        head.append(line).append("\r\n");
      }
    }
  }
  buf_.erase(0, head_end);

  // The body: sized or chunked, checked against the caps before it is held.
  const bool chunked = !transfer_encoding.empty();
  if (chunked && !content_length.empty()) {
    return refuse(std::move(r), 400, "both Content-Length and Transfer-Encoding (ambiguous framing)");
  }
  if (chunked && transfer_encoding != "chunked") {
    return refuse(std::move(r), 400, fmt::format("Transfer-Encoding '{}' is not supported (only chunked)",
                                                  transfer_encoding));
  }
  size_t length = 0;
  if (!content_length.empty() && !parse_size(content_length, 10, &length)) {
    return refuse(std::move(r), 400, fmt::format("Content-Length '{}' is not a byte count", content_length));
  }
  auto too_large = [&](size_t bytes) {
    return refuse(std::move(r), 413, fmt::format("request body is larger than {} bytes (--max-body-bytes; got {}{})",
                                                 limits_.max_body_bytes, chunked ? "at least " : "", bytes));
  };
  auto over_budget = [&] {
    return refuse(std::move(r), 429,
                  fmt::format("request bodies in flight would exceed {} bytes (--max-body-bytes-in-flight); retry "
                              "shortly",
                              limits_.max_body_bytes_in_flight));
  };
  if (length > limits_.max_body_bytes) return too_large(length);
  if (length > 0 && !reserve(length)) return over_budget();
  if (expect == "100-continue" && (chunked || length > 0) && buf_.empty()) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    ::send(fd_, kContinue.data(), kContinue.size(), MSG_NOSIGNAL);
  }

  std::string& body = r.bytes;  // the body first; the head goes in front once its length is known
  body.reserve(length);
  // Moves up to `want` bytes of buf_ into the body, reading more within the deadline; kMore when all came.
  auto take = [&](size_t want) {
    while (want > 0) {
      size_t n = std::min(want, buf_.size());
      body.append(buf_, 0, n);
      buf_.erase(0, n);
      want -= n;
      if (want == 0) break;
      Fill f = fill(deadline);
      if (f != Fill::kMore) return f;
    }
    return Fill::kMore;
  };
  // Reads one line (a chunk size or a trailer) of at most kMaxChunkSizeLine bytes into `line`.
  auto read_line = [&](std::string* line) {
    size_t nl;
    while ((nl = buf_.find('\n')) == std::string::npos) {
      if (buf_.size() > kMaxChunkSizeLine) return Fill::kEnd;
      Fill f = fill(deadline);
      if (f != Fill::kMore) return f;
    }
    if (nl > kMaxChunkSizeLine) return Fill::kEnd;
    *line = std::string(trim(std::string_view(buf_).substr(0, nl)));
    buf_.erase(0, nl + 1);
    return Fill::kMore;
  };

  if (!chunked) {
    Fill f = take(length);
    if (f == Fill::kTimeout) return timed_out(std::move(r));
    if (f == Fill::kEnd) return ReadRequest{};
  } else {
    while (true) {
      std::string line;
      Fill f = read_line(&line);
      if (f == Fill::kTimeout) return timed_out(std::move(r));
      if (f == Fill::kEnd) return buf_.size() > kMaxChunkSizeLine ? refuse(std::move(r), 400, "malformed chunk size line")
                                                               : ReadRequest{};
      size_t size = 0;
      std::string_view digits = trim(std::string_view(line).substr(0, line.find(';')));
      if (!parse_size(digits, 16, &size)) {
        if (digits.size() > 15) return too_large(limits_.max_body_bytes + 1);
        return refuse(std::move(r), 400, fmt::format("malformed chunk size '{}'", digits.substr(0, 32)));
      }
      if (body.size() + size > limits_.max_body_bytes) return too_large(body.size() + size);
      if (size == 0) break;
      if (!reserve(size)) return over_budget();
      f = take(size);
      if (f == Fill::kTimeout) return timed_out(std::move(r));
      if (f == Fill::kEnd) return ReadRequest{};
      f = read_line(&line);
      if (f == Fill::kTimeout) return timed_out(std::move(r));
      if (f == Fill::kEnd || !line.empty()) return refuse(std::move(r), 400, "chunk data not followed by CRLF");
    }
    // Trailers: read and dropped, counted against the head's limits.
    for (int trailers = 0;; ++trailers) {
      std::string line;
      Fill f = read_line(&line);
      if (f == Fill::kTimeout) return timed_out(std::move(r));
      if (f == Fill::kEnd) return ReadRequest{};
      if (line.empty()) break;
      if (header_count + trailers >= limits_.max_header_count) {
        return refuse(std::move(r), 431, fmt::format("more than {} header lines", limits_.max_header_count));
      }
    }
  }
  head += fmt::format("Content-Length: {}\r\n\r\n", body.size());
  body.insert(0, head);
  r.outcome = ReadRequest::kRequest;
  return r;
}

}  // namespace keel::server
