// keel's HTTP server over a scripted generator, for the official clients' tool round trips (tools.test.mjs): the
// real Server, routes and output parser, with the test byte tokenizer and ChatML template, and a FakeGenerator
// whose answer depends on the conversation — a Qwen3-style answer with reasoning, text and two tool calls, or,
// once the conversation holds the tools' results, a final text. Prints "listening on PORT", serves until SIGTERM.
#include <csignal>
#include <cstdio>
#include <thread>

#include "server/test_server.h"

namespace {

constexpr const char* kCalls =
    "<think>\nThe user wants the weather in Paris and the time.\n</think>\n\nLet me look that up.\n<tool_call>\n"
    "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>\n"
    "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"Europe/Paris\"}}\n</tool_call>";
constexpr const char* kFinal = "It is sunny and 21 degrees in Paris.";

}  // namespace

int main() {
  using namespace keel::server;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  TestServer server;
  const keel::tokenizer::Tokenizer* tokenizer = &server.tokenizer();
  server.generator.script_for = [tokenizer](const keel::engine::Request& r) -> std::string {
    // The tools' results are in the prompt once the client sent them back: answer with text.
    std::string prompt = tokenizer->decode(r.prompt, /*skip_special=*/true);
    return prompt.find("sunny") != std::string::npos ? kFinal : kCalls;
  };
  std::printf("listening on %d\n", server.port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}
