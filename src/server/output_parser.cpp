#include "server/output_parser.h"

#include "server/tool_parsers.h"

namespace keel::server {

namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kWhitespace = " \t\r\n";

bool mergeable(OutputEvent::Kind kind) {
  return kind == OutputEvent::Kind::kText || kind == OutputEvent::Kind::kReasoning ||
         kind == OutputEvent::Kind::kCallArguments;
}

}  // namespace

// ---- CallSink ----

CallSink::CallSink(const OutputParserOptions& options) : options_(options), rng_(std::random_device{}()) {}

void CallSink::push(OutputEvent::Kind kind, std::string_view text) {
  if (text.empty()) return;
  if (!events_.empty() && events_.back().kind == kind && mergeable(kind)) {
    events_.back().text += text;
    return;
  }
  OutputEvent e;
  e.kind = kind;
  e.text = std::string(text);
  if (kind == OutputEvent::Kind::kCallArguments) e.index = calls_ - 1;
  events_.push_back(std::move(e));
}

void CallSink::text(std::string_view s) {
  if (closed_) return;
  if (trim_leading_) {
    size_t start = s.find_first_not_of(kWhitespace);
    if (start == std::string_view::npos) return;
    s.remove_prefix(start);
    trim_leading_ = false;
  }
  if (options_.tools == ToolCallFormat::kNone) return push(OutputEvent::Kind::kText, s);
  size_t last = s.find_last_not_of(kWhitespace);
  if (last == std::string_view::npos) {
    held_ws_ += s;
    return;
  }
  std::string out = std::move(held_ws_);
  out += s.substr(0, last + 1);
  held_ws_ = std::string(s.substr(last + 1));
  push(OutputEvent::Kind::kText, out);
}

void CallSink::reasoning(std::string_view s) { push(OutputEvent::Kind::kReasoning, s); }

void CallSink::begin_call(std::string name) {
  if (closed_) return;
  held_ws_.clear();
  OutputEvent e;
  e.kind = OutputEvent::Kind::kCallBegin;
  e.index = calls_++;
  if (options_.new_id) {
    e.id = options_.new_id();
  } else {
    static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    e.id = options_.id_prefix;
    for (int i = 0; i < 24; ++i) e.id += kAlphabet[rng_() % kAlphabet.size()];
  }
  e.name = std::move(name);
  events_.push_back(std::move(e));
  in_call_ = true;
  arguments_sent_ = false;
}

void CallSink::arguments(std::string_view piece) {
  if (!in_call_ || piece.empty()) return;
  arguments_sent_ = true;
  push(OutputEvent::Kind::kCallArguments, piece);
}

void CallSink::end_call() {
  if (!in_call_) return;
  if (!arguments_sent_) arguments("{}");
  OutputEvent e;
  e.kind = OutputEvent::Kind::kCallEnd;
  e.index = calls_ - 1;
  events_.push_back(std::move(e));
  in_call_ = false;
  trim_leading_ = true;
  if (!options_.parallel_calls) closed_ = true;
}

void CallSink::flush() {
  if (closed_) return;
  push(OutputEvent::Kind::kText, held_ws_);
  held_ws_.clear();
}

bool CallSink::known_tool(std::string_view name) const {
  if (!options_.tools_json.is_array() || options_.tools_json.empty()) return true;
  for (const json& t : options_.tools_json) {
    const json* fn = t.is_object() && t.contains("function") ? &t["function"] : &t;
    if (fn->is_object() && fn->contains("name") && (*fn)["name"] == name) return true;
  }
  return false;
}

const json* CallSink::parameters(std::string_view name) const {
  if (!options_.tools_json.is_array()) return nullptr;
  for (const json& t : options_.tools_json) {
    if (!t.is_object()) continue;
    const json* fn = t.contains("function") ? &t["function"] : &t;
    if (!fn->is_object() || !fn->contains("name") || (*fn)["name"] != name) continue;
    if (fn->contains("parameters")) return &(*fn)["parameters"];
    if (fn->contains("input_schema")) return &(*fn)["input_schema"];
  }
  return nullptr;
}

std::vector<OutputEvent> CallSink::take() {
  std::vector<OutputEvent> out;
  out.swap(events_);
  return out;
}

// ---- OutputParser ----

OutputParser::OutputParser(OutputParserOptions options)
    : options_(std::move(options)), sink_(std::make_unique<CallSink>(options_)) {
  tools_ = make_tool_call_parser(options_.tools, sink_.get());
  if (options_.reasoning == ReasoningFormat::kNone) {
    phase_ = Phase::kContent;
  } else {
    phase_ = options_.starts_in_reasoning ? Phase::kReasoning : Phase::kStart;
  }
}

OutputParser::~OutputParser() = default;
OutputParser::OutputParser(OutputParser&&) noexcept = default;

bool OutputParser::closed() const { return sink_->closed(); }
int OutputParser::calls() const { return sink_->calls(); }

void OutputParser::content(std::string_view text) {
  if (text.empty()) return;
  if (tools_) {
    tools_->feed(text);
  } else {
    sink_->text(text);
  }
}

void OutputParser::reason(std::string_view text) {
  // Whitespace at either end of the reasoning is the tags' layout ("<think>\n...\n</think>").
  if (!reasoning_started_) {
    size_t start = text.find_first_not_of(kWhitespace);
    if (start == std::string_view::npos) return;
    text.remove_prefix(start);
    reasoning_started_ = true;
  }
  size_t last = text.find_last_not_of(kWhitespace);
  if (last == std::string_view::npos) {
    reasoning_ws_ += text;
    return;
  }
  sink_->reasoning(reasoning_ws_ + std::string(text.substr(0, last + 1)));
  reasoning_ws_ = std::string(text.substr(last + 1));
}

std::vector<OutputEvent> OutputParser::feed(std::string_view text) {
  if (sink_->closed()) return {};
  if (phase_ == Phase::kContent) {
    content(text);
    return sink_->take();
  }
  held_.append(text);
  if (phase_ == Phase::kStart) {
    size_t start = held_.find_first_not_of(kWhitespace);
    if (start == std::string::npos) return {};
    std::string_view rest = std::string_view(held_).substr(start);
    if (starts_with(rest, kThinkOpen)) {
      held_.erase(0, start + kThinkOpen.size());
      phase_ = Phase::kReasoning;
    } else if (starts_with(kThinkOpen, rest)) {
      return {};  // maybe <think>
    } else {
      phase_ = Phase::kContent;
      std::string all = std::move(held_);
      held_.clear();
      content(all);
      return sink_->take();
    }
  }
  size_t at = held_.find(kThinkClose);
  if (at == std::string::npos) {
    size_t keep = marker_prefix_at_end(held_, {kThinkClose});
    reason(std::string_view(held_).substr(0, held_.size() - keep));
    held_.erase(0, held_.size() - keep);
    return sink_->take();
  }
  reason(std::string_view(held_).substr(0, at));
  std::string rest = held_.substr(at + kThinkClose.size());
  held_.clear();
  reasoning_ws_.clear();
  phase_ = Phase::kContent;
  sink_->trim_leading_text();
  content(rest);
  return sink_->take();
}

std::vector<OutputEvent> OutputParser::finish() {
  if (!sink_->closed()) {
    if (phase_ == Phase::kStart) {
      content(held_);  // whitespace, or a beginning of <think> that never completed: text
    } else if (phase_ == Phase::kReasoning) {
      reason(held_);  // reasoning cut off before </think>: all of it is reasoning
    }
    held_.clear();
    if (tools_) tools_->finish();
    sink_->flush();
  }
  return sink_->take();
}

// ---- summaries ----

void append_events(std::vector<OutputEvent>* events, std::vector<OutputEvent> more) {
  for (OutputEvent& e : more) {
    if (!events->empty() && mergeable(e.kind) && events->back().kind == e.kind && events->back().index == e.index) {
      events->back().text += e.text;
    } else {
      events->push_back(std::move(e));
    }
  }
}

OutputSummary summarize(const std::vector<OutputEvent>& events) {
  OutputSummary s;
  for (const OutputEvent& e : events) {
    switch (e.kind) {
      case OutputEvent::Kind::kText:
        s.text += e.text;
        break;
      case OutputEvent::Kind::kReasoning:
        s.reasoning += e.text;
        break;
      case OutputEvent::Kind::kCallBegin:
        s.calls.push_back({e.id, e.name, ""});
        break;
      case OutputEvent::Kind::kCallArguments:
        if (e.index >= 0 && static_cast<size_t>(e.index) < s.calls.size()) s.calls[e.index].arguments += e.text;
        break;
      case OutputEvent::Kind::kCallEnd:
        break;
    }
  }
  return s;
}

}  // namespace keel::server
