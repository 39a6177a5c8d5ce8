// gemma3: Gemma 3 has no tool tokens; Google's function-calling guide has it write calls as Python in a fenced
// block, ```tool_code\nget_weather(city="Paris")\n```, and common Gemma 3 tool templates ask for the JSON object
// {"name": ..., "parameters": ...} in the same fence (or ```tool_call). Both are read: one or more calls, bare
// or in a list ([f(a=1), g(b="x")]), keyword arguments with Python literals. The block is read when its fence
// closes (arguments come out in one piece); a block that is neither is text.
#include "server/tool_parsers.h"

namespace keel::server {

namespace {

constexpr std::string_view kFenceCode = "```tool_code";
constexpr std::string_view kFenceCall = "```tool_call";
constexpr std::string_view kFenceEnd = "```";
constexpr size_t kMaxLiteralDepth = 32;

// A recursive-descent reader of Python calls with literal keyword arguments.
class PythonCalls {
 public:
  explicit PythonCalls(std::string_view src) : s_(src) {}

  bool parse(std::vector<std::pair<std::string, json>>* calls) {
    ws();
    bool list = eat('[');
    do {
      ws();
      std::string name;
      json args = json::object();
      if (!call(&name, &args)) return false;
      calls->emplace_back(std::move(name), std::move(args));
      if (!list) eat(';');
      ws();
    } while (list ? eat(',') : i_ < s_.size());
    if (list && !eat(']')) return false;
    ws();
    return i_ == s_.size() && !calls->empty();
  }

 private:
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  bool ident(std::string* out) {
    ws();
    size_t start = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' || s_[i_] == '.')) ++i_;
    *out = std::string(s_.substr(start, i_ - start));
    return !out->empty() && !std::isdigit(static_cast<unsigned char>((*out)[0]));
  }
  bool call(std::string* name, json* args) {
    if (!ident(name) || !eat('(')) return false;
    if (eat(')')) return true;
    do {
      if (eat(')')) return true;  // a trailing comma
      std::string key;
      json value;
      if (!ident(&key) || !eat('=') || !literal(&value, 0)) return false;
      (*args)[key] = std::move(value);
    } while (eat(','));
    return eat(')');
  }

  bool literal(json* out, size_t depth) {
    if (depth > kMaxLiteralDepth) return false;
    ws();
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '"' || c == '\'') return string(out);
    if (c == '[' || c == '(') {
      char close = c == '[' ? ']' : ')';
      ++i_;
      *out = json::array();
      while (!eat(close)) {
        json item;
        if (!literal(&item, depth + 1)) return false;
        out->push_back(std::move(item));
        if (!eat(',')) return eat(close);
      }
      return true;
    }
    if (c == '{') {
      ++i_;
      *out = json::object();
      while (!eat('}')) {
        json key, value;
        if (!literal(&key, depth + 1) || !key.is_string() || !eat(':') || !literal(&value, depth + 1)) return false;
        (*out)[key.get<std::string>()] = std::move(value);
        if (!eat(',')) return eat('}');
      }
      return true;
    }
    size_t start = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || std::string_view("+-.").find(s_[i_]) != std::string_view::npos)) ++i_;
    std::string word(s_.substr(start, i_ - start));
    if (word == "True" || word == "true") return *out = true, true;
    if (word == "False" || word == "false") return *out = false, true;
    if (word == "None" || word == "null") return *out = nullptr, true;
    json number = json::parse(word, nullptr, false);
    if (!number.is_number()) return false;
    *out = std::move(number);
    return true;
  }
  bool string(json* out) {
    char quote = s_[i_++];
    std::string text;
    while (i_ < s_.size() && s_[i_] != quote) {
      char c = s_[i_++];
      if (c != '\\') {
        text.push_back(c);
        continue;
      }
      if (i_ >= s_.size()) return false;
      char e = s_[i_++];
      switch (e) {
        case 'n': text.push_back('\n'); break;
        case 't': text.push_back('\t'); break;
        case 'r': text.push_back('\r'); break;
        case 'u': {
          json decoded = json::parse("\"\\u" + std::string(s_.substr(i_, 4)) + "\"", nullptr, false);
          if (!decoded.is_string()) return false;
          text += decoded.get<std::string>();
          i_ += 4;
          break;
        }
        default: text.push_back(e);
      }
    }
    if (i_ >= s_.size()) return false;
    ++i_;
    *out = std::move(text);
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// The block's calls, JSON or Python; false when it holds neither.
bool read_block(std::string_view body, std::vector<std::pair<std::string, json>>* calls) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded()) {
    json list = j.is_array() ? j : json::array({j});
    for (const json& c : list) {
      if (!c.is_object() || !c.contains("name") || !c["name"].is_string()) return false;
      json args = json::object();
      for (const char* key : {"arguments", "parameters", "args"}) {
        if (c.contains(key)) args = c[key];
      }
      if (args.is_string()) args = json::parse(args.get<std::string>(), nullptr, false);
      if (!args.is_object()) return false;
      calls->emplace_back(c["name"].get<std::string>(), std::move(args));
    }
    return !calls->empty();
  }
  calls->clear();
  return PythonCalls(body).parse(calls);
}

class Gemma3Parser : public ToolCallParser {
 public:
  explicit Gemma3Parser(CallSink* sink) : ToolCallParser(sink) {}

  void feed(std::string_view text) override {
    buffer_ += text;
    run();
  }

  void finish() override {
    run();
    sink_->text(in_block_ ? raw_ + buffer_ : buffer_);
    buffer_.clear();
  }

 private:
  void run() {
    while (!sink_->closed()) {
      if (!in_block_) {
        size_t which = 0;
        if (send_text_until(sink_, &buffer_, {kFenceCode, kFenceCall}, &which) == std::string::npos) return;
        raw_ = which == 0 ? kFenceCode : kFenceCall;
        buffer_.erase(0, raw_.size());
        in_block_ = true;
        continue;
      }
      size_t end = buffer_.find(kFenceEnd);
      if (end == std::string::npos) return;
      std::string body = buffer_.substr(0, end);
      std::vector<std::pair<std::string, json>> calls;
      if (read_block(body, &calls)) {
        for (auto& [name, args] : calls) {
          sink_->begin_call(name);
          sink_->arguments(args.dump(-1, ' ', false, json::error_handler_t::replace));
          sink_->end_call();
        }
        buffer_.erase(0, end + kFenceEnd.size());
      } else {
        sink_->text(raw_);  // not calls: the fence is text, and reading goes on after it
      }
      raw_.clear();
      in_block_ = false;
    }
  }

  bool in_block_ = false;
  std::string buffer_, raw_;
};

}  // namespace

std::unique_ptr<ToolCallParser> make_gemma3_parser(CallSink* sink) { return std::make_unique<Gemma3Parser>(sink); }

}  // namespace keel::server
