// Linked instead of backend/cuda/registry_entry.cpp when this keel is built without CUDA (backend/registry.h).
#include "backend/registry.h"

namespace keel::backend {

std::vector<BackendKind> device_kinds() { return {}; }

}  // namespace keel::backend
