// Shared by the model subcommands: picks a backend and loads a model directory onto it.
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

// "cpu", "cuda", or "auto" (CUDA when a GPU is visible, else CPU).
Result<std::unique_ptr<backend::Backend>> make_backend(const std::string& name);

Result<LoadedModel> load_model(const std::string& dir, const std::string& backend_name,
                               const model::LoadOptions& options);

}  // namespace keel::runtime
