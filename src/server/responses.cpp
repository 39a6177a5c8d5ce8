// /v1/responses output: the completion's text as output items (reasoning, message, function_call) in the
// response object, or streamed as the Responses API's events, each with its sequence_number.
#include "server/responses.h"

#include <random>

#include "server/openai.h"
#include "server/sse.h"

namespace keel::server {

namespace {

class ResponsesWriter : public ResponseWriter {
 public:
  ResponsesWriter(ResponseContext ctx, ResponsesRequest request, ResponseStore* store)
      : ctx_(std::move(ctx)), request_(std::move(request)), store_(store), rng_(std::random_device{}()) {}

  json response(const std::vector<Piece>& choices, const Usage& usage) override {
    const Piece& all = choices.at(0);
    apply(all);
    return finish(all, usage);
  }

  std::string stream_start(const Usage&) override {
    streaming_ = true;
    json r = envelope("in_progress");
    r["usage"] = nullptr;
    event("response.created", json{{"response", r}});
    event("response.in_progress", json{{"response", r}});
    return take();
  }

  std::string stream_piece(const Piece& piece) override {
    apply(piece);
    return take();
  }

  std::string stream_choice_end(const Piece&) override { return ""; }

  std::string stream_end(const Piece& last, const Usage& usage) override {
    json r = finish(last, usage);
    event(r["status"] == "completed" ? "response.completed" : "response.incomplete", json{{"response", r}});
    return take();
  }

  std::string stream_error(const ApiError& error) override {
    close_open();
    json r = envelope("failed");
    r["error"] = json{{"code", error.status == 503 ? "server_is_overloaded" : "server_error"}, {"message", error.message}};
    r["output"] = output_;
    event("response.failed", json{{"response", r}});
    return take();
  }

 private:
  std::string new_id(const char* prefix) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id = prefix;
    for (int i = 0; i < 24; i++) id += kHex[rng_() % 16];
    return id;
  }

  void event(const char* type, json payload) {
    if (!streaming_) return;
    json e{{"type", type}, {"sequence_number", sequence_++}};
    for (auto& [k, v] : payload.items()) e[k] = std::move(v);
    sse_ += sse_event(type, e);
  }

  std::string take() { return std::exchange(sse_, ""); }

  json envelope(const char* status) const {
    json r{{"id", ctx_.id},   {"object", "response"}, {"created_at", ctx_.created}, {"status", status},
           {"background", false}, {"error", nullptr},  {"incomplete_details", nullptr}};
    for (auto& [k, v] : request_.echo.items()) r[k] = v;
    r["model"] = ctx_.model;
    r["output"] = json::array();
    r["service_tier"] = "default";
    return r;
  }

  // The open item (the last of output_), when it is of `type`.
  bool open_is(const char* type) const { return open_ && output_.back()["type"] == type; }

  int open_index() const { return static_cast<int>(output_.size()) - 1; }

  void open(json item) {
    close_open();
    output_.push_back(item);
    open_ = true;
    event("response.output_item.added", json{{"output_index", open_index()}, {"item", std::move(item)}});
  }

  // The output parser's events (text, reasoning, calls) when the request has tools or the model reasons; else
  // the piece's text is all message.
  void apply(const Piece& piece) {
    if (piece.events.empty()) {
      if (!piece.text.empty()) add_text(piece.text);
      return;
    }
    for (const OutputEvent& e : piece.events) {
      switch (e.kind) {
        case OutputEvent::Kind::kText: add_text(e.text); break;
        case OutputEvent::Kind::kReasoning: add_reasoning(e.text); break;
        case OutputEvent::Kind::kCallBegin: begin_call(e.id, e.name); break;
        case OutputEvent::Kind::kCallArguments: add_arguments(e.text); break;
        case OutputEvent::Kind::kCallEnd: close_open(); break;
      }
    }
  }

  void add_text(const std::string& text) {
    if (!open_is("message")) {
      open(json{{"id", new_id("msg_")}, {"type", "message"}, {"status", "in_progress"}, {"role", "assistant"},
                {"content", json::array()}});
      json part{{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}, {"logprobs", json::array()}};
      output_.back()["content"].push_back(part);
      event("response.content_part.added", json{{"item_id", output_.back()["id"]}, {"output_index", open_index()},
                                                {"content_index", 0}, {"part", part}});
    }
    json& part = output_.back()["content"][0];
    part["text"] = part["text"].get<std::string>() + text;
    event("response.output_text.delta", json{{"item_id", output_.back()["id"]}, {"output_index", open_index()},
                                             {"content_index", 0}, {"delta", text}, {"logprobs", json::array()}});
  }

  void add_reasoning(const std::string& text) {
    if (!open_is("reasoning")) {
      open(json{{"id", new_id("rs_")}, {"type", "reasoning"}, {"status", "in_progress"}, {"summary", json::array()},
                {"content", json::array()}});
      output_.back()["content"].push_back(json{{"type", "reasoning_text"}, {"text", ""}});
    }
    json& part = output_.back()["content"][0];
    part["text"] = part["text"].get<std::string>() + text;
    event("response.reasoning_text.delta", json{{"item_id", output_.back()["id"]}, {"output_index", open_index()},
                                                {"content_index", 0}, {"delta", text}});
  }

  void begin_call(const std::string& call_id, const std::string& name) {
    json item{{"id", new_id("fc_")}, {"type", "function_call"}, {"status", "in_progress"}, {"arguments", ""},
              {"call_id", call_id}, {"name", name}};
    if (auto ns = request_.namespaces.find(name); ns != request_.namespaces.end()) item["namespace"] = ns->second;
    open(std::move(item));
  }

  void add_arguments(const std::string& text) {
    if (!open_is("function_call")) return;
    json& item = output_.back();
    item["arguments"] = item["arguments"].get<std::string>() + text;
    event("response.function_call_arguments.delta",
          json{{"item_id", item["id"]}, {"output_index", open_index()}, {"delta", text}});
  }

  // Ends the open item with its .done events; `status` is completed, or incomplete when the output was cut.
  void close_open(const char* status = "completed") {
    if (!open_) return;
    open_ = false;
    json& item = output_.back();
    const json id = item["id"];
    const int index = open_index();
    item["status"] = status;
    if (item["type"] == "message") {
      const json& part = item["content"][0];
      event("response.output_text.done", json{{"item_id", id}, {"output_index", index}, {"content_index", 0},
                                              {"text", part["text"]}, {"logprobs", json::array()}});
      event("response.content_part.done",
            json{{"item_id", id}, {"output_index", index}, {"content_index", 0}, {"part", part}});
    } else if (item["type"] == "reasoning") {
      const json& text = item["content"][0]["text"];
      event("response.reasoning_text.done",
            json{{"item_id", id}, {"output_index", index}, {"content_index", 0}, {"text", text}});
      if (request_.reasoning_summary) {
        // No summarizer: the summary asked for is the reasoning itself.
        json part{{"type", "summary_text"}, {"text", text}};
        event("response.reasoning_summary_part.added", json{{"item_id", id}, {"output_index", index},
                                                            {"summary_index", 0},
                                                            {"part", {{"type", "summary_text"}, {"text", ""}}}});
        event("response.reasoning_summary_text.delta",
              json{{"item_id", id}, {"output_index", index}, {"summary_index", 0}, {"delta", text}});
        event("response.reasoning_summary_text.done",
              json{{"item_id", id}, {"output_index", index}, {"summary_index", 0}, {"text", text}});
        event("response.reasoning_summary_part.done",
              json{{"item_id", id}, {"output_index", index}, {"summary_index", 0}, {"part", part}});
        item["summary"].push_back(part);
      }
    } else if (item["type"] == "function_call") {
      event("response.function_call_arguments.done", json{{"item_id", id}, {"output_index", index},
                                                          {"arguments", item["arguments"]}, {"name", item["name"]}});
    }
    event("response.output_item.done", json{{"output_index", index}, {"item", item}});
  }

  // The final response object; stored when the request asked to be.
  json finish(const Piece& last, const Usage& usage) {
    const bool cut = last.finish == engine::FinishReason::kLength;
    close_open(cut ? "incomplete" : "completed");
    json r = envelope(cut ? "incomplete" : "completed");
    if (cut) r["incomplete_details"] = json{{"reason", "max_output_tokens"}};
    r["output"] = output_;
    int reasoning_tokens = 0;
    for (const json& item : output_)
      if (item["type"] == "reasoning" && ctx_.tokenizer != nullptr)
        reasoning_tokens += static_cast<int>(ctx_.tokenizer->encode(item["content"][0]["text"].get<std::string>(), false).size());
    r["usage"] = json{{"input_tokens", usage.prompt_tokens},
                      {"input_tokens_details", {{"cached_tokens", usage.cached_tokens}}},
                      {"output_tokens", usage.completion_tokens},
                      {"output_tokens_details", {{"reasoning_tokens", std::min(reasoning_tokens, usage.completion_tokens)}}},
                      {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
    if (request_.store && store_ != nullptr) {
      json conversation = request_.conversation;
      for (const json& item : output_) conversation.push_back(item);
      store_->put(ctx_.id, StoredResponse{r, std::move(conversation)});
    }
    return r;
  }

  ResponseContext ctx_;
  ResponsesRequest request_;
  ResponseStore* store_;
  std::mt19937_64 rng_;
  json output_ = json::array();
  bool open_ = false;  // the last output item is still receiving deltas
  bool streaming_ = false;
  int sequence_ = 0;
  std::string sse_;  // events not yet handed out
};

}  // namespace

std::unique_ptr<ResponseWriter> make_responses_writer(ResponseContext ctx, ResponsesRequest request,
                                                      ResponseStore* store) {
  return std::make_unique<ResponsesWriter>(std::move(ctx), std::move(request), store);
}

}  // namespace keel::server
