// JsonScanner: a validating JSON reader fed one byte at a time, for tool-call arguments that arrive in pieces.
// It knows, at every byte, whether the text so far can still be JSON, when the top-level value is complete, and
// the raw text of each member of the objects at one chosen depth (a call object's "name" and "arguments"), so
// the arguments can be forwarded while they are being generated and the name as soon as it is complete.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace keel::server {

class JsonScanner {
 public:
  // Members are recorded for objects whose nesting depth is `member_depth` (1: the top-level object; 2: the
  // objects inside a top-level array). The top-level value must be an object or an array.
  explicit JsonScanner(int member_depth = 1) : member_depth_(member_depth) {}

  struct Member {
    std::string key;          // decoded
    std::string value;        // the value's raw JSON text as scanned so far
    bool value_done = false;  // `value` is the whole value
  };

  // Feeds one byte; false once the text cannot be JSON (then every later push is false too). A byte after the
  // complete top-level value is an error: the caller stops feeding at done().
  bool push(char c);
  bool done() const { return done_; }
  bool failed() const { return failed_; }

  // The members of the current object at member_depth (reset when the next such object opens).
  const std::vector<Member>& members() const { return members_; }
  int objects_opened() const { return objects_opened_; }  // objects at member_depth opened so far
  int objects_closed() const { return objects_closed_; }
  bool in_member_object() const { return in_member_object_; }

  // Bounds: a call's JSON deeper than this is refused (the request body itself is held to 64).
  static constexpr size_t kMaxDepth = 64;

 private:
  enum class Expect { kValue, kKeyOrEnd, kKey, kColon, kValueOrEnd, kCommaOrEnd };
  enum class Lex { kNone, kString, kEscape, kHex, kNumber, kLiteral };
  struct Frame {
    bool object;
    Expect expect;
  };

  bool fail() { return !(failed_ = true); }
  bool structural(char c);
  void value_done();  // a value ended in the innermost frame (or at the top level)
  void begin_value();
  void capture(char c) {
    if (capturing_) members_.back().value.push_back(c);
  }

  int member_depth_;
  std::vector<Frame> stack_;
  Expect top_ = Expect::kValue;  // the top level: one value, then nothing
  Lex lex_ = Lex::kNone;
  bool string_is_key_ = false;
  int hex_left_ = 0;
  std::string token_;    // a number or literal being read; a key being read (raw)
  std::string literal_;  // the literal being matched (true/false/null)
  bool capturing_ = false;
  int capture_depth_ = 0;
  bool in_member_object_ = false;
  std::vector<Member> members_;
  int objects_opened_ = 0, objects_closed_ = 0;
  bool done_ = false, failed_ = false;
};

}  // namespace keel::server
