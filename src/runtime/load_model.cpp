#include "runtime/load_model.h"

#ifdef KEEL_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace keel::runtime {

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

}  // namespace keel::runtime
