#include "backend/cuda/cuda_check.h"

#include <string>

#include "base/log.h"

namespace keel::backend {

void fail_fatally(const char* what, const char* call, const char* reason, const char* file, int line) {
  log::fatal(what, {{"call", call}, {"error", reason}, {"at", std::string(file) + ":" + std::to_string(line)}});
}

}  // namespace keel::backend
