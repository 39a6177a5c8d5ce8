// Governor: the plan, the ledger and the alloc log together, as the server holds them. Every buffer reserved at
// start goes through reserve() right after it is allocated. Requests are admitted by the engine
// (engine::check_context, in Engine::submit), against the max_model_len and KV pool this plan sized.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "memory/alloc_log.h"
#include "memory/ledger.h"
#include "memory/plan.h"

namespace keel::memory {

class Governor {
 public:
  // `log` may be null (no --alloc-log).
  Governor(Plan plan, std::unique_ptr<AllocLog> log, WallClock clock = system_wall_micros);

  const Plan& plan() const { return plan_; }
  Ledger& ledger() { return ledger_; }
  const Ledger& ledger() const { return ledger_; }

  // Counts a buffer just allocated (ledger acquire, alloc-log line when large). Fails with kResourceExhausted
  // when it took more than 1% over what the plan set aside for it (a planning bug: the plan no longer proves
  // that everything fits), or with the ledger's error.
  Status reserve(const std::string& id, std::string_view purpose, uint64_t planned, uint64_t actual,
                 std::string_view dtype, std::string_view by);
  // After start-up: kResourceExhausted when the buffers held now exceed weights + activations + KV pool + hot tier
  // + SSD write queue of the plan by more than 1% (buffers reserved one by one can each be right and still add
  // up wrong).
  Status check_within_plan() const;
  // The matching release at shutdown.
  Status unreserve(const std::string& id, std::string_view by) { return ledger_.release(id, by); }

 private:
  Plan plan_;
  Ledger ledger_;
  std::unique_ptr<AllocLog> log_;
};

}  // namespace keel::memory
