// Leader and followers of a tensor-parallel group. Rank 0 runs the Engine (scheduler, token chooser, HTTP); before
// each forward its StepLeader broadcasts the step's plan — the flattened batch: tokens, positions, KV slots,
// block tables, logit rows, and whether the step is greedy — and every other rank, in run_follower, receives it
// and runs the same forward (forward_greedy for a greedy step, whose vocab-parallel argmax has collectives of
// its own), so all ranks join the same collectives in the same order. A shutdown message ends the followers.
//
// Wire format (Communicator::broadcast from rank 0; little-endian, as every supported host is):
//   header  u32 magic "kstp", u32 kind (1 forward, 2 shutdown, 3 all-reduce benchmark, 4 heartbeat), u64 payload
//           bytes; a heartbeat is followed by a barrier of all ranks
//   forward payload  u32 flags (bit 0: greedy, the leader runs Model::forward_greedy; other bits 0);
//                    u32 tokens, u32 seqs, u32 logit rows; i32 tokens[], positions[], slot_mapping[];
//                    per seq: i32 q_start, q_len, kv_len, u32 blocks, i32 block_table[]; i32 logit_rows[]
//   all-reduce benchmark payload  u64 elements, u32 iterations
// Followers keep no state between steps besides the KV cache the plans address.
#pragma once

#include <cstdint>
#include <vector>

#include "dist/communicator.h"
#include "model/model.h"

namespace keel::engine {

// One forward step's plan. greedy: the leader runs Model::forward_greedy, so the followers must too.
struct ForwardPlan {
  model::Batch batch;
  bool greedy = false;
};

std::vector<uint8_t> encode_forward(const model::Batch& batch, bool greedy);
// Checks every count against the bytes there are: a truncated or garbled plan is an error, not a crash.
Result<ForwardPlan> decode_forward(const uint8_t* data, size_t size);

class StepLeader {
 public:
  explicit StepLeader(dist::Communicator* comm) : comm_(comm) {}
  // Sends the plan of the forward the leader runs next: Model::forward_greedy where `greedy`, else forward.
  Status forward(const model::Batch& batch, bool greedy);
  // Tells the followers to run time_all_reduce(elements, iterations) with the leader.
  Status all_reduce_bench(uint64_t elements, uint32_t iterations);
  // While idle: a round trip through every rank, so a rank that died or hangs is found before a request needs
  // it (the engine sends one per second without work).
  Status heartbeat();
  // Ends the followers' loops (once; later calls do nothing).
  Status shutdown();

 private:
  Status send(uint32_t kind, const std::vector<uint8_t>& payload);
  dist::Communicator* comm_;
  bool shut_ = false;
};

// A follower rank's whole life after loading: receive, run, repeat until shutdown (returns OK) or a failure of
// the group or of a forward (returns it; the process should exit non-zero). Plans arrive on `comm`; all-reduce
// benchmarks run on `tensor` (the rank's tensor-parallel group; null: comm).
Status run_follower(model::Model& model, dist::Communicator& comm, dist::Communicator* tensor = nullptr);

// Seconds per all-reduce of `elements` floats, over `iterations` after one untimed, on every rank at once (the
// leader after all_reduce_bench). On device buffers where the communicator has device collectives; `scratch`
// is allocated on first use (from the model's backend) and reused.
Result<double> time_all_reduce(model::Model& model, dist::Communicator& comm, uint64_t elements,
                               uint32_t iterations, backend::Tensor* scratch);

}  // namespace keel::engine
