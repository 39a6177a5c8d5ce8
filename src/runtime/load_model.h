// Shared by the model subcommands: loads a model directory onto a backend from the registry (backend/registry.h).
#pragma once

#include <memory>
#include <string>

#include "backend/ops.h"
#include "model/model.h"

namespace keel::runtime {

struct LoadedModel {
  std::unique_ptr<backend::Backend> backend;
  std::unique_ptr<model::Model> model;
};

// backend_name: "cpu", "cuda", or "auto" (backend::create).
Result<LoadedModel> load_model(const std::string& dir, const std::string& backend_name,
                               const model::LoadOptions& options);

}  // namespace keel::runtime
