// StopMatcher: finds stop strings in streamed text. Text that could still become the start of a stop string is
// held back, so no client ever sees part of a stop string; on a match the text before it is released and the
// rest is dropped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace keel::server {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  struct Output {
    std::string text;     // safe to send now
    bool matched = false;
    std::string stop;     // the stop string that matched
  };
  // Appends `text`; after a match every further call returns nothing.
  Output feed(std::string_view text);
  // Releases what is still held back (at the end of generation, when no stop string can complete).
  std::string flush();
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool matched_ = false;
};

}  // namespace keel::server
