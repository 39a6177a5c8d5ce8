// The HTTP layer under abuse: every limit of HttpLimits driven through real sockets against the in-process
// server, and what must keep answering while clients hold it.
#include "server/transport.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>

#include <chrono>
#include <thread>
#include <vector>

#include "server/test_server.h"

namespace keel::server {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// One client socket driven by hand: send what a hostile client would, read what came back.
class RawClient {
 public:
  explicit RawClient(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { close(); }
  RawClient(const RawClient&) = delete;
  RawClient(RawClient&& o) noexcept : fd_(o.fd_), connected_(o.connected_) { o.fd_ = -1; }

  bool connected() const { return connected_; }
  // False once the server closed or reset the connection.
  bool send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  bool readable(int timeout_ms = 0) const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
  }
  // Reads until the server closes or nothing arrives for `quiet_ms`.
  std::string read_all(int quiet_ms = 3000) {
    std::string out;
    char buf[16384];
    while (readable(quiet_ms)) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  bool connected_ = false;
};

int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return 0;
  return std::stoi(response.substr(9, 3));
}

std::string body_of(const std::string& response) {
  size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

std::string chat_json(json extra = json::object()) {
  json body{{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})}};
  body.update(extra);
  return body.dump();
}

std::string post(const std::string& path, const std::string& body, const std::string& headers = "") {
  return fmt::format("POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n{}",
                     path, headers, body.size(), body);
}

// Tests that open a thousand sockets need more descriptors than a shell's default 1024.
void raise_open_files(rlim_t want) {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur < want) {
    r.rlim_cur = std::min(want, r.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
  ::getrlimit(RLIMIT_NOFILE, &r);
  ASSERT_GE(r.rlim_cur, want) << "RLIMIT_NOFILE's hard limit is too low for this test";
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds within = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// A chunked body is refused with 413 as soon as it crosses the cap, before the API key is looked at: the client
// reads the answer while it is still sending, the server never holds more than the cap.
TEST(Transport, ChunkedBodyOverTheCapIsRefusedWith413WhileItIsStillArriving) {
  ServerOptions options;
  options.api_key = "secret";
  options.http.max_body_bytes = 1 << 20;
  TestServer s(options);
  RawClient c(s.port());
  ASSERT_TRUE(c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk = fmt::format("{:x}\r\n{}\r\n", 64 << 10, std::string(64 << 10, ' '));
  size_t sent = 0;
  while (sent < (64u << 20) && !c.readable() && c.send(chunk)) sent += 64 << 10;
  const std::string response = c.read_all();
  EXPECT_EQ(status_of(response), 413) << response.substr(0, 200);
  EXPECT_LT(sent, 64u << 20) << "the whole 64 MiB went in before an answer";
  EXPECT_NE(body_of(response).find("larger than 1048576 bytes"), std::string::npos) << response;
  EXPECT_LE(s.server().body_bytes_in_flight(), size_t{1} << 20);
}

TEST(Transport, SizedBodyOverTheCapIsRefusedWith413BeforeAnyOfItIsSent) {
  ServerOptions options;
  options.http.max_body_bytes = 1 << 20;
  TestServer s(options);
  RawClient c(s.port());
  ASSERT_TRUE(c.send(fmt::format("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", 2 << 20)));
  EXPECT_EQ(status_of(c.read_all()), 413);
}

TEST(Transport, TooManyHeaderLinesAreRefusedWith431) {
  TestServer s;
  std::string head = "GET /v1/models HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 200000; i++) head += fmt::format("X-H{}: v\r\n", i);
  RawClient c(s.port());
  c.send(head + "\r\n");
  const std::string response = c.read_all();
  EXPECT_EQ(status_of(response), 431) << response.substr(0, 200);
  // Fewer lines than the cap are served.
  std::string fine = "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
  for (int i = 0; i < 90; i++) fine += fmt::format("X-H{}: v\r\n", i);
  EXPECT_EQ(status_of(raw_exchange(s.port(), fine + "\r\n")), 200);
}

TEST(Transport, AHeaderLineLongerThanTheCapIsRefusedWith431) {
  TestServer s;
  const std::string request =
      "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Long: " + std::string(16 << 10, 'a') + "\r\n\r\n";
  const std::string response = raw_exchange(s.port(), request);
  EXPECT_EQ(status_of(response), 431) << response.substr(0, 200);
}

// One deadline for the whole request: a client that sends a header line now and then, each well within any
// per-read timeout, is cut off with 408 when the request's time is up.
TEST(Transport, ARequestTrickledInIsCutAtOneDeadlineWith408) {
  ServerOptions options;
  options.http.request_timeout = 500ms;
  TestServer s(options);
  RawClient c(s.port());
  ASSERT_TRUE(c.send("GET /v1/models HTTP/1.1\r\n"));
  int lines = 0;
  while (lines < 40 && !c.readable(100) && c.send(fmt::format("X-Slow-{}: v\r\n", lines))) lines++;
  const std::string response = c.read_all();
  EXPECT_EQ(status_of(response), 408) << response.substr(0, 200);
  EXPECT_LT(lines, 40);
  EXPECT_NE(body_of(response).find("--request-timeout"), std::string::npos) << response;
}

TEST(Transport, ConnectionsBeyondTheCapGet503AndHealthAndMetricsStillAnswer) {
  ServerOptions options;
  options.http.max_connections = 4;
  TestServer s(options);
  std::vector<RawClient> held;
  for (int i = 0; i < 4; i++) {
    held.emplace_back(s.port());
    ASSERT_TRUE(held.back().send("GET /v1/models HTTP/1.1\r\n"));  // a head that never ends
  }
  ASSERT_TRUE(eventually([&] { return s.server().open_connections() == 4; }));
  std::string response = raw_exchange(s.port(), post("/v1/completions", R"({"prompt":"a"})"));
  EXPECT_EQ(status_of(response), 503) << response.substr(0, 300);
  EXPECT_NE(response.find("Retry-After: 1"), std::string::npos);
  EXPECT_NE(body_of(response).find("--max-connections"), std::string::npos);
  EXPECT_EQ(status_of(raw_exchange(s.port(), "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")), 200);
  EXPECT_EQ(status_of(raw_exchange(s.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")), 200);
  held.clear();
  ASSERT_TRUE(eventually([&] { return s.server().open_connections() == 0; }));
  auto res = s.client().Get("/v1/models");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

// A thousand slowloris clients (each has sent part of a head and waits) hold no worker another request needs.
TEST(Transport, HealthAndMetricsAnswerWhileAThousandSlowClientsHoldSockets) {
  raise_open_files(4096);
  TestServer s;
  std::vector<RawClient> slow;
  for (int i = 0; i < 1000; i++) {
    slow.emplace_back(s.port());
    ASSERT_TRUE(slow.back().connected()) << i;
    slow.back().send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");
  }
  ASSERT_TRUE(eventually([&] { return s.server().open_connections() >= 1000; }, 20000ms))
      << s.server().open_connections();
  for (const char* path : {"/health", "/metrics", "/v1/models"}) {
    auto c = s.client();
    c.set_read_timeout(5, 0);
    auto res = c.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 200) << path;
  }
}

// Each stream holds its own connection thread: short requests are answered while hundreds stream.
TEST(Transport, ShortRequestsAreAnsweredWhileLongStreamsRun) {
  raise_open_files(4096);
  ServerOptions options;
  options.max_concurrent = 1000;
  TestServer s(options);
  s.generator.endless = true;
  s.generator.step_delay = 20ms;
  std::vector<RawClient> streams;
  for (int i = 0; i < 300; i++) {
    streams.emplace_back(s.port());
    streams.back().send(post("/v1/chat/completions", chat_json({{"stream", true}, {"max_tokens", 4000}})));
  }
  ASSERT_TRUE(eventually([&] { return s.generator.active() == 300; }, 20000ms)) << s.generator.active();
  auto c = s.client();
  c.set_read_timeout(5, 0);
  auto res = c.Post("/tokenize", R"({"prompt":"hello"})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = c.Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  streams.clear();
  EXPECT_TRUE(eventually([&] { return s.generator.active() == 0; }, 10000ms)) << s.generator.active();
}

// A non-streaming request whose client hangs up is cancelled (its KV blocks freed by the engine), not run to
// its last token.
TEST(Transport, AnAbandonedNonStreamingRequestIsCancelled) {
  TestServer s;
  s.generator.endless = true;
  s.generator.step_delay = 5ms;
  {
    RawClient c(s.port());
    ASSERT_TRUE(c.send(post("/v1/chat/completions", chat_json({{"max_tokens", 3000}}))));
    ASSERT_TRUE(eventually([&] { return s.generator.active() == 1; }));
  }  // the client goes away after a few tokens of 3000 (15 s of them)
  EXPECT_TRUE(eventually([&] { return s.generator.cancel_count() == 1; }, 2000ms));
  EXPECT_TRUE(eventually([&] { return s.generator.active() == 0; }, 2000ms));
  EXPECT_TRUE(eventually([&] { return s.server().in_flight() == 0; }, 2000ms));
}

// Parsing, templating and tokenizing hold an in-flight slot as generating does.
TEST(Transport, TokenizeCountsAgainstTheInFlightLimit) {
  ServerOptions options;
  options.max_concurrent = 1;
  TestServer s(options);
  s.generator.endless = true;
  s.generator.step_delay = 5ms;
  RawClient stream(s.port());
  ASSERT_TRUE(stream.send(post("/v1/chat/completions", chat_json({{"stream", true}, {"max_tokens", 3000}}))));
  ASSERT_TRUE(eventually([&] { return s.generator.active() == 1; }));
  auto res = s.client().Post("/tokenize", R"({"prompt":"hello"})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429);
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  stream.close();
  ASSERT_TRUE(eventually([&] { return s.server().in_flight() == 0; }));
  res = s.client().Post("/tokenize", R"({"prompt":"hello"})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["tokens"], json::parse("[104,101,108,108,111]"));
}

// Request bodies held at once are capped all together: a body that would cross the budget is refused with 429
// before it is read, and the budget returns once a body's request is done.
TEST(Transport, BodiesHeldAtOnceAreCappedWith429) {
  ServerOptions options;
  options.http.max_body_bytes = 1 << 20;
  options.http.max_body_bytes_in_flight = 1 << 20;
  TestServer s(options);
  RawClient holder(s.port());
  const size_t big = 700 << 10;
  ASSERT_TRUE(holder.send(fmt::format("POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", big)));
  ASSERT_TRUE(eventually([&] { return s.server().body_bytes_in_flight() == big; }));
  std::string response = raw_exchange(s.port(), post("/tokenize", R"({"prompt":")" + std::string(big, 'a') + "\"}"));
  EXPECT_EQ(status_of(response), 429) << response.substr(0, 300);
  EXPECT_NE(body_of(response).find("--max-body-bytes-in-flight"), std::string::npos);
  holder.close();
  ASSERT_TRUE(eventually([&] { return s.server().body_bytes_in_flight() == 0; }));
  response = raw_exchange(s.port(), post("/tokenize", R"({"prompt":"ab"})", "Connection: close\r\n"));
  EXPECT_EQ(status_of(response), 200) << response.substr(0, 300);
}

TEST(Transport, AChunkedBodyWithinTheCapIsServed) {
  TestServer s;
  const std::string body = R"({"prompt":"hello"})";
  std::string request = "POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  request += fmt::format("5\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n", body.substr(0, 5), body.size() - 5, body.substr(5));
  const std::string response = raw_exchange(s.port(), request);
  EXPECT_EQ(status_of(response), 200) << response;
  EXPECT_NE(body_of(response).find("\"count\":5"), std::string::npos) << response;
}

TEST(Transport, PipelinedRequestsOnOneConnectionAreEachAnswered) {
  TestServer s;
  const std::string one = post("/tokenize", R"({"prompt":"ab"})");
  const std::string response =
      raw_exchange(s.port(), one + one + "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  size_t answers = 0;
  for (size_t at = response.find("HTTP/1.1 200"); at != std::string::npos; at = response.find("HTTP/1.1 200", at + 1)) {
    answers++;
  }
  EXPECT_EQ(answers, 3u) << response;
}

TEST(Transport, AmbiguousFramingIsRefusedWith400) {
  TestServer s;
  const std::string response = raw_exchange(
      s.port(), "POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(status_of(response), 400) << response;
}

}  // namespace
}  // namespace keel::server
