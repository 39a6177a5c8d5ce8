#include "cli/load_model.h"

#include <cctype>
#include <cstdlib>

#ifdef KEEL_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace keel::cli {

Result<LoadedModel> load_model(const std::string& dir, const std::string& backend_name,
                               const model::LoadOptions& options) {
  LoadedModel lm;
  KEEL_ASSIGN_OR_RETURN(lm.backend, make_backend(backend_name));
  KEEL_ASSIGN_OR_RETURN(lm.model, model::Model::load(env::Env::posix(), dir, lm.backend.get(), options));
  return lm;
}

Result<std::unique_ptr<backend::Backend>> make_backend(const std::string& name) {
  if (name == "cpu") return backend::make_cpu_backend();
#ifdef KEEL_WITH_CUDA
  if (name == "cuda") return backend::make_cuda_backend(0);
  if (name == "auto") {
    if (backend::cuda_device_count() > 0) return backend::make_cuda_backend(0);
    return backend::make_cpu_backend();
  }
#else
  if (name == "auto") return backend::make_cpu_backend();
  if (name == "cuda") return unsupported("--backend cuda: this keel was built without CUDA (no nvcc at build time)");
#endif
  return invalid_argument("--backend {}: expected auto, cpu or cuda", name);
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
