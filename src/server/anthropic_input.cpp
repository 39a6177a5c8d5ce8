#include "server/anthropic_input.h"

#include <limits>
#include <set>
#include <string_view>

#include "server/request_fields.h"

namespace keel::server {

namespace {

constexpr std::string_view kBillingHeader = "x-anthropic-billing-header";

std::string joined(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + "\n\n" + b;
}

Status unsupported_block(const std::string& at, const std::string& type) {
  if (type == "image") {
    return invalid_argument("{}.type: image blocks are not supported: keel serves text-only models (no vision)", at);
  }
  if (type == "document") {
    return invalid_argument("{}.type: document blocks are not supported: keel serves text-only models (no PDF or "
                            "document input); send their text in a text block",
                            at);
  }
  return invalid_argument("{}.type: \"{}\" blocks are not supported here", at, type);
}

Result<std::string> block_type(const json& block, const std::string& at) {
  if (!block.is_object()) return invalid_argument("{}: expected an object, got {}", at, describe(block));
  if (!block.contains("type") || !block["type"].is_string()) return invalid_argument("{}.type: expected a string", at);
  return block["type"].get<std::string>();
}

Result<std::string> block_text(const json& block, const std::string& at) {
  if (!block.contains("text") || !block["text"].is_string()) return invalid_argument("{}.text: expected a string", at);
  return block["text"].get<std::string>();
}

// `system` and system-role messages: a string or text blocks.
Result<std::string> system_text(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) {
    return invalid_argument("{}: expected a string or an array of text blocks, got {}", where, describe(content));
  }
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const std::string at = fmt::format("{}[{}]", where, i);
    KEEL_ASSIGN_OR_RETURN(std::string type, block_type(content[i], at));
    if (type != "text") return unsupported_block(at, type);
    KEEL_ASSIGN_OR_RETURN(std::string t, block_text(content[i], at));
    if (std::string_view(t).substr(0, kBillingHeader.size()) == kBillingHeader) continue;
    text = joined(text, t);
  }
  return text;
}

struct Converter {
  json messages = json::array();
  std::set<std::string> referenced_tools;  // tool_reference blocks: deferred tools the conversation has loaded

  Result<std::string> tool_result_text(const json& content, const std::string& where) {
    if (content.is_null()) return std::string();
    if (content.is_string()) return content.get<std::string>();
    if (!content.is_array()) {
      return invalid_argument("{}: expected a string or an array of blocks, got {}", where, describe(content));
    }
    std::string text;
    for (size_t i = 0; i < content.size(); ++i) {
      const std::string at = fmt::format("{}[{}]", where, i);
      KEEL_ASSIGN_OR_RETURN(std::string type, block_type(content[i], at));
      if (type == "text") {
        KEEL_ASSIGN_OR_RETURN(std::string t, block_text(content[i], at));
        text = joined(text, t);
      } else if (type == "tool_reference") {
        // Tool search (Claude Code's ToolSearch) answers with references that load deferred tools.
        const json& b = content[i];
        std::string name = b.contains("tool_name") && b["tool_name"].is_string() ? b["tool_name"].get<std::string>()
                           : b.contains("name") && b["name"].is_string()         ? b["name"].get<std::string>()
                                                                                  : "";
        if (name.empty()) return invalid_argument("{}.tool_name: expected a string", at);
        referenced_tools.insert(name);
        text = joined(text, "Tool loaded: " + name);
      } else {
        return unsupported_block(at, type);
      }
    }
    return text;
  }

  Status add_user(const json& content, const std::string& where) {
    if (content.is_string()) {
      messages.push_back(json{{"role", "user"}, {"content", content}});
      return Status();
    }
    if (!content.is_array()) {
      return invalid_argument("{}: expected a string or an array of content blocks, got {}", where, describe(content));
    }
    std::string text;
    bool any_text = false;
    auto flush = [&] {
      if (any_text) messages.push_back(json{{"role", "user"}, {"content", text}});
      text.clear();
      any_text = false;
    };
    bool any_result = false;
    for (size_t i = 0; i < content.size(); ++i) {
      const std::string at = fmt::format("{}[{}]", where, i);
      const json& block = content[i];
      KEEL_ASSIGN_OR_RETURN(std::string type, block_type(block, at));
      if (type == "text") {
        KEEL_ASSIGN_OR_RETURN(std::string t, block_text(block, at));
        text = joined(text, t);
        any_text = true;
      } else if (type == "tool_result") {
        flush();
        if (!block.contains("tool_use_id") || !block["tool_use_id"].is_string()) {
          return invalid_argument("{}.tool_use_id: expected a string", at);
        }
        KEEL_ASSIGN_OR_RETURN(std::string result,
                              tool_result_text(block.contains("content") ? block["content"] : json(), at + ".content"));
        bool is_error = false;
        KEEL_RETURN_IF_ERROR(read_bool(block, "is_error", &is_error).with_context(at));
        if (is_error) result = "Error: " + result;
        messages.push_back(json{{"role", "tool"}, {"tool_call_id", block["tool_use_id"]}, {"content", result}});
        any_result = true;
      } else {
        return unsupported_block(at, type);
      }
    }
    // An empty block list is still a user turn: templates check that roles alternate.
    if (!any_text && !any_result) any_text = true;
    flush();
    return Status();
  }

  Status add_assistant(const json& content, const std::string& where) {
    if (content.is_string()) {
      messages.push_back(json{{"role", "assistant"}, {"content", content}});
      return Status();
    }
    if (!content.is_array()) {
      return invalid_argument("{}: expected a string or an array of content blocks, got {}", where, describe(content));
    }
    std::string text, reasoning;
    json calls = json::array();
    for (size_t i = 0; i < content.size(); ++i) {
      const std::string at = fmt::format("{}[{}]", where, i);
      const json& block = content[i];
      KEEL_ASSIGN_OR_RETURN(std::string type, block_type(block, at));
      if (type == "text") {
        KEEL_ASSIGN_OR_RETURN(std::string t, block_text(block, at));
        text = joined(text, t);
      } else if (type == "thinking") {
        if (!block.contains("thinking") || !block["thinking"].is_string()) {
          return invalid_argument("{}.thinking: expected a string", at);
        }
        reasoning = joined(reasoning, block["thinking"].get<std::string>());
      } else if (type == "redacted_thinking") {
        continue;  // encrypted by Anthropic's API: nothing a local model can read
      } else if (type == "tool_use") {
        if (!block.contains("id") || !block["id"].is_string()) return invalid_argument("{}.id: expected a string", at);
        if (!block.contains("name") || !block["name"].is_string()) {
          return invalid_argument("{}.name: expected a string", at);
        }
        json input = block.contains("input") ? block["input"] : json::object();
        if (input.is_null()) input = json::object();
        if (!input.is_object()) return invalid_argument("{}.input: expected an object, got {}", at, describe(input));
        calls.push_back(json{{"id", block["id"]},
                             {"type", "function"},
                             {"function", {{"name", block["name"]}, {"arguments", std::move(input)}}}});
      } else {
        return unsupported_block(at, type);
      }
    }
    json message{{"role", "assistant"}, {"content", text}};
    if (!reasoning.empty()) message["reasoning_content"] = reasoning;
    if (!calls.empty()) message["tool_calls"] = std::move(calls);
    messages.push_back(std::move(message));
    return Status();
  }
};

// clear_thinking_20251015's keep: the number of most recent assistant turns whose thinking stays; -1 keeps all.
// An assistant turn is every assistant message between two user messages (tool results do not end a turn).
Status read_context_management(const json& body, int* keep) {
  *keep = -1;
  if (!has(body, "context_management")) return Status();
  const json& cm = body["context_management"];
  if (!cm.is_object()) return invalid_argument("context_management: expected an object, got {}", describe(cm));
  if (!has(cm, "edits")) return Status();
  const json& edits = cm["edits"];
  if (!edits.is_array()) return invalid_argument("context_management.edits: expected an array, got {}", describe(edits));
  for (size_t i = 0; i < edits.size(); ++i) {
    const std::string at = fmt::format("context_management.edits[{}]", i);
    KEEL_ASSIGN_OR_RETURN(std::string type, block_type(edits[i], at));
    // Other strategies (clear_tool_uses_20250919, ...) are accepted and not applied: keel never edits the history.
    if (type != "clear_thinking_20251015") continue;
    const json& e = edits[i];
    if (!has(e, "keep")) {
      *keep = 1;  // Anthropic's default for this strategy
    } else if (e["keep"].is_string() && e["keep"] == "all") {
      *keep = -1;
    } else if (e["keep"].is_object() && e["keep"].value("type", "") == "thinking_turns") {
      KEEL_RETURN_IF_ERROR(read_int(e["keep"], "value", 0, 1 << 30, keep).with_context(at + ".keep"));
    } else {
      return invalid_argument("{}.keep: expected \"all\" or {{\"type\": \"thinking_turns\", \"value\": N}}, got {}", at,
                              describe(e["keep"]));
    }
  }
  return Status();
}

void clear_old_thinking(int keep, json* messages) {
  if (keep < 0) return;
  int turns = 0;
  bool in_turn = false;
  for (auto it = messages->rbegin(); it != messages->rend(); ++it) {
    const std::string role = it->value("role", "");
    if (role == "user") in_turn = false;
    if (role != "assistant") continue;
    if (!in_turn) ++turns;
    in_turn = true;
    if (turns > keep) it->erase("reasoning_content");
  }
}

// thinking, output_config.effort and chat_template_kwargs → the template's variables (null when none).
Status read_template_kwargs(const json& body, json* kwargs) {
  json out = json::object();
  std::string thinking;
  if (has(body, "thinking")) {
    const json& th = body["thinking"];
    if (!th.is_object() || !th.contains("type") || !th["type"].is_string() ||
        (th["type"] != "enabled" && th["type"] != "disabled" && th["type"] != "adaptive")) {
      return invalid_argument("thinking.type: expected \"enabled\", \"disabled\" or \"adaptive\"");
    }
    thinking = th["type"].get<std::string>();
    int budget = 0;
    KEEL_RETURN_IF_ERROR(read_int(th, "budget_tokens", 0, std::numeric_limits<int32_t>::max(), &budget)
                             .with_context("thinking"));
    std::string display;
    KEEL_RETURN_IF_ERROR(read_string(th, "display", &display).with_context("thinking"));
    out["enable_thinking"] = thinking != "disabled";
  }
  if (has(body, "output_config")) {
    const json& oc = body["output_config"];
    if (!oc.is_object()) return invalid_argument("output_config: expected an object, got {}", describe(oc));
    std::string effort;
    KEEL_RETURN_IF_ERROR(read_string(oc, "effort", &effort).with_context("output_config"));
    if (!effort.empty()) {
      out["reasoning_effort"] = effort;
      // A local template thinks or does not: the lowest effort is no thinking, unless the client asked for it.
      if (effort == "low" && thinking != "enabled") out["enable_thinking"] = false;
    }
  }
  if (has(body, "chat_template_kwargs")) {
    const json& k = body["chat_template_kwargs"];
    if (!k.is_object()) return invalid_argument("chat_template_kwargs: expected an object, got {}", describe(k));
    for (const auto& [name, value] : k.items()) out[name] = value;
  }
  *kwargs = out.empty() ? json(nullptr) : std::move(out);
  return Status();
}

// Anthropic tools in OpenAI's function shape, which chat templates expect. Deferred tools (defer_loading) are
// only shown once a tool_reference in the conversation has loaded them, as Anthropic's tool search does.
Result<json> template_tools(const json& tools, const std::set<std::string>& referenced) {
  if (!tools.is_array()) return invalid_argument("tools: expected an array, got {}", describe(tools));
  json out = json::array();
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) {
      return invalid_argument("tools[{}].name: expected a string", i);
    }
    if (t.contains("type") && t["type"].is_string() && t["type"] != "custom" && !t.contains("input_schema")) continue;
    if (t.value("defer_loading", false) && !referenced.count(t["name"].get<std::string>())) continue;
    json fn{{"name", t["name"]}};
    if (t.contains("description")) fn["description"] = t["description"];
    fn["parameters"] = t.contains("input_schema") ? t["input_schema"] : json{{"type", "object"}, {"properties", json::object()}};
    out.push_back(json{{"type", "function"}, {"function", std::move(fn)}});
  }
  return out;
}

}  // namespace

Status read_anthropic_prompt(const json& body, GenerationSpec* spec) {
  Converter conv;
  if (has(body, "system")) {
    KEEL_ASSIGN_OR_RETURN(std::string system, system_text(body["system"], "system"));
    conv.messages.push_back(json{{"role", "system"}, {"content", system}});
  }
  if (!has(body, "messages")) return invalid_argument("messages: required");
  const json& messages = body["messages"];
  if (!messages.is_array() || messages.empty()) {
    return invalid_argument("messages: expected a non-empty array of messages, got {}", describe(messages));
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string at = fmt::format("messages[{}]", i);
    if (!m.is_object()) return invalid_argument("{}: expected an object, got {}", at, describe(m));
    const std::string role = m.contains("role") && m["role"].is_string() ? m["role"].get<std::string>() : "";
    if (role != "user" && role != "assistant" && role != "system") {
      return invalid_argument("{}.role: expected \"user\", \"assistant\" or \"system\"", at);
    }
    if (!m.contains("content")) return invalid_argument("{}.content: required", at);
    if (role == "user") {
      KEEL_RETURN_IF_ERROR(conv.add_user(m["content"], at + ".content"));
    } else if (role == "assistant") {
      KEEL_RETURN_IF_ERROR(conv.add_assistant(m["content"], at + ".content"));
    } else {
      KEEL_ASSIGN_OR_RETURN(std::string text, system_text(m["content"], at + ".content"));
      conv.messages.push_back(json{{"role", "system"}, {"content", text}});
    }
  }
  int keep = -1;
  KEEL_RETURN_IF_ERROR(read_context_management(body, &keep));
  clear_old_thinking(keep, &conv.messages);
  spec->messages = std::move(conv.messages);
  if (has(body, "tools")) {
    KEEL_ASSIGN_OR_RETURN(spec->tools, template_tools(body["tools"], conv.referenced_tools));
  }
  return read_template_kwargs(body, &spec->template_kwargs);
}

}  // namespace keel::server
