// Multi-process tensor and pipeline parallelism: `keel serve|bench --tensor-parallel N [--pipeline-parallel M]`
// re-executes the same command line as N x M rank processes (one GPU each) and supervises them; each rank joins
// its groups once at start. docs/DISTRIBUTED.md ("Launching ranks") has the whole protocol.
//
//   launcher   the process the user started: picks the master port, starts rank g = s*N + t (stage s, TP rank
//              t) with KEEL_RANK/KEEL_WORLD_SIZE/KEEL_MASTER_ADDR/KEEL_MASTER_PORT and its own GPU first in
//              CUDA_VISIBLE_DEVICES (device 0; the others stay visible for NCCL's peer-to-peer paths), forwards
//              SIGINT/SIGTERM to rank 0, and when a rank dies gives the others
//              a grace period to fail cleanly, then kills them. Exit code 0 only if every rank exited 0.
//   rank 0     serves HTTP (or runs the benchmark, writes the logits, generates) and schedules; sends each step's
//              plan to the others.
//   rank g>0   loads its shard and runs engine::run_follower until rank 0 says shutdown.
// Ranks started by another launcher (torchrun, a job scheduler, several hosts) read RANK/WORLD_SIZE/MASTER_ADDR/
// MASTER_PORT and LOCAL_RANK (their GPU) instead.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "dist/communicator.h"
#include "dist/tcp_communicator.h"
#include "engine/follower.h"
#include "model/config.h"
#include "model/model.h"

namespace keel::runtime {

// The parallel layout the flags ask for.
struct DistOptions {
  int tensor_parallel = 1;
  int pipeline_parallel = 1;
  int master_port = 0;         // 0: a free port, chosen by the launcher
  double timeout_s = 60;       // a step's collectives (and an idle heartbeat) fail after this long
  int world() const { return tensor_parallel * pipeline_parallel; }
};

// This process's place in the group, from the environment.
struct RankEnv {
  int rank = 0, world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
};

// nullopt: not started as a rank (no KEEL_RANK nor RANK). Errors name the variable that is wrong. A rank started
// by an outside launcher with LOCAL_RANK gets CUDA_VISIBLE_DEVICES narrowed to that GPU here, before CUDA starts.
Result<std::optional<RankEnv>> rank_from_environment();

// Checks the flags against the model (heads, KV heads, intermediate size, experts, vocabulary, layers) and the
// GPUs there are, before any process starts: every message names the flag.
Status check_layout(const DistOptions& d, const model::ModelConfig& config, const std::string& backend);

struct LaunchOptions {
  int world = 1;
  bool device_per_rank = false;  // one GPU per rank (CUDA_VISIBLE_DEVICES)
  int visible_devices = 0;       // GPUs visible to the launcher (when CUDA_VISIBLE_DEVICES does not list them)
  int master_port = 0;
  std::chrono::milliseconds grace{10000};  // after a rank dies, before the others are killed
  std::chrono::milliseconds stop_grace{60000};  // after SIGINT/SIGTERM, before every rank is killed
  std::vector<std::string> command;  // empty: this process's own command line (/proc/self/cmdline)
  std::string executable;            // empty: /proc/self/exe
};

// Starts and supervises the ranks; returns the launcher's exit code.
int launch_ranks(const LaunchOptions& options);

// The communicators of one rank, joined once at start.
struct RankGroup {
  std::unique_ptr<dist::TcpCommunicator> world;   // all ranks: step plans, heartbeats
  std::unique_ptr<dist::TcpCommunicator> stage;   // the TP group of this rank's pipeline stage (TP x PP only)
  std::unique_ptr<dist::TcpCommunicator> pipe;    // this TP rank's pipeline (TP x PP only)
  std::unique_ptr<dist::Communicator> device;     // NCCL over the TP group (CUDA)
  dist::Communicator* tensor = nullptr;           // LoadOptions::communicator (null: TP=1)
  dist::Communicator* pipeline = nullptr;         // LoadOptions::pipeline (null: PP=1)
  dist::Communicator* plans = nullptr;            // StepLeader / run_follower
  uint64_t device_bytes = 0;                      // NCCL's device memory, for the memory plan
  std::string describe;                           // "rank 1 of 2 (TP rank 1, stage 0), NCCL 2.28.9, 412 MiB"
};

Result<RankGroup> join_group(const RankEnv& env, const DistOptions& d, backend::Backend* backend);

// Waits until every rank has loaded its shard, for as long as that takes (a rank that fails exits, which ends the
// wait): the step timeout then only measures steps.
Status wait_until_loaded(RankGroup& group);

// Rank 0's load options (from its memory plan), sent so that every rank sizes its KV pool and buffers alike.
Status send_load_options(dist::Communicator& plans, const model::LoadOptions& options);
Result<model::LoadOptions> receive_load_options(dist::Communicator& plans);

// Loads this rank's shard (Model::load or Model::synthetic) with the options given.
using LoadShard = std::function<Result<std::unique_ptr<model::Model>>(backend::Backend*, const model::LoadOptions&)>;

// For serve and bench, first thing: this process is the launcher (starts the ranks, returns its exit code), a
// follower rank (runs until shutdown, returns its exit code), or rank 0 or a lone process (nullopt; `rank` is set
// for rank 0 of a group, which then calls join_group and send_load_options itself).
// keel bench's: MODEL_DIR, else the synthetic shape (its default resolved as keel bench resolves it).
std::optional<int> dispatch_bench_rank(const std::string& dir, const std::string& synthetic, const std::string& backend,
                                       const DistOptions& d, std::optional<RankEnv>* rank);

std::optional<int> dispatch_rank(const DistOptions& d, const model::ModelConfig& config, const std::string& backend,
                                 const LoadShard& load, std::optional<RankEnv>* rank);

// dispatch_rank for the checkpoint in `dir` (Model::load): keel logits and generate, and serve and bench given a
// MODEL_DIR.
std::optional<int> dispatch_model_rank(const std::string& dir, const std::string& backend, const DistOptions& d,
                                       std::optional<RankEnv>* rank);

// The model in `dir` as rank 0 of a group (`rank` set by a dispatch above) or as a lone process loads it. In a
// group, rank 0 joins it, sends `options` to the other ranks, loads its shard and waits for theirs; `leader` then
// sends each forward's plan. Members in teardown order: leader and model before the communicators, backend last.
struct RankModel {
  std::unique_ptr<backend::Backend> backend;
  RankGroup group;                              // empty for a lone process
  std::unique_ptr<model::Model> model;
  std::unique_ptr<engine::StepLeader> leader;  // null for a lone process
};

Result<RankModel> load_rank_model(const std::string& dir, const std::string& backend, const DistOptions& d,
                                  const std::optional<RankEnv>& rank, model::LoadOptions options);

// A rank of a group whose work is done (rank 0 after its output, a follower after the shutdown plan) leaves
// without destructors: on two GPUs a rank whose decode graphs held NCCL collectives did not finish tearing them
// down (the launcher killed it after its grace period); the process's exit releases what they would.
[[noreturn]] void exit_rank(int code);

// Rank 0's work is over with `result`, good or bad: the followers are told to exit (0). Returns `result`, or the
// failure to tell them.
Status end_followers(RankModel& m, Status result);

}  // namespace keel::runtime
