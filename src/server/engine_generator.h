// The real Generator: forwards to engine::Engine, translating its request and event types.
#pragma once

#include "engine/engine.h"
#include "server/generator.h"

namespace keel::server {

class EngineGenerator : public Generator {
 public:
  // `max_model_len`: the context limit requests are checked against (the engine's own or the model's).
  EngineGenerator(engine::Engine* engine, int max_model_len) : engine_(engine), max_model_len_(max_model_len) {}

  Result<uint64_t> submit(GenerationRequest request, TokenCallback callback) override;
  void cancel(uint64_t id) override { engine_->cancel(id); }
  void drain() override { engine_->drain(); }
  GeneratorStats stats() const override;
  int max_model_len() const override { return max_model_len_; }
  std::string failure() const override { return engine_->failure(); }

 private:
  engine::Engine* engine_;
  int max_model_len_;
};

}  // namespace keel::server
