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

// What a request's output must be, enforced by a grammar (server/structured_output.h): OpenAI's response_format
// json_object / json_schema, or a forced tool call (tool_choice required / a named function; Anthropic any / tool).
struct OutputConstraint {
  enum class Kind { kJsonObject, kJsonSchema, kToolCall };
  Kind kind = Kind::kJsonObject;
  json schema;        // kJsonSchema
  std::string where;  // the field that holds the schema, for errors ("response_format.json_schema.schema")
  std::vector<std::string> tool_names;  // kToolCall: a call may name any of these (of GenerationSpec::tools)
};

struct GenerationSpec {
  std::string model;              // as requested; "" when absent
  engine::Request request;      // prompt, sampling, stop ids, logprobs
  int n = 1;                      // completions of the prompt (OpenAI routes; see kMaxChoices)
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
  std::optional<OutputConstraint> constraint;  // absent: free text

  // /v1/completions: the prompt as text or as ids, and whether to echo it.
  std::string prompt_text;
  bool prompt_is_ids = false;
  bool echo = false;
};

// Most completions one request may ask for (`n`): each is a sequence in the engine.
constexpr int kMaxChoices = 16;

// Token counts of an answer: the prompt once, the completion tokens of every choice summed.
struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;  // of prompt_tokens, those the prefix cache supplied (the first choice's admission)
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
  std::vector<int32_t> echo_ids;  // echo with logprobs: the prompt's ids, whose logprobs come first
  int n = 1;            // choices
};

// One per request; it may keep state between calls (a stream's sequence numbers, the items it has opened).
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // The whole answer of a non-streamed request: choices[i] is choice i's single, finished Piece.
  virtual json response(const std::vector<Piece>& choices, const Usage& usage) = 0;
  // SSE bytes, in this order: once at the start (usage: the prompt, known before any token); for each Piece
  // with text or logprobs (Piece::index names its choice); when a choice finishes; once after every choice
  // finished (`last`: the choice that finished last); or, instead of the end, an error mid-stream.
  virtual std::string stream_start(const Usage& usage) = 0;
  virtual std::string stream_piece(const Piece& piece) = 0;
  virtual std::string stream_choice_end(const Piece& last) = 0;
  virtual std::string stream_end(const Piece& last, const Usage& usage) = 0;
  virtual std::string stream_error(const ApiError& error) = 0;
};

}  // namespace keel::server
