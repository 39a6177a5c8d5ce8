#include "engine/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "engine/fingerprint.h"

namespace keel::engine {

namespace {

std::optional<cache::ModelFingerprint> prefix_fingerprint(const model::Model& model, const EngineOptions& o) {
  // A hybrid model's cached prefix would need the recurrent state at the block boundary too, which nothing
  // snapshots yet: reusing its KV alone would serve a wrong continuation.
  if (!o.prefix_caching || model.recurrent_state_slots() > 0) return std::nullopt;
  return o.fingerprint.is_zero() ? config_fingerprint(model) : o.fingerprint;
}

class BackendCopier : public KvBlockCopier {
 public:
  explicit BackendCopier(backend::Backend* backend) : backend_(backend) {}
  void to_host(int32_t block, void* dst) override { backend_->copy_kv_block_to_host(block, dst); }
  void from_host(const void* src, int32_t block) override { backend_->copy_kv_block_from_host(src, block); }

 private:
  backend::Backend* backend_;
};

// Per-request state the scheduler's Sequence does not carry.
struct RequestState {
  Request request;
  EventCallback callback;
  std::vector<int32_t> stop_ids;
  // Request::prompt_logprobs: collected over the prompt's chunks (entry p: prompt token p + 1), handed out with
  // the first event. A preempted sequence recomputes its prompt; what is already here is not collected twice.
  std::vector<PromptLogprob> prompt_logprobs;
  bool prompt_logprobs_sent = false;
};

}  // namespace

Engine::Engine(model::Model* model, const EngineOptions& options)
    : model_(model),
      options_(options),
      scheduler_(model->kv_layout().num_blocks, model->kv_layout().block_size, options.max_num_seqs,
                 std::min(options.max_num_batched_tokens, model->max_batch_tokens()),
                 prefix_fingerprint(*model, options)),
      runner_(model, options.leader, options.env != nullptr ? options.env : env::Env::posix()) {
  if (model->recurrent_state_slots() > 0) {
    if (options_.prefix_caching)
      spdlog::info("keel: prefix caching is off for {} (a hybrid model: its recurrent state is not snapshotted at "
                   "block boundaries yet); the hot and SSD tiers go unused", model->config().architecture);
    options_.prefix_caching = false;
    scheduler_.set_state_slots(model->recurrent_state_slots());
  }
  scheduler_.set_max_logit_rows(model->max_logit_rows());
  if (options_.max_model_len <= 0) options_.max_model_len = model->config().max_position_embeddings;
  options_.max_model_len = std::min(options_.max_model_len, model->config().max_position_embeddings);
  stats_.kv_blocks_total = model->kv_layout().num_blocks;
  stats_.kv_block_size = model->kv_layout().block_size;
  stats_.kv_block_bytes = kv_block_bytes(*model);
  // A tier of another block size cannot hold this model's blocks: it is left out.
  if (options_.hot_tier != nullptr && options_.prefix_caching &&
      options_.hot_tier->block_bytes() == kv_block_bytes(*model)) {
    copier_ = std::make_unique<BackendCopier>(&model->backend());
    scheduler_.set_hot_tier(options_.hot_tier, copier_.get());
    stats_.hot_cache_capacity_blocks = options_.hot_tier->capacity_blocks();
  }
  if (options_.ssd_tier != nullptr && options_.prefix_caching && !options_.fingerprint.is_zero() &&
      options_.ssd_tier->options().fingerprint == options_.fingerprint &&
      options_.ssd_tier->options().max_payload_bytes >= kv_block_bytes(*model)) {
    if (!copier_) copier_ = std::make_unique<BackendCopier>(&model->backend());
    scheduler_.set_ssd_tier(options_.ssd_tier, copier_.get(), kv_block_bytes(*model), options_.ssd_write_policy);
    stats_.ssd_cache_max_bytes = options_.ssd_tier->options().max_bytes;
  } else {
    options_.ssd_tier = nullptr;
  }
  thread_ = std::thread([this] { loop(); });
}

size_t kv_block_bytes(const model::Model& model) {
  return model.kv_layout().bytes_per_block_per_layer() * model.kv_layout().num_layers;
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (options_.persist_cache_on_shutdown && options_.ssd_tier != nullptr) {
    const int queued = scheduler_.block_manager().persist_to_ssd();
    if (queued > 0) spdlog::info("keel: SSD cache: {} cached blocks written at shutdown", queued);
  }
}

Result<uint64_t> Engine::submit(Request request, EventCallback callback) {
  const int prompt = static_cast<int>(request.prompt.size());
  if (prompt == 0) return invalid_argument("the prompt is empty");
  if (request.max_tokens < 1) return invalid_argument("max_tokens={} must be at least 1", request.max_tokens);
  KEEL_RETURN_IF_ERROR(request.sampling.validate());
  const int vocab = model_->config().vocab_size;
  for (int32_t t : request.prompt)
    if (t < 0 || t >= vocab) return invalid_argument("token id {} is outside the vocabulary [0, {})", t, vocab);
  for (auto [t, bias] : request.sampling.logit_bias)
    if (t >= vocab) return invalid_argument("logit_bias: token id {} is outside the vocabulary [0, {})", t, vocab);
  KEEL_RETURN_IF_ERROR(
      check_context(prompt, request.max_tokens, options_.max_model_len, scheduler_.capacity_tokens()));
  std::lock_guard<std::mutex> lock(mu_);
  if (!failure_.empty()) return unsupported("the engine has stopped: {}", failure_);
  if (draining_ || stopping_) return resource_exhausted("the server is shutting down and admits no new requests");
  const uint64_t id = next_id_++;
  incoming_.push_back({id, {std::move(request), std::move(callback)}});
  cv_.notify_all();
  return id;
}

Result<std::vector<int32_t>> Engine::generate(Request request, const std::function<bool(int32_t)>& on_token) {
  // Events cross from the engine thread to this one through a queue: a slow on_token never stalls a step.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;
  KEEL_ASSIGN_OR_RETURN(uint64_t id, submit(std::move(request), [&](const Event& e) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(e);
    cv.notify_all();
  }));
  std::vector<int32_t> out;
  bool cancelled = false;
  while (true) {
    Event e;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !events.empty(); });
      e = std::move(events.front());
      events.pop_front();
    }
    if (e.token >= 0 && !cancelled) {
      out.push_back(e.token);
      if (on_token && !on_token(e.token)) {
        cancelled = true;
        cancel(id);
      }
    }
    if (e.finish == FinishReason::kError) return internal_error("generation failed: {}", e.error);
    if (e.finish == FinishReason::kCancelled && !cancelled)
      return resource_exhausted("the request was cancelled (the engine stopped)");
    if (e.finish != FinishReason::kNone) return out;
  }
}

void Engine::cancel(uint64_t request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.push_back(request_id);
  cv_.notify_all();
}

void Engine::drain() {
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
}

int Engine::evict_prefix_cache() {
  std::future<int> moved;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return 0;
    evictions_.emplace_back();
    moved = evictions_.back().get_future();
  }
  cv_.notify_all();
  return moved.get();
}

std::string Engine::failure() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Engine::loop() {
  std::unordered_map<uint64_t, std::unique_ptr<RequestState>> requests;
  uint64_t finished_count = 0;
  auto finish = [&](uint64_t id, FinishReason reason, const std::string& error) {
    auto it = requests.find(id);
    if (it == requests.end()) return;
    Event e;
    e.request_id = id;
    e.finish = reason;
    e.error = error;
    if (Sequence* seq = scheduler_.find(id)) {
      e.prompt_tokens = seq->prompt_len;
      e.completion_tokens = seq->generated();
      e.cached_tokens = seq->cached_tokens;
    }
    scheduler_.finish(id);
    it->second->callback(e);
    requests.erase(it);
    finished_count++;
  };

  // A failed step or heartbeat of a tensor-parallel group: the ranks are out of step (or one is gone), so no
  // later forward can be trusted. Every request fails and the engine stops.
  auto fail_group = [&](const Status& s) {
    const std::string why = "tensor-parallel group failed: " + s.message();
    {
      std::lock_guard<std::mutex> lock(mu_);
      failure_ = why;
    }
    std::vector<uint64_t> all;
    for (auto& [id, st] : requests) all.push_back(id);
    for (uint64_t id : all) finish(id, FinishReason::kError, why);
    publish_stats(0, 0, std::exchange(finished_count, 0), false);
  };

  std::vector<ChoiceRow> rows;
  std::vector<Choice> choices;
  std::vector<int> prompt_top;  // per chunk: Request::prompt_logprobs while its prompt logprobs are incomplete
  std::vector<ChunkPromptLogprobs> prompt_logprobs;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      // A tensor-parallel leader wakes every second without work to check on its followers.
      const auto idle = options_.leader != nullptr ? std::chrono::seconds(1) : std::chrono::seconds(3600);
      const bool work = cv_.wait_for(lock, idle, [&] {
        return stopping_ || !incoming_.empty() || !cancelled_.empty() || !evictions_.empty() || !scheduler_.idle();
      });
      if (stopping_) break;
      if (!work) {
        lock.unlock();
        if (options_.leader != nullptr) {
          if (Status s = options_.leader->heartbeat(); !s.ok()) {
            fail_group(s);
            break;
          }
        }
        continue;
      }
      if (!evictions_.empty()) {
        std::vector<std::promise<int>> evictions;
        evictions.swap(evictions_);
        lock.unlock();
        std::vector<int> moved;
        for (size_t i = 0; i < evictions.size(); i++) moved.push_back(scheduler_.evict_cached());
        // Stats first: a caller woken by its answer reads stats that include the eviction.
        publish_stats(0, 0, 0, false);
        for (size_t i = 0; i < evictions.size(); i++) evictions[i].set_value(moved[i]);
        continue;
      }
      for (auto& [id, rc] : incoming_) {
        auto state = std::make_unique<RequestState>();
        state->request = std::move(rc.first);
        state->callback = std::move(rc.second);
        state->stop_ids = state->request.stop_token_ids;
        if (!state->request.ignore_eos)
          for (int e : model_->config().eos_token_ids) state->stop_ids.push_back(e);
        auto seq = std::make_unique<Sequence>(id, state->request.prompt, model_->kv_layout().block_size);
        seq->salt = cache::salt_key(state->request.cache_salt);
        seq->prefill_after = state->request.prefill_after;
        seq->prompt_logits = state->request.prompt_logprobs >= 0;
        seq->reuse_cached = !seq->prompt_logits;
        scheduler_.add(std::move(seq));
        requests[id] = std::move(state);
      }
      incoming_.clear();
      std::vector<uint64_t> cancelled;
      cancelled.swap(cancelled_);
      lock.unlock();
      for (uint64_t id : cancelled) finish(id, FinishReason::kCancelled, "");
    }
    if (scheduler_.idle()) {
      publish_stats(0, 0, std::exchange(finished_count, 0), false);
      continue;
    }

    const uint64_t step_start = clock()->now_micros();
    StepPlan plan = scheduler_.schedule();
    if (plan.chunks.empty()) {
      publish_stats(0, 0, std::exchange(finished_count, 0), false);
      continue;
    }
    rows.clear();
    prompt_top.clear();
    for (const Chunk& c : plan.chunks) {
      const RequestState& st = *requests.at(c.seq->id);
      const bool collecting = st.request.prompt_logprobs >= 0 && !st.prompt_logprobs_sent;
      prompt_top.push_back(collecting ? st.request.prompt_logprobs : -1);
    }
    for (const Chunk& c : plan.chunks) {
      if (!c.samples()) continue;
      const Request& r = requests.at(c.seq->id)->request;
      rows.push_back({&r.sampling, &c.seq->tokens, c.seq->prompt_len, static_cast<uint64_t>(c.seq->generated()),
                      r.top_logprobs, r.mask.get()});
    }
    Status s = runner_.step(plan.chunks, rows, &choices, prompt_top, &prompt_logprobs);
    if (!s.ok() && options_.leader != nullptr) {
      fail_group(s);
      break;
    }
    if (!s.ok()) {
      for (const Chunk& c : plan.chunks) finish(c.seq->id, FinishReason::kError, s.message());
      publish_stats(0, 0, std::exchange(finished_count, 0), true);
      continue;
    }
    scheduler_.advance(plan);
    for (ChunkPromptLogprobs& cp : prompt_logprobs) {
      RequestState& st = *requests.at(plan.chunks[cp.chunk].seq->id);
      for (size_t i = 0; i < cp.entries.size(); i++)
        if (cp.first + static_cast<int>(i) == static_cast<int>(st.prompt_logprobs.size()))
          st.prompt_logprobs.push_back(std::move(cp.entries[i]));
    }

    size_t row = 0;
    uint64_t prompt_tokens = 0, generated = 0;
    std::vector<std::pair<uint64_t, FinishReason>> finished;
    std::vector<std::pair<RequestState*, Event>> events;
    for (const Chunk& c : plan.chunks) {
      Sequence* seq = c.seq;
      prompt_tokens += std::max(0, std::min(c.end, seq->prompt_len) - c.begin);
      if (!c.samples()) continue;
      RequestState& st = *requests.at(seq->id);
      Choice& choice = choices[row++];
      const int32_t tok = choice.token;
      seq->tokens.push_back(tok);
      generated++;
      Event e;
      e.request_id = seq->id;
      e.token = tok;
      e.prompt_tokens = seq->prompt_len;
      e.completion_tokens = seq->generated();
      e.cached_tokens = seq->cached_tokens;
      e.chosen = choice.chosen;
      e.top = std::move(choice.top);
      if (st.request.prompt_logprobs >= 0 && !st.prompt_logprobs_sent) {
        e.prompt_logprobs = std::move(st.prompt_logprobs);
        st.prompt_logprobs_sent = true;
      }
      if (std::find(st.stop_ids.begin(), st.stop_ids.end(), tok) != st.stop_ids.end())
        e.finish = FinishReason::kStop;
      else if (seq->generated() >= st.request.max_tokens ||
               static_cast<int>(seq->tokens.size()) >= options_.max_model_len)
        e.finish = FinishReason::kLength;
      if (e.finish != FinishReason::kNone) finished.push_back({seq->id, e.finish});
      events.push_back({&st, std::move(e)});
    }
    // Finished sequences free their blocks and the stats are published before any callback runs, so a
    // caller woken by a final event reads stats that include it.
    for (auto& [id, reason] : finished) {
      scheduler_.finish(id);
      finished_count++;
    }
    add_step_time(static_cast<double>(clock()->now_micros() - step_start) * 1e-6, runner_.forward_seconds(),
                  runner_.batch_tokens());
    publish_stats(prompt_tokens, generated, std::exchange(finished_count, 0), true);
    for (auto& [st, e] : events) st->callback(e);
    for (auto& [id, reason] : finished) requests.erase(id);
  }
  // Shutting down: every request still known gets a final event.
  std::vector<uint64_t> left;
  for (auto& [id, st] : requests) left.push_back(id);
  for (uint64_t id : left) finish(id, FinishReason::kCancelled, "");
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& p : evictions_) p.set_value(0);
  evictions_.clear();
  for (auto& [id, rc] : incoming_) {
    Event e;
    e.request_id = id;
    e.finish = failure_.empty() ? FinishReason::kCancelled : FinishReason::kError;
    e.error = failure_;
    rc.second(e);
  }
  incoming_.clear();
}

void Engine::add_step_time(double step_seconds, double forward_seconds, uint64_t batch_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.step_seconds += step_seconds;
  stats_.forward_seconds += forward_seconds;
  stats_.batch_tokens += batch_tokens;
}

void Engine::publish_stats(uint64_t prompt_tokens, uint64_t generated, uint64_t finished, bool stepped) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.steps += stepped ? 1 : 0;
  const uint64_t allocations = model_->backend().allocations();
  if (stepped && stats_.steps == 1) warm_allocations_ = allocations;
  if (stats_.steps > 0) stats_.allocations_after_warmup = allocations - warm_allocations_;
  stats_.prompt_tokens += prompt_tokens;
  stats_.generated_tokens += generated;
  stats_.requests_finished += finished;
  stats_.preemptions = scheduler_.preemptions();
  stats_.running = scheduler_.num_running();
  stats_.waiting = scheduler_.num_waiting() + static_cast<int>(incoming_.size());
  stats_.kv_blocks_used = scheduler_.pool().num_used();
  stats_.kv_blocks_cached = scheduler_.pool().num_kept();
  const Scheduler::PrefixStats& prefix = scheduler_.prefix_stats();
  stats_.prefix_cache_hit_blocks = prefix.hit_blocks;
  stats_.prefix_cache_miss_blocks = prefix.miss_blocks;
  stats_.prefix_cache_evictions = prefix.evictions;
  stats_.hot_cache_hit_blocks = prefix.hot_hit_blocks;
  stats_.hot_cache_stores = prefix.hot_stores;
  if (options_.hot_tier != nullptr) {
    stats_.hot_cache_evictions = options_.hot_tier->stats().evictions;
    stats_.hot_cache_blocks = options_.hot_tier->num_blocks();
  }
  if (options_.ssd_tier != nullptr) {
    const cache::SsdTierStats ssd = options_.ssd_tier->stats();
    stats_.ssd_cache_hit_blocks = prefix.ssd_hit_blocks;
    stats_.ssd_cache_stores = prefix.ssd_stores;
    stats_.ssd_cache_written = ssd.written;
    stats_.ssd_cache_write_through = prefix.ssd_write_through;
    stats_.ssd_cache_dropped = ssd.dropped_queue_full + ssd.dropped_paused + ssd.dropped_too_large + ssd.dropped_failed +
                               prefix.ssd_write_through_dropped;
    stats_.ssd_cache_evictions = ssd.blocks_evicted;
    stats_.ssd_cache_corrupt = ssd.skipped_corrupt + ssd.corrupt_reads + ssd.truncated_reads;
    stats_.ssd_cache_blocks = ssd.blocks;
    stats_.ssd_cache_bytes = ssd.bytes_on_disk;
  }
}

}  // namespace keel::engine
