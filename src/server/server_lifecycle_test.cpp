// The server's life around its requests: API keys, disconnects, capacity, the port, the listen backlog, shutdown.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "server/server.h"
#include "server/server_test_util.h"

namespace keel::server {
namespace {

using namespace http_test;
using nlohmann::json;

using namespace std::chrono_literals;

TEST(Server, ApiKeyIsCheckedOnEveryRouteButHealth) {
  ServerOptions options;
  options.api_key = "sekrit";
  TestServer s(options);
  auto c = s.client();
  EXPECT_EQ(c.Get("/health")->status, 200);
  auto res = c.Get("/v1/models");
  EXPECT_EQ(res->status, 401);
  expect_openai_error(res->body);
  EXPECT_EQ(c.Get("/metrics")->status, 401);
  int status = 0;
  expect_anthropic_error(post_json(c, "/v1/messages", {{"max_tokens", 1}}, &status), "authentication_error");
  EXPECT_EQ(status, 401);
  EXPECT_EQ(c.Get("/v1/models", httplib::Headers{{"Authorization", "Bearer wrong"}})->status, 401);
  EXPECT_EQ(c.Get("/v1/models", httplib::Headers{{"Authorization", "Bearer sekrit"}})->status, 200);
  EXPECT_EQ(c.Get("/v1/models", httplib::Headers{{"x-api-key", "sekrit"}})->status, 200);
  post_json(c, "/v1/chat/completions", chat_body(), &status, {{"x-api-key", "sekrit"}});
  EXPECT_EQ(status, 200);
}

TEST(Server, ClientDisconnectCancelsTheGeneration) {
  TestServer s;
  s.generator.endless = true;
  s.generator.step_delay = 2ms;
  std::string body = chat_body({{"stream", true}, {"max_tokens", 4000}}).dump();
  std::string request = fmt::format(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: {}\r\n\r\n{}",
      body.size(), body);
  std::string head = raw_exchange(s.port(), request, 2000);  // read a few chunks, then hang up
  EXPECT_NE(head.find("200"), std::string::npos) << head;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (s.generator.cancel_count() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(s.generator.cancel_count(), 1u);
  while (s.generator.active() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(s.generator.active(), 0);
  while (s.server().in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(s.server().in_flight(), 0);
}

TEST(Server, OverCapacityAnswersWithRetryAfter) {
  ServerOptions options;
  options.max_concurrent = 0;
  TestServer s(options);
  auto c = s.client();
  auto res = c.Post("/v1/chat/completions", chat_body().dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429);
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  expect_openai_error(res->body);
}

// A second server on a port in use is refused (httplib's default SO_REUSEPORT would let both listen and split
// the clients between them).
TEST(Server, ASecondServerOnTheSamePortIsRefused) {
  TestServer s;
  ServerOptions options;
  options.port = s.port();
  auto tok = test_tokenizer();
  auto tmpl = test_chat_template();
  FakeGenerator generator;
  Server second(options, ServedModel{"test-model", &generator, &tok, &tmpl});
  auto port = second.bind();
  ASSERT_FALSE(port.ok());
  EXPECT_NE(port.status().message().find("in use"), std::string::npos) << port.status().message();
}

// 64 clients that connect at once, before the accept loop runs, all get through the handshake at once: the
// backlog is wider than httplib's 5, whose overflow costs each late client a SYN retry (a second or more).
TEST(Server, ABurstOfConnectionsFitsTheListenBacklog) {
  ServerOptions options;
  options.port = 0;
  auto tok = test_tokenizer();
  auto tmpl = test_chat_template();
  FakeGenerator generator;
  Server server(options, ServedModel{"test-model", &generator, &tok, &tmpl});
  auto port = server.bind();
  ASSERT_TRUE(port.ok()) << port.status().message();
  std::vector<int> fds;
  int connected = 0;
  for (int i = 0; i < 64; i++) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{0, 300000};  // connect(2) gives up after SO_SNDTIMEO
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(*port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) connected++;
    fds.push_back(fd);
  }
  for (int fd : fds) ::close(fd);
  EXPECT_EQ(connected, 64);
}

// A seed given is passed on; requests without one get different seeds (sampling is a function of the seed and
// the position, so two unseeded requests for the same prompt would otherwise sample the same text).
TEST(Server, ShutdownLetsInFlightRequestsFinish) {
  auto s = std::make_unique<TestServer>();
  s->generator.step_delay = 10ms;
  auto c = s->client();
  std::atomic<int> status{0};
  std::string text;
  std::thread t([&] {
    auto res = c.Post("/v1/completions", json{{"prompt", "x"}, {"max_tokens", 20}}.dump(), "application/json");
    if (res) {
      text = json::parse(res->body)["choices"][0]["text"];
      status = res->status;
    }
  });
  while (s->server().in_flight() == 0) std::this_thread::sleep_for(1ms);
  std::thread stopper([&] { s->server().shutdown(); });
  std::this_thread::sleep_for(20ms);
  auto c2 = s->client();
  auto health = c2.Get("/health");
  if (health) {
    EXPECT_EQ(health->status, 503);
  }
  stopper.join();
  t.join();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(text, s->generator.script.substr(0, 20));
}

}  // namespace
}  // namespace keel::server
