#include "dist/tcp_communicator.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace keel::dist {

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kMagic = 0x6b65656c;  // "keel"

// Every message: a header naming what it is and how long, so a mismatch between ranks is an error, not garbage.
struct Header {
  uint32_t magic = kMagic;
  uint32_t tag = 0;
  uint64_t bytes = 0;
};

// The hello a rank sends when it connects: who it is and where it listens for higher ranks.
struct Hello {
  int32_t rank = 0, world = 0, port = 0, pad = 0;
};

std::string errno_text() { return std::strerror(errno); }

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void tune(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int buf = 4 << 20;  // a decode step's all-reduce (64 x 8192 floats = 2 MiB) in one send
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

// Waits for `events` on fd until `deadline` (none: Clock::time_point::max()).
Status wait_fd(int fd, short events, Clock::time_point deadline, const std::string& what) {
  while (true) {
    int ms = -1;
    if (deadline != Clock::time_point::max()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return io_error("{}: timed out", what);
      ms = static_cast<int>(std::min<int64_t>(left, 1000));
    }
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, ms);
    if (r > 0) return Status();
    if (r < 0 && errno != EINTR) return io_error("{}: poll: {}", what, errno_text());
  }
}

Status write_all(int fd, const void* data, size_t n, Clock::time_point deadline, const std::string& what) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      KEEL_RETURN_IF_ERROR(wait_fd(fd, POLLOUT, deadline, what));
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
      return io_error("{}: the peer closed its connection (did it exit?)", what);
    return io_error("{}: {}", what, w < 0 ? errno_text() : "connection closed");
  }
  return Status();
}

// Fails with "closed" (0 bytes) distinctly, so callers can name the rank that went away.
Status read_all(int fd, void* data, size_t n, Clock::time_point deadline, const std::string& what) {
  auto* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, MSG_DONTWAIT);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    // A peer that closes with data of ours unread resets the connection instead: the same event.
    if (r == 0 || (r < 0 && errno == ECONNRESET))
      return io_error("{}: the peer closed its connection (did it exit?)", what);
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      KEEL_RETURN_IF_ERROR(wait_fd(fd, POLLIN, deadline, what));
      continue;
    }
    if (errno == EINTR) continue;
    return io_error("{}: {}", what, errno_text());
  }
  return Status();
}

Result<int> listen_on(const std::string& addr, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return io_error("socket: {}", errno_text());
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  (void)addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || ::listen(fd, 256) != 0) {
    const std::string e = errno_text();
    ::close(fd);
    return io_error("listen on port {}: {}", port, e);
  }
  return fd;
}

int bound_port(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  return ntohs(sa.sin_port);
}

Result<int> accept_one(int listen_fd, Clock::time_point deadline, std::string* peer_addr) {
  KEEL_RETURN_IF_ERROR(wait_fd(listen_fd, POLLIN, deadline, "waiting for the other ranks to connect"));
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  const int fd = ::accept(listen_fd, reinterpret_cast<sockaddr*>(&sa), &len);
  if (fd < 0) return io_error("accept: {}", errno_text());
  if (peer_addr != nullptr) {
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof(buf));
    *peer_addr = buf;
  }
  tune(fd);
  return fd;
}

// Connects to addr:port, retrying while nothing listens there yet.
Result<int> connect_to(const std::string& addr, int port, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int e = getaddrinfo(addr.c_str(), std::to_string(port).c_str(), &hints, &res); e != 0)
    return invalid_argument("master address {}: {}", addr, gai_strerror(e));
  std::string last;
  while (true) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
      freeaddrinfo(res);
      tune(fd);
      return fd;
    }
    last = errno_text();
    if (fd >= 0) ::close(fd);
    if (Clock::now() >= deadline) {
      freeaddrinfo(res);
      return io_error("cannot connect to {}:{} ({}); is rank 0 running?", addr, port, last);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace

enum class TcpCommunicator::Tag : uint32_t { kReduce = 1, kReduced, kGather, kGathered, kBroadcast, kBarrier, kP2p };

TcpCommunicator::TcpCommunicator(int rank, int world, std::chrono::milliseconds timeout)
    : rank_(rank), world_(world), timeout_(timeout), socks_(world, -1) {}

TcpCommunicator::~TcpCommunicator() {
  for (int& fd : socks_) close_fd(fd);
}

Result<std::unique_ptr<TcpCommunicator>> TcpCommunicator::connect(const TcpOptions& o) {
  if (o.world < 1) return invalid_argument("world size {} must be at least 1", o.world);
  if (o.rank < 0 || o.rank >= o.world) return invalid_argument("rank {} outside a world of {}", o.rank, o.world);
  if (o.world > 1 && (o.master_port <= 0 || o.master_port > 65535))
    return invalid_argument("master port {} must be in 1..65535", o.master_port);
  auto c = std::unique_ptr<TcpCommunicator>(new TcpCommunicator(o.rank, o.world, o.timeout));
  if (o.world == 1) return c;
  const auto deadline = Clock::now() + o.connect_timeout;
  const std::string where = fmt::format("rank {} of {}", o.rank, o.world);

  // Ranks above this one connect to its listener (rank 0's is the master port).
  int listen_fd = -1;
  {
    KEEL_ASSIGN_OR_RETURN(listen_fd, listen_on(o.master_addr, o.rank == 0 ? o.master_port : 0));
  }
  struct Closer {
    int& fd;
    ~Closer() { close_fd(fd); }
  } closer{listen_fd};
  const int my_port = bound_port(listen_fd);

  std::vector<Hello> table(o.world);
  std::vector<std::string> addrs(o.world);
  if (o.rank == 0) {
    table[0] = Hello{0, o.world, my_port, 0};
    for (int i = 1; i < o.world; i++) {
      std::string peer;
      KEEL_ASSIGN_OR_RETURN(int fd, accept_one(listen_fd, deadline, &peer));
      Hello h;
      if (Status s = read_all(fd, &h, sizeof(h), deadline, "hello"); !s.ok()) {
        ::close(fd);
        return s.with_context(where);
      }
      if (h.world != o.world || h.rank <= 0 || h.rank >= o.world || c->socks_[h.rank] >= 0) {
        ::close(fd);
        return invalid_argument("{}: a rank connected as rank {} of {} (expected a new rank of {})", where, h.rank,
                                h.world, o.world);
      }
      c->socks_[h.rank] = fd;
      table[h.rank] = h;
      addrs[h.rank] = peer;
    }
    // Everyone learns where everyone listens: addresses as rank 0 saw them (a rank's own view may be 0.0.0.0).
    std::string blob;
    for (int r = 0; r < o.world; r++) blob += addrs[r] + "\n";
    for (int r = 1; r < o.world; r++) {
      KEEL_RETURN_IF_ERROR(write_all(c->socks_[r], table.data(), sizeof(Hello) * o.world, deadline, "table"));
      const uint64_t len = blob.size();
      KEEL_RETURN_IF_ERROR(write_all(c->socks_[r], &len, sizeof(len), deadline, "table"));
      KEEL_RETURN_IF_ERROR(write_all(c->socks_[r], blob.data(), blob.size(), deadline, "table"));
    }
  } else {
    KEEL_ASSIGN_OR_RETURN(c->socks_[0], connect_to(o.master_addr, o.master_port, deadline));
    const Hello h{o.rank, o.world, my_port, 0};
    KEEL_RETURN_IF_ERROR(write_all(c->socks_[0], &h, sizeof(h), deadline, "hello"));
    KEEL_RETURN_IF_ERROR(read_all(c->socks_[0], table.data(), sizeof(Hello) * o.world, deadline, "table"));
    uint64_t len = 0;
    KEEL_RETURN_IF_ERROR(read_all(c->socks_[0], &len, sizeof(len), deadline, "table"));
    std::string blob(len, '\0');
    KEEL_RETURN_IF_ERROR(read_all(c->socks_[0], blob.data(), len, deadline, "table"));
    size_t at = 0;
    for (int r = 0; r < o.world; r++) {
      const size_t nl = blob.find('\n', at);
      addrs[r] = blob.substr(at, nl - at);
      at = nl + 1;
    }
    // Connect to every lower rank but 0; accept every higher one.
    for (int r = 1; r < o.rank; r++) {
      const std::string addr = addrs[r] == "0.0.0.0" || addrs[r].empty() ? o.master_addr : addrs[r];
      KEEL_ASSIGN_OR_RETURN(c->socks_[r], connect_to(addr, table[r].port, deadline));
      const int32_t me = o.rank;
      KEEL_RETURN_IF_ERROR(write_all(c->socks_[r], &me, sizeof(me), deadline, "mesh hello"));
    }
    for (int i = o.rank + 1; i < o.world; i++) {
      KEEL_ASSIGN_OR_RETURN(int fd, accept_one(listen_fd, deadline, nullptr));
      int32_t who = -1;
      if (Status s = read_all(fd, &who, sizeof(who), deadline, "mesh hello"); !s.ok()) {
        ::close(fd);
        return s.with_context(where);
      }
      if (who <= o.rank || who >= o.world || c->socks_[who] >= 0) {
        ::close(fd);
        return internal_error("{}: unexpected mesh connection from rank {}", where, who);
      }
      c->socks_[who] = fd;
    }
  }
  for (int r = 0; r < o.world; r++)
    c->addrs_.push_back(r == 0 || addrs[r].empty() || addrs[r] == "0.0.0.0" ? o.master_addr : addrs[r]);
  // Nobody returns before every link is up.
  KEEL_RETURN_IF_ERROR(c->barrier());
  return c;
}

// The first failure closes every link, so the peers fail at once too instead of waiting out their timeouts.
Status TcpCommunicator::fail(Status s) {
  if (failed_.ok()) failed_ = s;
  for (int& fd : socks_) close_fd(fd);
  return failed_;
}

void TcpCommunicator::abort(const Status& why) { (void)fail(why); }

Status TcpCommunicator::send_msg(int peer, Tag tag, const void* data, size_t bytes) {
  if (!failed_.ok()) return failed_;
  const auto deadline = timeout_.count() > 0 ? Clock::now() + timeout_ : Clock::time_point::max();
  const std::string what = fmt::format("rank {}: sending to rank {}", rank_, peer);
  const Header h{kMagic, static_cast<uint32_t>(tag), bytes};
  Status s = write_all(socks_[peer], &h, sizeof(h), deadline, what);
  if (s.ok() && bytes > 0) s = write_all(socks_[peer], data, bytes, deadline, what);
  return s.ok() ? s : fail(s);
}

Status TcpCommunicator::recv_msg(int peer, Tag tag, void* data, size_t bytes, bool timed) {
  if (!failed_.ok()) return failed_;
  const auto deadline = timed && timeout_.count() > 0 ? Clock::now() + timeout_ : Clock::time_point::max();
  const std::string what = fmt::format("rank {}: receiving from rank {}", rank_, peer);
  Header h;
  Status s = read_all(socks_[peer], &h, sizeof(h), deadline, what);
  if (s.ok() && (h.magic != kMagic || h.tag != static_cast<uint32_t>(tag) || h.bytes != bytes))
    s = internal_error("{}: expected message {} of {} bytes, got message {} of {} bytes (ranks out of step)", what,
                       static_cast<uint32_t>(tag), bytes, h.tag, h.bytes);
  if (s.ok() && bytes > 0) s = read_all(socks_[peer], data, bytes, deadline, what);
  return s.ok() ? s : fail(s);
}

Status TcpCommunicator::all_reduce_sum(float* data, size_t n) {
  const size_t bytes = n * sizeof(float);
  if (rank_ != 0) {
    KEEL_RETURN_IF_ERROR(send_msg(0, Tag::kReduce, data, bytes));
    return recv_msg(0, Tag::kReduced, data, bytes);
  }
  // Rank order 0..N-1 for every element, as ThreadGroup sums.
  if (sum_.size() < n) sum_.resize(n);
  for (int r = 1; r < world_; r++) {
    KEEL_RETURN_IF_ERROR(recv_msg(r, Tag::kReduce, sum_.data(), bytes));
    for (size_t i = 0; i < n; i++) data[i] += sum_[i];
  }
  for (int r = 1; r < world_; r++) KEEL_RETURN_IF_ERROR(send_msg(r, Tag::kReduced, data, bytes));
  return Status();
}

Status TcpCommunicator::all_gather(const float* send, size_t n, float* recv) {
  const size_t bytes = n * sizeof(float);
  if (rank_ != 0) {
    KEEL_RETURN_IF_ERROR(send_msg(0, Tag::kGather, send, bytes));
    return recv_msg(0, Tag::kGathered, recv, bytes * world_);
  }
  std::copy(send, send + n, recv);
  for (int r = 1; r < world_; r++) KEEL_RETURN_IF_ERROR(recv_msg(r, Tag::kGather, recv + r * n, bytes));
  for (int r = 1; r < world_; r++) KEEL_RETURN_IF_ERROR(send_msg(r, Tag::kGathered, recv, bytes * world_));
  return Status();
}

Status TcpCommunicator::barrier() {
  if (rank_ != 0) {
    KEEL_RETURN_IF_ERROR(send_msg(0, Tag::kBarrier, nullptr, 0));
    return recv_msg(0, Tag::kBarrier, nullptr, 0);
  }
  for (int r = 1; r < world_; r++) KEEL_RETURN_IF_ERROR(recv_msg(r, Tag::kBarrier, nullptr, 0));
  for (int r = 1; r < world_; r++) KEEL_RETURN_IF_ERROR(send_msg(r, Tag::kBarrier, nullptr, 0));
  return Status();
}

Status TcpCommunicator::barrier_within(std::chrono::milliseconds timeout) {
  const auto saved = timeout_;
  timeout_ = timeout;
  Status s = barrier();
  timeout_ = saved;
  return s;
}

Status TcpCommunicator::broadcast(void* data, size_t n, int root) {
  if (root < 0 || root >= world_) return invalid_argument("broadcast: root {} of {} ranks", root, world_);
  if (rank_ == root) {
    for (int r = 0; r < world_; r++)
      if (r != root) KEEL_RETURN_IF_ERROR(send_msg(r, Tag::kBroadcast, data, n));
    return Status();
  }
  return recv_msg(root, Tag::kBroadcast, data, n, /*timed=*/false);
}

Status TcpCommunicator::send(const float* data, size_t n, int peer) {
  if (peer < 0 || peer >= world_ || peer == rank_)
    return invalid_argument("send: rank {} cannot address peer {} of {} ranks", rank_, peer, world_);
  return send_msg(peer, Tag::kP2p, data, n * sizeof(float));
}

Status TcpCommunicator::recv(float* data, size_t n, int peer) {
  if (peer < 0 || peer >= world_ || peer == rank_)
    return invalid_argument("recv: rank {} cannot address peer {} of {} ranks", rank_, peer, world_);
  return recv_msg(peer, Tag::kP2p, data, n * sizeof(float));
}

Status TcpCommunicator::check_peers() {
  if (!failed_.ok()) return failed_;
  for (int r = 0; r < world_; r++) {
    if (r == rank_) continue;
    char c;
    const ssize_t got = ::recv(socks_[r], &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (got == 0 || (got < 0 && errno == ECONNRESET))
      return fail(io_error("rank {}: rank {} closed its connection (did it exit?)", rank_, r));
    if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return fail(io_error("rank {}: connection to rank {}: {}", rank_, r, errno_text()));
  }
  return Status();
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  const int port = bound_port(fd);
  ::close(fd);
  return port;
}

}  // namespace keel::dist
