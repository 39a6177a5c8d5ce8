#include "server/openai.h"

#include <limits>

#include "server/chat_messages.h"
#include "server/request_fields.h"
#include "server/sse.h"
#include "server/structured_output.h"

namespace keel::server {

namespace {

constexpr int kMaxTokensLimit = std::numeric_limits<int32_t>::max();

// Fields both OpenAI routes read the same way.
Status read_common(const json& body, GenerationSpec* spec) {
  KEEL_RETURN_IF_ERROR(read_string(body, "model", &spec->model));
  KEEL_RETURN_IF_ERROR(read_int(body, "n", 1, kMaxChoices, &spec->n));
  KEEL_RETURN_IF_ERROR(read_sampling(body, &spec->request.sampling));
  KEEL_RETURN_IF_ERROR(read_stop(body, "stop", &spec->stop));
  if (has(body, "stop_token_ids")) {
    KEEL_RETURN_IF_ERROR(read_token_ids(body["stop_token_ids"], "stop_token_ids",
                                        std::numeric_limits<int32_t>::max(), &spec->request.stop_token_ids));
  }
  KEEL_RETURN_IF_ERROR(read_bool(body, "ignore_eos", &spec->request.ignore_eos));
  KEEL_RETURN_IF_ERROR(read_string(body, "cache_salt", &spec->request.cache_salt));
  KEEL_RETURN_IF_ERROR(read_bool(body, "stream", &spec->stream));
  if (has(body, "stream_options")) {
    const json& so = body["stream_options"];
    if (!so.is_object()) return invalid_argument("stream_options: expected an object, got {}", describe(so));
    Status s = read_bool(so, "include_usage", &spec->include_usage);
    if (!s.ok()) return invalid_argument("stream_options.{}", s.message());
  }
  int max_tokens = 0;
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    if (!has(body, name)) continue;
    KEEL_RETURN_IF_ERROR(read_int(body, name, 1, kMaxTokensLimit, &max_tokens));
    spec->max_tokens = max_tokens;
  }
  return Status();
}

json logprob_token(const tokenizer::Tokenizer& tok, int32_t id, float logprob) {
  std::string text = tok.decode(std::vector<int32_t>{id}, false);
  json bytes = json::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return json{{"token", text}, {"logprob", logprob}, {"bytes", std::move(bytes)}};
}

json chat_logprobs(const tokenizer::Tokenizer& tok, const std::vector<LogprobEntry>& entries) {
  json content = json::array();
  for (const auto& e : entries) {
    json item = logprob_token(tok, e.token, e.logprob);
    json top = json::array();
    for (const auto& t : e.top) top.push_back(logprob_token(tok, t.token, t.logprob));
    item["top_logprobs"] = std::move(top);
    content.push_back(std::move(item));
  }
  return json{{"content", std::move(content)}};
}

// `prompt` (echo with logprobs): the prompt's tokens come first, the first with null logprobs as OpenAI
// answers (no position precedes it), text_offset running over the prompt's tokens and on into the completion.
json completion_logprobs(const tokenizer::Tokenizer& tok, const std::vector<LogprobEntry>& entries,
                         size_t text_offset, const std::vector<int32_t>& prompt = {},
                         const std::vector<engine::PromptLogprob>& prompt_logprobs = {}) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(), offsets = json::array();
  auto text_of = [&](int32_t id) { return tok.decode(std::vector<int32_t>{id}, false); };
  auto add = [&](int32_t token, json logprob, json alternatives) {
    std::string text = text_of(token);
    tokens.push_back(text);
    token_logprobs.push_back(std::move(logprob));
    top.push_back(std::move(alternatives));
    offsets.push_back(text_offset);
    text_offset += text.size();
  };
  auto alternatives = [&](const std::vector<engine::TokenLogprob>& list) {
    json out = json::object();
    for (const auto& t : list) out[text_of(t.token)] = t.logprob;
    return out;
  };
  if (!prompt.empty()) {
    text_offset = 0;
    add(prompt[0], nullptr, nullptr);
    for (size_t i = 1; i < prompt.size(); i++) {
      if (i - 1 < prompt_logprobs.size()) {
        add(prompt[i], prompt_logprobs[i - 1].chosen.logprob, alternatives(prompt_logprobs[i - 1].top));
      } else {
        add(prompt[i], nullptr, nullptr);  // never: the engine reports every prompt token after the first
      }
    }
  }
  for (const auto& e : entries) add(e.token, e.logprob, alternatives(e.top));
  return json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(top)},
              {"text_offset", std::move(offsets)}};
}

json usage_json(const Usage& u) {
  return json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

json openai_error_chunk(const ApiError& error) { return error.to_json(ApiFlavor::kOpenAI); }

// "tool_calls" when the model called a tool and stopped by itself (a call cut off by max_tokens is "length").
const char* chat_finish_reason(const Piece& last) {
  if (last.tool_calls > 0 && last.finish == engine::FinishReason::kStop) return "tool_calls";
  return openai_finish_reason(last.finish);
}

json tool_call_json(const OutputSummary::Call& call) {
  return json{{"id", call.id},
              {"type", "function"},
              {"function", {{"name", call.name}, {"arguments", call.arguments}}}};
}

// One streamed delta per event: content, reasoning_content, or a tool_calls entry (id, type and name in a call's
// first delta, then its arguments in pieces).
json event_delta(const OutputEvent& e) {
  switch (e.kind) {
    case OutputEvent::Kind::kText:
      return json{{"content", e.text}};
    case OutputEvent::Kind::kReasoning:
      return json{{"reasoning_content", e.text}};
    case OutputEvent::Kind::kCallBegin:
      return json{{"tool_calls", json::array({json{{"index", e.index},
                                                   {"id", e.id},
                                                   {"type", "function"},
                                                   {"function", {{"name", e.name}, {"arguments", ""}}}}})}};
    case OutputEvent::Kind::kCallArguments:
      return json{{"tool_calls", json::array({json{{"index", e.index}, {"function", {{"arguments", e.text}}}}})}};
    case OutputEvent::Kind::kCallEnd:
      break;
  }
  return nullptr;
}

// What the chat and completion writers share: the chunk envelope, each choice's final chunk with its finish
// reason, the optional usage chunk, [DONE], and in-stream errors.
class OpenAiWriter : public ResponseWriter {
 public:
  OpenAiWriter(ResponseContext ctx, const char* chunk_object) : ctx_(std::move(ctx)), chunk_object_(chunk_object) {}

  std::string stream_error(const ApiError& error) override {
    return sse_data(openai_error_chunk(error)) + sse_done();
  }

  std::string stream_choice_end(const Piece& last) override {
    json choice = final_choice(last.index);
    choice["finish_reason"] = chat_finish_reason(last);
    if (!last.stop_sequence.empty()) choice["stop_reason"] = last.stop_sequence;
    return sse_data(chunk(std::move(choice)));
  }

  std::string stream_end(const Piece&, const Usage& usage) override {
    std::string out;
    if (ctx_.include_usage) {
      json final = chunk(nullptr);
      final["usage"] = usage_json(usage);
      out += sse_data(final);
    }
    return out + sse_done();
  }

 protected:
  json chunk(json choice) const {
    json out{{"id", ctx_.id}, {"object", chunk_object_}, {"created", ctx_.created}, {"model", ctx_.model},
             {"choices", choice.is_null() ? json::array() : json::array({std::move(choice)})}};
    if (ctx_.include_usage) out["usage"] = nullptr;
    return out;
  }

  // The API's empty choice that carries a finish reason.
  virtual json final_choice(int index) const = 0;

  json answer(const char* object, json choices, const Usage& usage) const {
    return json{{"id", ctx_.id},         {"object", object},
                {"created", ctx_.created}, {"model", ctx_.model},
                {"choices", std::move(choices)}, {"usage", usage_json(usage)}};
  }

  ResponseContext ctx_;

 private:
  const char* chunk_object_;
};

class ChatWriter : public OpenAiWriter {
 public:
  explicit ChatWriter(ResponseContext ctx) : OpenAiWriter(std::move(ctx), "chat.completion.chunk") {}

  json response(const std::vector<Piece>& all, const Usage& usage) override {
    json choices = json::array();
    for (const Piece& p : all) {
      OutputSummary out = summarize(p.events);
      json message{{"role", "assistant"}, {"content", p.text}};
      // As OpenAI answers a call: content null unless the model also wrote text.
      if (!out.calls.empty() && p.text.empty()) message["content"] = nullptr;
      if (!out.reasoning.empty()) message["reasoning_content"] = out.reasoning;
      if (!out.calls.empty()) {
        json calls = json::array();
        for (const auto& call : out.calls) calls.push_back(tool_call_json(call));
        message["tool_calls"] = std::move(calls);
      }
      json choice{{"index", p.index},
                  {"message", std::move(message)},
                  {"logprobs", ctx_.logprobs ? chat_logprobs(*ctx_.tokenizer, p.logprobs) : json(nullptr)},
                  {"finish_reason", chat_finish_reason(p)}};
      if (!p.stop_sequence.empty()) choice["stop_reason"] = p.stop_sequence;
      choices.push_back(std::move(choice));
    }
    return answer("chat.completion", std::move(choices), usage);
  }

  std::string stream_start(const Usage&) override {
    std::string out;
    for (int i = 0; i < ctx_.n; i++) {
      json delta{{"role", "assistant"}, {"content", ""}};
      out += sse_data(chunk(json{{"index", i}, {"delta", std::move(delta)}, {"logprobs", nullptr},
                                 {"finish_reason", nullptr}}));
    }
    return out;
  }

  std::string stream_piece(const Piece& piece) override {
    json logprobs = piece.logprobs.empty() ? json(nullptr) : chat_logprobs(*ctx_.tokenizer, piece.logprobs);
    std::string out;
    for (const OutputEvent& e : piece.events) {
      json delta = event_delta(e);
      if (delta.is_null()) continue;
      out += sse_data(chunk(json{{"index", piece.index}, {"delta", std::move(delta)},
                                 {"logprobs", std::move(logprobs)}, {"finish_reason", nullptr}}));
      logprobs = nullptr;  // the piece's logprobs ride on its first chunk
    }
    if (out.empty() && (piece.events.empty() || !logprobs.is_null())) {
      out = sse_data(chunk(json{{"index", piece.index}, {"delta", {{"content", piece.text}}},
                                {"logprobs", std::move(logprobs)}, {"finish_reason", nullptr}}));
    }
    return out;
  }

 protected:
  json final_choice(int index) const override {
    return json{{"index", index}, {"delta", json::object()}, {"logprobs", nullptr}};
  }
};

class CompletionWriter : public OpenAiWriter {
 public:
  explicit CompletionWriter(ResponseContext ctx) : OpenAiWriter(std::move(ctx), "text_completion") {}

  json response(const std::vector<Piece>& all, const Usage& usage) override {
    json choices = json::array();
    for (const Piece& p : all) keep_prompt_logprobs(p);
    for (const Piece& p : all) {
      json choice{{"index", p.index},
                  {"text", ctx_.echo + p.text},
                  {"logprobs", ctx_.logprobs ? completion_logprobs(*ctx_.tokenizer, p.logprobs, ctx_.echo.size(),
                                                                   ctx_.echo_ids, prompt_logprobs_)
                                            : json(nullptr)},
                  {"finish_reason", openai_finish_reason(p.finish)}};
      if (!p.stop_sequence.empty()) choice["stop_reason"] = p.stop_sequence;
      choices.push_back(std::move(choice));
    }
    return answer("text_completion", std::move(choices), usage);
  }

  std::string stream_start(const Usage&) override {
    // With prompt logprobs the echo waits for them: they come with the first token.
    if (ctx_.echo.empty() || !ctx_.echo_ids.empty()) return "";
    std::string out;
    for (int i = 0; i < ctx_.n; i++)
      out += sse_data(chunk(json{{"index", i}, {"text", ctx_.echo}, {"logprobs", nullptr}, {"finish_reason", nullptr}}));
    return out;
  }

  std::string stream_piece(const Piece& piece) override {
    std::string out;
    keep_prompt_logprobs(piece);
    if (!ctx_.echo_ids.empty() && !prompt_logprobs_.empty() && !echoed_) {
      echoed_ = true;
      for (int i = 0; i < ctx_.n; i++) {
        json lp = completion_logprobs(*ctx_.tokenizer, {}, 0, ctx_.echo_ids, prompt_logprobs_);
        out += sse_data(chunk(json{{"index", i}, {"text", ctx_.echo}, {"logprobs", std::move(lp)},
                                   {"finish_reason", nullptr}}));
      }
    }
    json lp = piece.logprobs.empty() ? json(nullptr) : completion_logprobs(*ctx_.tokenizer, piece.logprobs, 0);
    return out + sse_data(chunk(json{{"index", piece.index}, {"text", piece.text}, {"logprobs", std::move(lp)},
                                     {"finish_reason", nullptr}}));
  }

 protected:
  json final_choice(int index) const override { return json{{"index", index}, {"text", ""}, {"logprobs", nullptr}}; }

 private:
  // Choice 0 alone asks the engine for prompt logprobs (every choice has the same prompt).
  void keep_prompt_logprobs(const Piece& p) {
    if (!p.prompt_logprobs.empty()) prompt_logprobs_ = p.prompt_logprobs;
  }

  std::vector<engine::PromptLogprob> prompt_logprobs_;
  bool echoed_ = false;
};

}  // namespace

const char* openai_finish_reason(engine::FinishReason finish) {
  return finish == engine::FinishReason::kLength ? "length" : "stop";
}

Result<GenerationSpec> parse_chat_request(const json& body) {
  GenerationSpec spec;
  spec.is_chat = true;
  if (!has(body, "messages")) return invalid_argument("messages: required");
  KEEL_ASSIGN_OR_RETURN(spec.messages, template_messages_from_openai(body["messages"]));
  if (has(body, "tools")) {
    if (!body["tools"].is_array()) return invalid_argument("tools: expected an array, got {}", describe(body["tools"]));
    spec.tools = body["tools"];
  }
  KEEL_RETURN_IF_ERROR(read_openai_tool_choice(body, spec.tools, &spec.tool_choice, &spec.parallel_tool_calls));
  if (has(body, "chat_template_kwargs")) {
    if (!body["chat_template_kwargs"].is_object()) {
      return invalid_argument("chat_template_kwargs: expected an object, got {}", describe(body["chat_template_kwargs"]));
    }
    spec.template_kwargs = body["chat_template_kwargs"];
  }
  KEEL_RETURN_IF_ERROR(read_bool(body, "add_generation_prompt", &spec.add_generation_prompt));
  if (has(body, "response_format"))
    KEEL_RETURN_IF_ERROR(read_response_format(body["response_format"], "response_format", &spec));
  KEEL_RETURN_IF_ERROR(read_common(body, &spec));
  bool logprobs = false;
  KEEL_RETURN_IF_ERROR(read_bool(body, "logprobs", &logprobs));
  int top = 0;
  KEEL_RETURN_IF_ERROR(read_int(body, "top_logprobs", 0, 20, &top));
  if (has(body, "top_logprobs") && !logprobs) return invalid_argument("top_logprobs: requires logprobs=true");
  if (logprobs) spec.request.top_logprobs = top;
  return spec;
}

Result<GenerationSpec> parse_completion_request(const json& body, int32_t vocab) {
  GenerationSpec spec;
  spec.max_tokens = 16;  // the OpenAI default for /v1/completions
  if (!has(body, "prompt")) return invalid_argument("prompt: required");
  const json& prompt = body["prompt"];
  const json* one = &prompt;
  if (prompt.is_array() && !prompt.empty() && (prompt[0].is_string() || prompt[0].is_array())) {
    if (prompt.size() != 1) {
      return invalid_argument("prompt: only one prompt per request is supported, got {}", prompt.size());
    }
    one = &prompt[0];
  }
  if (one->is_string()) {
    spec.prompt_text = one->get<std::string>();
  } else if (one->is_array()) {
    spec.prompt_is_ids = true;
    KEEL_RETURN_IF_ERROR(read_token_ids(*one, "prompt", vocab, &spec.request.prompt));
  } else {
    return invalid_argument("prompt: expected a string, an array of token ids, or a one-element array of either, "
                            "got {}", describe(prompt));
  }
  KEEL_RETURN_IF_ERROR(read_common(body, &spec));
  if (has(body, "response_format"))
    KEEL_RETURN_IF_ERROR(read_response_format(body["response_format"], "response_format", &spec));
  KEEL_RETURN_IF_ERROR(read_bool(body, "echo", &spec.echo));
  int best_of = 1;
  KEEL_RETURN_IF_ERROR(read_int(body, "best_of", 1, 128, &best_of));
  if (best_of != 1) return invalid_argument("best_of: only best_of=1 is supported, got {}", best_of);
  std::string suffix;
  KEEL_RETURN_IF_ERROR(read_string(body, "suffix", &suffix));
  if (!suffix.empty()) return invalid_argument("suffix: not supported");
  int logprobs = -1;
  KEEL_RETURN_IF_ERROR(read_int(body, "logprobs", 0, 20, &logprobs));
  spec.request.top_logprobs = logprobs;
  // echo with logprobs: the prompt's tokens' logprobs too, as OpenAI's completions answer.
  if (spec.echo && logprobs >= 0) spec.request.prompt_logprobs = logprobs;
  return spec;
}

std::unique_ptr<ResponseWriter> make_chat_writer(ResponseContext ctx) {
  return std::make_unique<ChatWriter>(std::move(ctx));
}

std::unique_ptr<ResponseWriter> make_completion_writer(ResponseContext ctx) {
  return std::make_unique<CompletionWriter>(std::move(ctx));
}

}  // namespace keel::server
