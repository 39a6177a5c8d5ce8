#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"

namespace keel::tokenizer {

void AddedVocabulary::Trie::insert(std::string_view s, int32_t token) {
  if (s.empty()) return;
  if (nodes.empty()) nodes.emplace_back();
  first[static_cast<unsigned char>(s[0])] = true;
  int32_t cur = 0;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    auto& kids = nodes[cur].children;
    auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(c, int32_t{-1}));
    if (it != kids.end() && it->first == c) {
      cur = it->second;
      continue;
    }
    int32_t next = static_cast<int32_t>(nodes.size());
    kids.insert(it, {c, next});
    nodes.emplace_back();
    cur = next;
  }
  nodes[cur].token = token;  // a later duplicate wins, as in HF's map
}

std::pair<int32_t, size_t> AddedVocabulary::Trie::longest(std::string_view text, size_t at) const {
  std::pair<int32_t, size_t> best{-1, at};
  int32_t cur = 0;
  for (size_t i = at; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    const auto& kids = nodes[cur].children;
    auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(c, int32_t{-1}));
    if (it == kids.end() || it->first != c) break;
    cur = it->second;
    if (nodes[cur].token >= 0) best = {nodes[cur].token, i + 1};
  }
  return best;
}

Result<AddedVocabulary> AddedVocabulary::from_json(const Json& list, const Normalizer* normalizer,
                                                   const std::string& where) {
  AddedVocabulary v;
  if (list.is_null()) return v;
  if (!list.is_array()) return corruption("{}: expected an array, got {}", where, list.type_name());
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& e = list[i];
    std::string at = fmt::format("{}[{}]", where, i);
    AddedToken t;
    KEEL_ASSIGN_OR_RETURN(int64_t id, get_int_or(e, "id", -1, at));
    if (id < 0 || id > INT32_MAX) return corruption("{}.id: expected a non-negative integer", at);
    t.id = static_cast<int32_t>(id);
    KEEL_ASSIGN_OR_RETURN(t.content, get_string(e, "content", at));
    KEEL_ASSIGN_OR_RETURN(t.special, get_bool_or(e, "special", false, at));
    KEEL_ASSIGN_OR_RETURN(t.lstrip, get_bool_or(e, "lstrip", false, at));
    KEEL_ASSIGN_OR_RETURN(t.rstrip, get_bool_or(e, "rstrip", false, at));
    // HF's default: non-special tokens are matched in normalized text.
    KEEL_ASSIGN_OR_RETURN(t.normalized, get_bool_or(e, "normalized", !t.special, at));
    KEEL_ASSIGN_OR_RETURN(t.single_word, get_bool_or(e, "single_word", false, at));
    v.tokens_.push_back(std::move(t));
  }
  for (size_t i = 0; i < v.tokens_.size(); ++i) {
    const AddedToken& t = v.tokens_[i];
    v.id_limit_ = std::max(v.id_limit_, t.id + 1);
    if (t.normalized && normalizer != nullptr) {
      std::string form = t.content;
      normalizer->normalize(form);
      v.tries_[1].insert(form, static_cast<int32_t>(i));
    } else {
      v.tries_[t.normalized ? 1 : 0].insert(t.content, static_cast<int32_t>(i));
    }
  }
  v.by_id_.assign(static_cast<size_t>(v.id_limit_), -1);
  for (size_t i = 0; i < v.tokens_.size(); ++i) v.by_id_[v.tokens_[i].id] = static_cast<int32_t>(i);
  return v;
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
  if (id < 0 || id >= id_limit_ || by_id_[id] < 0) return nullptr;
  return &tokens_[by_id_[id]];
}

std::optional<int32_t> AddedVocabulary::by_content(std::string_view content) const {
  for (auto it = tokens_.rbegin(); it != tokens_.rend(); ++it) {
    if (it->content == content) return it->id;
  }
  return std::nullopt;
}

namespace {

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return is_word_char(next_char(s, i));
}

bool starts_with_word(std::string_view s) {
  size_t i = 0;
  return !s.empty() && is_word_char(next_char(s, i));
}

// Start of the whitespace run that ends `s` (s.size() when none).
size_t whitespace_run_before(std::string_view s) {
  size_t start = s.size();
  while (start > 0) {
    size_t i = start - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    size_t j = i;
    if (!is_whitespace(next_char(s, j))) break;
    start = i;
  }
  return start;
}

// Length of the whitespace run that starts `s`.
size_t whitespace_run_after(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!is_whitespace(next_char(s, j))) break;
    i = j;
  }
  return i;
}

}  // namespace

void AddedVocabulary::split(std::string_view text, bool normalized, std::vector<AddedSplit>& out) const {
  const Trie& trie = tries_[normalized ? 1 : 0];
  if (text.empty()) return;
  if (trie.nodes.empty()) {
    out.push_back({0, text.size(), -1});
    return;
  }
  size_t start_offset = 0;  // end of the last emitted split
  size_t pos = 0;           // where the matcher resumes (HF's iterator ignores lstrip/rstrip extensions)
  while (pos < text.size()) {
    if (!trie.first[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    auto [index, match_end] = trie.longest(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = match_end;
    pos = match_end;
    const AddedToken& t = tokens_[index];
    if (t.single_word) {
      bool start_ok = start == 0 || !ends_with_word(text.substr(0, start));
      bool stop_ok = stop == text.size() || !starts_with_word(text.substr(stop));
      if (!start_ok || !stop_ok) continue;
    }
    if (t.lstrip) start = std::max(whitespace_run_before(text.substr(0, start)), start_offset);
    if (t.rstrip) stop += whitespace_run_after(text.substr(stop));
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, t.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace keel::tokenizer
