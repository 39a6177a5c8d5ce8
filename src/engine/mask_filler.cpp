#include "engine/mask_filler.h"

#include <chrono>

namespace keel::engine {

MaskFiller::~MaskFiller() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void MaskFiller::start(std::span<const ChoiceRow> rows, int vocab) {
  std::lock_guard lock(mu_);
  rows_ = rows;
  words_ = mask_words(vocab);
  bits_.resize(rows.size() * words_);
  pending_ = true;
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  cv_.notify_all();
}

void MaskFiller::wait() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !pending_; });
}

const uint32_t* MaskFiller::bits(size_t row) const {
  return rows_[row].mask != nullptr ? bits_.data() + row * words_ : nullptr;
}

void MaskFiller::run() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return pending_ || stopping_; });
    if (stopping_) return;
    lock.unlock();
    const auto begin = std::chrono::steady_clock::now();
    for (size_t i = 0; i < rows_.size(); i++) {
      const ChoiceRow& row = rows_[i];
      if (row.mask == nullptr) continue;
      const std::span<const int32_t> generated(row.history->data() + row.prompt_len,
                                               row.history->size() - static_cast<size_t>(row.prompt_len));
      row.mask->fill(generated, std::span<uint32_t>(bits_.data() + i * words_, words_));
    }
    lock.lock();
    fill_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    pending_ = false;
    cv_.notify_all();
  }
}

}  // namespace keel::engine
