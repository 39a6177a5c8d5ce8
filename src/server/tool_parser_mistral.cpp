// mistral: [TOOL_CALLS] (a special token, kept by the detokenizer for this format) followed by either a JSON array
// of calls, [{"name": "get_weather", "arguments": {"city": "Paris"}}] (Mistral 7B v0.3, Nemo), or by
// NAME[ARGS]{...} (Mistral Small 3.2, Devstral, Magistral), one [TOOL_CALLS] per call; [CALL_ID]id before [ARGS]
// is read and ignored.
#include "server/tool_parsers.h"

namespace keel::server {

namespace {

constexpr std::string_view kToolCalls = "[TOOL_CALLS]";
constexpr std::string_view kArgs = "[ARGS]";
constexpr std::string_view kCallId = "[CALL_ID]";
constexpr size_t kMaxNameBytes = 256;

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == ':';
}

class MistralParser : public ToolCallParser {
 public:
  explicit MistralParser(CallSink* sink) : ToolCallParser(sink) {}

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
      case State::kAfterMarker:
      case State::kName:
      case State::kCallId:
        sink_->text(raw_ + buffer_);
        break;
      case State::kArray:
        fall_back();
        break;
      case State::kArguments:
        sink_->end_call();
        break;
    }
    buffer_.clear();
  }

 private:
  enum class State { kText, kAfterMarker, kArray, kName, kCallId, kArguments };

  void run() {
    while (!sink_->closed()) {
      switch (state_) {
        case State::kText:
          if (send_text_until(sink_, &buffer_, {kToolCalls}) == std::string::npos) return;
          buffer_.erase(0, kToolCalls.size());
          raw_ = kToolCalls;
          name_.clear();
          state_ = State::kAfterMarker;
          break;
        case State::kAfterMarker: {
          size_t first = buffer_.find_first_not_of(" \t\r\n");
          if (first == std::string::npos) {
            raw_ += buffer_;
            buffer_.clear();
            return;
          }
          raw_.append(buffer_, 0, first);
          buffer_.erase(0, first);
          if (buffer_[0] == '[') {
            reader_ = std::make_unique<JsonCallReader>(sink_, 2, false);
            state_ = State::kArray;
          } else {
            state_ = State::kName;
          }
          break;
        }
        case State::kArray: {
          size_t n = reader_->feed(buffer_);
          raw_.append(buffer_, 0, n);
          buffer_.erase(0, n);
          if (reader_->failed()) {
            fall_back();
          } else if (reader_->done()) {
            reader_.reset();
            state_ = State::kText;
          } else {
            return;
          }
          break;
        }
        case State::kName: {
          size_t n = 0;
          while (n < buffer_.size() && name_char(buffer_[n])) ++n;
          name_.append(buffer_, 0, n);
          raw_.append(buffer_, 0, n);
          buffer_.erase(0, n);
          if (name_.size() > kMaxNameBytes) {
            not_a_call();
          } else if (buffer_.empty() || (starts_with(kArgs, buffer_) || starts_with(kCallId, buffer_))) {
            return;
          } else if (!name_.empty() && starts_with(buffer_, kArgs)) {
            buffer_.erase(0, kArgs.size());
            begin_arguments();
          } else if (!name_.empty() && starts_with(buffer_, kCallId)) {
            raw_ += kCallId;
            buffer_.erase(0, kCallId.size());
            state_ = State::kCallId;
          } else {
            not_a_call();
          }
          break;
        }
        case State::kCallId: {
          size_t at = buffer_.find(kArgs);
          if (at == std::string::npos) {
            if (buffer_.size() > kMaxNameBytes) {
              not_a_call();
              break;
            }
            return;
          }
          buffer_.erase(0, at + kArgs.size());
          begin_arguments();
          break;
        }
        case State::kArguments: {
          size_t n = 0;
          while (n < buffer_.size() && !arguments_.done() && arguments_.push(buffer_[n])) ++n;
          sink_->arguments(std::string_view(buffer_).substr(0, n));
          buffer_.erase(0, n);
          if (arguments_.failed() || arguments_.done()) {
            sink_->end_call();  // after broken arguments, the rest is text
            state_ = State::kText;
          } else {
            return;
          }
          break;
        }
      }
    }
  }

  void begin_arguments() {
    sink_->begin_call(name_);
    arguments_ = JsonScanner(0);
    state_ = State::kArguments;
  }

  void not_a_call() {
    sink_->text(raw_);
    raw_.clear();
    state_ = State::kText;
  }

  void fall_back() {
    abandon_json_call(sink_, reader_, raw_);
    state_ = State::kText;
  }

  State state_ = State::kText;
  std::string buffer_, raw_, name_;
  std::unique_ptr<JsonCallReader> reader_;
  JsonScanner arguments_{0};
};

}  // namespace

std::unique_ptr<ToolCallParser> make_mistral_parser(CallSink* sink) { return std::make_unique<MistralParser>(sink); }

}  // namespace keel::server
