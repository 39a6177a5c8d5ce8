#include "server/json_scanner.h"

#include <nlohmann/json.hpp>

namespace keel::server {

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_number_char(char c) { return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool valid_number(const std::string& s) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    return i > start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

}  // namespace

bool JsonScanner::push(char c) {
  if (failed_) return false;
  if (done_) return fail();
  switch (lex_) {
    case Lex::kString:
      capture(c);
      if (string_is_key_) token_.push_back(c);
      if (c == '"') {
        lex_ = Lex::kNone;
        if (!string_is_key_) {
          value_done();
          return true;
        }
        if (stack_.size() == static_cast<size_t>(member_depth_)) {
          nlohmann::json key = nlohmann::json::parse(token_, nullptr, false);
          if (!key.is_string()) return fail();
          members_.push_back(Member{key.get<std::string>(), "", false});
        }
        stack_.back().expect = Expect::kColon;
        return true;
      }
      if (c == '\\') lex_ = Lex::kEscape;
      if (static_cast<unsigned char>(c) < 0x20) return fail();
      return true;
    case Lex::kEscape:
      capture(c);
      if (string_is_key_) token_.push_back(c);
      if (c == 'u') {
        lex_ = Lex::kHex;
        hex_left_ = 4;
        return true;
      }
      lex_ = Lex::kString;
      return std::string_view("\"\\/bfnrt").find(c) != std::string_view::npos || fail();
    case Lex::kHex:
      capture(c);
      if (string_is_key_) token_.push_back(c);
      if (!is_hex(c)) return fail();
      if (--hex_left_ == 0) lex_ = Lex::kString;
      return true;
    case Lex::kNumber:
      if (is_number_char(c)) {
        token_.push_back(c);
        capture(c);
        return true;
      }
      if (!valid_number(token_)) return fail();
      lex_ = Lex::kNone;
      value_done();  // the number ended before this byte, which is read as structure below
      break;
    case Lex::kLiteral:
      if (token_.size() >= literal_.size() || literal_[token_.size()] != c) return fail();
      token_.push_back(c);
      capture(c);
      if (token_.size() == literal_.size()) {
        lex_ = Lex::kNone;
        value_done();
      }
      return true;
    case Lex::kNone:
      break;
  }
  return structural(c);
}

void JsonScanner::begin_value() {
  if (!stack_.empty() && stack_.back().object && stack_.size() == static_cast<size_t>(member_depth_)) {
    capturing_ = true;
    capture_depth_ = static_cast<int>(stack_.size());
  }
}

void JsonScanner::value_done() {
  if (stack_.empty()) {
    done_ = true;
    return;
  }
  if (capturing_ && stack_.size() == static_cast<size_t>(capture_depth_)) {
    capturing_ = false;
    members_.back().value_done = true;
  }
  stack_.back().expect = Expect::kCommaOrEnd;
}

bool JsonScanner::structural(char c) {
  if (is_ws(c)) {
    capture(c);
    return true;
  }
  Expect e = stack_.empty() ? top_ : stack_.back().expect;
  auto close = [&]() {
    capture(c);
    bool member_object = stack_.back().object && stack_.size() == static_cast<size_t>(member_depth_);
    stack_.pop_back();
    if (member_object) {
      objects_closed_++;
      in_member_object_ = false;
    }
    value_done();
    return true;
  };
  switch (e) {
    case Expect::kValueOrEnd:
      if (c == ']') return close();
      [[fallthrough]];
    case Expect::kValue: {
      if (stack_.empty() && c != '{' && c != '[') return fail();
      begin_value();
      capture(c);
      if (c == '{' || c == '[') {
        if (stack_.size() >= kMaxDepth) return fail();
        if (stack_.empty()) top_ = Expect::kCommaOrEnd;
        stack_.push_back(Frame{c == '{', c == '{' ? Expect::kKeyOrEnd : Expect::kValueOrEnd});
        if (c == '{' && stack_.size() == static_cast<size_t>(member_depth_)) {
          members_.clear();
          objects_opened_++;
          in_member_object_ = true;
        }
        return true;
      }
      token_.assign(1, c);
      if (c == '"') {
        lex_ = Lex::kString;
        string_is_key_ = false;
        return true;
      }
      if (c == '-' || is_digit(c)) {
        lex_ = Lex::kNumber;
        return true;
      }
      literal_ = c == 't' ? "true" : c == 'f' ? "false" : c == 'n' ? "null" : "";
      if (literal_.empty()) return fail();
      lex_ = Lex::kLiteral;
      return true;
    }
    case Expect::kKeyOrEnd:
      if (c == '}') return close();
      [[fallthrough]];
    case Expect::kKey:
      if (c != '"') return fail();
      capture(c);
      lex_ = Lex::kString;
      string_is_key_ = true;
      token_.assign(1, c);
      return true;
    case Expect::kColon:
      if (c != ':') return fail();
      capture(c);
      stack_.back().expect = Expect::kValue;
      return true;
    case Expect::kCommaOrEnd:
      if (stack_.empty()) return fail();
      if (c == ',') {
        capture(c);
        stack_.back().expect = stack_.back().object ? Expect::kKey : Expect::kValue;
        return true;
      }
      if (c == (stack_.back().object ? '}' : ']')) return close();
      return fail();
  }
  return fail();
}

}  // namespace keel::server
