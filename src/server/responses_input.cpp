// /v1/responses request parsing: input items → chat messages, tools → the template's function tools, and the
// fields the response object repeats.
#include <limits>

#include "server/chat_messages.h"
#include "server/request_fields.h"
#include "server/structured_output.h"
#include "server/responses.h"

namespace keel::server {

namespace {

// Text of a message's content: a string, or parts of type input_text / output_text / text / refusal (joined).
Result<std::string> content_text(const json& content, const std::string& at) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) {
    return invalid_argument("{}: expected a string or an array of content parts, got {}", at, describe(content));
  }
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string where = fmt::format("{}[{}]", at, i);
    if (!part.is_object()) return invalid_argument("{}: expected an object, got {}", where, describe(part));
    std::string type;
    KEEL_RETURN_IF_ERROR(read_string(part, "type", &type).with_context(where));
    const char* field = type == "refusal" ? "refusal" : "text";
    if (type == "input_image" || type == "input_file" || type == "input_audio") {
      return invalid_argument("{}.type: \"{}\" is not supported (keel serves text-only models)", where, type);
    }
    if (type != "input_text" && type != "output_text" && type != "text" && type != "refusal") {
      return invalid_argument("{}.type: expected \"input_text\" or \"output_text\", got \"{}\"", where, type);
    }
    if (!part.contains(field) || !part[field].is_string()) return invalid_argument("{}.{}: expected a string", where, field);
    text += part[field].get<std::string>();
  }
  return text;
}

std::string reasoning_text(const json& item) {
  std::string text;
  for (const char* key : {"content", "summary"}) {
    if (!item.contains(key) || !item[key].is_array()) continue;
    for (const json& part : item[key])
      if (part.is_object() && part.contains("text") && part["text"].is_string()) text += part["text"].get<std::string>();
    if (!text.empty()) break;  // the raw text when there is one, else the summary
  }
  return text;
}

// The conversation's items as chat messages. Leading system/developer messages (and `instructions`) become the
// one system message every template accepts; consecutive function_call items become one assistant message with
// tool_calls; a reasoning item's text goes to the next assistant message as reasoning_content.
Result<json> to_messages(const json& items, const std::string& instructions) {
  json messages = json::array();
  std::string system = instructions;
  bool leading = true;
  std::string reasoning;
  auto assistant = [&]() -> json& {
    if (messages.empty() || messages.back()["role"] != "assistant" || !messages.back().contains("tool_calls")) {
      json m{{"role", "assistant"}, {"content", ""}};
      if (!reasoning.empty()) m["reasoning_content"] = std::exchange(reasoning, "");
      messages.push_back(std::move(m));
    }
    return messages.back();
  };
  for (size_t i = 0; i < items.size(); ++i) {
    const json& item = items[i];
    const std::string at = fmt::format("input[{}]", i);
    if (!item.is_object()) return invalid_argument("{}: expected an object, got {}", at, describe(item));
    std::string type = "message";  // EasyInputMessage has no type
    KEEL_RETURN_IF_ERROR(read_string(item, "type", &type).with_context(at));
    if (type == "message") {
      std::string role;
      KEEL_RETURN_IF_ERROR(read_string(item, "role", &role).with_context(at));
      if (role != "user" && role != "assistant" && role != "system" && role != "developer") {
        return invalid_argument("{}.role: expected \"user\", \"assistant\", \"system\" or \"developer\", got \"{}\"",
                                at, role);
      }
      if (!item.contains("content")) return invalid_argument("{}.content: required", at);
      KEEL_ASSIGN_OR_RETURN(std::string text, content_text(item["content"], at + ".content"));
      if (role == "system" || role == "developer") {
        if (leading) {
          system += (system.empty() ? "" : "\n\n") + text;
          continue;
        }
        role = "system";
      }
      leading = false;
      json m{{"role", role}, {"content", text}};
      if (role == "assistant" && !reasoning.empty()) m["reasoning_content"] = std::exchange(reasoning, "");
      messages.push_back(std::move(m));
    } else if (type == "function_call") {
      leading = false;
      std::string call_id, name, arguments;
      KEEL_RETURN_IF_ERROR(read_string(item, "call_id", &call_id).with_context(at));
      KEEL_RETURN_IF_ERROR(read_string(item, "name", &name).with_context(at));
      KEEL_RETURN_IF_ERROR(read_string(item, "arguments", &arguments).with_context(at));
      if (name.empty()) return invalid_argument("{}.name: required", at);
      json& m = assistant();
      if (!m.contains("tool_calls")) m["tool_calls"] = json::array();
      m["tool_calls"].push_back(json{{"id", call_id},
                                     {"type", "function"},
                                     {"function", {{"name", name}, {"arguments", arguments}}}});
    } else if (type == "function_call_output") {
      leading = false;
      std::string call_id;
      KEEL_RETURN_IF_ERROR(read_string(item, "call_id", &call_id).with_context(at));
      if (!item.contains("output")) return invalid_argument("{}.output: required", at);
      KEEL_ASSIGN_OR_RETURN(std::string output, content_text(item["output"], at + ".output"));
      messages.push_back(json{{"role", "tool"}, {"tool_call_id", call_id}, {"content", output}});
    } else if (type == "reasoning") {
      // Its text returns to the model with the assistant turn it preceded (templates that keep reasoning read
      // reasoning_content); encrypted_content means nothing to keel and is dropped.
      reasoning += reasoning_text(item);
    } else {
      return invalid_argument("{}.type: \"{}\" items are not supported (message, function_call, "
                              "function_call_output and reasoning are)", at, type);
    }
  }
  if (!system.empty()) messages.insert(messages.begin(), json{{"role", "system"}, {"content", system}});
  return messages;
}

// Responses tools ({type: function, name, ...}) in the chat templates' shape ({type: function, function: {...}}).
// A namespace's functions are flattened under their own names. Hosted tools keel cannot run are refused by type.
Status read_tools(const json& tools, ResponsesRequest* out) {
  if (!tools.is_array()) return invalid_argument("tools: expected an array, got {}", describe(tools));
  json chat_tools = json::array();
  auto add_function = [&](const json& t, const std::string& at, const std::string& ns) -> Status {
    std::string name;
    KEEL_RETURN_IF_ERROR(read_string(t, "name", &name).with_context(at));
    if (name.empty()) return invalid_argument("{}.name: required", at);
    json fn{{"name", name}};
    if (has(t, "description")) fn["description"] = t["description"];
    fn["parameters"] = has(t, "parameters") ? t["parameters"] : json{{"type", "object"}, {"properties", json::object()}};
    if (has(t, "strict")) fn["strict"] = t["strict"];
    chat_tools.push_back(json{{"type", "function"}, {"function", std::move(fn)}});
    if (!ns.empty()) out->namespaces[name] = ns;
    return Status();
  };
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    const std::string at = fmt::format("tools[{}]", i);
    if (!t.is_object()) return invalid_argument("{}: expected an object, got {}", at, describe(t));
    std::string type;
    KEEL_RETURN_IF_ERROR(read_string(t, "type", &type).with_context(at));
    if (type == "function") {
      KEEL_RETURN_IF_ERROR(add_function(t, at, ""));
    } else if (type == "namespace" && t.contains("tools") && t["tools"].is_array()) {
      std::string ns;
      KEEL_RETURN_IF_ERROR(read_string(t, "name", &ns).with_context(at));
      for (size_t j = 0; j < t["tools"].size(); ++j) {
        const json& inner = t["tools"][j];
        const std::string inner_at = fmt::format("{}.tools[{}]", at, j);
        if (!inner.is_object() || inner.value("type", "") != "function") {
          return invalid_argument("{}.type: only \"function\" tools are supported in a namespace", inner_at);
        }
        KEEL_RETURN_IF_ERROR(add_function(inner, inner_at, ns));
      }
    } else {
      return invalid_argument("{}.type: \"{}\" tools are not supported: keel runs no hosted tools, only \"function\" "
                              "tools the client executes (Codex CLI: set web_search = \"disabled\")", at, type);
    }
  }
  out->spec.tools = std::move(chat_tools);
  return Status();
}

// Responses' tool_choice ({"type": "function", "name"} for a named function) read as chat's, into the spec.
Status read_tool_choice(const json& body, ResponsesRequest* out) {
  json chat{{"parallel_tool_calls", has(body, "parallel_tool_calls") ? body["parallel_tool_calls"] : json(true)}};
  if (has(body, "tool_choice")) {
    const json& choice = body["tool_choice"];
    if (choice.is_object() && choice.value("type", "") == "function") {
      if (!choice.contains("name") || !choice["name"].is_string()) {
        return invalid_argument("tool_choice.name: expected a string, got {}", describe(choice));
      }
      chat["tool_choice"] = json{{"type", "function"}, {"function", {{"name", choice["name"]}}}};
    } else if (choice.is_object()) {
      return invalid_argument("tool_choice: expected \"auto\", \"none\", \"required\" or {{\"type\": \"function\", "
                              "\"name\": ...}}, got {}", describe(choice));
    } else {
      chat["tool_choice"] = choice;
    }
  }
  KEEL_RETURN_IF_ERROR(read_openai_tool_choice(chat, out->spec.tools, &out->spec.tool_choice,
                                               &out->spec.parallel_tool_calls));
  // "none": the model is not shown the tools either, so it writes text.
  if (out->spec.tool_choice.mode == ToolChoice::Mode::kNone) out->spec.tools = nullptr;
  return Status();
}

// text.format: chat's response_format in the Responses API's flat shape ({"type": "json_schema", "name", "schema",
// "strict"}), enforced by the same grammar.
Status read_text_format(const json& body, GenerationSpec* spec) {
  if (!has(body, "text")) return Status();
  const json& text = body["text"];
  if (!text.is_object()) return invalid_argument("text: expected an object, got {}", describe(text));
  if (!has(text, "format")) return Status();
  return read_response_format(text["format"], "text.format", spec);
}

}  // namespace

Result<ResponsesRequest> parse_responses_request(const json& body, ResponseStore& store) {
  ResponsesRequest out;
  GenerationSpec& spec = out.spec;
  spec.is_chat = true;
  KEEL_RETURN_IF_ERROR(read_string(body, "model", &spec.model));
  if (has(body, "background") && body["background"] == true) {
    return invalid_argument("background: background responses are not supported");
  }
  if (has(body, "conversation")) return invalid_argument("conversation: conversations are not supported; use "
                                                         "previous_response_id");
  std::string previous;
  KEEL_RETURN_IF_ERROR(read_string(body, "previous_response_id", &previous));
  if (!previous.empty()) {
    std::optional<StoredResponse> stored = store.get(previous);
    if (!stored) return not_found("previous_response_id: Previous response with id '{}' not found.", previous);
    out.conversation = std::move(stored->conversation);
  }
  if (!has(body, "input")) return invalid_argument("input: required");
  const json& input = body["input"];
  if (input.is_string()) {
    out.conversation.push_back(json{{"type", "message"}, {"role", "user"},
                                    {"content", json::array({json{{"type", "input_text"}, {"text", input}}})}});
  } else if (input.is_array()) {
    for (const json& item : input) out.conversation.push_back(item);
  } else {
    return invalid_argument("input: expected a string or an array of input items, got {}", describe(input));
  }
  std::string instructions;
  KEEL_RETURN_IF_ERROR(read_string(body, "instructions", &instructions));
  Result<json> messages = to_messages(out.conversation, instructions);
  if (!messages.ok()) return messages.status();
  if (messages->empty()) return invalid_argument("input: no messages");
  // As the chat route gives them to the template: function_call arguments parsed into a mapping (chat_messages.h).
  KEEL_ASSIGN_OR_RETURN(spec.messages, template_messages_from_openai(*messages));

  if (has(body, "tools")) KEEL_RETURN_IF_ERROR(read_tools(body["tools"], &out));
  KEEL_RETURN_IF_ERROR(read_tool_choice(body, &out));
  KEEL_RETURN_IF_ERROR(read_text_format(body, &spec));
  if (has(body, "reasoning")) {
    const json& reasoning = body["reasoning"];
    if (!reasoning.is_object()) return invalid_argument("reasoning: expected an object, got {}", describe(reasoning));
    std::string effort;
    Status s = read_string(reasoning, "effort", &effort);
    if (!s.ok()) return invalid_argument("reasoning.{}", s.message());
    // No effort knob in the templates keel serves: "none"/"minimal" turn thinking off, any other effort on.
    if (!effort.empty()) spec.template_kwargs = json{{"enable_thinking", effort != "none" && effort != "minimal"}};
    out.reasoning_summary = has(reasoning, "summary");
  }
  if (has(body, "metadata") && !body["metadata"].is_object()) {
    return invalid_argument("metadata: expected an object, got {}", describe(body["metadata"]));
  }
  KEEL_RETURN_IF_ERROR(read_bool(body, "store", &out.store));
  KEEL_RETURN_IF_ERROR(read_bool(body, "stream", &spec.stream));
  KEEL_RETURN_IF_ERROR(read_sampling(body, &spec.request.sampling));
  int max_output_tokens = 0;
  if (has(body, "max_output_tokens")) {
    KEEL_RETURN_IF_ERROR(read_int(body, "max_output_tokens", 1, std::numeric_limits<int32_t>::max(), &max_output_tokens));
    spec.max_tokens = max_output_tokens;
  }
  KEEL_RETURN_IF_ERROR(read_string(body, "cache_salt", &spec.request.cache_salt));

  auto field = [&](const char* name, json fallback) { return has(body, name) ? body[name] : fallback; };
  out.echo = json{{"instructions", field("instructions", nullptr)},
                  {"max_output_tokens", field("max_output_tokens", nullptr)},
                  {"metadata", field("metadata", json::object())},
                  {"parallel_tool_calls", spec.parallel_tool_calls},
                  {"previous_response_id", field("previous_response_id", nullptr)},
                  {"reasoning", field("reasoning", json{{"effort", nullptr}, {"summary", nullptr}})},
                  {"store", out.store},
                  {"temperature", spec.request.sampling.temperature},
                  {"text", field("text", json{{"format", {{"type", "text"}}}})},
                  {"tool_choice", field("tool_choice", "auto")},
                  {"tools", field("tools", json::array())},
                  {"top_p", spec.request.sampling.top_p},
                  {"truncation", field("truncation", "disabled")},
                  {"user", field("user", nullptr)}};
  return out;
}

}  // namespace keel::server
