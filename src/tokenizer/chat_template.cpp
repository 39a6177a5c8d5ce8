#include "tokenizer/chat_template.h"

#include <ctime>

#include "base/json_parse.h"
#include "format/gguf.h"
#include "tokenizer/gguf_tokenizer.h"

namespace keel {
namespace {

using json = nlohmann::ordered_json;

// A special token is written either as "<s>" or as {"content": "<s>", ...} (AddedToken).
std::optional<std::string> token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

Result<std::shared_ptr<jinja::Template>> compile(const std::string& source, const std::string& origin) {
  auto t = jinja::Template::parse(source);
  if (!t.ok()) return Status(t.status().code(), t.status().message() + " (" + origin + ")");
  return std::make_shared<jinja::Template>(std::move(t).value());
}

}  // namespace

Result<ChatTemplate> ChatTemplate::from_source(const std::string& source,
                                               std::map<std::string, std::string> special_tokens,
                                               const std::string& origin, env::Env* env) {
  ChatTemplate ct;
  KEEL_ASSIGN_OR_RETURN(auto compiled, compile(source, origin));
  ct.templates_["default"] = std::make_shared<Named>(Named{source, *compiled});
  ct.special_tokens_ = std::move(special_tokens);
  ct.origin_ = origin;
  ct.env_ = env;
  return ct;
}

Result<ChatTemplate> ChatTemplate::load(const std::string& dir, env::Env* env) {
  if (format::is_gguf_path(dir) && !env->is_directory(dir)) {
    KEEL_ASSIGN_OR_RETURN(auto gguf, format::GgufFile::open(env, dir));
    KEEL_ASSIGN_OR_RETURN(tokenizer::GgufTokenizerFiles files, tokenizer::tokenizer_files_from_gguf(*gguf));
    if (files.chat_template.empty()) return not_found("no chat template: {} has no tokenizer.chat_template", dir);
    return from_source(files.chat_template, {{"bos_token", files.bos_token}, {"eos_token", files.eos_token}},
                       dir + ": tokenizer.chat_template", env);
  }
  ChatTemplate ct;
  ct.env_ = env;
  const std::string config_path = env::join_path(dir, "tokenizer_config.json");
  json config = json::object();
  if (env->file_exists(config_path)) {
    KEEL_ASSIGN_OR_RETURN(std::string text, env->read_file(config_path));
    Result<json> parsed = parse_json_bounded<json>(text, kModelFileJsonDepth, config_path);
    if (!parsed.ok()) return Status(Code::kCorruption, parsed.status().message());
    config = std::move(parsed).value();
    if (!config.is_object()) return corruption("tokenizer_config.json is not a JSON object ({})", config_path);
    for (const char* name : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
      if (!config.contains(name)) continue;
      if (auto t = token_text(config[name])) ct.special_tokens_[name] = *t;
    }
  }
  const std::string jinja_path = env::join_path(dir, "chat_template.jinja");
  if (env->file_exists(jinja_path)) {
    KEEL_ASSIGN_OR_RETURN(std::string source, env->read_file(jinja_path));
    KEEL_ASSIGN_OR_RETURN(auto compiled, compile(source, jinja_path));
    ct.templates_["default"] = std::make_shared<Named>(Named{source, *compiled});
    ct.origin_ = jinja_path;
    return ct;
  }
  if (!config.contains("chat_template") || config["chat_template"].is_null()) {
    return not_found("no chat template: neither chat_template.jinja nor a chat_template in tokenizer_config.json ({})",
                     dir);
  }
  ct.origin_ = config_path;
  const json& field = config["chat_template"];
  if (field.is_string()) {
    KEEL_ASSIGN_OR_RETURN(auto compiled, compile(field.get<std::string>(), config_path));
    ct.templates_["default"] = std::make_shared<Named>(Named{field.get<std::string>(), *compiled});
    return ct;
  }
  if (!field.is_array()) {
    return corruption("chat_template must be a string or a list of {{name, template}} ({})", config_path);
  }
  for (const auto& entry : field) {
    if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") || !entry["name"].is_string() ||
        !entry["template"].is_string()) {
      return corruption("chat_template list entries must be {{name, template}} strings ({})", config_path);
    }
    std::string origin = config_path + ", template '" + entry["name"].get<std::string>() + "'";
    KEEL_ASSIGN_OR_RETURN(auto compiled, compile(entry["template"].get<std::string>(), origin));
    ct.templates_[entry["name"].get<std::string>()] =
        std::make_shared<Named>(Named{entry["template"].get<std::string>(), *compiled});
  }
  return ct;
}

Result<std::string> ChatTemplate::render(const json& messages, const json& tools, bool add_generation_prompt,
                                         const json& extra_kwargs) const {
  using jinja::Value;
  if (!messages.is_array()) return invalid_argument("messages must be a JSON array ({})", origin_);
  if (!tools.is_null() && !tools.is_array()) return invalid_argument("tools must be a JSON array ({})", origin_);
  if (!extra_kwargs.is_null() && !extra_kwargs.is_object()) {
    return invalid_argument("template kwargs must be a JSON object ({})", origin_);
  }
  // transformers picks "tool_use" for calls with tools when the tokenizer has one, else "default".
  auto it = templates_.end();
  if (!tools.is_null()) it = templates_.find("tool_use");
  if (it == templates_.end()) it = templates_.find("default");
  if (it == templates_.end()) {
    return not_found("the tokenizer's chat templates have no 'default' ({})", origin_);
  }

  std::map<std::string, Value> vars;
  for (const auto& [name, text] : special_tokens_) vars[name] = Value(text);
  auto value_of = [&](const json& j, const std::string& what) -> Result<Value> {
    Result<Value> v = Value::from_json(j, it->second->compiled.budget().max_value_depth);
    if (!v.ok()) return Status(v.status().code(), what + ": " + v.status().message());
    return v;
  };
  if (extra_kwargs.is_object()) {
    for (const auto& [k, v] : extra_kwargs.items()) {
      KEEL_ASSIGN_OR_RETURN(vars[k], value_of(v, k));
    }
  }
  KEEL_ASSIGN_OR_RETURN(vars["messages"], value_of(messages, "messages"));
  KEEL_ASSIGN_OR_RETURN(vars["tools"], value_of(tools, "tools"));
  vars["documents"] = Value::none();
  vars["add_generation_prompt"] = Value(add_generation_prompt);
  vars["raise_exception"] = Value::callable("raise_exception", [](jinja::Interpreter&, jinja::CallArgs& a) -> Result<Value> {
    return invalid_argument("{}", a.get(0, "message").str());
  });
  env::Env* env = env_ ? env_ : env::Env::posix();
  vars["strftime_now"] = Value::callable("strftime_now", [](jinja::Interpreter&, jinja::CallArgs& a) -> Result<Value> {
    // The calendar date, not Env::now_micros: that clock is monotonic (steady_clock, counting from boot), and
    // printed as a date it was 1 January 1970 in every Llama 3 system prompt.
    std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buf[256];
    size_t n = std::strftime(buf, sizeof(buf), a.get(0, "format").str().c_str(), &local);
    return Value(std::string(buf, n));
  });
  // The render's wall-time budget reads the Env's clock, so a test can drive it.
  auto out = it->second->compiled.render(std::move(vars), [env] { return static_cast<int64_t>(env->now_micros()); });
  if (!out.ok()) return Status(out.status().code(), out.status().message() + " (" + origin_ + ")");
  return out;
}

std::string ChatTemplate::source() const {
  auto it = templates_.find("tool_use");
  if (it == templates_.end()) it = templates_.find("default");
  return it == templates_.end() ? "" : it->second->source;
}

}  // namespace keel
