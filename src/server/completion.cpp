#include "server/completion.h"

#include <algorithm>

namespace keel::server {

using Clock = std::chrono::steady_clock;

Completion::Completion(Generator* generator, const tokenizer::Tokenizer* tokenizer, std::vector<std::string> stops)
    : generator_(generator),
      tokenizer_(tokenizer),
      queue_(std::make_shared<Queue>()),
      decoder_(*tokenizer, /*skip_special=*/true),
      stop_(std::move(stops)) {}

Completion::~Completion() { cancel(); }

Result<std::shared_ptr<Completion>> Completion::start(Generator* generator, const tokenizer::Tokenizer* tokenizer,
                                                      engine::Request request, std::vector<std::string> stops,
                                                      std::shared_ptr<Metrics> metrics,
                                                      std::unique_ptr<OutputParser> parser, int index,
                                                      std::shared_ptr<Bell> bell) {
  std::shared_ptr<Completion> c(new Completion(generator, tokenizer, std::move(stops)));
  c->index_ = index;
  if (parser) {
    for (const std::string& marker : parser->special_markers()) {
      std::optional<int32_t> id = tokenizer->token_to_id(marker);
      if (id && tokenizer->is_special(*id)) c->kept_special_[*id] = marker;
    }
    c->parser_ = std::move(parser);
  }
  c->prompt_tokens_ = static_cast<int>(request.prompt.size());
  c->want_logprobs_ = request.top_logprobs >= 0;
  // The callback runs on the generator's thread: it timestamps, counts and enqueues, nothing more.
  struct Timing {
    Clock::time_point submitted = Clock::now();
    Clock::time_point last;
    bool first = true;
  };
  auto timing = std::make_shared<Timing>();
  auto callback = [queue = c->queue_, metrics, timing, bell](const engine::Event& event) {
    if (event.token >= 0 && metrics) {
      Clock::time_point now = Clock::now();
      if (timing->first) {
        metrics->observe_ttft(std::chrono::duration<double>(now - timing->submitted).count());
        timing->first = false;
      } else {
        metrics->observe_itl(std::chrono::duration<double>(now - timing->last).count());
      }
      timing->last = now;
      metrics->add_generation_tokens(1);
    }
    {
      std::lock_guard lock(queue->mu);
      queue->events.push_back(event);
    }
    queue->cv.notify_one();
    if (bell) {
      {
        std::lock_guard lock(bell->mu);
        bell->rings++;
      }
      bell->cv.notify_all();
    }
  };
  int prompt_tokens = c->prompt_tokens_;
  KEEL_ASSIGN_OR_RETURN(c->id_, generator->submit(std::move(request), std::move(callback)));
  if (metrics) metrics->add_prompt_tokens(prompt_tokens);
  return c;
}

void Completion::consume(const engine::Event& event, Piece* piece) {
  cached_tokens_ = std::max(cached_tokens_, event.cached_tokens);
  if (!event.prompt_logprobs.empty()) piece->prompt_logprobs = event.prompt_logprobs;
  if (event.token >= 0) {
    completion_tokens_++;
    if (want_logprobs_) piece->logprobs.push_back({event.token, event.chosen.logprob, event.top});
    auto kept = kept_special_.find(event.token);
    StopMatcher::Output out =
        stop_.feed(kept == kept_special_.end() ? decoder_.step(event.token) : decoder_.flush() + kept->second);
    deliver(out.text, piece);
    // A stop string ends the output; so does the first call when parallel calls are off.
    const bool closed = parser_ && parser_->closed();
    if (out.matched || closed) {
      finished_ = true;
      piece->finished = true;
      piece->finish = engine::FinishReason::kStop;
      piece->stop_sequence = out.matched ? out.stop : "";
      finish_output(piece);
      if (event.finish == engine::FinishReason::kNone) cancel();
      return;
    }
  }
  if (event.finish == engine::FinishReason::kNone) return;
  if (event.finish == engine::FinishReason::kStop || event.finish == engine::FinishReason::kLength) {
    StopMatcher::Output out = stop_.feed(decoder_.flush());
    deliver(out.text, piece);
    if (out.matched) {
      piece->finish = engine::FinishReason::kStop;
      piece->stop_sequence = out.stop;
    } else {
      deliver(stop_.flush(), piece);
      piece->finish = event.finish;
    }
    finish_output(piece);
  } else {
    piece->finish = event.finish;
    piece->error = event.error.empty() ? "generation was cancelled" : event.error;
  }
  finished_ = true;
  piece->finished = true;
  cancel_sent_ = true;  // the generator is done with this request
}

void Completion::deliver(std::string_view text, Piece* piece) {
  if (!parser_) {
    piece->text += text;
    return;
  }
  std::vector<OutputEvent> events = parser_->feed(text);
  for (const OutputEvent& e : events) {
    if (e.kind == OutputEvent::Kind::kText) piece->text += e.text;
  }
  append_events(&piece->events, std::move(events));
}

void Completion::finish_output(Piece* piece) {
  if (!parser_) return;
  piece->tool_calls = parser_->calls();
  std::vector<OutputEvent> events = parser_->finish();
  for (const OutputEvent& e : events) {
    if (e.kind == OutputEvent::Kind::kText) piece->text += e.text;
  }
  append_events(&piece->events, std::move(events));
}

Piece Completion::next(std::chrono::milliseconds timeout) {
  Piece piece;
  piece.index = index_;
  if (finished_) {
    piece.finished = true;
    return piece;
  }
  std::deque<engine::Event> events;
  {
    std::unique_lock lock(queue_->mu);
    queue_->cv.wait_for(lock, timeout, [&] { return !queue_->events.empty(); });
    events.swap(queue_->events);
  }
  for (const engine::Event& e : events) {
    consume(e, &piece);
    if (finished_) break;
  }
  return piece;
}

Piece Completion::wait(const std::function<bool()>& abandoned) {
  Piece all;
  all.index = index_;
  while (!all.finished) {
    Piece p = next(kAbandonPoll);
    if (!p.finished && abandoned && !cancel_sent_ && abandoned()) cancel();
    all.text += p.text;
    append_events(&all.events, std::move(p.events));
    for (auto& e : p.logprobs) all.logprobs.push_back(std::move(e));
    if (!p.prompt_logprobs.empty()) all.prompt_logprobs = std::move(p.prompt_logprobs);
    if (p.finished) {
      all.finished = true;
      all.finish = p.finish;
      all.stop_sequence = p.stop_sequence;
      all.tool_calls = p.tool_calls;
      all.error = p.error;
    }
  }
  return all;
}

void Completion::cancel() {
  if (cancel_sent_ || id_ == 0) return;
  cancel_sent_ = true;
  generator_->cancel(id_);
}

}  // namespace keel::server
