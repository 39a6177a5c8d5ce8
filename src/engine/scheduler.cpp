#include "engine/scheduler.h"

#include <algorithm>
#include <climits>

#include "base/check.h"

namespace keel::engine {

Scheduler::Scheduler(int num_blocks, int block_size, int max_num_seqs, int max_num_batched_tokens,
                     std::optional<cache::ModelFingerprint> prefix_caching)
    : blocks_(num_blocks, block_size, prefix_caching),
      max_num_seqs_(max_num_seqs),
      max_num_batched_tokens_(max_num_batched_tokens) {}

void Scheduler::add(std::unique_ptr<Sequence> seq) { waiting_.push_back(std::move(seq)); }

void Scheduler::set_state_slots(int slots) {
  has_state_slots_ = slots > 0;
  free_state_slots_.clear();
  for (int s = slots - 1; s >= 0; s--) free_state_slots_.push_back(s);
  if (has_state_slots_) max_num_seqs_ = std::min(max_num_seqs_, slots);
}

void Scheduler::release_state_slot(Sequence* seq) {
  if (seq->state_slot >= 0) free_state_slots_.push_back(seq->state_slot);
  seq->state_slot = -1;
}

int Scheduler::admit(Sequence* seq, int budget) {
  auto admitted = blocks_.admit(*seq, budget);
  if (!admitted) return -1;
  seq->num_computed = admitted->cached_tokens;
  if (seq->num_preemptions == 0) seq->cached_tokens = admitted->cached_tokens;
  return admitted->chunk_tokens;
}

void Scheduler::preempt(Sequence* seq) {
  blocks_.free(*seq);
  release_state_slot(seq);
  seq->num_computed = 0;
  seq->num_preemptions++;
  preemptions_++;
  auto it = std::find_if(running_.begin(), running_.end(), [&](auto& p) { return p.get() == seq; });
  waiting_.push_front(std::move(*it));
  running_.erase(it);
}

namespace {

// The logit rows tokens [begin, end) of `seq` take: its sampling row, and with prompt logits one per prompt
// position that predicts a prompt token.
int logit_rows(const Sequence& seq, int begin, int end) {
  const int sample = end == static_cast<int>(seq.tokens.size()) ? 1 : 0;
  return sample + (seq.prompt_logits ? std::max(0, std::min(end, seq.prompt_len - 1) - begin) : 0);
}

}  // namespace

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int budget = max_num_batched_tokens_;
  int rows_left = max_logit_rows_ > 0 ? max_logit_rows_ : INT_MAX;
  // Running sequences first, oldest first.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* seq = running_[i].get();
    const int remaining = static_cast<int>(seq->tokens.size()) - seq->num_computed;
    int n = std::min(remaining, budget);
    if (seq->prompt_logits && seq->num_computed < seq->prompt_len) {
      // Its prompt rows fit in what is left after a row for each later running sequence (rows(n) <= n).
      const int later = static_cast<int>(running_.size() - i - 1);
      n = std::min(n, rows_left - later);
      if (n <= 0) {
        i++;
        continue;
      }
    }
    // Free blocks by preempting the newest running sequences until this one fits.
    bool self_preempted = false;
    while (!blocks_.can_append(*seq, n)) {
      Sequence* victim = running_.back().get();
      plan.preempted.push_back(victim->id);  // newer than seq, so not yet planned this step
      preempt(victim);
      if (victim == seq) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;
    blocks_.append(*seq, n);
    plan.chunks.push_back(Chunk{seq, seq->num_computed, seq->num_computed + n});
    budget -= n;
    rows_left -= logit_rows(*seq, seq->num_computed, seq->num_computed + n);
    i++;
  }
  // Then waiting sequences in arrival order, while they fit.
  for (size_t i = 0; i < waiting_.size() && budget > 0 && rows_left > 0 &&
                     static_cast<int>(running_.size()) < max_num_seqs_;) {
    Sequence* seq = waiting_[i].get();
    if (waits_for_sibling(*seq)) {
      i++;
      continue;
    }
    const int n = admit(seq, seq->prompt_logits ? std::min(budget, rows_left) : budget);
    if (n < 0) break;
    if (has_state_slots_) {
      // running_ < max_num_seqs_ <= slots, and every slot not held by a running sequence is free.
      KEEL_CHECK(!free_state_slots_.empty(), "no free recurrent-state slot for sequence {}", seq->id);
      seq->state_slot = free_state_slots_.back();
      free_state_slots_.pop_back();
    }
    plan.chunks.push_back(Chunk{seq, seq->num_computed, seq->num_computed + n});
    budget -= n;
    rows_left -= logit_rows(*seq, seq->num_computed, seq->num_computed + n);
    running_.push_back(std::move(waiting_[i]));
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
  }
  return plan;
}

bool Scheduler::waits_for_sibling(Sequence& seq) {
  if (seq.prefill_after == 0) return false;
  const Sequence* sibling = find(seq.prefill_after);
  // Gone (finished, cancelled) or done with its prompt: its full blocks are in the prefix index by now.
  if (sibling == nullptr || sibling->num_computed >= sibling->prompt_len) {
    seq.prefill_after = 0;
    return false;
  }
  return true;
}

void Scheduler::advance(const StepPlan& plan) {
  for (const Chunk& c : plan.chunks) {
    c.seq->num_computed = c.end;
    blocks_.on_computed(*c.seq, c.end);
  }
}

bool Scheduler::finish(uint64_t id) {
  auto it = std::find_if(running_.begin(), running_.end(), [&](auto& p) { return p->id == id; });
  if (it != running_.end()) {
    blocks_.free(**it);
    release_state_slot(it->get());
    running_.erase(it);
    return true;
  }
  auto wt = std::find_if(waiting_.begin(), waiting_.end(), [&](auto& p) { return p->id == id; });
  if (wt != waiting_.end()) {
    blocks_.free(**wt);
    waiting_.erase(wt);
    return true;
  }
  return false;
}

Sequence* Scheduler::find(uint64_t id) {
  for (auto& s : running_)
    if (s->id == id) return s.get();
  for (auto& s : waiting_)
    if (s->id == id) return s.get();
  return nullptr;
}

}  // namespace keel::engine
