// llama3_json: Llama 3.1/3.2/3.3 answer a call with a message that is only the call's JSON,
// {"name": "get_weather", "parameters": {"city": "Paris"}}, several separated by ";", or after <|python_tag|>
// (a special token, kept by the detokenizer for this format). A message that starts with "{" is a call only when
// its first key is "name" and the name is one of the request's tools; anything else is the text it is.
#include "server/tool_parsers.h"

namespace keel::server {

namespace {

constexpr std::string_view kPythonTag = "<|python_tag|>";

class Llama3JsonParser : public ToolCallParser {
 public:
  explicit Llama3JsonParser(CallSink* sink) : ToolCallParser(sink) {}

  void feed(std::string_view text) override {
    buffer_ += text;
    run();
  }

  void finish() override {
    run();
    if (state_ == State::kStart || state_ == State::kText) sink_->text(buffer_);
    if (state_ == State::kBody) fall_back();
    buffer_.clear();  // kAfterBody: whitespace
  }

 private:
  enum class State { kStart, kText, kBody, kAfterBody };

  void start_body(bool strict) {
    reader_ = std::make_unique<JsonCallReader>(sink_, 1, strict);
    state_ = State::kBody;
  }

  void run() {
    while (!sink_->closed()) {
      switch (state_) {
        case State::kStart: {
          size_t first = buffer_.find_first_not_of(" \t\r\n");
          if (first == std::string::npos) return;
          std::string_view rest = std::string_view(buffer_).substr(first);
          if (rest[0] == '{') {
            raw_ = buffer_.substr(0, first);
            buffer_.erase(0, first);
            start_body(true);
          } else if (rest.size() < kPythonTag.size() && starts_with(kPythonTag, rest)) {
            return;
          } else {
            state_ = State::kText;
          }
          break;
        }
        case State::kText:
          if (send_text_until(sink_, &buffer_, {kPythonTag}) == std::string::npos) return;
          buffer_.erase(0, kPythonTag.size());
          raw_ = kPythonTag;
          start_body(false);
          break;
        case State::kBody: {
          size_t n = reader_->feed(buffer_);
          raw_.append(buffer_, 0, n);
          buffer_.erase(0, n);
          if (reader_->failed()) {
            fall_back();
          } else if (reader_->done()) {
            state_ = State::kAfterBody;
          } else {
            return;
          }
          break;
        }
        case State::kAfterBody: {
          size_t first = buffer_.find_first_not_of(" \t\r\n");
          if (first == std::string::npos) return;
          buffer_.erase(0, first);
          if (buffer_[0] == ';') {
            buffer_.erase(0, 1);
            raw_ = ";";
            start_body(true);
          } else {
            state_ = State::kText;
          }
          break;
        }
      }
    }
  }

  void fall_back() {
    abandon_json_call(sink_, reader_, raw_);
    state_ = State::kText;
  }

  State state_ = State::kStart;
  std::string buffer_, raw_;
  std::unique_ptr<JsonCallReader> reader_;
};

}  // namespace

std::unique_ptr<ToolCallParser> make_llama3_json_parser(CallSink* sink) {
  return std::make_unique<Llama3JsonParser>(sink);
}

}  // namespace keel::server
