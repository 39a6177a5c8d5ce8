#include "tokenizer/post_processor.h"

namespace keel::tokenizer {

namespace {

Status add_template(const Json& j, const std::string& where, PostProcessor& pp) {
  KEEL_ASSIGN_OR_RETURN(const Json* single, get_field(j, "single", where));
  if (!single->is_array()) return corruption("{}.single: expected an array", where);
  const Json empty = Json::object();
  auto specials_it = j.find("special_tokens");
  const Json& specials = specials_it == j.end() ? empty : *specials_it;
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const Json& item = (*single)[i];
    std::string at = fmt::format("{}.single[{}]", where, i);
    if (item.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!item.contains("SpecialToken")) return corruption("{}: expected SpecialToken or Sequence", at);
    KEEL_ASSIGN_OR_RETURN(std::string name, get_string(item["SpecialToken"], "id", at + ".SpecialToken"));
    auto sp = specials.find(name);
    if (sp == specials.end() || !sp->contains("ids") || !(*sp)["ids"].is_array()) {
      return corruption("{}.special_tokens: no ids for '{}' (used by {})", where, name, at);
    }
    auto& dst = seen_sequence ? pp.suffix : pp.prefix;
    for (const Json& id : (*sp)["ids"]) {
      if (!id.is_number_integer()) return corruption("{}.special_tokens[\"{}\"].ids: expected integers", where, name);
      dst.push_back(id.get<int32_t>());
    }
  }
  return Status();
}

// Bert and Roberta write tokens as ["[CLS]", 101].
Status add_pair_token(const Json& j, const char* key, const std::string& where, std::vector<int32_t>& dst) {
  KEEL_ASSIGN_OR_RETURN(const Json* t, get_field(j, key, where));
  if (!t->is_array() || t->size() != 2 || !(*t)[1].is_number_integer()) {
    return corruption("{}.{}: expected [token, id]", where, key);
  }
  dst.push_back((*t)[1].get<int32_t>());
  return Status();
}

Status add_processor(const Json& j, const std::string& where, PostProcessor& pp) {
  if (j.is_null()) return Status();
  KEEL_ASSIGN_OR_RETURN(std::string type, get_string(j, "type", where));
  if (type == "ByteLevel") return Status();  // only trims offsets, which keel does not report
  if (type == "TemplateProcessing") return add_template(j, where, pp);
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    KEEL_RETURN_IF_ERROR(add_pair_token(j, "cls", where, pp.prefix));
    return add_pair_token(j, "sep", where, pp.suffix);
  }
  if (type == "Sequence") {
    KEEL_ASSIGN_OR_RETURN(const Json* list, get_field(j, "processors", where));
    if (!list->is_array()) return corruption("{}.processors: expected an array", where);
    for (size_t i = 0; i < list->size(); ++i) {
      KEEL_RETURN_IF_ERROR(add_processor((*list)[i], fmt::format("{}.processors[{}]", where, i), pp));
    }
    return Status();
  }
  return unsupported("{}.type: post-processor '{}' is not supported (TemplateProcessing, BertProcessing, "
                     "RobertaProcessing, ByteLevel, Sequence are)", where, type);
}

}  // namespace

Result<PostProcessor> PostProcessor::from_json(const Json& j, const std::string& where) {
  PostProcessor pp;
  KEEL_RETURN_IF_ERROR(add_processor(j, where, pp));
  return pp;
}

}  // namespace keel::tokenizer
