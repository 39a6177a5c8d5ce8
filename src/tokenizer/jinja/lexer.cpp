#include "tokenizer/jinja/lexer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "tokenizer/unicode.h"

namespace keel::jinja {

Status template_error(int line, int column, const std::string& what) {
  return invalid_argument("chat template line {}, column {}: {}", line, column, what);
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string rstrip_all(const std::string& s) {
  size_t end = s.size();
  while (end > 0 && is_space(s[end - 1])) --end;
  return s.substr(0, end);
}

// jinja2 reads templates with universal newlines and drops one trailing newline (keep_trailing_newline=False).
std::string normalize_newlines(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r') {
      out += '\n';
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else {
      out += in[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  Lexer(std::string source, const LexOptions& options) : src_(std::move(source)), opt_(options) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  Result<std::vector<Token>> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t tag = find_tag(pos);
      std::string text = src_.substr(pos, tag - pos);
      if (tag == src_.size()) {
        push_text(text, pos);
        break;
      }
      char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign == '-') {
        text = rstrip_all(text);
      } else if (sign != '+' && opt_.lstrip_blocks && kind != '{') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos > 0 || line_starting) {
          if (std::all_of(text.begin() + static_cast<long>(l_pos), text.end(), is_space)) {
            text.resize(l_pos);
          }
        }
      }
      push_text(text, pos);
      size_t body = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        size_t end = src_.find("#}", body);
        if (end == std::string::npos) return error_at(tag, "unclosed comment: missing '#}'");
        pos = after_tag_end(end, end > body && src_[end - 1] == '-', end > body && src_[end - 1] == '+',
                            end + 2, true, line_starting);
        continue;
      }
      if (kind == '%' && try_raw(tag, body, pos, line_starting)) continue;
      bool is_var = kind == '{';
      tokens_.push_back(make(is_var ? Token::Type::kVarBegin : Token::Type::kBlockBegin, "", tag));
      KEEL_ASSIGN_OR_RETURN(pos, lex_expression(body, is_var, line_starting));
    }
    tokens_.push_back(make(Token::Type::kEof, "", src_.size()));
    return std::move(tokens_);
  }

 private:
  Token make(Token::Type type, std::string text, size_t offset) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    size_t line_index = static_cast<size_t>(it - line_starts_.begin()) - 1;
    return Token{type, std::move(text), static_cast<int>(line_index + 1),
                 static_cast<int>(offset - line_starts_[line_index] + 1)};
  }

  Status error_at(size_t offset, const std::string& what) const {
    Token t = make(Token::Type::kEof, "", offset);
    return template_error(t.line, t.column, what);
  }

  void push_text(const std::string& text, size_t offset) {
    if (!text.empty()) tokens_.push_back(make(Token::Type::kText, text, offset));
  }

  size_t find_tag(size_t pos) const {
    while (true) {
      size_t p = src_.find('{', pos);
      if (p == std::string::npos || p + 1 >= src_.size()) return src_.size();
      char c = src_[p + 1];
      if (c == '{' || c == '%' || c == '#') return p;
      pos = p + 1;
    }
  }

  // Applies what follows a closing `%}`/`#}`/`}}`: `-` strips all whitespace, trim_blocks one newline.
  size_t after_tag_end(size_t end_start, bool minus, bool plus, size_t after, bool is_block,
                       bool& line_starting) {
    (void)end_start;
    size_t pos = after;
    if (minus) {
      while (pos < src_.size() && is_space(src_[pos])) ++pos;
    } else if (!plus && is_block && opt_.trim_blocks && pos < src_.size() && src_[pos] == '\n') {
      ++pos;
    }
    line_starting = pos > 0 && src_[pos - 1] == '\n';
    return pos;
  }

  // `{% raw %}...{% endraw %}` emits its body as text, untouched.
  bool try_raw(size_t tag, size_t body, size_t& pos, bool& line_starting) {
    size_t p = body;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    while (p < src_.size() && is_space(src_[p])) ++p;
    bool minus = false;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) minus = src_[p++] == '-';
    if (src_.compare(p, 2, "%}") != 0) return false;
    // jinja2 applies `-` after `{% raw %}` but not trim_blocks
    size_t content = after_tag_end(p, minus, false, p + 2, false, line_starting);
    size_t search = content;
    while (true) {
      size_t open = src_.find("{%", search);
      if (open == std::string::npos) return false;
      size_t q = open + 2;
      bool end_minus = q < src_.size() && src_[q] == '-';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
      while (q < src_.size() && is_space(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) {
        search = open + 2;
        continue;
      }
      q += 6;
      while (q < src_.size() && is_space(src_[q])) ++q;
      bool close_minus = false;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) close_minus = src_[q++] == '-';
      if (src_.compare(q, 2, "%}") != 0) return false;
      std::string text = src_.substr(content, open - content);
      if (end_minus) {
        text = rstrip_all(text);
      } else if (opt_.lstrip_blocks && src_[open + 2] != '+') {
        size_t l_pos = text.rfind('\n');
        if (l_pos != std::string::npos &&
            std::all_of(text.begin() + static_cast<long>(l_pos + 1), text.end(), is_space)) {
          text.resize(l_pos + 1);
        }
      }
      push_text(text, content);
      pos = after_tag_end(q, close_minus, false, q + 2, true, line_starting);
      (void)tag;
      return true;
    }
  }

  Result<size_t> lex_expression(size_t pos, bool is_var, bool& line_starting) {
    int depth = 0;
    const char* close = is_var ? "}}" : "%}";
    while (true) {
      while (pos < src_.size() && is_space(src_[pos])) ++pos;
      if (pos >= src_.size()) {
        return error_at(pos, fmt::format("unexpected end of template, expected '{}'", close));
      }
      if (depth == 0) {
        bool minus = src_[pos] == '-' && src_.compare(pos + 1, 2, close) == 0;
        bool plus = src_[pos] == '+' && src_.compare(pos + 1, 2, close) == 0;
        if (minus || plus || src_.compare(pos, 2, close) == 0) {
          size_t end = pos + (minus || plus ? 1 : 0);
          tokens_.push_back(make(is_var ? Token::Type::kVarEnd : Token::Type::kBlockEnd, "", pos));
          return after_tag_end(end, minus, plus, end + 2, !is_var, line_starting);
        }
      }
      char c = src_[pos];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t start = pos;
        while (pos < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos])) || src_[pos] == '_')) {
          ++pos;
        }
        tokens_.push_back(make(Token::Type::kName, src_.substr(start, pos - start), start));
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        pos = lex_number(pos);
      } else if (c == '\'' || c == '"') {
        KEEL_ASSIGN_OR_RETURN(pos, lex_string(pos));
      } else {
        static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                     ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", ";"};
        bool matched = false;
        for (const char* op : kOps) {
          size_t n = std::char_traits<char>::length(op);
          if (src_.compare(pos, n, op) == 0) {
            tokens_.push_back(make(Token::Type::kOp, op, pos));
            if (n == 1 && (c == '(' || c == '[' || c == '{')) ++depth;
            if (n == 1 && (c == ')' || c == ']' || c == '}')) depth = std::max(0, depth - 1);
            pos += n;
            matched = true;
            break;
          }
        }
        if (!matched) return error_at(pos, fmt::format("unexpected character '{}'", c));
      }
    }
  }

  size_t lex_number(size_t pos) {
    size_t start = pos;
    auto digits = [&] {
      while (pos < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos])) || src_[pos] == '_')) ++pos;
    };
    digits();
    bool is_float = false;
    if (pos + 1 < src_.size() && src_[pos] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos + 1]))) {
      is_float = true;
      ++pos;
      digits();
    }
    if (pos < src_.size() && (src_[pos] == 'e' || src_[pos] == 'E')) {
      size_t q = pos + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
        is_float = true;
        pos = q;
        digits();
      }
    }
    std::string text;
    for (size_t i = start; i < pos; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    tokens_.push_back(make(is_float ? Token::Type::kFloat : Token::Type::kInt, text, start));
    return pos;
  }

  // Python string literal escapes, as jinja2 decodes them with "unicode-escape".
  Result<size_t> lex_string(size_t pos) {
    size_t start = pos;
    char quote = src_[pos++];
    std::string value;
    while (true) {
      if (pos >= src_.size()) return error_at(start, "unterminated string literal");
      char c = src_[pos];
      if (c == quote) {
        ++pos;
        break;
      }
      if (c != '\\' || pos + 1 >= src_.size()) {
        value += c;
        ++pos;
        continue;
      }
      char e = src_[pos + 1];
      pos += 2;
      auto hex = [&](int n) -> long {
        if (pos + static_cast<size_t>(n) > src_.size()) return -1;
        long v = 0;
        for (int i = 0; i < n; ++i) {
          char h = src_[pos + static_cast<size_t>(i)];
          if (!std::isxdigit(static_cast<unsigned char>(h))) return -1;
          v = v * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
        }
        pos += static_cast<size_t>(n);
        return v;
      };
      switch (e) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case 'a': value += '\a'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case '\n': break;
        case 'x':
        case 'u':
        case 'U': {
          long cp = hex(e == 'x' ? 2 : e == 'u' ? 4 : 8);
          if (cp < 0) return error_at(pos - 2, fmt::format("invalid \\{} escape in string", e));
          tokenizer::append_utf8(value, static_cast<char32_t>(cp));
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && pos < src_.size() && src_[pos] >= '0' && src_[pos] <= '7'; ++i) {
              cp = cp * 8 + static_cast<uint32_t>(src_[pos++] - '0');
            }
            tokenizer::append_utf8(value, static_cast<char32_t>(cp));
          } else {
            value += '\\';
            value += e;
          }
      }
    }
    tokens_.push_back(make(Token::Type::kString, value, start));
    return pos;
  }

  std::string src_;
  LexOptions opt_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

Result<std::vector<Token>> lex(const std::string& source, const LexOptions& options) {
  return Lexer(normalize_newlines(source), options).run();
}

}  // namespace keel::jinja
