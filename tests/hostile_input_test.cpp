// Input built to crash or starve keel, given to the real binary: a model directory whose chat template recurses
// forever, and JSON nested 100k levels deep (in `keel template`'s files and in request bodies of `keel serve`).
// Each must fail the one request or command with an error naming the bound it hit; a server keeps serving.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "keel_cli.h"
#include "serve_process.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using keel::test::run_keel;

const fs::path kDemo = fs::path(KEEL_SOURCE_DIR) / "models/demo";
const char* kRecursingTemplate = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";

std::string nested_array(int levels) {
  return std::string(static_cast<size_t>(levels), '[') + std::string(static_cast<size_t>(levels), ']');
}

// A temporary copy of the demo model (its files linked, not copied) with `template_source` as its
// chat_template.jinja; removed on destruction.
class ModelDir {
 public:
  explicit ModelDir(const std::string& template_source) {
    std::string tmpl = (fs::temp_directory_path() / "keel_hostile_XXXXXX").string();
    EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
    for (const auto& e : fs::directory_iterator(kDemo)) fs::create_symlink(e.path(), path_ / e.path().filename());
    std::ofstream(path_ / "chat_template.jinja") << template_source;
  }
  ~ModelDir() { fs::remove_all(path_); }
  std::string path() const { return path_.string(); }
  std::string write(const std::string& name, const std::string& body) const {
    std::ofstream(path_ / name, std::ios::binary) << body;
    return (path_ / name).string();
  }

 private:
  fs::path path_;
};

TEST(HostileInput, KeelTemplatePrintsTheBudgetAChatTemplateHitAndExits1) {
  ModelDir dir(kRecursingTemplate);
  const std::string messages = dir.write("messages.json", R"([{"role": "user", "content": "hi"}])");
  auto r = run_keel("template " + dir.path() + " --messages " + messages, false, 120);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("chat template exceeded the recursion-depth budget (512)"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(HostileInput, KeelTemplateRefusesMessagesNested100kLevelsDeep) {
  ModelDir dir("{{ messages | length }}");
  const std::string deep = dir.write("deep.json", R"([{"role": "user", "content": "hi", "x": )" +
                                                      nested_array(100000) + "}]");
  auto r = run_keel("template " + dir.path() + " --messages " + deep, false, 120);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("nests deeper than 64 levels"), std::string::npos) << r.err;
  const std::string messages = dir.write("messages.json", R"([{"role": "user", "content": "hi"}])");
  r = run_keel("template " + dir.path() + " --messages " + messages + " --kwargs '{\"x\": " + nested_array(1000) + "}'",
               false, 120);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--kwargs nests deeper than 64 levels"), std::string::npos) << r.err;
}

// `keel serve MODEL_DIR` on an ephemeral port, its output in a log file the port is read from.
class Served : public keel::test::ServeProcess {
 public:
  explicit Served(const std::string& model_dir)
      : keel::test::ServeProcess({model_dir, "--port", "0", "--backend", "cpu", "--max-num-seqs", "2",
                                  "--max-model-len", "256"},
                                 model_dir + "/serve.log") {}
};

std::string error_message(const httplib::Result& res) {
  if (!res) return "no response";
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (!j.is_object() || !j.contains("error")) return "not an error: " + res->body;
  return j["error"].value("message", "");
}

TEST(HostileInput, ServeFailsARequestWhoseTemplateRecursesAndKeepsServing) {
  ModelDir dir(kRecursingTemplate);
  Served served(dir.path());
  const int port = served.wait_listening();
  ASSERT_GT(port, 0) << served.log_text();
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  const std::string chat = R"({"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})";
  for (int i = 0; i < 3; ++i) {
    auto res = c.Post("/v1/chat/completions", chat, "application/json");
    ASSERT_TRUE(res) << served.log_text();
    EXPECT_EQ(res->status, 400) << res->body;
    EXPECT_NE(error_message(res).find("chat template exceeded the recursion-depth budget (512)"), std::string::npos)
        << res->body;
  }
  auto res = c.Post("/v1/messages", R"({"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})",
                    "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400) << res->body;
  EXPECT_NE(res->body.find("recursion-depth budget"), std::string::npos) << res->body;
  // No template on this route: served.
  res = c.Post("/v1/completions", R"({"prompt": "Once upon", "max_tokens": 4})", "application/json");
  ASSERT_TRUE(res) << served.log_text();
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_TRUE(served.alive());
}

TEST(HostileInput, ServeAnswersBodiesNested100kLevelsWith400AndKeepsServing) {
  ModelDir dir("{% for m in messages %}{{ m.content }}{% endfor %}");
  Served served(dir.path());
  const int port = served.wait_listening();
  ASSERT_GT(port, 0) << served.log_text();
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  const std::string deep = nested_array(100000);
  const std::string user = R"([{"role": "user", "content": "hi"}])";
  const std::vector<std::pair<std::string, std::string>> bodies = {
      {"/v1/chat/completions", R"({"messages": )" + user + R"(, "stop": )" + deep + "}"},
      {"/v1/completions", R"({"prompt": )" + deep + "}"},
      {"/v1/chat/completions", R"({"messages": )" + user + R"(, "chat_template_kwargs": {"x": )" + deep + "}}"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi", "extra": )" + deep + "}]}"},
      {"/v1/messages", R"({"max_tokens": 4, "messages": )" + user + R"(, "stop_sequences": )" + deep + "}"},
      {"/tokenize", R"({"prompt": )" + deep + "}"},
  };
  for (const auto& [path, body] : bodies) {
    auto res = c.Post(path, body, "application/json");
    ASSERT_TRUE(res) << path << ": no answer\n" << served.log_text();
    EXPECT_EQ(res->status, 400) << path << " " << res->body;
    EXPECT_EQ(error_message(res), "request body nests deeper than 64 levels") << path;
  }
  auto res = c.Post("/v1/chat/completions",
                    R"({"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})", "application/json");
  ASSERT_TRUE(res) << served.log_text();
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_TRUE(served.alive());
}

}  // namespace
