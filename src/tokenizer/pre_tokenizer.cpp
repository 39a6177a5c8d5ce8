#include "tokenizer/pre_tokenizer.h"

#include <string_view>

#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace keel::tokenizer {

namespace {

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  size_t start, end;
  bool is_match;
};

// Turns matches (covering the whole text, alternating with the gaps) into the pieces HF's
// NormalizedString::split keeps for `behavior`.
void apply_behavior(const Piece& in, const std::vector<Span>& spans, Behavior behavior, std::vector<Piece>& out) {
  std::vector<Span> kept;
  kept.reserve(spans.size());
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kIsolated:
      kept = spans;
      break;
    case Behavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) kept.push_back(s);
      }
      break;
    case Behavior::kContiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back(s);
        }
        previous_match = s.is_match;
      }
      break;
    case Behavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back(s);
        }
        previous_match = s.is_match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (size_t k = spans.size(); k-- > 0;) {
        const Span& s = spans[k];
        if (s.is_match && !previous_match && !kept.empty()) {
          kept.back().start = s.start;
        } else {
          kept.push_back(s);
        }
        previous_match = s.is_match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  for (const Span& s : kept) {
    if (s.end > s.start) out.push_back({in.text.substr(s.start, s.end - s.start), in.at_start && s.start == 0});
  }
}

// Spans for every match of `find` plus the gaps between them.
template <typename FindAll>
std::vector<Span> spans_of(const std::string& text, bool invert, FindAll&& find_all) {
  std::vector<Span> spans;
  size_t prev = 0;
  find_all([&](size_t start, size_t end) {
    if (prev != start) spans.push_back({prev, start, invert});
    spans.push_back({start, end, !invert});
    prev = end;
  });
  if (prev != text.size()) spans.push_back({prev, text.size(), invert});
  return spans;
}

class Split : public PreTokenizer {
 public:
  Split(Regex pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 4);
    for (const Piece& p : pieces) {
      // The common case (Isolated, not inverted) needs no span list: emit matches and gaps directly.
      if (behavior_ == Behavior::kIsolated) {
        size_t prev = 0;
        pattern_.for_each_match(p.text, [&](size_t start, size_t end) {
          if (prev != start) out.push_back({p.text.substr(prev, start - prev), p.at_start && prev == 0});
          if (end > start) out.push_back({p.text.substr(start, end - start), p.at_start && start == 0});
          prev = end;
        });
        if (prev != p.text.size()) out.push_back({p.text.substr(prev), p.at_start && prev == 0});
        continue;
      }
      auto spans = spans_of(p.text, invert_, [&](auto&& f) { pattern_.for_each_match(p.text, f); });
      apply_behavior(p, spans, behavior_, out);
    }
    pieces = std::move(out);
  }

 private:
  Regex pattern_;
  Behavior behavior_;
  bool invert_;
};

// GPT-2's pre-tokenizer regex, used when ByteLevel has use_regex.
constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, std::unique_ptr<Split> split)
      : add_prefix_space_(add_prefix_space), split_(std::move(split)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_) {
      for (Piece& p : pieces) {
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, " ");
      }
    }
    if (split_) split_->pre_tokenize(pieces);
    const auto& table = byte_to_char();
    std::string mapped;
    for (Piece& p : pieces) {
      mapped.clear();
      for (char c : p.text) mapped += table[static_cast<unsigned char>(c)];
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Split> split_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class Metaspace : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (const Piece& p : pieces) {
      std::string text;
      for (char c : p.text) {
        if (c == ' ') {
          text += replacement_;
        } else {
          text += c;
        }
      }
      bool starts = text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && p.at_start))) {
        text.insert(0, replacement_);
      }
      if (!split_) {
        if (!text.empty()) out.push_back({std::move(text), p.at_start});
        continue;
      }
      // MergedWithNext on the replacement: every piece starts with it, except perhaps the first.
      size_t start = 0;
      size_t pos = text.find(replacement_, 1);
      while (pos != std::string::npos) {
        out.push_back({text.substr(start, pos - start), p.at_start && start == 0});
        start = pos;
        pos = text.find(replacement_, pos + replacement_.size());
      }
      if (start < text.size()) out.push_back({text.substr(start), p.at_start && start == 0});
    }
    pieces = std::move(out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class Digits : public PreTokenizer {
 public:
  explicit Digits(bool individual) : individual_(individual) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (const Piece& p : pieces) {
      const std::string& t = p.text;
      auto spans = spans_of(t, false, [&](auto&& f) {
        for (size_t i = 0; i < t.size(); ++i) {
          if (t[i] < '0' || t[i] > '9') continue;
          size_t j = i + 1;
          while (!individual_ && j < t.size() && t[j] >= '0' && t[j] <= '9') ++j;
          f(i, j);
          i = j - 1;
        }
      });
      apply_behavior(p, spans, individual_ ? Behavior::kIsolated : Behavior::kContiguous, out);
    }
    pieces = std::move(out);
  }

 private:
  bool individual_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> items) : items_(std::move(items)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : items_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

Result<Behavior> parse_behavior(const Json& j, const std::string& where) {
  KEEL_ASSIGN_OR_RETURN(std::string b, get_string(j, "behavior", where));
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  return corruption("{}.behavior: unknown split behavior '{}'", where, b);
}

}  // namespace

Result<std::unique_ptr<PreTokenizer>> parse_pre_tokenizer(const Json& j, const std::string& where) {
  using Ptr = std::unique_ptr<PreTokenizer>;
  if (j.is_null()) return Ptr();
  KEEL_ASSIGN_OR_RETURN(std::string type, get_string(j, "type", where));
  if (type == "Split") {
    KEEL_ASSIGN_OR_RETURN(const Json* pattern, get_field(j, "pattern", where));
    KEEL_ASSIGN_OR_RETURN(Regex re, parse_pattern(*pattern, where + ".pattern"));
    KEEL_ASSIGN_OR_RETURN(Behavior behavior, parse_behavior(j, where));
    KEEL_ASSIGN_OR_RETURN(bool invert, get_bool_or(j, "invert", false, where));
    return Ptr(new Split(std::move(re), behavior, invert));
  }
  if (type == "ByteLevel") {
    KEEL_ASSIGN_OR_RETURN(bool prefix, get_bool_or(j, "add_prefix_space", true, where));
    KEEL_ASSIGN_OR_RETURN(bool use_regex, get_bool_or(j, "use_regex", true, where));
    std::unique_ptr<Split> split;
    if (use_regex) {
      KEEL_ASSIGN_OR_RETURN(Regex re, Regex::compile(kGpt2Pattern));
      split = std::make_unique<Split>(std::move(re), Behavior::kIsolated, false);
    }
    return Ptr(new ByteLevel(prefix, std::move(split)));
  }
  if (type == "Metaspace") {
    KEEL_ASSIGN_OR_RETURN(std::string replacement, get_string(j, "replacement", where));
    KEEL_ASSIGN_OR_RETURN(bool split, get_bool_or(j, "split", true, where));
    PrependScheme scheme = PrependScheme::kAlways;
    KEEL_ASSIGN_OR_RETURN(std::string s, get_string_or(j, "prepend_scheme", where));
    if (s.empty()) {
      KEEL_ASSIGN_OR_RETURN(bool legacy, get_bool_or(j, "add_prefix_space", true, where));
      scheme = legacy ? PrependScheme::kAlways : PrependScheme::kNever;
    } else if (s == "first") {
      scheme = PrependScheme::kFirst;
    } else if (s == "never") {
      scheme = PrependScheme::kNever;
    } else if (s != "always") {
      return corruption("{}.prepend_scheme: expected always, first or never, got '{}'", where, s);
    }
    return Ptr(new Metaspace(std::move(replacement), scheme, split));
  }
  if (type == "Digits") {
    KEEL_ASSIGN_OR_RETURN(bool individual, get_bool_or(j, "individual_digits", false, where));
    return Ptr(new Digits(individual));
  }
  if (type == "Sequence") {
    KEEL_ASSIGN_OR_RETURN(const Json* list, get_field(j, "pretokenizers", where));
    if (!list->is_array()) return corruption("{}.pretokenizers: expected an array", where);
    std::vector<Ptr> items;
    for (size_t i = 0; i < list->size(); ++i) {
      KEEL_ASSIGN_OR_RETURN(Ptr item, parse_pre_tokenizer((*list)[i], fmt::format("{}.pretokenizers[{}]", where, i)));
      if (item) items.push_back(std::move(item));
    }
    return Ptr(new Sequence(std::move(items)));
  }
  return unsupported("{}.type: pre-tokenizer '{}' is not supported (Split, ByteLevel, Metaspace, Digits, "
                     "Sequence are)", where, type);
}

}  // namespace keel::tokenizer
