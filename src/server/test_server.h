// Test support: a byte-level test tokenizer (id b = byte b, then <|im_start|>=256, <|im_end|>=257,
// <|endoftext|>=258; printable ASCII spelled as itself, the other bytes as byte-fallback tokens <0xXX>, as in a
// SentencePiece vocabulary, so a stream of ASCII is not one long byte run held back), a ChatML template, and a Server on an ephemeral loopback port over a FakeGenerator.
#pragma once

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/fake_generator.h"
#include "server/server.h"

namespace keel::server {

inline tokenizer::Tokenizer test_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[b >= 0x20 && b < 0x7F ? std::string(1, char(b)) : fmt::format("<0x{:02X}>", b)] = b;
  nlohmann::json added = nlohmann::json::array();
  int id = 256;
  for (const char* t : {"<|im_start|>", "<|im_end|>", "<|endoftext|>"}) {
    added.push_back({{"id", id++}, {"content", t}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
  }
  nlohmann::json tok{{"version", "1.0"},
                     {"added_tokens", added},
                     {"normalizer", nullptr},
                     {"pre_tokenizer", nullptr},
                     {"post_processor", nullptr},
                     {"decoder", {{"type", "Sequence"},
                                  {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}}},
                     {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()},
                                {"byte_fallback", true}, {"fuse_unk", false}, {"ignore_merges", false}}}};
  nlohmann::json config{{"eos_token", "<|im_end|>"}, {"bos_token", nullptr}};
  auto t = tokenizer::Tokenizer::from_json(tok.dump(), config.dump());
  if (!t.ok()) ADD_FAILURE() << t.status().message();
  return std::move(t).value();
}

inline ChatTemplate test_chat_template() {
  const char* chatml =
      "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
      "{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and not "
      "enable_thinking %}<think>\n\n</think>\n\n{% endif %}{% endif %}";
  auto t = ChatTemplate::from_source(chatml, {{"eos_token", "<|im_end|>"}}, "test template");
  if (!t.ok()) ADD_FAILURE() << t.status().message();
  return std::move(t).value();
}

// Sends raw bytes to 127.0.0.1:port and reads the answer until the server closes, `read_limit` bytes arrive
// or a read waits longer than `timeout_ms`; then closes the socket (a client hanging up mid-stream when
// read_limit is small).
inline std::string raw_exchange(int port, const std::string& bytes, size_t read_limit = 1 << 20,
                                int timeout_ms = 2000) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    char buf[4096];
    while (out.size() < read_limit) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

// A running server; stops (and joins) on destruction.
class TestServer {
 public:
  explicit TestServer(ServerOptions options = {}, std::vector<std::string> aliases = {})
      : tokenizer_(test_tokenizer()), template_(test_chat_template()) {
    options.port = 0;
    options.shutdown_grace = std::chrono::milliseconds(2000);
    ServedModel served{"test-model", &generator, &tokenizer_, &template_};
    served.aliases = std::move(aliases);
    server_ = std::make_unique<Server>(options, std::move(served));
    auto port = server_->bind();
    if (!port.ok()) ADD_FAILURE() << port.status().message();
    port_ = port.ok() ? *port : 0;
    thread_ = std::thread([this] { server_->run(); });
  }
  ~TestServer() {
    server_->shutdown();
    thread_.join();
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10, 0);
    return c;
  }
  int port() const { return port_; }
  Server& server() { return *server_; }
  const tokenizer::Tokenizer& tokenizer() const { return tokenizer_; }

  FakeGenerator generator;

 private:
  tokenizer::Tokenizer tokenizer_;
  ChatTemplate template_;
  std::unique_ptr<Server> server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace keel::server
