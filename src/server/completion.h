// Completion: one generation request seen as text. It submits token ids to the Generator, receives its token
// events through a queue (the callback only pushes), decodes them incrementally, holds back and matches stop
// strings, and hands out Pieces of text to whichever HTTP writer (JSON or SSE) drains it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/generator.h"
#include "server/metrics.h"
#include "server/stop_matcher.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

namespace keel::server {

struct LogprobEntry {
  int32_t token = 0;
  float logprob = 0.0f;
  std::vector<engine::TokenLogprob> top;
};

// What became ready since the previous call to Completion::next.
struct Piece {
  std::string text;
  std::vector<LogprobEntry> logprobs;
  bool finished = false;
  // kStop (end of sequence or a stop string), kLength, kCancelled, kError
  engine::FinishReason finish = engine::FinishReason::kNone;
  std::string stop_sequence;      // the stop string that ended generation, if one did
  std::string error;              // with kError
};

class Completion {
 public:
  static Result<std::shared_ptr<Completion>> start(Generator* generator, const tokenizer::Tokenizer* tokenizer,
                                                   engine::Request request, std::vector<std::string> stops,
                                                   std::shared_ptr<Metrics> metrics);
  ~Completion();  // cancels an unfinished generation

  // Waits up to `timeout` for events and returns what they produced (maybe nothing, not finished).
  Piece next(std::chrono::milliseconds timeout);
  // Runs to the end and returns everything as one Piece. `abandoned` (when given) is asked every kAbandonPoll;
  // once it says the client is gone the generation is cancelled, so its KV blocks are freed within one step.
  Piece wait(const std::function<bool()>& abandoned = nullptr);
  static constexpr std::chrono::milliseconds kAbandonPoll{50};
  // Cancels the generation if it is still running; next() then reports kCancelled.
  void cancel();

  bool finished() const { return finished_; }
  uint64_t id() const { return id_; }
  int prompt_tokens() const { return prompt_tokens_; }
  int completion_tokens() const { return completion_tokens_; }
  // Of prompt_tokens(), those the prefix cache supplied (known from the first event on).
  int cached_tokens() const { return cached_tokens_; }

  struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<engine::Event> events;
  };

 private:
  Completion(Generator* generator, const tokenizer::Tokenizer* tokenizer, std::vector<std::string> stops);
  void consume(const engine::Event& event, Piece* piece);

  Generator* generator_;
  const tokenizer::Tokenizer* tokenizer_;
  std::shared_ptr<Queue> queue_;
  tokenizer::StreamDecoder decoder_;
  StopMatcher stop_;
  uint64_t id_ = 0;
  int prompt_tokens_ = 0;
  int completion_tokens_ = 0;
  int cached_tokens_ = 0;
  bool want_logprobs_ = false;
  bool finished_ = false;
  bool cancel_sent_ = false;
};

}  // namespace keel::server
