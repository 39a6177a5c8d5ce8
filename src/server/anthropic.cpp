#include "server/anthropic.h"

#include <limits>

#include "server/request_fields.h"
#include "server/sse.h"
#include "server/structured_output.h"

namespace keel::server {

namespace {

// Anthropic content: a string or an array of blocks; only text blocks are supported (joined).
Result<std::string> content_text(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) {
    return invalid_argument("{}: expected a string or an array of content blocks, got {}", where, describe(content));
  }
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& block = content[i];
    std::string at = fmt::format("{}[{}]", where, i);
    if (!block.is_object()) return invalid_argument("{}: expected an object, got {}", at, describe(block));
    if (!block.contains("type") || !block["type"].is_string()) return invalid_argument("{}.type: expected a string", at);
    if (block["type"] != "text") {
      return invalid_argument("{}.type: only \"text\" blocks are supported, got {}", at, block["type"].dump());
    }
    if (!block.contains("text") || !block["text"].is_string()) return invalid_argument("{}.text: expected a string", at);
    text += block["text"].get<std::string>();
  }
  return text;
}

// As Anthropic counts: input_tokens excludes what was read from the cache, so the prompt is
// input_tokens + cache_read_input_tokens (keel writes no explicit cache entries: creation is always 0).
json input_usage(const Usage& u) {
  return json{{"input_tokens", u.prompt_tokens - u.cached_tokens},
              {"cache_creation_input_tokens", 0},
              {"cache_read_input_tokens", u.cached_tokens}};
}

json message_usage(const Usage& u) {
  json out = input_usage(u);
  out["output_tokens"] = u.completion_tokens;
  return out;
}

// "tool_use" when the model called a tool and stopped by itself.
const char* stop_reason(const Piece& last) {
  if (last.tool_calls > 0 && last.finish == engine::FinishReason::kStop && last.stop_sequence.empty()) {
    return "tool_use";
  }
  return anthropic_stop_reason(last);
}

// A call's arguments as the tool_use block's input object ({} for arguments cut off mid-JSON).
json tool_input(const std::string& arguments) {
  json input = json::parse(arguments, nullptr, false);
  return input.is_object() ? input : json::object();
}

// A Piece's output as events: the parser's, or its plain text.
std::vector<OutputEvent> events_of(const Piece& piece) {
  if (!piece.events.empty() || piece.text.empty()) return piece.events;
  return {OutputEvent{OutputEvent::Kind::kText, piece.text}};
}

class MessagesWriter : public ResponseWriter {
 public:
  explicit MessagesWriter(ResponseContext ctx) : ctx_(std::move(ctx)) {}

  json response(const std::vector<Piece>& choices, const Usage& usage) override {
    const Piece& all = choices.at(0);  // one choice: /v1/messages has no n
    json content = json::array();
    for (const OutputEvent& e : events_of(all)) {
      switch (e.kind) {
        case OutputEvent::Kind::kReasoning:
          content.push_back(json{{"type", "thinking"}, {"thinking", e.text}, {"signature", ""}});
          break;
        case OutputEvent::Kind::kText:
          content.push_back(json{{"type", "text"}, {"text", e.text}});
          break;
        case OutputEvent::Kind::kCallBegin:
          content.push_back(json{{"type", "tool_use"}, {"id", e.id}, {"name", e.name}, {"input", json::object()}});
          break;
        case OutputEvent::Kind::kCallArguments:
          content.back()["partial"] = content.back().value("partial", "") + e.text;
          break;
        case OutputEvent::Kind::kCallEnd:
          break;
      }
    }
    for (json& block : content) {
      if (!block.contains("partial")) continue;
      block["input"] = tool_input(block["partial"].get<std::string>());
      block.erase("partial");
    }
    if (content.empty()) content.push_back(json{{"type", "text"}, {"text", ""}});
    return json{{"id", ctx_.id},
                {"type", "message"},
                {"role", "assistant"},
                {"model", ctx_.model},
                {"content", std::move(content)},
                {"stop_reason", stop_reason(all)},
                {"stop_sequence", all.stop_sequence.empty() ? json(nullptr) : json(all.stop_sequence)},
                {"usage", message_usage(usage)}};
  }

  std::string stream_start(const Usage& prompt) override {
    json usage = input_usage(prompt);
    usage["output_tokens"] = 0;
    json message{{"id", ctx_.id},
                 {"type", "message"},
                 {"role", "assistant"},
                 {"model", ctx_.model},
                 {"content", json::array()},
                 {"stop_reason", nullptr},
                 {"stop_sequence", nullptr},
                 {"usage", std::move(usage)}};
    return sse_event("message_start", json{{"type", "message_start"}, {"message", std::move(message)}});
  }

  // Blocks open when their first event arrives and close when another kind starts (thinking, text, one
  // tool_use per call), so their indexes count up as the client reads them.
  std::string stream_piece(const Piece& piece) override {
    std::string out;
    for (const OutputEvent& e : events_of(piece)) {
      switch (e.kind) {
        case OutputEvent::Kind::kReasoning:
          if (open_ != Block::kThinking) {
            out += open(Block::kThinking, json{{"type", "thinking"}, {"thinking", ""}, {"signature", ""}});
          }
          out += delta(json{{"type", "thinking_delta"}, {"thinking", e.text}});
          break;
        case OutputEvent::Kind::kText:
          if (open_ != Block::kText) out += open(Block::kText, json{{"type", "text"}, {"text", ""}});
          out += delta(json{{"type", "text_delta"}, {"text", e.text}});
          break;
        case OutputEvent::Kind::kCallBegin:
          out += open(Block::kToolUse,
                      json{{"type", "tool_use"}, {"id", e.id}, {"name", e.name}, {"input", json::object()}});
          break;
        case OutputEvent::Kind::kCallArguments:
          out += delta(json{{"type", "input_json_delta"}, {"partial_json", e.text}});
          break;
        case OutputEvent::Kind::kCallEnd:
          out += close();
          break;
      }
    }
    return out;
  }

  std::string stream_choice_end(const Piece&) override { return ""; }

  std::string stream_end(const Piece& last, const Usage& usage) override {
    // An answer with no output still has its (empty) text block, as the API sends one.
    std::string out = index_ < 0 ? open(Block::kText, json{{"type", "text"}, {"text", ""}}) : "";
    out += close();
    json delta{{"stop_reason", stop_reason(last)},
               {"stop_sequence", last.stop_sequence.empty() ? json(nullptr) : json(last.stop_sequence)}};
    out += sse_event("message_delta", json{{"type", "message_delta"},
                                           {"delta", std::move(delta)},
                                           {"usage", message_usage(usage)}});
    out += sse_event("message_stop", json{{"type", "message_stop"}});
    return out;
  }

  std::string stream_error(const ApiError& error) override {
    return sse_event("error", error.to_json(ApiFlavor::kAnthropic));
  }

 private:
  enum class Block { kNone, kThinking, kText, kToolUse };

  std::string open(Block kind, json block) {
    std::string out = close();
    open_ = kind;
    out += sse_event("content_block_start",
                     json{{"type", "content_block_start"}, {"index", ++index_}, {"content_block", std::move(block)}});
    // The API's first ping follows the first block's start.
    if (index_ == 0) out += sse_event("ping", json{{"type", "ping"}});
    return out;
  }
  std::string close() {
    if (open_ == Block::kNone) return "";
    open_ = Block::kNone;
    return sse_event("content_block_stop", json{{"type", "content_block_stop"}, {"index", index_}});
  }
  std::string delta(json d) const {
    return sse_event("content_block_delta",
                     json{{"type", "content_block_delta"}, {"index", index_}, {"delta", std::move(d)}});
  }

  ResponseContext ctx_;
  // Stream state: the writer of one request is called from one thread at a time.
  Block open_ = Block::kNone;
  int index_ = -1;
};

}  // namespace

const char* anthropic_stop_reason(const Piece& last) {
  if (!last.stop_sequence.empty()) return "stop_sequence";
  return last.finish == engine::FinishReason::kLength ? "max_tokens" : "end_turn";
}

Result<GenerationSpec> parse_messages_request(const json& body) {
  GenerationSpec spec;
  spec.is_chat = true;
  KEEL_RETURN_IF_ERROR(read_string(body, "model", &spec.model));
  KEEL_RETURN_IF_ERROR(read_string(body, "cache_salt", &spec.request.cache_salt));
  if (!has(body, "max_tokens")) return invalid_argument("max_tokens: required");
  int max_tokens = 0;
  KEEL_RETURN_IF_ERROR(read_int(body, "max_tokens", 1, std::numeric_limits<int32_t>::max(), &max_tokens));
  spec.max_tokens = max_tokens;

  if (has(body, "system")) {
    KEEL_ASSIGN_OR_RETURN(std::string system, content_text(body["system"], "system"));
    spec.messages.push_back(json{{"role", "system"}, {"content", system}});
  }
  if (!has(body, "messages")) return invalid_argument("messages: required");
  const json& messages = body["messages"];
  if (!messages.is_array() || messages.empty()) {
    return invalid_argument("messages: expected a non-empty array of messages, got {}", describe(messages));
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    std::string at = fmt::format("messages[{}]", i);
    if (!m.is_object()) return invalid_argument("{}: expected an object, got {}", at, describe(m));
    if (!m.contains("role") || !m["role"].is_string() || (m["role"] != "user" && m["role"] != "assistant")) {
      return invalid_argument("{}.role: expected \"user\" or \"assistant\"", at);
    }
    if (!m.contains("content")) return invalid_argument("{}.content: required", at);
    KEEL_ASSIGN_OR_RETURN(std::string text, content_text(m["content"], at + ".content"));
    spec.messages.push_back(json{{"role", m["role"]}, {"content", text}});
  }
  if (has(body, "tools")) {
    const json& tools = body["tools"];
    if (!tools.is_array()) return invalid_argument("tools: expected an array, got {}", describe(tools));
    // Chat templates expect OpenAI's function shape.
    spec.tools = json::array();
    for (size_t i = 0; i < tools.size(); ++i) {
      const json& t = tools[i];
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) {
        return invalid_argument("tools[{}].name: expected a string", i);
      }
      json fn{{"name", t["name"]}};
      if (t.contains("description")) fn["description"] = t["description"];
      if (t.contains("input_schema")) fn["parameters"] = t["input_schema"];
      spec.tools.push_back(json{{"type", "function"}, {"function", std::move(fn)}});
    }
  }
  KEEL_RETURN_IF_ERROR(read_anthropic_tool_choice(body, spec.tools, &spec.tool_choice, &spec.parallel_tool_calls));
  if (has(body, "thinking")) {
    const json& th = body["thinking"];
    if (!th.is_object() || !th.contains("type") || !th["type"].is_string()) {
      return invalid_argument("thinking.type: expected \"enabled\" or \"disabled\"");
    }
    spec.template_kwargs = json{{"enable_thinking", th["type"] == "enabled"}};
  }
  auto& s = spec.request.sampling;
  KEEL_RETURN_IF_ERROR(read_float(body, "temperature", 0.0, 1.0, &s.temperature));
  KEEL_RETURN_IF_ERROR(read_float(body, "top_p", 0.0, 1.0, &s.top_p));
  if (has(body, "top_p") && s.top_p == 0.0f) return invalid_argument("top_p: must be > 0, got 0");
  KEEL_RETURN_IF_ERROR(read_int(body, "top_k", 0, std::numeric_limits<int32_t>::max(), &s.top_k));
  KEEL_RETURN_IF_ERROR(s.validate());
  if (has(body, "stop_sequences")) {
    if (!body["stop_sequences"].is_array()) {
      return invalid_argument("stop_sequences: expected an array of strings, got {}", describe(body["stop_sequences"]));
    }
    KEEL_RETURN_IF_ERROR(read_stop(body, "stop_sequences", &spec.stop));
  }
  KEEL_RETURN_IF_ERROR(read_bool(body, "stream", &spec.stream));
  if (has(body, "metadata") && !body["metadata"].is_object()) {
    return invalid_argument("metadata: expected an object, got {}", describe(body["metadata"]));
  }
  return spec;
}

std::unique_ptr<ResponseWriter> make_messages_writer(ResponseContext ctx) {
  return std::make_unique<MessagesWriter>(std::move(ctx));
}

}  // namespace keel::server
