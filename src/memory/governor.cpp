#include "memory/governor.h"

#include "base/units.h"

namespace keel::memory {

Governor::Governor(Plan plan, std::unique_ptr<AllocLog> log, WallClock clock)
    : plan_(std::move(plan)), ledger_(std::move(clock)), log_(std::move(log)) {}

Status Governor::reserve(const std::string& id, std::string_view purpose, uint64_t planned, uint64_t actual,
                         std::string_view dtype, std::string_view by) {
  // Alignment and page rounding are not planning errors: allow 1%, as keel doctor does.
  if (actual > planned + planned / 100) {
    return resource_exhausted("memory: {} ({}) took {} but the plan set aside {}; the plan no longer proves that "
                              "everything fits",
                              id, purpose, format_bytes(actual), format_bytes(planned));
  }
  KEEL_RETURN_IF_ERROR(ledger_.acquire(id, purpose, actual, by));
  if (log_ == nullptr) return Status();
  AllocEntry e;
  e.purpose = std::string(purpose);
  e.planned = planned;
  e.actual = actual;
  e.model = plan_.model;
  e.dtype = std::string(dtype);
  e.batch = plan_.max_num_batched_tokens;
  e.context = plan_.max_model_len;
  e.budget = plan_.main_budget;
  e.in_use = ledger_.bytes_reserved();
  return log_->record(e);
}

Status Governor::check_within_plan() const {
  const uint64_t planned = plan_.weight_bytes + plan_.activation_bytes + plan_.kv_bytes + plan_.hot_tier_bytes +
                           plan_.ssd_queue_bytes;
  const uint64_t held = ledger_.bytes_reserved();
  if (held > planned + planned / 100) {
    return resource_exhausted("memory: {} reserved but the plan holds {} (weights {} + activations {} + kv pool {} + "
                              "hot tier {} + ssd queue {})",
                              format_bytes(held), format_bytes(planned), format_bytes(plan_.weight_bytes),
                              format_bytes(plan_.activation_bytes), format_bytes(plan_.kv_bytes),
                              format_bytes(plan_.hot_tier_bytes), format_bytes(plan_.ssd_queue_bytes));
  }
  return Status();
}

}  // namespace keel::memory
