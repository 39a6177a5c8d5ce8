#include "cli/load_model.h"

#include <cctype>
#include <cstdlib>

namespace keel::cli {

Result<LoadedModel> load_model(const std::string& dir, const std::string& backend_name,
                               const model::LoadOptions& options) {
  LoadedModel lm;
  if (backend_name == "cpu" || backend_name == "auto") {
    lm.backend = backend::make_cpu_backend();
  } else if (backend_name == "cuda") {
    return unsupported("--backend cuda: this build of keel has no CUDA backend yet; use --backend cpu");
  } else {
    return invalid_argument("--backend {}: expected auto, cpu or cuda", backend_name);
  }
  KEEL_ASSIGN_OR_RETURN(lm.model, model::Model::load(env::Env::posix(), dir, lm.backend.get(), options));
  return lm;
}

Result<std::vector<int32_t>> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (std::isspace(static_cast<unsigned char>(text[i])) || text[i] == ',')) i++;
    if (i >= text.size()) break;
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j])) && text[j] != ',') j++;
    std::string word = text.substr(i, j - i);
    char* end = nullptr;
    long v = std::strtol(word.c_str(), &end, 10);
    if (*end != '\0' || word.empty() || v < 0 || v > INT32_MAX)
      return invalid_argument("token id '{}' is not a non-negative integer (in \"{}\")", word, text);
    ids.push_back(static_cast<int32_t>(v));
    i = j;
  }
  if (ids.empty()) return invalid_argument("no token ids in \"{}\"", text);
  return ids;
}

}  // namespace keel::cli
