#include "server/transport.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <system_error>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "server/request_reader.h"

namespace keel::server {

namespace {

using Clock = std::chrono::steady_clock;

// Keep-alive requests on one connection before it is closed (httplib's default is 100).
constexpr size_t kKeepAliveMaxRequests = 1000;

// One thread per connection, started at accept. httplib's ThreadPool starts a thread only when it sees none
// idle, and a burst of accepts sees the same idle thread many times: 1,000 slow clients got 88 threads, and the
// rest waited in its queue behind connections that never end.
class ConnectionThreads final : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(size_t max) : max_(max) {}
  ~ConnectionThreads() override { shutdown(); }

  // False (httplib then closes the connection unanswered) beyond `max` threads or when none can start.
  bool enqueue(std::function<void()> fn) override {
    std::lock_guard lock(mu_);
    for (auto it : done_) {
      it->join();
      threads_.erase(it);
    }
    done_.clear();
    if (shutdown_ || threads_.size() >= max_) return false;
    auto it = threads_.emplace(threads_.end());
    try {
      // The thread reports itself done under mu_, which this assignment holds: `it` is set by then.
      *it = std::thread([this, it, fn = std::move(fn)] {
        fn();
        std::lock_guard done(mu_);
        if (!shutdown_) done_.push_back(it);
      });
    } catch (const std::system_error&) {
      threads_.erase(it);
      return false;
    }
    return true;
  }

  void shutdown() override {
    std::list<std::thread> all;
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
      all.swap(threads_);
      done_.clear();
    }
    for (std::thread& t : all) {
      if (t.joinable()) t.join();
    }
  }

 private:
  const size_t max_;
  std::mutex mu_;
  std::list<std::thread> threads_;
  std::vector<std::list<std::thread>::iterator> done_;  // finished, to be joined
  bool shutdown_ = false;
};
// After a refusal, the request bytes still arriving are read and dropped for this long, so the client reads the
// answer instead of a reset; never the whole of a 150 MB body.
constexpr std::chrono::milliseconds kLingerAfterRefusal{200};

// The request already read in full, served to httplib's parser from memory; writes go to the socket.
class BufferStream final : public httplib::Stream {
 public:
  BufferStream(int fd, std::string bytes, std::chrono::milliseconds write_timeout)
      : fd_(fd), bytes_(std::move(bytes)), write_timeout_(write_timeout) {}

  bool is_readable() const override { return offset_ < bytes_.size(); }
  bool wait_readable() const override { return offset_ < bytes_.size(); }
  bool wait_writable() const override {
    pollfd p{fd_, POLLOUT, 0};
    int n = ::poll(&p, 1, static_cast<int>(write_timeout_.count()));
    return n > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)) == 0;
  }
  bool is_peer_alive() const override { return httplib::detail::is_socket_alive(fd_); }

  ssize_t read(char* ptr, size_t size) override {
    size_t n = std::min(size, bytes_.size() - offset_);
    std::memcpy(ptr, bytes_.data() + offset_, n);
    offset_ += n;
    // httplib holds its own copy of the body now: the request's bytes are not kept twice while it is handled.
    if (offset_ == bytes_.size() && n > 0) {
      std::string().swap(bytes_);
      offset_ = 0;
    }
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (head_.size() < kMaxResponseHead && head_.find("\r\n\r\n") == std::string::npos) {
      head_.append(ptr, std::min(size, kMaxResponseHead - head_.size()));
    }
    size_t sent = 0;
    while (sent < size) {
      if (!wait_writable()) return -1;
      ssize_t n = ::send(fd_, ptr + sent, size - sent, MSG_NOSIGNAL);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return -1;
      sent += static_cast<size_t>(n);
    }
    return static_cast<ssize_t>(sent);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    httplib::detail::get_remote_ip_and_port(fd_, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    httplib::detail::get_local_ip_and_port(fd_, ip, port);
  }
  socket_t socket() const override { return fd_; }
  time_t duration() const override { return 0; }

  // Whether the response httplib wrote closes the connection (it does after every error status).
  bool response_closes() const {
    const size_t end = head_.find("\r\n\r\n");
    return end == std::string::npos || head_.find("\r\nConnection: close\r\n") < end;
  }

 private:
  static constexpr size_t kMaxResponseHead = 16384;

  int fd_;
  std::string head_;  // the start of what was written, up to the end of the response's headers
  std::string bytes_;
  size_t offset_ = 0;
  std::chrono::milliseconds write_timeout_;
};

void send_all(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 1000) <= 0) return;
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

// Reads and drops what the client still sends, for a bounded time, so it sees the answer before the close.
void linger(int fd) {
  ::shutdown(fd, SHUT_WR);
  const auto until = Clock::now() + kLingerAfterRefusal;
  char buf[16384];
  while (Clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 1))) <= 0) break;
    if (::recv(fd, buf, sizeof buf, 0) <= 0) break;
  }
}

}  // namespace

Transport::Transport(HttpLimits limits, Refusal refusal) : limits_(limits), refusal_(std::move(refusal)) {
  const size_t threads = static_cast<size_t>(limits_.max_connections + kReservedConnections);
  new_task_queue = [threads] { return new ConnectionThreads(threads); };
  set_payload_max_length(limits_.max_body_bytes);
  auto seconds = [](std::chrono::milliseconds ms) { return static_cast<time_t>(ms.count() / 1000); };
  auto micros = [](std::chrono::milliseconds ms) { return static_cast<time_t>((ms.count() % 1000) * 1000); };
  set_write_timeout(seconds(limits_.write_timeout), micros(limits_.write_timeout));
  set_read_timeout(seconds(limits_.request_timeout), micros(limits_.request_timeout));
}

bool Transport::reserve_body(size_t bytes) {
  size_t held = body_bytes_.load();
  do {
    if (held + bytes > limits_.max_body_bytes_in_flight) return false;
  } while (!body_bytes_.compare_exchange_weak(held, held + bytes));
  return true;
}

bool Transport::process_and_close_socket(socket_t sock) {
  const int open = open_connections_.fetch_add(1) + 1;
  auto stopping = [this] { return svr_sock_ == INVALID_SOCKET; };
  RequestReader reader(sock, limits_, stopping, [this](size_t n) { return reserve_body(n); },
                       [this](size_t n) { release_body(n); });

  for (size_t served = 0; served < kKeepAliveMaxRequests && !stopping(); ++served) {
    ReadRequest request = reader.read(served == 0 ? limits_.request_timeout : limits_.keep_alive_timeout);
    if (request.outcome == ReadRequest::kClosed) break;

    if (request.outcome == ReadRequest::kRequest && open > limits_.max_connections &&
        !(request.method == "GET" && (request.path == "/health" || request.path == "/metrics"))) {
      request.outcome = ReadRequest::kRefused;
      request.status = 503;
      request.message = fmt::format("too many open connections (limit {}, --max-connections); retry shortly",
                                    limits_.max_connections);
    }
    if (request.outcome == ReadRequest::kRefused) {
      httplib::Response res;
      res.status = request.status;
      refusal_(request.path, request.message, res);
      std::string bytes = fmt::format("HTTP/1.1 {} {}\r\n", res.status, httplib::status_message(res.status));
      for (const auto& [name, value] : res.headers) bytes += fmt::format("{}: {}\r\n", name, value);
      bytes += fmt::format("Content-Length: {}\r\nConnection: close\r\n\r\n", res.body.size());
      bytes += res.body;
      send_all(sock, bytes);
      reader.release();
      linger(sock);
      break;
    }

    std::string remote_addr, local_addr;
    int remote_port = 0, local_port = 0;
    httplib::detail::get_remote_ip_and_port(sock, remote_addr, remote_port);
    httplib::detail::get_local_ip_and_port(sock, local_addr, local_port);
    BufferStream stream(sock, std::move(request.bytes), limits_.write_timeout);
    bool connection_closed = false;
    const bool close_connection = served + 1 == kKeepAliveMaxRequests || stopping();
    process_request(stream, remote_addr, remote_port, local_addr, local_port, close_connection, connection_closed,
                    nullptr);
    reader.release();
    if (connection_closed || close_connection || stream.response_closes()) break;
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  open_connections_.fetch_sub(1);
  return true;
}

}  // namespace keel::server
