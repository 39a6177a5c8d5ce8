// What the tool-call parsers share: marker search and JsonCallReader; and the format → parser factory.
#include "server/tool_parsers.h"

namespace keel::server {

namespace {

// A name longer than this is not a tool's name: the markup was something else.
constexpr size_t kMaxNameBytes = 256;

}  // namespace

std::unique_ptr<ToolCallParser> make_tool_call_parser(ToolCallFormat format, CallSink* sink) {
  switch (format) {
    case ToolCallFormat::kNone:
      return nullptr;
    case ToolCallFormat::kHermes:
      return make_hermes_parser(sink);
    case ToolCallFormat::kQwen3Coder:
      return make_qwen3_coder_parser(sink);
    case ToolCallFormat::kLlama3Json:
      return make_llama3_json_parser(sink);
    case ToolCallFormat::kMistral:
      return make_mistral_parser(sink);
    case ToolCallFormat::kGemma3:
      return make_gemma3_parser(sink);
  }
  return nullptr;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && text.substr(0, prefix.size()) == prefix;
}

size_t find_marker(std::string_view text, std::initializer_list<std::string_view> markers, size_t* which) {
  size_t best = std::string_view::npos;
  size_t i = 0;
  for (std::string_view m : markers) {
    size_t at = text.find(m);
    if (at < best) {
      best = at;
      if (which) *which = i;
    }
    ++i;
  }
  return best;
}

size_t marker_prefix_at_end(std::string_view text, std::initializer_list<std::string_view> markers) {
  size_t keep = 0;
  for (std::string_view m : markers) {
    for (size_t n = std::min(text.size(), m.size() - 1); n > keep; --n) {
      if (text.substr(text.size() - n) == m.substr(0, n)) {
        keep = n;
        break;
      }
    }
  }
  return keep;
}

size_t send_text_until(CallSink* sink, std::string* buffer, std::initializer_list<std::string_view> markers,
                       size_t* which) {
  size_t at = find_marker(*buffer, markers, which);
  if (at == std::string::npos) {
    size_t send = buffer->size() - marker_prefix_at_end(*buffer, markers);
    sink->text(std::string_view(*buffer).substr(0, send));
    buffer->erase(0, send);
    return std::string::npos;
  }
  sink->text(std::string_view(*buffer).substr(0, at));
  buffer->erase(0, at);
  return at;
}

// ---- JsonCallReader ----

void abandon_json_call(CallSink* sink, std::unique_ptr<JsonCallReader>& reader, std::string& raw) {
  if (reader->emitted()) {
    reader->finish();
  } else {
    sink->text(raw);
  }
  raw.clear();
  reader.reset();
}

JsonCallReader::JsonCallReader(CallSink* sink, int call_depth, bool strict)
    : sink_(sink), scanner_(call_depth), strict_(strict) {}

const JsonScanner::Member* JsonCallReader::member(std::initializer_list<std::string_view> keys) const {
  for (const JsonScanner::Member& m : scanner_.members()) {
    for (std::string_view k : keys) {
      if (m.key == k) return &m;
    }
  }
  return nullptr;
}

size_t JsonCallReader::feed(std::string_view bytes) {
  size_t n = 0;
  while (n < bytes.size() && !failed_ && !scanner_.done() && !sink_->closed()) {
    if (!scanner_.push(bytes[n])) {
      failed_ = true;
      break;
    }
    ++n;
    after_byte();
  }
  return n;
}

void JsonCallReader::after_byte() {
  if (scanner_.in_member_object()) {
    const auto& members = scanner_.members();
    if (strict_ && !members.empty() && members[0].key != "name" && members[0].key != "type") {
      failed_ = !emitted_;
      return;
    }
    if (!call_open_) {
      const JsonScanner::Member* name = member({"name"});
      if (name == nullptr || !name->value_done) return;
      json decoded = json::parse(name->value, nullptr, false);
      if (!decoded.is_string() || decoded.get<std::string>().empty() || name->value.size() > kMaxNameBytes ||
          (strict_ && !sink_->known_tool(decoded.get<std::string>()))) {
        failed_ = true;
        return;
      }
      sink_->begin_call(decoded.get<std::string>());
      emitted_ = call_open_ = true;
      streaming_ = false;
      sent_ = 0;
    }
    const JsonScanner::Member* args = member({"arguments", "parameters", "args"});
    if (args != nullptr && !args->value.empty() && (args->value[0] == '{' || args->value[0] == '[')) {
      streaming_ = true;
      sink_->arguments(std::string_view(args->value).substr(sent_));
      sent_ = args->value.size();
    }
  }
  if (scanner_.objects_closed() > closed_seen_) {
    closed_seen_ = scanner_.objects_closed();
    if (!call_open_) {
      failed_ = true;  // an object without a name: not a call
      return;
    }
    const JsonScanner::Member* args = member({"arguments", "parameters", "args"});
    if (args != nullptr && !streaming_) {
      json value = json::parse(args->value, nullptr, false);
      // Some models write the arguments as a string holding JSON, as the OpenAI API sends them.
      if (value.is_string()) {
        sink_->arguments(value.get<std::string>());
      } else if (!value.is_null() && !value.is_discarded()) {
        sink_->arguments(args->value);
      }
    }
    sink_->end_call();
    call_open_ = false;
  }
  if (scanner_.done() && closed_seen_ == 0) failed_ = true;  // [] or [1]: no call in it
}

void JsonCallReader::finish() {
  if (call_open_) sink_->end_call();
  call_open_ = false;
}

// ---- hermes: <tool_call>{"name": ..., "arguments": {...}}</tool_call> ----

namespace {

class HermesParser : public ToolCallParser {
 public:
  explicit HermesParser(CallSink* sink) : ToolCallParser(sink) {}

  void feed(std::string_view text) override {
    buffer_ += text;
    run();
  }

  void finish() override {
    run();
    if (state_ == State::kText) sink_->text(buffer_);
    if (state_ == State::kBody) fall_back();  // cut off inside the JSON
    buffer_.clear();                          // kAfterBody: at most a beginning of </tool_call>
  }

 private:
  static constexpr std::string_view kBegin = "<tool_call>";
  static constexpr std::string_view kEnd = "</tool_call>";
  enum class State { kText, kBody, kAfterBody };

  void run() {
    while (!sink_->closed()) {
      if (state_ == State::kText) {
        if (send_text_until(sink_, &buffer_, {kBegin}) == std::string::npos) return;
        buffer_.erase(0, kBegin.size());
        raw_ = kBegin;
        reader_ = std::make_unique<JsonCallReader>(sink_, 1, false);
        state_ = State::kBody;
      } else if (state_ == State::kBody) {
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
      } else {
        size_t start = buffer_.find_first_not_of(" \t\r\n");
        buffer_.erase(0, start == std::string::npos ? buffer_.size() : start);
        if (starts_with(buffer_, kEnd)) {
          buffer_.erase(0, kEnd.size());
        } else if (starts_with(kEnd, buffer_)) {
          return;  // empty, or the end tag's beginning
        }
        state_ = State::kText;  // without an end tag, what follows is text
      }
    }
  }

  // Not a call after all: the markup and what was read of it are text, and reading goes on from the byte that
  // broke it. A call already announced ends with the arguments sent.
  void fall_back() {
    abandon_json_call(sink_, reader_, raw_);
    state_ = State::kText;
  }

  State state_ = State::kText;
  std::string buffer_, raw_;
  std::unique_ptr<JsonCallReader> reader_;
};

}  // namespace

std::unique_ptr<ToolCallParser> make_hermes_parser(CallSink* sink) { return std::make_unique<HermesParser>(sink); }

}  // namespace keel::server
