// What the generation routes have in common: a request body reduces to a GenerationSpec, and a ResponseWriter
// renders a Completion's output in the route's own JSON (one response) or SSE (a stream of events).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/completion.h"
#include "server/generator.h"
#include "server/tool_call_format.h"
#include "tokenizer/tokenizer.h"

namespace keel::server {

using json = nlohmann::ordered_json;

struct GenerationSpec {
  std::string model;              // as requested; "" when absent
  engine::Request request;      // prompt, sampling, stop ids, logprobs
  std::optional<int> max_tokens;  // absent: whatever the context leaves
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;     // OpenAI stream_options.include_usage

  // Chat routes: the conversation to render with the chat template.
  bool is_chat = false;
  json messages = json::array();
  json tools = nullptr;
  json template_kwargs = nullptr;
  bool add_generation_prompt = true;
  // tool_choice (OpenAI or Anthropic) and parallel_tool_calls / !disable_parallel_tool_use. kNone turns call
  // parsing off; kRequired / kNamed are for a grammar to enforce (tool_call_format.h says how a call is written).
  ToolChoice tool_choice;
  bool parallel_tool_calls = true;

  // /v1/completions: the prompt as text or as ids, and whether to echo it.
  std::string prompt_text;
  bool prompt_is_ids = false;
  bool echo = false;
};

// What a writer needs to know about the request it answers.
struct ResponseContext {
  std::string id;       // "chatcmpl-…", "cmpl-…", "msg_…"
  std::string model;    // the served model name
  int64_t created = 0;  // unix seconds
  const tokenizer::Tokenizer* tokenizer = nullptr;
  bool include_usage = false;
  bool logprobs = false;  // the request asked for logprobs
  std::string echo;     // text sent before the completion (completions' echo)
};

class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // The whole answer of a non-streamed request, from the Completion's single, finished Piece.
  virtual json response(const Piece& all, const Completion& c) const = 0;
  // SSE bytes: at the start, for each Piece with text or logprobs, at the end, and for an error mid-stream.
  virtual std::string stream_start(const Completion& c) const = 0;
  virtual std::string stream_piece(const Piece& piece, const Completion& c) const = 0;
  virtual std::string stream_end(const Piece& last, const Completion& c) const = 0;
  virtual std::string stream_error(const ApiError& error) const = 0;
};

}  // namespace keel::server
