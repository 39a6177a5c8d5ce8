// Generator: what the HTTP layer needs from a model — submit token ids, receive token events, cancel, drain,
// read stats — in the engine's own types (engine/request.h). The real one is engine::Engine (engine_generator.h);
// tests use a scripted fake, so every HTTP behaviour is testable without a model.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "engine/request.h"

namespace keel::server {

class Generator {
 public:
  virtual ~Generator() = default;
  // Admission, as Engine::submit: fails at once for what can never run: kInvalidArgument (the context check,
  // engine::check_context: the message has the numbers), kResourceExhausted (draining or full). The callback
  // runs on the generator's thread and must return quickly and never block.
  virtual Result<uint64_t> submit(engine::Request request, engine::EventCallback callback) = 0;
  // The request's callback then receives a final kCancelled event (unless it already finished).
  virtual void cancel(uint64_t id) = 0;
  virtual void drain() = 0;
  virtual engine::EngineStats stats() const = 0;
  // The longest prompt + completion a request may have, in tokens.
  virtual int max_model_len() const = 0;
  // Why generation stopped for good ("" while healthy): /health then answers 503 "unhealthy" with it.
  virtual std::string failure() const { return ""; }
};

}  // namespace keel::server
