// MaskFiller: fills a step's grammar masks on a thread of its own while the step's forward runs. A row's mask
// depends only on the tokens its request has generated, all known when the step is built, so the mask costs the
// step nothing as long as filling takes less than the forward (vLLM and SGLang overlap xgrammar the same way).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "engine/token_chooser.h"

namespace keel::engine {

class MaskFiller {
 public:
  MaskFiller() = default;
  ~MaskFiller();
  MaskFiller(const MaskFiller&) = delete;
  MaskFiller& operator=(const MaskFiller&) = delete;

  // Starts filling the mask of every row of `rows` that has one (rows and their histories must stay as they are
  // until wait() returns). The thread starts with the first call.
  void start(std::span<const ChoiceRow> rows, int vocab);
  // Waits for start()'s masks; then bits(i) is row i's bitset (null for a row without a mask).
  void wait();
  const uint32_t* bits(size_t row) const;
  // How long the last start()'s masks took to fill, in seconds.
  double fill_seconds() const { return fill_seconds_; }

 private:
  void run();

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;  // start() handed work over; run() clears it when the masks are filled
  bool stopping_ = false;
  std::span<const ChoiceRow> rows_;
  size_t words_ = 0;
  std::vector<uint32_t> bits_;  // rows_.size() * words_
  double fill_seconds_ = 0;
};

}  // namespace keel::engine
