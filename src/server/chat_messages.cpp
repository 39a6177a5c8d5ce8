#include "server/chat_messages.h"

#include <vector>

#include "base/json_parse.h"
#include "server/request_fields.h"

namespace keel::server {

namespace {

// OpenAI content: a string, null, or an array of {"type": "text", "text"} parts (joined as they are, as before
// tool history existed: clients split one text into parts).
Result<json> content_string(const json& content, const std::string& where) {
  if (content.is_null()) return json("");
  if (content.is_string()) return content;
  if (!content.is_array()) {
    return invalid_argument("{}: expected a string or an array of content parts, got {}", where, describe(content));
  }
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    std::string at = fmt::format("{}[{}]", where, i);
    if (!part.is_object()) return invalid_argument("{}: expected an object, got {}", at, describe(part));
    std::string type;
    KEEL_RETURN_IF_ERROR(read_string(part, "type", &type).with_context(at));
    if (type != "text") {
      return invalid_argument("{}.type: \"{}\" parts are not supported: keel serves text-only models (no vision, "
                              "audio or files); send \"text\" parts",
                              at, type);
    }
    if (!part.contains("text") || !part["text"].is_string()) return invalid_argument("{}.text: expected a string", at);
    text += part["text"].get<std::string>();
  }
  return json(text);
}

// An assistant's tool_calls as templates expect them: function.arguments a mapping. OpenAI sends arguments as a JSON
// string; it is parsed (vLLM does the same) unless it is not JSON, which a model's malformed call echoed back by
// the client can be, and then it stays the string the model wrote. Absent, null or "" arguments are {}.
Result<json> template_tool_calls(const json& calls, const std::string& where) {
  if (!calls.is_array()) return invalid_argument("{}: expected an array, got {}", where, describe(calls));
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::string at = fmt::format("{}[{}]", where, i);
    if (!calls[i].is_object()) return invalid_argument("{}: expected an object, got {}", at, describe(calls[i]));
    json call = calls[i];
    if (!call.contains("function") || !call["function"].is_object()) {
      return invalid_argument("{}.function: expected an object with a name and arguments", at);
    }
    json& fn = call["function"];
    if (!fn.contains("name") || !fn["name"].is_string()) return invalid_argument("{}.function.name: expected a string", at);
    json& args = fn["arguments"];
    if (args.is_null() || (args.is_string() && args.get_ref<const std::string&>().empty())) {
      args = json::object();
    } else if (args.is_string()) {
      Result<json> parsed = parse_json_bounded<json>(args.get_ref<const std::string&>(), kRequestJsonDepth, "arguments");
      if (parsed.ok() && (parsed->is_object() || parsed->is_array())) args = std::move(*parsed);
    } else if (!args.is_object()) {
      return invalid_argument("{}.function.arguments: expected a JSON string or an object, got {}", at, describe(args));
    }
    // Last: ordered_json keeps its members in a vector, so adding one moves `fn` and `args`.
    if (!call.contains("type")) call["type"] = "function";
    out.push_back(std::move(call));
  }
  return out;
}

std::string text_of(const json& message) {
  const auto it = message.find("content");
  return it != message.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string trimmed(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string joined(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + "\n\n" + b;
}

}  // namespace

Result<json> template_messages_from_openai(const json& messages) {
  if (!messages.is_array() || messages.empty()) {
    return invalid_argument("messages: expected a non-empty array of messages, got {}", describe(messages));
  }
  json out = json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string at = fmt::format("messages[{}]", i);
    if (!m.is_object()) return invalid_argument("{}: expected an object, got {}", at, describe(m));
    if (!m.contains("role") || !m["role"].is_string()) return invalid_argument("{}.role: expected a string", at);
    json message = m;
    if (message["role"] == "developer") message["role"] = "system";
    const bool calls = has(m, "tool_calls");
    if (!m.contains("content") && !calls) return invalid_argument("{}.content: required", at);
    KEEL_ASSIGN_OR_RETURN(message["content"], content_string(m.contains("content") ? m["content"] : json(), at + ".content"));
    if (calls) {
      KEEL_ASSIGN_OR_RETURN(message["tool_calls"], template_tool_calls(m["tool_calls"], at + ".tool_calls"));
    } else if (m.contains("tool_calls")) {
      message.erase("tool_calls");  // null: templates test `message.tool_calls is defined`
    }
    for (const char* field : {"tool_call_id", "name", "reasoning_content", "reasoning"}) {
      if (has(m, field) && !m[field].is_string()) {
        return invalid_argument("{}.{}: expected a string, got {}", at, field, describe(m[field]));
      }
    }
    // vLLM's newer name for the same text; templates read reasoning_content.
    if (has(m, "reasoning") && !has(m, "reasoning_content")) message["reasoning_content"] = m["reasoning"];
    out.push_back(std::move(message));
  }
  return out;
}

json fold_inline_system(const json& messages) {
  json out = json::array();
  std::string pending;  // system text after an assistant message, waiting for the next message
  bool started = false;  // a non-system message has been seen
  for (const json& m : messages) {
    const bool system = m.value("role", "") == "system";
    if (system && !started) {
      if (!out.empty()) {
        out.back()["content"] = joined(text_of(out.back()), text_of(m));
      } else {
        out.push_back(m);
      }
      continue;
    }
    if (system) {
      const std::string text = text_of(m);
      const std::string prev = out.empty() ? "" : out.back().value("role", "");
      if (pending.empty() && (prev == "user" || prev == "tool")) {
        out.back()["content"] = joined(text_of(out.back()), text);
      } else {
        pending = joined(pending, text);
      }
      continue;
    }
    started = true;
    if (!pending.empty()) {
      if (m.value("role", "") == "user") {
        json user = m;
        user["content"] = joined(pending, text_of(m));
        out.push_back(std::move(user));
        pending.clear();
        continue;
      }
      out.push_back(json{{"role", "user"}, {"content", pending}});
      pending.clear();
    }
    out.push_back(m);
  }
  if (!pending.empty()) out.push_back(json{{"role", "user"}, {"content", pending}});
  return out;
}

Result<std::string> render_chat(const ChatTemplate& chat_template, const json& messages, const json& tools,
                                bool add_generation_prompt, const json& kwargs) {
  std::vector<std::string> inline_texts;
  bool started = false;
  for (const json& m : messages) {
    const bool system = m.value("role", "") == "system";
    if (system && started) inline_texts.push_back(trimmed(text_of(m)));
    started = started || !system;
  }
  Result<std::string> in_place = chat_template.render(messages, tools, add_generation_prompt, kwargs);
  if (inline_texts.empty()) return in_place;
  if (in_place.ok()) {
    bool shown = true;
    for (const std::string& text : inline_texts) shown = shown && in_place->find(text) != std::string::npos;
    if (shown) return in_place;
  }
  return chat_template.render(fold_inline_system(messages), tools, add_generation_prompt, kwargs);
}

}  // namespace keel::server
