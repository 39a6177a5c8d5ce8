#include "tokenizer/decoder.h"

#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace keel::tokenizer {

namespace {

class ByteLevel : public Decoder {
 public:
  // Every token's characters map back to bytes (a token with a character outside the byte alphabet, such
  // as an added token with a space, is taken as its own UTF-8); the bytes are decoded lossily as one.
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    std::string token_bytes;
    for (const std::string& t : tokens) {
      token_bytes.clear();
      bool mapped = true;
      for (size_t i = 0; i < t.size();) {
        int b = char_to_byte(next_char(t, i));
        if (b < 0) {
          mapped = false;
          break;
        }
        token_bytes += static_cast<char>(b);
      }
      bytes += mapped ? token_bytes : t;
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
  void raw_bytes(std::string& token) const override {
    std::string bytes;
    for (size_t i = 0; i < token.size();) {
      int b = char_to_byte(next_char(token, i));
      if (b < 0) return;  // not of the byte alphabet: its own UTF-8, as decode_chain takes it
      bytes += static_cast<char>(b);
    }
    token = std::move(bytes);
  }
};

class Metaspace : public Decoder {
 public:
  Metaspace(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string out;
      const std::string& t = tokens[k];
      for (size_t i = 0; i < t.size();) {
        if (t.compare(i, replacement_.size(), replacement_) == 0) {
          // HF drops every replacement character of the first token, not only a leading one.
          if (!(k == 0 && strip_first_)) out += ' ';
          i += replacement_.size();
        } else {
          out += t[i++];
        }
      }
      tokens[k] = std::move(out);
    }
  }
  void raw_bytes(std::string& token) const override {
    std::string out;
    for (size_t i = 0; i < token.size();) {
      if (token.compare(i, replacement_.size(), replacement_) == 0) {
        out += ' ';
        i += replacement_.size();
      } else {
        out += token[i++];
      }
    }
    token = std::move(out);
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class Replace : public Decoder {
 public:
  Replace(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::string out;
      size_t last = 0;
      pattern_.for_each_match(t, [&](size_t start, size_t end) {
        out.append(t, last, start - last);
        out += content_;
        last = end;
      });
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  Regex pattern_;
  std::string content_;
};

class ByteFallback : public Decoder {
 public:
  // Runs of <0xXX> tokens become their bytes when those are valid UTF-8, else one U+FFFD per byte.
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t n_bytes = 0;
    auto flush = [&] {
      if (n_bytes == 0) return;
      if (is_valid_utf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < n_bytes; ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      n_bytes = 0;
    };
    for (std::string& t : tokens) {
      int value = byte_value(t);
      if (value >= 0) {
        bytes += static_cast<char>(value);
        ++n_bytes;
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }
  void raw_bytes(std::string& token) const override {
    if (int value = byte_value(token); value >= 0) token.assign(1, static_cast<char>(value));
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
  static int byte_value(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class Fuse : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class Strip : public Decoder {
 public:
  Strip(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  // After Fuse (SentencePiece's decoders) it strips the text's ends, never a token inside it.
  void raw_bytes(std::string& token) const override {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::vector<char32_t> chars;
      for (size_t i = 0; i < t.size();) chars.push_back(next_char(t, i));
      size_t begin = 0;
      for (size_t i = 0; i < start_ && i < chars.size() && chars[i] == content_; ++i) begin = i + 1;
      size_t end = chars.size();
      for (size_t i = 0; i < stop_ && i < chars.size() && chars[chars.size() - 1 - i] == content_; ++i) {
        end = chars.size() - 1 - i;
      }
      std::string out;
      for (size_t i = begin; i < end; ++i) append_utf8(out, chars[i]);
      t = std::move(out);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class Sequence : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> items) : items_(std::move(items)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& d : items_) d->decode_chain(tokens);
  }
  void raw_bytes(std::string& token) const override {
    for (const auto& d : items_) d->raw_bytes(token);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

}  // namespace

Result<std::unique_ptr<Decoder>> parse_decoder(const Json& j, const std::string& where) {
  using Ptr = std::unique_ptr<Decoder>;
  if (j.is_null()) return Ptr();
  KEEL_ASSIGN_OR_RETURN(std::string type, get_string(j, "type", where));
  if (type == "ByteLevel") return Ptr(new ByteLevel());
  if (type == "Metaspace") {
    KEEL_ASSIGN_OR_RETURN(std::string replacement, get_string(j, "replacement", where));
    KEEL_ASSIGN_OR_RETURN(std::string scheme, get_string_or(j, "prepend_scheme", where));
    bool strip_first = scheme != "never";
    if (scheme.empty()) {
      KEEL_ASSIGN_OR_RETURN(strip_first, get_bool_or(j, "add_prefix_space", true, where));
    }
    return Ptr(new Metaspace(std::move(replacement), strip_first));
  }
  if (type == "Replace") {
    KEEL_ASSIGN_OR_RETURN(const Json* pattern, get_field(j, "pattern", where));
    KEEL_ASSIGN_OR_RETURN(Regex re, parse_pattern(*pattern, where + ".pattern"));
    KEEL_ASSIGN_OR_RETURN(std::string content, get_string(j, "content", where));
    return Ptr(new Replace(std::move(re), std::move(content)));
  }
  if (type == "ByteFallback") return Ptr(new ByteFallback());
  if (type == "Fuse") return Ptr(new Fuse());
  if (type == "Strip") {
    KEEL_ASSIGN_OR_RETURN(std::string content, get_string(j, "content", where));
    size_t i = 0;
    if (content.empty()) return corruption("{}.content: expected one character", where);
    char32_t c = next_char(content, i);
    KEEL_ASSIGN_OR_RETURN(int64_t start, get_int_or(j, "start", 0, where));
    KEEL_ASSIGN_OR_RETURN(int64_t stop, get_int_or(j, "stop", 0, where));
    if (start < 0 || stop < 0) return corruption("{}: start and stop must not be negative", where);
    return Ptr(new Strip(c, static_cast<size_t>(start), static_cast<size_t>(stop)));
  }
  if (type == "Sequence") {
    KEEL_ASSIGN_OR_RETURN(const Json* list, get_field(j, "decoders", where));
    if (!list->is_array()) return corruption("{}.decoders: expected an array", where);
    std::vector<Ptr> items;
    for (size_t i = 0; i < list->size(); ++i) {
      KEEL_ASSIGN_OR_RETURN(Ptr item, parse_decoder((*list)[i], fmt::format("{}.decoders[{}]", where, i)));
      if (item) items.push_back(std::move(item));
    }
    return Ptr(new Sequence(std::move(items)));
  }
  return unsupported("{}.type: decoder '{}' is not supported (ByteLevel, Metaspace, Replace, ByteFallback, "
                     "Fuse, Strip, Sequence are)", where, type);
}

}  // namespace keel::tokenizer
