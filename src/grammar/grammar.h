// Structured output: a JSON Schema, "any JSON object" or a forced tool call becomes a grammar (xgrammar's C++ core,
// third_party/xgrammar; docs/DECISIONS.md says why), compiled once against the model's vocabulary and cached; each
// request then gets a matcher of its own, an engine::TokenMask whose bitset allows exactly the tokens that keep the
// output a prefix of something the grammar accepts. Once the output is complete only the stop ids (the model's
// EOS) are allowed. Special tokens never are.
//
//   GrammarCompiler compiler(tokenizer, tokenizer.eos_ids());
//   KEEL_ASSIGN_OR_RETURN(auto grammar, compiler.json_schema(schema, "response_format.json_schema.schema"));
//   request.mask = make_mask(grammar);
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "engine/request.h"
#include "tokenizer/tokenizer.h"

namespace keel::grammar {

// A grammar compiled against one vocabulary (opaque: xgrammar's CompiledGrammar and the stop ids).
struct Compiled;

// One tool a forced call may name: its function name and its arguments' JSON Schema.
struct ToolSchema {
  std::string name;
  nlohmann::ordered_json parameters;  // null: any JSON object
  std::string where;                  // the request field of parameters, for errors ("tools[2].function.parameters")
};

// How the model writes one tool call (server/tool_call_format.h's ToolCallSyntax, for the bodies a grammar can
// force): `begin`, the body, `end`.
//   kJsonObject:   {"name": "<name>", "<arguments_key>": <arguments>}      (Hermes, Qwen; Llama 3's "parameters")
//   kNameThenJson: <name>[ARGS]<arguments>                                 (Mistral)
struct ToolCallForm {
  enum class Body { kJsonObject, kNameThenJson };
  Body body = Body::kJsonObject;
  std::string begin = "<tool_call>\n";
  std::string end = "\n</tool_call>";
  std::string arguments_key = "arguments";
};

class GrammarCompiler {
 public:
  // `stop_ids`: what may follow a complete output (the model's EOS ids). `special_markers`: special tokens a
  // grammar may write where its text says so (Mistral's [TOOL_CALLS] and [ARGS]); every other special token is
  // never allowed. Keeps up to `cache_entries` compiled grammars, least recently used out first.
  GrammarCompiler(const tokenizer::Tokenizer& tokenizer, std::vector<int32_t> stop_ids,
                  const std::vector<std::string>& special_markers = {}, size_t cache_entries = 64);
  ~GrammarCompiler();
  GrammarCompiler(const GrammarCompiler&) = delete;
  GrammarCompiler& operator=(const GrammarCompiler&) = delete;

  // A JSON value valid against `schema` (grammar/schema_subset.h's subset; kInvalidArgument naming `where` and the
  // keyword otherwise). Properties come in the schema's order; keys not in properties only where
  // additionalProperties allows them explicitly.
  Result<std::shared_ptr<const Compiled>> json_schema(const nlohmann::ordered_json& schema, const std::string& where);
  // Any JSON object (OpenAI's json_object).
  Result<std::shared_ptr<const Compiled>> json_object();
  // One call of one of `tools` (N and arguments valid against N's parameters), written as `form` says.
  Result<std::shared_ptr<const Compiled>> tool_call(const std::vector<ToolSchema>& tools, const ToolCallForm& form);

  int vocab_size() const { return vocab_size_; }
  struct Stats {
    uint64_t hits = 0, misses = 0;
    double last_compile_ms = 0;  // of the last miss
  };
  Stats stats() const;

 private:
  struct Impl;
  Result<std::shared_ptr<const Compiled>> cached(const std::string& key, const std::string& where,
                                                 const std::function<std::shared_ptr<const Compiled>()>& compile);

  std::unique_ptr<Impl> impl_;
  int vocab_size_ = 0;
  size_t cache_entries_;
  mutable std::mutex mu_;
  std::list<std::pair<std::string, std::shared_ptr<const Compiled>>> lru_;  // most recent first
  std::unordered_map<std::string, decltype(lru_)::iterator> index_;
  Stats stats_;
};

// A request's matcher over `grammar`: fill() allows the tokens that may follow what the request generated.
std::shared_ptr<engine::TokenMask> make_mask(std::shared_ptr<const Compiled> grammar);

// For tests and benchmarks: whether `text` is a complete output of `grammar`, fed one byte at a time.
bool accepts(const std::shared_ptr<const Compiled>& grammar, std::string_view text);
// ... and whether it is a prefix of one (every byte accepted, not necessarily complete).
bool accepts_prefix(const std::shared_ptr<const Compiled>& grammar, std::string_view text);

}  // namespace keel::grammar
