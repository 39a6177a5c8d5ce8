// qwen3_coder: Qwen3-Coder and Qwen3.5 write calls as XML, one parameter per element, values unquoted:
//   <tool_call>
//   <function=get_weather>
//   <parameter=city>
//   Paris
//   </parameter>
//   </function>
//   </tool_call>
// A value becomes JSON by its parameter's type in the tool's schema (as vLLM's qwen3_coder parser does): strings
// stay strings, integer/number/boolean/object/array are parsed, and a value that does not parse stays a string.
// The arguments go out one parameter at a time: `{"city": "Paris"`, then `, "unit": "c"`, then `}`.
#include "server/tool_parsers.h"

namespace keel::server {

namespace {

constexpr std::string_view kToolCall = "<tool_call>";
constexpr std::string_view kToolCallEnd = "</tool_call>";
constexpr std::string_view kFunction = "<function=";
constexpr std::string_view kFunctionEnd = "</function>";
constexpr std::string_view kParameter = "<parameter=";
constexpr std::string_view kParameterEnd = "</parameter>";
constexpr size_t kMaxNameBytes = 256;

std::string type_of(const json* schema, const std::string& param) {
  if (schema == nullptr || !schema->is_object() || !schema->contains("properties")) return "";
  const json& props = (*schema)["properties"];
  if (!props.is_object() || !props.contains(param) || !props[param].is_object()) return "";
  const json& type = props[param].contains("type") ? props[param]["type"] : json(nullptr);
  if (type.is_string()) return type.get<std::string>();
  if (type.is_array()) {
    for (const json& t : type) {
      if (t.is_string() && t != "null") return t.get<std::string>();
    }
  }
  return "";
}

json convert(std::string value, const std::string& type) {
  if (!value.empty() && value.front() == '\n') value.erase(0, 1);
  if (!value.empty() && value.back() == '\n') value.pop_back();
  if (type.empty() || type == "string" || type == "str" || type == "text") return value;
  if (value == "null") return nullptr;
  if (type == "boolean" || type == "bool") {
    if (value == "true" || value == "True") return true;
    if (value == "false" || value == "False") return false;
    return value;
  }
  json parsed = json::parse(value, nullptr, false);
  if (parsed.is_discarded()) return value;
  if ((type == "integer" || type == "int") && !parsed.is_number_integer()) return value;
  if ((type == "number" || type == "float") && !parsed.is_number()) return value;
  return parsed;
}

bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameBytes && name.find_first_of("<>\n") == std::string_view::npos;
}

std::string trim(std::string_view s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string_view::npos) return "";
  size_t b = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(a, b - a + 1));
}

class Qwen3CoderParser : public ToolCallParser {
 public:
  explicit Qwen3CoderParser(CallSink* sink) : ToolCallParser(sink) {}

  void feed(std::string_view text) override {
    buffer_ += text;
    run();
  }

  void finish() override {
    run();
    switch (state_) {
      case State::kText:
        sink_->text(buffer_);
        break;
      case State::kOpen:
      case State::kName:
        sink_->text(raw_ + buffer_);
        break;
      case State::kValue:
        value_ += buffer_;
        send_parameter();
        close_call();
        break;
      case State::kParams:
      case State::kParamName:
        close_call();
        break;
      case State::kAfterFunction:
        break;
    }
    buffer_.clear();
  }

 private:
  enum class State { kText, kOpen, kName, kParams, kParamName, kValue, kAfterFunction };

  // Drops leading whitespace; false when nothing else is buffered.
  bool skip_ws() {
    size_t start = buffer_.find_first_not_of(" \t\r\n");
    if (state_ == State::kOpen) raw_.append(buffer_, 0, start == std::string::npos ? buffer_.size() : start);
    buffer_.erase(0, start == std::string::npos ? buffer_.size() : start);
    return !buffer_.empty();
  }

  void run() {
    while (!sink_->closed()) {
      switch (state_) {
        case State::kText: {
          size_t which = 0;
          if (send_text_until(sink_, &buffer_, {kToolCall, kFunction}, &which) == std::string::npos) return;
          raw_.clear();
          if (which == 0) {
            raw_ = kToolCall;
            buffer_.erase(0, kToolCall.size());
          }
          state_ = State::kOpen;
          break;
        }
        case State::kOpen:
          if (!skip_ws()) return;
          if (starts_with(buffer_, kFunction)) {
            raw_ += kFunction;
            buffer_.erase(0, kFunction.size());
            state_ = State::kName;
          } else if (starts_with(kFunction, buffer_)) {
            return;
          } else {
            not_a_call();
          }
          break;
        case State::kName: {
          size_t end = buffer_.find('>');
          if (end == std::string::npos) {
            if (buffer_.size() > kMaxNameBytes || buffer_.find('\n') != std::string::npos) not_a_call();
            else return;
            break;
          }
          std::string name = trim(std::string_view(buffer_).substr(0, end));
          if (!valid_name(name)) {
            not_a_call();
            break;
          }
          buffer_.erase(0, end + 1);
          name_ = name;
          sink_->begin_call(name);
          params_ = 0;
          state_ = State::kParams;
          break;
        }
        case State::kParams:
          if (!skip_ws()) return;
          if (starts_with(buffer_, kParameter)) {
            buffer_.erase(0, kParameter.size());
            state_ = State::kParamName;
          } else if (starts_with(buffer_, kFunctionEnd)) {
            buffer_.erase(0, kFunctionEnd.size());
            close_call();
            state_ = State::kAfterFunction;
          } else if (starts_with(kParameter, buffer_) || starts_with(kFunctionEnd, buffer_)) {
            return;
          } else {
            close_call();  // stray text inside the function: the call ends, the text is text
            state_ = State::kText;
          }
          break;
        case State::kParamName: {
          size_t end = buffer_.find('>');
          if (end == std::string::npos) {
            if (buffer_.size() <= kMaxNameBytes && buffer_.find('\n') == std::string::npos) return;
            end = buffer_.size();  // not a parameter name: read what follows as its value
          }
          param_ = trim(std::string_view(buffer_).substr(0, end));
          buffer_.erase(0, std::min(end + 1, buffer_.size()));
          value_.clear();
          state_ = State::kValue;
          break;
        }
        case State::kValue: {
          // Models sometimes leave out </parameter>: the next parameter or the function's end closes it too.
          size_t which = 0;
          size_t at = find_marker(buffer_, {kParameterEnd, kParameter, kFunctionEnd}, &which);
          if (at == std::string::npos) {
            size_t keep = marker_prefix_at_end(buffer_, {kParameterEnd, kParameter, kFunctionEnd});
            value_.append(buffer_, 0, buffer_.size() - keep);
            buffer_.erase(0, buffer_.size() - keep);
            return;
          }
          value_.append(buffer_, 0, at);
          buffer_.erase(0, which == 0 ? at + kParameterEnd.size() : at);
          send_parameter();
          state_ = State::kParams;
          break;
        }
        case State::kAfterFunction:
          if (!skip_ws()) return;
          if (starts_with(buffer_, kToolCallEnd)) {
            buffer_.erase(0, kToolCallEnd.size());
          } else if (starts_with(kToolCallEnd, buffer_)) {
            return;
          }
          state_ = State::kText;
          break;
      }
    }
  }

  void send_parameter() {
    json value = convert(std::move(value_), type_of(sink_->parameters(name_), param_));
    value_.clear();
    sink_->arguments((params_++ == 0 ? "{" : ", ") + json(param_).dump() + ": " +
                     value.dump(-1, ' ', false, json::error_handler_t::replace));
  }

  void close_call() {
    if (params_ > 0) sink_->arguments("}");
    sink_->end_call();
    params_ = 0;
  }

  // The markup read so far is text; reading goes on after it.
  void not_a_call() {
    sink_->text(raw_);
    raw_.clear();
    state_ = State::kText;
    // The byte that broke the markup may start a real call: it is read again as text.
  }

  State state_ = State::kText;
  std::string buffer_, raw_, name_, param_, value_;
  int params_ = 0;
};

}  // namespace

std::unique_ptr<ToolCallParser> make_qwen3_coder_parser(CallSink* sink) {
  return std::make_unique<Qwen3CoderParser>(sink);
}

}  // namespace keel::server
