// sse_load: holds N concurrent SSE streams against an HTTP server and measures what the transport adds.
//
//   sse_load --port P --streams 1000 --tokens 200 [--path /stream]     (dev/http's synthetic servers)
//   sse_load --port P --streams 1000 --tokens 64 --completions         (keel serve: /v1/completions, stream)
//
// One thread, epoll, plain sockets: the client must not be the bottleneck on the machine it shares with the
// server. With --path, every event is `data: <ns>` where <ns> is the server's steady clock (CLOCK_MONOTONIC, one
// per machine) when the token was handed to the transport; the added latency of an event is its arrival time
// minus that. With --completions the streams are real generations, and what is reported is the time between
// chunks (ITL) and to the first one (TTFT). In both modes a probe sends GET /health every 50 ms on its own
// connection while the streams run: the latency a short request sees behind them.
// Prints one JSON object. Build: cmake -DKEEL_DEV_HTTP=on (target sse_load).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

struct Args {
  int port = 8080;
  int streams = 1000;
  int tokens = 200;
  std::string path = "/stream";
  bool completions = false;
  double seconds = 600;  // give up after this long
};

struct Stream {
  int fd = -1;
  std::string buf;
  int64_t start_ns = 0, last_ns = 0;
  int events = 0;
  bool done = false, failed = false;
};

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);  // EINPROGRESS; the request goes once writable
  return fd;
}

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * (v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string k = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (k == "--port") a.port = std::stoi(next());
    else if (k == "--streams") a.streams = std::stoi(next());
    else if (k == "--tokens") a.tokens = std::stoi(next());
    else if (k == "--path") a.path = next();
    else if (k == "--completions") a.completions = true;
    else if (k == "--seconds") a.seconds = std::stod(next());
    else {
      std::fprintf(stderr, "usage: sse_load --port P [--streams N] [--tokens T] [--path /stream | --completions]\n");
      return 2;
    }
  }
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);

  std::string request;
  if (a.completions) {
    const std::string body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":" + std::to_string(a.tokens) +
                             ",\"ignore_eos\":true,\"stream\":true,\"temperature\":0}";
    request = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body;
  } else {
    request = "GET " + a.path + "?tokens=" + std::to_string(a.tokens) + " HTTP/1.1\r\nHost: x\r\n\r\n";
  }

  const int ep = ::epoll_create1(0);
  std::vector<Stream> streams(a.streams);
  for (int i = 0; i < a.streams; i++) {
    streams[i].fd = connect_to(a.port);
    streams[i].start_ns = now_ns();
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(i);
    ::epoll_ctl(ep, EPOLL_CTL_ADD, streams[i].fd, &ev);
  }
  std::vector<bool> sent(a.streams, false);

  std::vector<double> added_ms, ttft_ms, itl_ms, health_ms;
  int health_fd = -1;
  int64_t health_sent = 0, next_probe = now_ns();
  std::string health_buf;
  const uint64_t kHealth = ~0ull;
  const int64_t end_by = now_ns() + static_cast<int64_t>(a.seconds * 1e9);
  int open = a.streams;
  char buf[65536];
  epoll_event events[256];
  while (open > 0 && now_ns() < end_by) {
    if (health_fd < 0 && now_ns() >= next_probe) {
      health_fd = connect_to(a.port);
      health_buf.clear();
      health_sent = 0;
      epoll_event ev{};
      ev.events = EPOLLOUT | EPOLLIN;
      ev.data.u64 = kHealth;
      ::epoll_ctl(ep, EPOLL_CTL_ADD, health_fd, &ev);
      next_probe = now_ns() + 50'000'000;
    }
    const int n = ::epoll_wait(ep, events, 256, 10);
    for (int e = 0; e < n; e++) {
      const uint64_t id = events[e].data.u64;
      if (id == kHealth) {
        if (health_sent == 0 && (events[e].events & EPOLLOUT)) {
          static const std::string probe = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
          ::send(health_fd, probe.data(), probe.size(), MSG_NOSIGNAL);
          health_sent = now_ns();
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = kHealth;
          ::epoll_ctl(ep, EPOLL_CTL_MOD, health_fd, &ev);
        }
        if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
          ssize_t got = ::recv(health_fd, buf, sizeof buf, 0);
          if (got > 0) health_buf.append(buf, static_cast<size_t>(got));
          if (got <= 0 || health_buf.find("\r\n\r\n") != std::string::npos) {
            if (health_sent > 0 && health_buf.rfind("HTTP/1.1 200", 0) == 0) {
              health_ms.push_back((now_ns() - health_sent) / 1e6);
            }
            ::epoll_ctl(ep, EPOLL_CTL_DEL, health_fd, nullptr);
            ::close(health_fd);
            health_fd = -1;
          }
        }
        continue;
      }
      Stream& s = streams[id];
      if (s.done) continue;
      if (!sent[id] && (events[e].events & EPOLLOUT)) {
        ::send(s.fd, request.data(), request.size(), MSG_NOSIGNAL);
        sent[id] = true;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = id;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
      }
      if (!(events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      ssize_t got = ::recv(s.fd, buf, sizeof buf, 0);
      const int64_t t = now_ns();
      if (got <= 0) {
        s.failed = s.events < a.tokens;
        s.done = true;
      } else {
        s.buf.append(buf, static_cast<size_t>(got));
        size_t at;
        while ((at = s.buf.find("data: ")) != std::string::npos) {
          size_t end = s.buf.find("\n\n", at);
          if (end == std::string::npos) break;
          const std::string data = s.buf.substr(at + 6, end - at - 6);
          s.buf.erase(0, end + 2);
          if (data == "[DONE]") {
            s.done = true;
            break;
          }
          if (a.completions) {
            if (data.find("\"text\":\"\"") != std::string::npos || data.find("\"choices\":[]") != std::string::npos) {
              continue;
            }
            if (s.events == 0) ttft_ms.push_back((t - s.start_ns) / 1e6);
            else itl_ms.push_back((t - s.last_ns) / 1e6);
          } else {
            added_ms.push_back((t - std::stoll(data)) / 1e6);
          }
          s.last_ns = t;
          s.events++;
        }
        if (s.buf.rfind("HTTP/1.1 ", 0) == 0 && s.buf.compare(9, 3, "200") != 0 && s.buf.size() >= 12) {
          s.failed = s.done = true;
        }
      }
      if (s.done) {
        ::epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
        ::close(s.fd);
        open--;
      }
    }
  }
  int failed = 0, completed = 0;
  for (const Stream& s : streams) {
    if (!s.done || s.failed) failed++;
    else completed++;
  }
  std::printf("{\"streams\": %d, \"completed\": %d, \"failed\": %d, \"tokens\": %d", a.streams, completed, failed,
              a.tokens);
  if (a.completions) {
    std::printf(", \"ttft_ms\": {\"p50\": %.2f, \"p99\": %.2f}, \"itl_ms\": {\"p50\": %.2f, \"p99\": %.2f}",
                pct(ttft_ms, 0.5), pct(ttft_ms, 0.99), pct(itl_ms, 0.5), pct(itl_ms, 0.99));
  } else {
    std::printf(", \"events\": %zu, \"added_ms\": {\"p50\": %.3f, \"p99\": %.3f, \"max\": %.3f}", added_ms.size(),
                pct(added_ms, 0.5), pct(added_ms, 0.99), pct(added_ms, 1.0));
  }
  std::printf(", \"health_probes\": %zu, \"health_ms\": {\"p50\": %.2f, \"p99\": %.2f, \"max\": %.2f}}\n",
              health_ms.size(), pct(health_ms, 0.5), pct(health_ms, 0.99), pct(health_ms, 1.0));
  return failed > 0 ? 1 : 0;
}
