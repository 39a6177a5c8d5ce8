// A malformed-request fuzzer: mutated and type-confused bodies, random paths, methods and headers, and raw
// protocol garbage. Every answer must be 200 (a mutation can still be a valid request) or 4xx with a JSON error
// in the route's shape — never a 5xx, a crash or a hang — and a normal request must still succeed afterwards.
#include <gtest/gtest.h>

#include <random>

#include "server/test_server.h"

namespace keel::server {
namespace {

using nlohmann::json;

const std::vector<std::string> kPaths = {"/v1/chat/completions", "/v1/completions", "/v1/messages", "/tokenize",
                                         "/detokenize"};

json valid_body(const std::string& path) {
  if (path == "/v1/chat/completions") {
    return {{"model", "test-model"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 8},
            {"temperature", 0.5}, {"stop", {"x"}}, {"stream", false}};
  }
  if (path == "/v1/completions") return {{"model", "test-model"}, {"prompt", "Hi"}, {"max_tokens", 8}, {"logprobs", 1}};
  if (path == "/v1/messages") {
    return {{"model", "test-model"}, {"max_tokens", 8}, {"system", "s"},
            {"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Hi"}}}}}}},
            {"stop_sequences", {"!"}}};
  }
  if (path == "/tokenize") return {{"prompt", "Hi"}, {"add_special_tokens", true}};
  return {{"tokens", {72, 105}}};
}

json random_value(std::mt19937& rng, int depth = 0) {
  switch (rng() % (depth > 2 ? 8 : 10)) {
    case 0: return nullptr;
    case 1: return static_cast<bool>(rng() % 2);
    case 2: return static_cast<int64_t>(rng()) - (1ll << 31);
    case 3: return -1;
    case 4: return 1e300;
    case 5: return std::string(rng() % 5, static_cast<char>('a' + rng() % 26));
    case 6: return static_cast<uint64_t>(-1);
    case 7: return 0.5;
    case 8: {
      json a = json::array();
      for (unsigned i = rng() % 4; i > 0; --i) a.push_back(random_value(rng, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      for (unsigned i = rng() % 4; i > 0; --i) o[std::string(1, static_cast<char>('a' + rng() % 26))] = random_value(rng, depth + 1);
      return o;
    }
  }
}

// Replaces a random field (top level or inside the first message) with a random value, or removes it.
json confuse_types(json body, std::mt19937& rng) {
  std::vector<std::string> keys;
  for (auto& [k, v] : body.items()) keys.push_back(k);
  for (const char* extra : {"n", "top_p", "top_k", "seed", "stream_options", "logprobs", "top_logprobs", "echo",
                            "chat_template_kwargs", "tools", "min_p", "max_completion_tokens", "stop_token_ids"}) {
    keys.push_back(extra);
  }
  for (int i = 0, n = 1 + static_cast<int>(rng() % 3); i < n; ++i) {
    const std::string& key = keys[rng() % keys.size()];
    if (rng() % 5 == 0) {
      body.erase(key);
    } else if (key == "messages" && body.contains("messages") && body["messages"].is_array() && rng() % 2) {
      body["messages"][0][rng() % 2 ? "role" : "content"] = random_value(rng);
    } else {
      body[key] = random_value(rng);
    }
  }
  return body;
}

std::string mutate_bytes(std::string s, std::mt19937& rng) {
  for (int i = 0, n = 1 + static_cast<int>(rng() % 6); i < n && !s.empty(); ++i) {
    size_t at = rng() % s.size();
    switch (rng() % 4) {
      case 0: s[at] = static_cast<char>(rng() % 256); break;
      case 1: s.erase(at, 1 + rng() % 8); break;
      case 2: s.insert(at, 1, "{}[]\",:\\\x00\xff"[rng() % 11]); break;
      default: s = s.substr(0, at); break;
    }
  }
  return s;
}

std::string random_path(std::mt19937& rng) {
  static const std::vector<std::string> parts = {"v1", "chat", "completions", "messages", "models", "..", "%00",
                                                 "tokenize", "health", "metrics", "x", "%ff", ""};
  std::string p;
  for (int i = 0, n = 1 + static_cast<int>(rng() % 4); i < n; ++i) p += "/" + parts[rng() % parts.size()];
  return p;
}

// Checks one answer; returns a description of what is wrong, or "".
std::string check_answer(const httplib::Result& res, const std::string& path) {
  if (!res) return "no response";
  if (res->status == 200) return "";
  if (res->status < 400 || res->status >= 500) return "status " + std::to_string(res->status);
  json j = json::parse(res->body, nullptr, false);
  if (!j.is_object()) return "error body is not JSON: " + res->body.substr(0, 200);
  bool anthropic = path.rfind("/v1/messages", 0) == 0;
  if (anthropic) {
    if (j.value("type", "") != "error" || !j.contains("error") || !j["error"].is_object() ||
        !j["error"].contains("type") || !j["error"].contains("message")) {
      return "not an Anthropic error: " + res->body.substr(0, 200);
    }
  } else if (!j.contains("error") || !j["error"].is_object() || !j["error"].contains("message") ||
             !j["error"].contains("type")) {
    return "not an OpenAI error: " + res->body.substr(0, 200);
  }
  return "";
}

TEST(Fuzz, MalformedRequestsGetJsonErrorsAndTheServerKeepsServing) {
  TestServer s;
  auto c = s.client();
  std::mt19937 rng(20261126);
  int cases = 0, errors_4xx = 0, ok_200 = 0;
  for (int i = 0; i < 1200; ++i) {
    const std::string path = kPaths[rng() % kPaths.size()];
    std::string body;
    std::string target = path;
    httplib::Headers headers;
    switch (i % 4) {
      case 0: body = mutate_bytes(valid_body(path).dump(), rng); break;
      case 1: body = confuse_types(valid_body(path), rng).dump(); break;
      case 2: body = random_value(rng).dump(); break;
      default:
        target = random_path(rng);
        body = valid_body(path).dump();
        headers.emplace(std::string(1, static_cast<char>('a' + rng() % 26)) + "-x", std::string(rng() % 300, 'v'));
        if (rng() % 3 == 0) headers.emplace("Content-Type", "text/plain");
        break;
    }
    httplib::Result res = rng() % 8 == 0 && i % 4 == 3 ? c.Get(target.c_str(), headers)
                                                       : c.Post(target.c_str(), headers, body, "application/json");
    std::string problem = check_answer(res, target);
    EXPECT_EQ(problem, "") << "case " << i << ": POST " << target << " " << body.substr(0, 300);
    cases++;
    if (res && res->status == 200) ok_200++;
    if (res && res->status >= 400) errors_4xx++;
  }
  EXPECT_GE(cases, 1000);
  EXPECT_GT(errors_4xx, cases / 2);
  std::printf("fuzz: %d requests, %d answered 4xx with a JSON error, %d were still valid (200)\n", cases, errors_4xx,
              ok_200);

  auto res = c.Post("/v1/chat/completions", valid_body("/v1/chat/completions").dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["choices"][0]["message"]["content"], "Hello wo");
  EXPECT_EQ(s.server().in_flight(), 0);
}

TEST(Fuzz, ProtocolGarbageNeverCrashesOrHangs) {
  TestServer s;
  std::mt19937 rng(7);
  const std::vector<std::string> garbage = {
      "GARBAGE\r\n\r\n",
      "POST\r\n\r\n",
      "POST /v1/chat/completions HTTP/9.9\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}",
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nBad Header Line\r\n\r\n",
      std::string("GET /\x01\x02 HTTP/1.1\r\n\r\n"),
      "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\n\r\n",
      "POST /v1/messages HTTP/1.1\r\nContent-Length: 2\r\n\r\n{]",
  };
  int answered = 0;
  for (int i = 0; i < 40; ++i) {
    std::string bytes = garbage[i % garbage.size()];
    if (i >= static_cast<int>(garbage.size())) bytes = mutate_bytes(bytes, rng);
    // The server keeps a connection alive after answering; 300 ms of silence ends the exchange.
    std::string out = raw_exchange(s.port(), bytes, 1 << 20, 300);
    if (out.empty()) continue;  // the server may simply close a connection it cannot parse
    answered++;
    EXPECT_EQ(out.rfind("HTTP/1.1 ", 0), 0u) << out.substr(0, 200);
    int status = std::atoi(out.substr(9, 3).c_str());
    EXPECT_TRUE(status >= 400 && status < 500) << "request " << i << ": " << out.substr(0, 300);
    size_t body_at = out.find("\r\n\r\n");
    ASSERT_NE(body_at, std::string::npos);
    EXPECT_TRUE(json::parse(out.substr(body_at + 4), nullptr, false).is_object()) << out.substr(0, 300);
  }
  EXPECT_GT(answered, 20);
  std::printf("fuzz: %d of 40 raw garbage requests answered with a 4xx JSON error, the rest closed\n", answered);
  auto c = s.client();
  auto res = c.Get("/v1/models");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

}  // namespace
}  // namespace keel::server
