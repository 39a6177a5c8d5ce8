#include "grammar/grammar.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <thread>

#include "grammar/compiled.h"
#include "grammar/schema_subset.h"

namespace keel::grammar {

using json = nlohmann::ordered_json;

struct GrammarCompiler::Impl {
  Impl(xgrammar::TokenizerInfo info, int threads) : info(info), compiler(info, threads, /*cache_enabled=*/false) {}
  xgrammar::TokenizerInfo info;
  xgrammar::GrammarCompiler compiler;
  std::vector<int32_t> stop_ids;
};

namespace {

// One-line JSON with ", " and ": " (Python's json.dumps default, what models see in their training data): no free
// whitespace, so a model cannot spend its tokens on blanks between values.
constexpr bool kAnyWhitespace = false;
// xgrammar's strict mode: keys not in properties and items past prefixItems only where the schema allows them
// explicitly (additionalProperties / items), never by default.
constexpr bool kStrict = true;

std::vector<std::string> vocabulary(const tokenizer::Tokenizer& tok, const std::vector<std::string>& markers) {
  std::vector<std::string> vocab(tok.vocab_size());
  // Special tokens are "" (xgrammar never allows those), but for the markers a tool call is written with;
  // everything else is the bytes it adds to a text.
  for (int32_t id = 0; id < tok.vocab_size(); id++) {
    std::string bytes = tok.token_bytes(id);
    if (!tok.is_special(id) || std::find(markers.begin(), markers.end(), bytes) != markers.end())
      vocab[id] = std::move(bytes);
  }
  return vocab;
}

// An EBNF string literal.
std::string ebnf_literal(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') out += {'\\', static_cast<char>(c)};
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out + "\"";
}

class GrammarMask final : public engine::TokenMask {
 public:
  explicit GrammarMask(std::shared_ptr<const Compiled> grammar)
      : grammar_(std::move(grammar)),
        matcher_(grammar_->grammar, grammar_->stop_ids),
        bits_(xgrammar::GetBitmaskSize(grammar_->vocab_size)) {}

  void fill(std::span<const int32_t> generated, std::span<uint32_t> allowed) override {
    std::fill(allowed.begin(), allowed.end(), 0u);
    // A token the grammar did not allow got in (a row left unmasked): nothing more can be said, and a mask that
    // allows nothing leaves the row unmasked.
    if (!sync(generated)) return;
    try {
      if (matcher_.IsTerminated()) {
        for (int32_t id : grammar_->stop_ids)
          if (static_cast<size_t>(id) / 32 < allowed.size()) allowed[id / 32] |= 1u << (id % 32);
        return;
      }
      int64_t shape[1] = {static_cast<int64_t>(bits_.size())};
      DLTensor t{};
      t.data = bits_.data();
      t.device = DLDevice{kDLCPU, 0};
      t.ndim = 1;
      t.dtype = xgrammar::GetBitmaskDLType();
      t.shape = shape;
      matcher_.FillNextTokenBitmask(&t);
    } catch (const std::exception&) {
      return;
    }
    // The model's vocabulary may be wider than the tokenizer's (padded embeddings): those ids stay disallowed.
    const size_t n = std::min(allowed.size(), bits_.size());
    std::copy_n(reinterpret_cast<const uint32_t*>(bits_.data()), n, allowed.begin());
    const int vocab = grammar_->vocab_size;
    if (n * 32 > static_cast<size_t>(vocab) && vocab % 32 != 0) allowed[n - 1] &= (1u << (vocab % 32)) - 1;
  }

 private:
  // Brings the matcher to `generated`: rolls back to the longest common prefix (preemption, speculation) and
  // accepts the rest.
  bool sync(std::span<const int32_t> generated) {
    if (broken_) return false;
    size_t common = 0;
    while (common < accepted_.size() && common < generated.size() && accepted_[common] == generated[common]) common++;
    try {
      if (common < accepted_.size()) {
        matcher_.Rollback(static_cast<int>(accepted_.size() - common));
        accepted_.resize(common);
      }
      for (size_t i = common; i < generated.size(); i++) {
        if (!matcher_.AcceptToken(generated[i])) {
          broken_ = true;
          return false;
        }
        accepted_.push_back(generated[i]);
      }
    } catch (const std::exception&) {
      broken_ = true;
      return false;
    }
    return true;
  }

  std::shared_ptr<const Compiled> grammar_;
  xgrammar::GrammarMatcher matcher_;
  std::vector<int32_t> bits_;
  std::vector<int32_t> accepted_;
  bool broken_ = false;
};

bool feed(const std::shared_ptr<const Compiled>& grammar, std::string_view text, bool complete) {
  xgrammar::GrammarMatcher m(grammar->grammar, grammar->stop_ids);
  for (char c : text)
    if (!m.AcceptString(std::string(1, c))) return false;
  return !complete || m.IsCompleted();
}

}  // namespace

GrammarCompiler::GrammarCompiler(const tokenizer::Tokenizer& tokenizer, std::vector<int32_t> stop_ids,
                                 const std::vector<std::string>& special_markers, size_t cache_entries)
    : vocab_size_(tokenizer.vocab_size()), cache_entries_(cache_entries) {
  xgrammar::TokenizerInfo info(vocabulary(tokenizer, special_markers), xgrammar::VocabType::RAW, vocab_size_,
                               stop_ids);
  // Compiling fills the mask cache over the vocabulary in parallel: at most 8 threads, as xgrammar's default.
  const int threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u));
  impl_ = std::make_unique<Impl>(info, threads);
  impl_->stop_ids = std::move(stop_ids);
}

GrammarCompiler::~GrammarCompiler() = default;

GrammarCompiler::Stats GrammarCompiler::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

Result<std::shared_ptr<const Compiled>> GrammarCompiler::cached(
    const std::string& key, const std::string& where, const std::function<std::shared_ptr<const Compiled>()>& compile) {
  {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      stats_.hits++;
      return it->second->second;
    }
  }
  // Compiled outside the lock: another request's compile of the same text at worst repeats the work.
  const auto start = std::chrono::steady_clock::now();
  std::shared_ptr<const Compiled> compiled;
  try {
    compiled = compile();
  } catch (const std::exception& e) {
    // xgrammar's messages name what it could not convert (a pattern it cannot parse, a $ref it cannot resolve).
    std::string what = e.what();
    if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    return invalid_argument("{}: the schema cannot be enforced: {}", where, what);
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::lock_guard lock(mu_);
  stats_.misses++;
  stats_.last_compile_ms = ms;
  if (index_.count(key) == 0) {
    lru_.emplace_front(key, compiled);
    index_[key] = lru_.begin();
    while (lru_.size() > cache_entries_) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }
  return compiled;
}

Result<std::shared_ptr<const Compiled>> GrammarCompiler::json_schema(const json& schema, const std::string& where) {
  KEEL_RETURN_IF_ERROR(check_schema(schema, where));
  const std::string text = schema.dump();
  return cached("schema\n" + text, where, [&] {
    xgrammar::Grammar g = xgrammar::Grammar::FromJSONSchema(text, kAnyWhitespace, std::nullopt, std::nullopt, kStrict);
    return std::make_shared<const Compiled>(
        Compiled{impl_->compiler.CompileGrammar(g), impl_->stop_ids, vocab_size_});
  });
}

Result<std::shared_ptr<const Compiled>> GrammarCompiler::json_object() {
  // Not strict: any keys, any values.
  return cached("json_object", "response_format", [&] {
    xgrammar::Grammar g =
        xgrammar::Grammar::FromJSONSchema(R"({"type": "object"})", kAnyWhitespace, std::nullopt, std::nullopt, false);
    return std::make_shared<const Compiled>(
        Compiled{impl_->compiler.CompileGrammar(g), impl_->stop_ids, vocab_size_});
  });
}

Result<std::shared_ptr<const Compiled>> GrammarCompiler::tool_call(const std::vector<ToolSchema>& tools,
                                                                   const ToolCallForm& form) {
  if (tools.empty()) return invalid_argument("tool_choice: there are no tools to call");
  // Each tool's part: the JSON object with its name, or its name then its arguments.
  json parts = json::array();
  for (const ToolSchema& t : tools) {
    json parameters = t.parameters.is_null() ? json{{"type", "object"}} : t.parameters;
    KEEL_RETURN_IF_ERROR(check_schema(parameters, t.where));
    if (form.body == ToolCallForm::Body::kNameThenJson) {
      parts.push_back(json{{"name", t.name}, {"arguments", std::move(parameters)}});
      continue;
    }
    parts.push_back(json{{"type", "object"},
                         {"properties", {{"name", {{"const", t.name}}}, {form.arguments_key, std::move(parameters)}}},
                         {"required", {"name", form.arguments_key}},
                         {"additionalProperties", false}});
  }
  const std::string where = tools.size() == 1 ? tools[0].where : "tools";
  const std::string key = fmt::format("tool_call\n{}\n{}\n{}\n{}\n{}", static_cast<int>(form.body), form.begin,
                                      form.end, form.arguments_key, parts.dump());
  return cached(key, where, [&] {
    auto literal = [](const std::string& text) { return xgrammar::Grammar::FromEBNF("root ::= " + ebnf_literal(text)); };
    auto schema = [](const json& s) {
      return xgrammar::Grammar::FromJSONSchema(s.dump(), kAnyWhitespace, std::nullopt, std::nullopt, kStrict);
    };
    std::vector<xgrammar::Grammar> calls;
    for (const json& part : parts) {
      if (form.body == ToolCallForm::Body::kNameThenJson)
        calls.push_back(xgrammar::Grammar::Concat(
            {literal(part["name"].get<std::string>() + "[ARGS]"), schema(part["arguments"])}));
      else
        calls.push_back(schema(part));
    }
    std::vector<xgrammar::Grammar> sequence;
    if (!form.begin.empty()) sequence.push_back(literal(form.begin));
    sequence.push_back(calls.size() == 1 ? calls[0] : xgrammar::Grammar::Union(calls));
    if (!form.end.empty()) sequence.push_back(literal(form.end));
    xgrammar::Grammar g = sequence.size() == 1 ? sequence[0] : xgrammar::Grammar::Concat(sequence);
    return std::make_shared<const Compiled>(
        Compiled{impl_->compiler.CompileGrammar(g), impl_->stop_ids, vocab_size_});
  });
}

std::shared_ptr<engine::TokenMask> make_mask(std::shared_ptr<const Compiled> grammar) {
  return std::make_shared<GrammarMask>(std::move(grammar));
}

bool accepts(const std::shared_ptr<const Compiled>& grammar, std::string_view text) {
  return feed(grammar, text, true);
}

bool accepts_prefix(const std::shared_ptr<const Compiled>& grammar, std::string_view text) {
  return feed(grammar, text, false);
}

}  // namespace keel::grammar
