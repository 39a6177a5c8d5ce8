#include "tokenizer/gguf_tokenizer.h"

#include <nlohmann/json.hpp>

namespace keel::tokenizer {

namespace {

using nlohmann::json;

// llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) -> the Split regex of the HF tokenizer they came from.
// llama-bpe: Llama 3's; qwen2: Qwen2/3's (digits one at a time); default/gpt2: GPT-2's.
const char* pre_tokenizer_regex(const std::string& pre) {
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3")
    return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  if (pre == "qwen2" || pre == "qwen3")
    return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  if (pre == "default" || pre == "gpt2" || pre.empty())
    return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  return nullptr;
}

}  // namespace

Result<GgufTokenizerFiles> tokenizer_files_from_gguf(const format::GgufFile& f) {
  const std::string& where = f.path();
  auto get = [&](const char* key) { return f.get(key); };
  const json* model = get("tokenizer.ggml.model");
  if (model == nullptr || !model->is_string()) return not_found("{}: no tokenizer.ggml.model", where);
  if (*model != "gpt2")
    return unsupported("{}: tokenizer.ggml.model '{}' is not supported (byte-level BPE, 'gpt2', is; SentencePiece "
                       "vocabularies such as gemma's are not yet)", where, model->get<std::string>());
  const json* tokens = get("tokenizer.ggml.tokens");
  const json* merges = get("tokenizer.ggml.merges");
  if (tokens == nullptr || !tokens->is_array() || merges == nullptr || !merges->is_array())
    return corruption("{}: a BPE tokenizer needs tokenizer.ggml.tokens and tokenizer.ggml.merges arrays", where);
  const json* types = get("tokenizer.ggml.token_type");
  std::string pre = "default";
  if (const json* p = get("tokenizer.ggml.pre"); p && p->is_string()) pre = p->get<std::string>();
  const char* regex = pre_tokenizer_regex(pre);
  if (regex == nullptr)
    return unsupported("{}: tokenizer.ggml.pre '{}' is not supported (llama-bpe, qwen2, default are)", where, pre);

  json vocab = json::object(), added = json::array();
  for (size_t id = 0; id < tokens->size(); id++) {
    const json& t = (*tokens)[id];
    if (!t.is_string()) return corruption("{}: tokenizer.ggml.tokens[{}] is not a string", where, id);
    vocab[t.get<std::string>()] = id;
    // Token types (llama.cpp): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. Control and
    // user-defined tokens were HF's added tokens; control ones are special.
    const int type = types && types->is_array() && id < types->size() && (*types)[id].is_number_integer()
                         ? (*types)[id].get<int>() : 1;
    if (type == 3 || type == 4)
      added.push_back({{"id", id}, {"content", t}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", type == 4}, {"special", type == 3}});
  }
  json tok = json::object();
  tok["version"] = "1.0";
  tok["added_tokens"] = added;
  tok["normalizer"] = pre == "qwen2" || pre == "qwen3" ? json{{"type", "NFC"}} : json();
  tok["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"},
                                      {"invert", false}},
                                     {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                                      {"use_regex", false}}})}};
  tok["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  tok["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                  {"ignore_merges", pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3"},
                  {"vocab", vocab}, {"merges", *merges}};

  GgufTokenizerFiles out;
  auto token_of = [&](const char* key) -> std::string {
    const json* id = get(key);
    if (id == nullptr || !id->is_number_integer() || id->get<int64_t>() < 0 ||
        id->get<uint64_t>() >= tokens->size())
      return "";
    return (*tokens)[id->get<size_t>()].get<std::string>();
  };
  out.bos_token = token_of("tokenizer.ggml.bos_token_id");
  out.eos_token = token_of("tokenizer.ggml.eos_token_id");
  bool add_bos = false;
  if (const json* v = get("tokenizer.ggml.add_bos_token"); v && v->is_boolean()) add_bos = v->get<bool>();
  if (add_bos && !out.bos_token.empty()) {
    const int64_t bos = get("tokenizer.ggml.bos_token_id")->get<int64_t>();
    tok["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", out.bos_token}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", json::array({{{"SpecialToken", {{"id", out.bos_token}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"SpecialToken", {{"id", out.bos_token}, {"type_id", 1}}}},
                              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
        {"special_tokens",
         {{out.bos_token, {{"id", out.bos_token}, {"ids", json::array({bos})}, {"tokens", json::array({out.bos_token})}}}}}};
  } else {
    tok["post_processor"] = nullptr;
  }
  out.tokenizer_json = tok.dump();
  json config = json::object();
  if (!out.bos_token.empty()) config["bos_token"] = out.bos_token;
  if (!out.eos_token.empty()) config["eos_token"] = out.eos_token;
  out.config_json = config.dump();
  if (const json* t = get("tokenizer.chat_template"); t && t->is_string()) out.chat_template = t->get<std::string>();
  return out;
}

}  // namespace keel::tokenizer
