#include "runtime/load_model.h"

#include "backend/registry.h"

namespace keel::runtime {

Result<LoadedModel> load_model(const std::string& dir, const std::string& backend_name,
                               const model::LoadOptions& options) {
  LoadedModel lm;
  KEEL_ASSIGN_OR_RETURN(lm.backend, backend::create(backend_name));
  KEEL_ASSIGN_OR_RETURN(lm.model, model::Model::load(env::Env::posix(), dir, lm.backend.get(), options));
  return lm;
}

}  // namespace keel::runtime
