#include "server/anthropic.h"

#include <limits>

#include "server/anthropic_input.h"
#include "server/request_fields.h"
#include "server/sse.h"
#include "server/structured_output.h"

namespace keel::server {

namespace {

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

  KEEL_RETURN_IF_ERROR(read_anthropic_prompt(body, &spec));
  KEEL_RETURN_IF_ERROR(read_anthropic_tool_choice(body, spec.tools, &spec.tool_choice, &spec.parallel_tool_calls));
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

Result<GenerationSpec> parse_count_tokens_request(const json& body) {
  GenerationSpec spec;
  spec.is_chat = true;
  KEEL_RETURN_IF_ERROR(read_string(body, "model", &spec.model));
  KEEL_RETURN_IF_ERROR(read_anthropic_prompt(body, &spec));
  return spec;
}

std::unique_ptr<ResponseWriter> make_messages_writer(ResponseContext ctx) {
  return std::make_unique<MessagesWriter>(std::move(ctx));
}

}  // namespace keel::server
