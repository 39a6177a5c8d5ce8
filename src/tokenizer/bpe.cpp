#include "tokenizer/bpe.h"

#include <mutex>
#include <algorithm>
#include <shared_mutex>

#include "tokenizer/unicode.h"

namespace keel::tokenizer {

// (left id, right id) → (rank, merged id), open addressing: this lookup is the inner loop of every merge.
struct Bpe::MergeTable {
  struct Slot {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t id = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  std::vector<Slot> slots;
  uint64_t mask = 0;

  static uint64_t key_of(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static uint64_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
  }
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots.assign(cap, Slot{});
    mask = cap - 1;
  }
  // A later duplicate overwrites an earlier one, as HF's map construction does.
  void put(int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t k = key_of(a, b);
    for (uint64_t i = hash(k) & mask;; i = (i + 1) & mask) {
      if (slots[i].key == kEmpty || slots[i].key == k) {
        slots[i] = {k, rank, id};
        return;
      }
    }
  }
  const Slot* get(int32_t a, int32_t b) const {
    uint64_t k = key_of(a, b);
    for (uint64_t i = hash(k) & mask;; i = (i + 1) & mask) {
      if (slots[i].key == k) return &slots[i];
      if (slots[i].key == kEmpty) return nullptr;
    }
  }
};

// Words seen before, shared by all threads that encode with this tokenizer.
struct Bpe::Cache {
  // Text is full of repeated words; 64k distinct entries cover a large working set for a few MB.
  static constexpr size_t kCapacity = 1 << 16;
  // HF does not cache longer words either (tokenizers' MAX_LENGTH).
  static constexpr size_t kMaxWordBytes = 256;
  mutable std::shared_mutex mu;
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
};

Bpe::Bpe() : merges_(std::make_unique<MergeTable>()), cache_(std::make_unique<Cache>()) {}
Bpe::~Bpe() = default;
Bpe::Bpe(Bpe&&) noexcept = default;
Bpe& Bpe::operator=(Bpe&&) noexcept = default;

Result<Bpe> Bpe::from_json(const Json& m, const std::string& where) {
  Bpe bpe;
  KEEL_ASSIGN_OR_RETURN(std::string type, get_string_or(m, "type", where));
  if (!type.empty() && type != "BPE") {
    return unsupported("{}.type: model '{}' is not supported (expected BPE)", where, type);
  }
  KEEL_ASSIGN_OR_RETURN(const Json* vocab, get_field(m, "vocab", where));
  if (!vocab->is_object()) return corruption("{}.vocab: expected an object, got {}", where, vocab->type_name());
  bpe.vocab_.reserve(vocab->size());
  int32_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX) {
      return corruption("{}.vocab[\"{}\"]: expected a non-negative integer id", where, it.key());
    }
    int32_t id = it->get<int32_t>();
    bpe.vocab_.emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }
  bpe.id_to_token_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [token, id] : bpe.vocab_) bpe.id_to_token_[id] = token;

  KEEL_ASSIGN_OR_RETURN(bpe.continuing_subword_prefix_, get_string_or(m, "continuing_subword_prefix", where));
  KEEL_ASSIGN_OR_RETURN(bpe.end_of_word_suffix_, get_string_or(m, "end_of_word_suffix", where));
  KEEL_ASSIGN_OR_RETURN(bpe.byte_fallback_, get_bool_or(m, "byte_fallback", false, where));
  KEEL_ASSIGN_OR_RETURN(bpe.fuse_unk_, get_bool_or(m, "fuse_unk", false, where));
  KEEL_ASSIGN_OR_RETURN(bpe.ignore_merges_, get_bool_or(m, "ignore_merges", false, where));
  auto dropout = m.find("dropout");
  if (dropout != m.end() && !dropout->is_null() && dropout->get<double>() != 0.0) {
    return unsupported("{}.dropout: BPE dropout is not supported (inference uses none)", where);
  }
  KEEL_ASSIGN_OR_RETURN(std::string unk, get_string_or(m, "unk_token", where));
  if (!unk.empty()) {
    auto it = bpe.vocab_.find(unk);
    if (it == bpe.vocab_.end()) return corruption("{}.unk_token: '{}' is not in {}.vocab", where, unk, where);
    bpe.unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = bpe.vocab_.find(fmt::format("<0x{:02X}>", b));
    bpe.byte_tokens_[b] = it == bpe.vocab_.end() ? -1 : it->second;
  }

  const std::string meta = "\xE2\x96\x81";  // U+2581, SentencePiece's space
  if (!bpe.ignore_merges_ && bpe.vocab_.count(meta) > 0) {
    bool usable = true;
    for (const auto& [token, id] : bpe.vocab_) {
      for (size_t at = token.find(meta, 1); at != std::string::npos; at = token.find(meta, at + 1)) {
        if (at >= meta.size() && token.compare(at - meta.size(), meta.size(), meta) == 0) continue;
        // A crossing token must stand for its own text: not a byte token or unk in disguise.
        if (token.find("<0x") != std::string::npos || (!unk.empty() && token.find(unk) != std::string::npos)) {
          usable = false;
        }
        bpe.crossings_.emplace_back(token, at);
      }
    }
    if (usable && bpe.crossings_.size() <= 64) bpe.split_before_ = meta;
  }

  KEEL_ASSIGN_OR_RETURN(const Json* merges, get_field(m, "merges", where));
  if (!merges->is_array()) return corruption("{}.merges: expected an array, got {}", where, merges->type_name());
  bpe.merges_->reserve(merges->size());
  std::string left, right;
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const Json& e = (*merges)[rank];
    if (e.is_string()) {  // "a b"
      const std::string& s = e.get_ref<const std::string&>();
      size_t space = s.find(' ');
      if (space == std::string::npos) {
        return corruption("{}.merges[{}]: expected \"left right\", got \"{}\"", where, rank, s);
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {  // ["a", "b"]
      left = e[0].get<std::string>();
      right = e[1].get<std::string>();
    } else {
      return corruption("{}.merges[{}]: expected \"left right\" or [left, right]", where, rank);
    }
    auto a = bpe.vocab_.find(left);
    auto b = bpe.vocab_.find(right);
    if (a == bpe.vocab_.end() || b == bpe.vocab_.end()) {
      return corruption("{}.merges[{}]: token '{}' is not in {}.vocab", where, rank,
                        a == bpe.vocab_.end() ? left : right, where);
    }
    std::string merged = left + (right.compare(0, bpe.continuing_subword_prefix_.size(),
                                               bpe.continuing_subword_prefix_) == 0
                                     ? right.substr(bpe.continuing_subword_prefix_.size())
                                     : right);
    auto c = bpe.vocab_.find(merged);
    if (c == bpe.vocab_.end()) {
      return corruption("{}.merges[{}]: merged token '{}' is not in {}.vocab", where, rank, merged, where);
    }
    bpe.merges_->put(a->second, b->second, static_cast<int32_t>(rank), c->second);
  }
  return bpe;
}

std::optional<int32_t> Bpe::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* Bpe::id_to_token(int32_t id) const {
  if (id < 0 || id >= id_limit() || id_to_token_[id].empty()) return nullptr;
  return &id_to_token_[id];
}

void Bpe::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (split_before_.empty()) return tokenize_one(word, out);
  const std::string& cut = split_before_;
  size_t start = 0;
  for (size_t at = word.find(cut, 1); at != std::string_view::npos; at = word.find(cut, at + cut.size())) {
    if (at >= cut.size() && word.compare(at - cut.size(), cut.size(), cut) == 0) continue;  // inside a "▁▁" run
    bool crossed = false;
    for (const auto& [token, offset] : crossings_) {
      crossed = crossed || (at >= offset && word.substr(at - offset).starts_with(token));
    }
    if (crossed) continue;
    tokenize_one(word.substr(start, at - start), out);
    start = at;
  }
  tokenize_one(word.substr(start), out);
}

void Bpe::tokenize_one(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  bool cacheable = word.size() < Cache::kMaxWordBytes;
  if (cacheable) {
    std::shared_lock lock(cache_->mu);
    auto it = cache_->map.find(word);
    if (it != cache_->map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t first = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::unique_lock lock(cache_->mu);
    if (cache_->map.size() >= Cache::kCapacity) cache_->map.clear();
    cache_->map.emplace(std::string(word), std::vector<int32_t>(out.begin() + first, out.end()));
  }
}

namespace {

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  uint32_t len;  // bytes of the word it covers; 0 once merged into its left neighbour
};

struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t id;
  // The heap pops the largest: make the lowest rank, then the leftmost, the largest.
  bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

void Bpe::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap_storage;
  symbols.clear();
  auto add = [&](int32_t id, size_t len) {
    int32_t n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, n + 1, static_cast<uint32_t>(len)});
  };

  // Initial symbols: one per character, else its <0xXX> bytes, else (fused) unk; as HF's merge_word.
  std::optional<std::pair<int32_t, size_t>> unk;
  std::string piece;
  for (size_t i = 0; i < word.size();) {
    size_t start = i;
    i += std::min(utf8_len(static_cast<unsigned char>(word[i])), word.size() - i);
    std::string_view ch = word.substr(start, i - start);
    const bool prefixed = start > 0 && !continuing_subword_prefix_.empty();
    const bool suffixed = i == word.size() && !end_of_word_suffix_.empty();
    std::string_view key = ch;
    if (prefixed || suffixed) {
      piece.assign(prefixed ? continuing_subword_prefix_ : "");
      piece.append(ch);
      if (suffixed) piece.append(end_of_word_suffix_);
      key = piece;
    }
    auto it = vocab_.find(key);
    if (it != vocab_.end()) {
      if (unk) {
        add(unk->first, unk->second);
        unk.reset();
      }
      add(it->second, ch.size());
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : key) all = all && byte_tokens_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : key) add(byte_tokens_[static_cast<unsigned char>(c)], 1);
        continue;
      }
    }
    if (unk_id_) {
      if (unk && fuse_unk_) {
        unk->second += ch.size();
      } else {
        if (unk) add(unk->first, unk->second);
        unk = std::make_pair(*unk_id_, ch.size());
      }
    }
  }
  if (unk) add(unk->first, unk->second);
  if (symbols.empty()) return;
  symbols.back().next = -1;

  // A binary heap in a reused buffer: most words are short and this runs once per new word.
  auto& heap = heap_storage;
  heap.clear();
  auto push = [&](Candidate c) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end());
  };
  for (size_t k = 0; k + 1 < symbols.size(); ++k) {
    if (const auto* m = merges_->get(symbols[k].id, symbols[k + 1].id)) {
      push({m->rank, static_cast<int32_t>(k), m->id});
    }
  }
  const int32_t n = static_cast<int32_t>(symbols.size());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Candidate top = heap.back();
    heap.pop_back();
    Symbol& cur = symbols[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    const int32_t right_pos = cur.next;
    Symbol& right = symbols[right_pos];
    // A stale entry: the pair at this position changed since it was queued.
    const auto* m = merges_->get(cur.id, right.id);
    if (m == nullptr || m->id != top.id) continue;
    cur.id = top.id;
    cur.len += right.len;
    cur.next = right.next;
    right.len = 0;
    if (cur.next >= 0 && cur.next < n) symbols[cur.next].prev = top.pos;
    if (cur.prev >= 0) {
      if (const auto* pm = merges_->get(symbols[cur.prev].id, cur.id)) push({pm->rank, cur.prev, pm->id});
    }
    if (cur.next >= 0 && cur.next < n) {
      if (const auto* nm = merges_->get(cur.id, symbols[cur.next].id)) push({nm->rank, top.pos, nm->id});
    }
  }
  for (const Symbol& s : symbols) {
    if (s.len != 0) out.push_back(s.id);
  }
}

}  // namespace keel::tokenizer
