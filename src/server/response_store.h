// ResponseStore: the stored responses behind /v1/responses' previous_response_id, GET and DELETE
// /v1/responses/{id}. Memory only (a restart forgets them), bounded twice — at most max_entries responses and
// max_bytes of their JSON text — the least recently used going first. A response with `store: false` is never
// put here; one larger than max_bytes alone is not kept.
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace keel::server {

struct StoredResponse {
  nlohmann::ordered_json response;      // the response object as it was answered
  nlohmann::ordered_json conversation;  // every turn's input items, then this response's output items
};

class ResponseStore {
 public:
  ResponseStore(size_t max_entries, size_t max_bytes) : max_entries_(max_entries), max_bytes_(max_bytes) {}

  // Keeps `r` under `id` (replacing one of that id), then evicts the least recently used until both bounds hold.
  void put(const std::string& id, StoredResponse r);
  // The response, now the most recently used; empty when unknown (never stored, evicted or deleted).
  std::optional<StoredResponse> get(const std::string& id);
  bool erase(const std::string& id);

  size_t size() const;
  size_t bytes() const;

 private:
  // Kept as JSON text: its size is what the byte bound counts (a parsed tree takes several times more).
  struct Entry {
    std::string id;
    std::string response, conversation;
    size_t bytes() const { return id.size() + response.size() + conversation.size(); }
  };
  void drop(std::list<Entry>::iterator it);

  const size_t max_entries_;
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  size_t bytes_ = 0;
};

}  // namespace keel::server
