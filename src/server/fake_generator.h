// Test support: a Generator that "generates" the bytes of a script, one token per byte (the test tokenizer maps
// byte b to id b), then end-of-sequence. It runs its own thread like the engine, one token per request per step.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "server/generator.h"

namespace keel::server {

class FakeGenerator : public Generator {
 public:
  std::string script = "Hello world! This is keel.";
  int32_t eos_id = 257;
  int max_len = 4096;
  bool endless = false;  // repeat the script until max_tokens (or cancel)
  std::chrono::milliseconds step_delay{0};
  std::chrono::milliseconds first_token_delay{0};  // a prefill: a request's first token comes this long after submit
  int cached_tokens = 0;  // reported on every event, capped at the prompt's length
  // When set, picks each request's script from the request (a conversation's next turn); else `script`.
  std::function<std::string(const engine::Request&)> script_for;

  FakeGenerator() : thread_([this] { loop(); }) {}
  ~FakeGenerator() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  Result<uint64_t> submit(engine::Request request, engine::EventCallback callback) override {
    std::lock_guard lock(mu_);
    if (draining_) return resource_exhausted("draining");
    // The engine's own admission check, over a KV pool that holds the whole context.
    KEEL_RETURN_IF_ERROR(engine::check_context(static_cast<int>(request.prompt.size()), request.max_tokens, max_len,
                                               max_len));
    uint64_t id = next_id_++;
    last_request = request;
    submitted_.push_back(request);
    std::string text = script_for ? script_for(request) : script;
    active_.push_back(Active{id, std::move(request), std::move(callback), 0, std::move(text),
                             std::chrono::steady_clock::now() + first_token_delay});
    cv_.notify_all();
    return id;
  }

  void cancel(uint64_t id) override {
    std::lock_guard lock(mu_);
    cancelled_.insert(id);
    cancel_calls.insert(id);
    cv_.notify_all();
  }

  void drain() override {
    std::lock_guard lock(mu_);
    draining_ = true;
  }

  engine::EngineStats stats() const override {
    std::lock_guard lock(mu_);
    engine::EngineStats s;
    s.running = static_cast<int>(active_.size());
    s.kv_blocks_total = 64;
    s.allocations_after_warmup = 0;
    return s;
  }

  int max_model_len() const override { return max_len; }

  int active() const {
    std::lock_guard lock(mu_);
    return static_cast<int>(active_.size());
  }
  bool was_cancelled(uint64_t id) const {
    std::lock_guard lock(mu_);
    return cancel_calls.count(id) > 0;
  }
  size_t cancel_count() const {
    std::lock_guard lock(mu_);
    return cancel_calls.size();
  }
  engine::Request last() const {
    std::lock_guard lock(mu_);
    return last_request;
  }
  // Every request submitted, in order, and the id each got (ids count from 1).
  std::vector<engine::Request> submitted() const {
    std::lock_guard lock(mu_);
    return submitted_;
  }

 private:
  struct Active {
    uint64_t id;
    engine::Request request;
    engine::EventCallback callback;
    int generated = 0;
    std::string script;
    std::chrono::steady_clock::time_point first_token_at;
  };

  void loop() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stopping_ || !active_.empty(); });
      if (stopping_) break;
      bool prefilling = false;
      for (auto it = active_.begin(); it != active_.end();) {
        if (it->generated == 0 && !cancelled_.count(it->id) && std::chrono::steady_clock::now() < it->first_token_at) {
          prefilling = true;
          ++it;
          continue;
        }
        engine::Event e;
        e.cached_tokens = std::min(cached_tokens, static_cast<int>(it->request.prompt.size()));
        if (cancelled_.count(it->id)) {
          e.finish = engine::FinishReason::kCancelled;
        } else {
          const std::string& text = it->script;
          const int n = static_cast<int>(text.size());
          const bool at_end = !endless && it->generated >= n;
          e.token = at_end ? eos_id : static_cast<unsigned char>(text[it->generated % n]);
          e.chosen = {e.token, -0.5f};
          // Prompt logprobs, made up but checkable: prompt token i has logprob -i/10.
          if (it->generated == 0 && it->request.prompt_logprobs >= 0) {
            for (size_t i = 1; i < it->request.prompt.size(); ++i) {
              engine::PromptLogprob p{{it->request.prompt[i], -0.1f * static_cast<float>(i)}, {}};
              for (int k = 0; k < it->request.prompt_logprobs; ++k) p.top.push_back({p.chosen.token + k, -0.05f - k});
              e.prompt_logprobs.push_back(std::move(p));
            }
          }
          for (int k = 0; k < it->request.top_logprobs; ++k) e.top.push_back({e.token + k, -0.5f - k});
          it->generated++;
          if (at_end && !it->request.ignore_eos) {
            e.finish = engine::FinishReason::kStop;
          } else if (it->generated >= it->request.max_tokens) {
            e.finish = engine::FinishReason::kLength;
          }
        }
        it->callback(e);
        it = e.finish == engine::FinishReason::kNone ? std::next(it) : active_.erase(it);
      }
      if (prefilling) cv_.wait_for(lock, std::chrono::milliseconds(5));
      if (step_delay.count() > 0) {
        lock.unlock();
        std::this_thread::sleep_for(step_delay);
        lock.lock();
      }
    }
    for (auto& a : active_) {
      engine::Event e;
      e.finish = engine::FinishReason::kCancelled;
      a.callback(e);
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::list<Active> active_;
  std::set<uint64_t> cancelled_;
  uint64_t next_id_ = 1;
  bool draining_ = false;
  bool stopping_ = false;
  engine::Request last_request;
  std::vector<engine::Request> submitted_;
  std::set<uint64_t> cancel_calls;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace keel::server
