// The output parser's insides, shared by the per-format tool-call parsers (tool_parser_<format>.cpp): the sink
// that turns their findings into OutputEvents, marker search with held-back prefixes, and JsonCallReader for the
// formats whose calls are JSON objects.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/json_scanner.h"
#include "server/output_parser.h"

namespace keel::server {

using json = nlohmann::ordered_json;

// Where parsers put what they found. Whitespace around calls is markup's, not the model's answer: while tool
// calls are parsed, trailing whitespace of the text is held until more text follows (dropped when a call
// starts), and whitespace right after a call is dropped.
class CallSink {
 public:
  explicit CallSink(const OutputParserOptions& options);

  void text(std::string_view s);
  void reasoning(std::string_view s);
  void begin_call(std::string name);
  void arguments(std::string_view piece);
  void end_call();  // a call without arguments gets "{}"
  void trim_leading_text() { trim_leading_ = true; }
  void flush();     // the end: held whitespace goes out

  bool in_call() const { return in_call_; }
  bool closed() const { return closed_; }
  int calls() const { return calls_; }
  // With the request's tools known: whether `name` is one of them (always true without tools).
  bool known_tool(std::string_view name) const;
  // The JSON schema of a tool's parameters, or null.
  const json* parameters(std::string_view name) const;

  std::vector<OutputEvent> take();

 private:
  void push(OutputEvent::Kind kind, std::string_view text);

  OutputParserOptions options_;
  std::mt19937_64 rng_;
  std::vector<OutputEvent> events_;
  std::string held_ws_;
  bool trim_leading_ = false;
  bool in_call_ = false;
  bool arguments_sent_ = false;
  bool closed_ = false;
  int calls_ = 0;
};

class ToolCallParser {
 public:
  virtual ~ToolCallParser() = default;
  virtual void feed(std::string_view text) = 0;
  virtual void finish() = 0;

 protected:
  explicit ToolCallParser(CallSink* sink) : sink_(sink) {}
  CallSink* sink_;
};

std::unique_ptr<ToolCallParser> make_tool_call_parser(ToolCallFormat format, CallSink* sink);
std::unique_ptr<ToolCallParser> make_hermes_parser(CallSink* sink);
std::unique_ptr<ToolCallParser> make_qwen3_coder_parser(CallSink* sink);
std::unique_ptr<ToolCallParser> make_llama3_json_parser(CallSink* sink);
std::unique_ptr<ToolCallParser> make_mistral_parser(CallSink* sink);
std::unique_ptr<ToolCallParser> make_gemma3_parser(CallSink* sink);

// Where the first complete marker starts (npos when none); `which` gets its index in `markers`.
size_t find_marker(std::string_view text, std::initializer_list<std::string_view> markers, size_t* which = nullptr);
// The length of the longest end of `text` that is a proper beginning of a marker: what must be held back.
size_t marker_prefix_at_end(std::string_view text, std::initializer_list<std::string_view> markers);
bool starts_with(std::string_view text, std::string_view prefix);
// Sends text up to a possible marker and keeps the rest in `buffer`; returns where a whole marker starts (the
// text before it was sent, `buffer` then starts with the marker) or npos.
size_t send_text_until(CallSink* sink, std::string* buffer, std::initializer_list<std::string_view> markers,
                       size_t* which = nullptr);

// Reads one JSON value holding calls — an object {"name", "arguments" | "parameters" | "args"} (call_depth 1) or
// an array of them (call_depth 2) — and tells the sink as soon as it knows: the name when its string is
// complete, the arguments while they are scanned (an object or array; a string holding JSON is sent decoded at
// the end), the end of each call when its object closes.
class JsonCallReader {
 public:
  // `strict`: the object's first key must be "name" (or "type") and the name a known tool, else it is not a
  // call — for formats where a call is bare JSON that could as well be an answer (llama3_json).
  JsonCallReader(CallSink* sink, int call_depth, bool strict);
  // Consumes bytes until the value completes or turns out not to be calls; returns how many it took (a byte that
  // broke the JSON is not taken).
  size_t feed(std::string_view bytes);
  bool done() const { return scanner_.done() && !failed_; }
  bool failed() const { return failed_; }
  bool emitted() const { return emitted_; }  // the sink was told of a call
  void finish();                              // ends a call whose object never closed

 private:
  void after_byte();
  const JsonScanner::Member* member(std::initializer_list<std::string_view> keys) const;

  CallSink* sink_;
  JsonScanner scanner_;
  bool strict_;
  bool failed_ = false, emitted_ = false, call_open_ = false, streaming_ = false;
  size_t sent_ = 0;
  int closed_seen_ = 0;
};

// A JSON call that broke partway: one already announced to the sink ends with the arguments sent; else the markup
// and what was read of it (`raw`) go out as text. Clears `raw` and `reader`; the caller goes back to reading text.
void abandon_json_call(CallSink* sink, std::unique_ptr<JsonCallReader>& reader, std::string& raw);

}  // namespace keel::server
