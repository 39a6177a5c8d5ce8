// Named model shapes for benchmarks: the exact dimensions of well-known models, without their weights.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace keel::model {

Result<ModelConfig> synthetic_config(const std::string& name);
std::vector<std::string> synthetic_names();

}  // namespace keel::model
