// Completion: one generation request seen as text. It submits token ids to the Generator, receives its token
// events through a queue (the callback only pushes), decodes them incrementally, holds back and matches stop
// strings, and hands out Pieces of text to whichever HTTP writer (JSON or SSE) drains it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/generator.h"
#include "server/metrics.h"
#include "server/output_parser.h"
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
  int index = 0;  // the choice it belongs to (n > 1)
  std::string text;  // with an output parser: the plain-text part only
  // With an output parser (chat routes with tools or reasoning): text, reasoning and tool calls in order.
  std::vector<OutputEvent> events;
  std::vector<LogprobEntry> logprobs;
  std::vector<engine::PromptLogprob> prompt_logprobs;  // engine::Request::prompt_logprobs, with the first token
  int tool_calls = 0;  // on a finished Piece: the calls the output parser found
  bool finished = false;
  // kStop (end of sequence or a stop string), kLength, kCancelled, kError
  engine::FinishReason finish = engine::FinishReason::kNone;
  std::string stop_sequence;      // the stop string that ended generation, if one did
  std::string error;              // with kError
};

// Rung by every event of the completions that share it, so one writer can wait for whichever of n choices
// has something next.
struct Bell {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t rings = 0;
  uint64_t count() {
    std::lock_guard lock(mu);
    return rings;
  }
  // Waits until the count differs from `seen` or `timeout` passes.
  void wait(uint64_t seen, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, timeout, [&] { return rings != seen; });
  }
};

class Completion {
 public:
  // `index`: the choice this completion is (its Pieces carry it). `bell`: rung on every event (may be null).
  static Result<std::shared_ptr<Completion>> start(Generator* generator, const tokenizer::Tokenizer* tokenizer,
                                                   engine::Request request, std::vector<std::string> stops,
                                                   std::shared_ptr<Metrics> metrics,
                                                   std::unique_ptr<OutputParser> parser = nullptr, int index = 0,
                                                   std::shared_ptr<Bell> bell = nullptr);
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
  int index() const { return index_; }
  int prompt_tokens() const { return prompt_tokens_; }
  int completion_tokens() const { return completion_tokens_; }
  // Of prompt_tokens(), those the prefix cache supplied (known from the first event on).
  int cached_tokens() const { return cached_tokens_; }
  // Tool calls the output parser found so far (0 without one).
  int tool_calls() const { return parser_ ? parser_->calls() : 0; }

  struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<engine::Event> events;
  };

 private:
  Completion(Generator* generator, const tokenizer::Tokenizer* tokenizer, std::vector<std::string> stops);
  void consume(const engine::Event& event, Piece* piece);
  void deliver(std::string_view text, Piece* piece);  // through the output parser, when there is one
  void finish_output(Piece* piece);

  Generator* generator_;
  const tokenizer::Tokenizer* tokenizer_;
  std::shared_ptr<Queue> queue_;
  tokenizer::StreamDecoder decoder_;
  StopMatcher stop_;
  std::unique_ptr<OutputParser> parser_;
  // Special tokens the output parser reads as markers ([TOOL_CALLS]): decoded as their text, not skipped.
  std::map<int32_t, std::string> kept_special_;
  uint64_t id_ = 0;
  int index_ = 0;
  int prompt_tokens_ = 0;
  int completion_tokens_ = 0;
  int cached_tokens_ = 0;
  bool want_logprobs_ = false;
  bool finished_ = false;
  bool cancel_sent_ = false;
};

}  // namespace keel::server
