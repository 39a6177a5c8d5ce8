#include "tokenizer/tokenizer.h"

#include "base/json_parse.h"
#include "env/env.h"
#include "format/gguf.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/gguf_tokenizer.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace keel::tokenizer {

struct Tokenizer::Impl {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Decoder> decoder;
  std::optional<Bpe> model;
  AddedVocabulary added;
  PostProcessor post;
  std::optional<int32_t> bos_id;
  std::vector<int32_t> eos_ids;
  std::string bos_token, eos_token;

  void encode_normalized(std::string& piece, bool at_start, std::vector<int32_t>& ids) const;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

namespace {

Result<Json> parse_json(std::string_view text, const char* name) {
  Result<Json> parsed = parse_json_bounded<Json>(text, kModelFileJsonDepth, name);
  if (!parsed.ok()) return Status(Code::kCorruption, parsed.status().message());
  Json j = std::move(parsed).value();
  if (!j.is_object()) return corruption("{}: expected a JSON object, got {}", name, j.type_name());
  return j;
}

// tokenizer_config.json writes special tokens as "<s>" or as {"content": "<s>", ...}.
std::string token_string(const Json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"];
  return "";
}

Json field_or_null(const Json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() ? Json() : *it;
}

}  // namespace

Result<Tokenizer> Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json,
                                       std::string_view generation_config_json) {
  auto impl = std::make_unique<Impl>();
  auto in_file = [](const Status& st) { return st.with_context("tokenizer.json"); };
  KEEL_ASSIGN_OR_RETURN(Json j, parse_json(tokenizer_json, "tokenizer.json"));

  auto normalizer = parse_normalizer(field_or_null(j, "normalizer"), "normalizer");
  if (!normalizer.ok()) return in_file(normalizer.status());
  impl->normalizer = std::move(normalizer).value();
  auto pre = parse_pre_tokenizer(field_or_null(j, "pre_tokenizer"), "pre_tokenizer");
  if (!pre.ok()) return in_file(pre.status());
  impl->pre_tokenizer = std::move(pre).value();
  auto decoder = parse_decoder(field_or_null(j, "decoder"), "decoder");
  if (!decoder.ok()) return in_file(decoder.status());
  impl->decoder = std::move(decoder).value();
  if (!j.contains("model")) return corruption("tokenizer.json: model: missing");
  auto model = Bpe::from_json(j["model"], "model");
  if (!model.ok()) return in_file(model.status());
  impl->model.emplace(std::move(model).value());
  auto added = AddedVocabulary::from_json(field_or_null(j, "added_tokens"), impl->normalizer.get(), "added_tokens");
  if (!added.ok()) return in_file(added.status());
  impl->added = std::move(added).value();

  auto resolve = [&](std::string_view token) -> std::optional<int32_t> {
    if (auto id = impl->added.by_content(token)) return id;
    return impl->model->token_to_id(token);
  };
  auto post = PostProcessor::from_json(field_or_null(j, "post_processor"), "post_processor");
  if (!post.ok()) return in_file(post.status());
  impl->post = std::move(post).value();

  if (!config_json.empty()) {
    KEEL_ASSIGN_OR_RETURN(Json config, parse_json(config_json, "tokenizer_config.json"));
    impl->bos_token = token_string(config, "bos_token");
    impl->eos_token = token_string(config, "eos_token");
  }
  if (!impl->bos_token.empty()) impl->bos_id = resolve(impl->bos_token);
  if (!generation_config_json.empty()) {
    KEEL_ASSIGN_OR_RETURN(Json gen, parse_json(generation_config_json, "generation_config.json"));
    const Json eos = field_or_null(gen, "eos_token_id");
    for (const Json& e : eos.is_array() ? eos : Json::array({eos})) {
      if (e.is_null()) continue;
      if (!e.is_number_integer()) {
        return corruption("generation_config.json: eos_token_id: expected an integer or a list of them");
      }
      impl->eos_ids.push_back(e.get<int32_t>());
    }
  }
  if (!impl->eos_token.empty()) {
    auto id = resolve(impl->eos_token);
    if (id && std::find(impl->eos_ids.begin(), impl->eos_ids.end(), *id) == impl->eos_ids.end()) {
      impl->eos_ids.push_back(*id);
    }
  }
  return Tokenizer(std::move(impl));
}

Result<Tokenizer> Tokenizer::load(const std::string& dir, env::Env* env) {
  if (env == nullptr) env = env::Env::posix();
  if (format::is_gguf_path(dir) && !env->is_directory(dir)) {
    KEEL_ASSIGN_OR_RETURN(auto gguf, format::GgufFile::open(env, dir));
    KEEL_ASSIGN_OR_RETURN(GgufTokenizerFiles files, tokenizer_files_from_gguf(*gguf));
    auto tok = from_json(files.tokenizer_json, files.config_json, "");
    if (!tok.ok()) return Status(tok.status().code(), fmt::format("{} ({})", tok.status().message(), dir));
    return tok;
  }
  std::string path = env::join_path(dir, "tokenizer.json");
  if (!env->file_exists(path)) return not_found("no tokenizer.json in the directory ({})", dir);
  KEEL_ASSIGN_OR_RETURN(std::string tokenizer_json, env->read_file(path));
  std::string config, generation;
  for (auto [name, out] : {std::pair{"tokenizer_config.json", &config}, {"generation_config.json", &generation}}) {
    std::string p = env::join_path(dir, name);
    if (env->file_exists(p)) {
      KEEL_ASSIGN_OR_RETURN(*out, env->read_file(p));
    }
  }
  auto tok = from_json(tokenizer_json, config, generation);
  if (!tok.ok()) return Status(tok.status().code(), fmt::format("{} ({})", tok.status().message(), dir));
  return tok;
}

void Tokenizer::Impl::encode_normalized(std::string& piece, bool at_start, std::vector<int32_t>& ids) const {
  thread_local std::vector<Piece> words;
  words.clear();
  words.push_back({std::move(piece), at_start});
  if (pre_tokenizer) pre_tokenizer->pre_tokenize(words);
  for (const Piece& w : words) model->tokenize(w.text, ids);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  const Impl& m = *impl_;
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = utf8_lossy(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + m.post.prefix.size() + m.post.suffix.size());
  if (add_special) ids.insert(ids.end(), m.post.prefix.begin(), m.post.prefix.end());
  std::vector<AddedSplit> raw, normalized;
  m.added.split(text, /*normalized=*/false, raw);
  for (const AddedSplit& r : raw) {
    if (r.id >= 0) {
      ids.push_back(r.id);
      continue;
    }
    std::string piece(text.substr(r.start, r.end - r.start));
    if (m.normalizer) m.normalizer->normalize(piece);
    if (!m.added.has_normalized()) {
      if (!piece.empty()) m.encode_normalized(piece, r.start == 0, ids);
      continue;
    }
    normalized.clear();
    m.added.split(piece, /*normalized=*/true, normalized);
    for (const AddedSplit& n : normalized) {
      if (n.id >= 0) {
        ids.push_back(n.id);
        continue;
      }
      std::string sub = piece.substr(n.start, n.end - n.start);
      m.encode_normalized(sub, r.start == 0 && n.start == 0, ids);
    }
  }
  if (add_special) ids.insert(ids.end(), m.post.suffix.begin(), m.post.suffix.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const AddedToken* t = m.added.by_id(id)) {
      if (!(skip_special && t->special)) tokens.push_back(t->content);
    } else if (const std::string* s = m.model->id_to_token(id)) {
      tokens.push_back(*s);
    }
  }
  if (!m.decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  m.decoder->decode_chain(tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  const Impl& m = *impl_;
  std::string bytes;
  if (const AddedToken* t = m.added.by_id(id)) {
    // Special tokens as written; others go through the decoder as decode() takes them (Gemma's "▁▁▁▁").
    if (t->special) return t->content;
    bytes = t->content;
  } else if (const std::string* s = m.model->id_to_token(id)) {
    bytes = *s;
  } else {
    return "";
  }
  if (m.decoder) m.decoder->raw_bytes(bytes);
  return bytes;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = impl_->added.by_content(token)) return id;
  return impl_->model->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const AddedToken* t = impl_->added.by_id(id)) return t->content;
  if (const std::string* s = impl_->model->id_to_token(id)) return *s;
  return std::nullopt;
}

int32_t Tokenizer::vocab_size() const { return std::max(impl_->model->id_limit(), impl_->added.id_limit()); }

bool Tokenizer::is_special(int32_t id) const {
  const AddedToken* t = impl_->added.by_id(id);
  return t != nullptr && t->special;
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }
const std::vector<int32_t>& Tokenizer::eos_ids() const { return impl_->eos_ids; }
const std::string& Tokenizer::bos_token() const { return impl_->bos_token; }
const std::string& Tokenizer::eos_token() const { return impl_->eos_token; }

}  // namespace keel::tokenizer
