#include "server/response_store.h"

namespace keel::server {

namespace {

std::string text(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace

void ResponseStore::put(const std::string& id, StoredResponse r) {
  Entry entry{id, text(r.response), text(r.conversation)};
  const size_t bytes = entry.bytes();
  std::lock_guard lock(mu_);
  if (auto it = index_.find(id); it != index_.end()) drop(it->second);
  if (max_entries_ == 0 || bytes > max_bytes_) return;
  lru_.push_front(std::move(entry));
  index_[id] = lru_.begin();
  bytes_ += bytes;
  while (lru_.size() > max_entries_ || bytes_ > max_bytes_) drop(std::prev(lru_.end()));
}

std::optional<StoredResponse> ResponseStore::get(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);
  const Entry& e = *it->second;
  // Written by put() from JSON: it parses back.
  return StoredResponse{nlohmann::ordered_json::parse(e.response), nlohmann::ordered_json::parse(e.conversation)};
}

bool ResponseStore::erase(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return false;
  drop(it->second);
  return true;
}

void ResponseStore::drop(std::list<Entry>::iterator it) {
  bytes_ -= it->bytes();
  index_.erase(it->id);
  lru_.erase(it);
}

size_t ResponseStore::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

size_t ResponseStore::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

}  // namespace keel::server
