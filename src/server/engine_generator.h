// The real Generator: engine::Engine, whose types the server uses as they are.
#pragma once

#include "engine/engine.h"
#include "server/generator.h"

namespace keel::server {

class EngineGenerator : public Generator {
 public:
  explicit EngineGenerator(engine::Engine* engine) : engine_(engine) {}

  Result<uint64_t> submit(engine::Request request, engine::EventCallback callback) override {
    return engine_->submit(std::move(request), std::move(callback));
  }
  void cancel(uint64_t id) override { engine_->cancel(id); }
  void drain() override { engine_->drain(); }
  engine::EngineStats stats() const override { return engine_->stats(); }
  int max_model_len() const override { return engine_->max_model_len(); }
  std::string failure() const override { return engine_->failure(); }

 private:
  engine::Engine* engine_;
};

}  // namespace keel::server
