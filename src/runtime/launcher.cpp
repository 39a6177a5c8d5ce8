#include "runtime/launcher.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <cstring>
#include <fstream>
#include <sstream>

#include "backend/registry.h"
#include "base/log.h"
#include "runtime/load_model.h"
#include "runtime/serving.h"
#include "engine/follower.h"
#include "model/shard.h"
#include "model/synthetic.h"


namespace keel::runtime {

namespace {

using Clock = std::chrono::steady_clock;

// A rank that cannot go on: its one-line error (docs/CLI.md's shape), and the exit code of a user error.
int report(const Status& status) {
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  return 1;
}

const char* env_first(const char* a, const char* b) {
  const char* v = std::getenv(a);
  return v != nullptr && *v != '\0' ? v : std::getenv(b);
}

Result<int> env_int(const char* keel_name, const char* torch_name, int lo, int hi) {
  const char* v = env_first(keel_name, torch_name);
  if (v == nullptr) return invalid_argument("{} (or {}) is not set", keel_name, torch_name);
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || end == v || x < lo || x > hi)
    return invalid_argument("{}={}: expected an integer in [{}, {}]", keel_name, v, lo, hi);
  return static_cast<int>(x);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  size_t at = 0;
  while (at < all.size()) {
    const size_t nul = all.find('\0', at);
    args.push_back(all.substr(at, nul - at));
    if (nul == std::string::npos) break;
    at = nul + 1;
  }
  return args;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return "stopped";
}

// CUDA_VISIBLE_DEVICES for a rank: its own GPU first (so it is device 0, the one the backend takes), then the
// others, still visible so that NCCL can reach them peer to peer.
std::string gpus_for(int local, const std::vector<std::string>& listed, int count) {
  std::vector<std::string> all = listed;
  if (all.empty())
    for (int i = 0; i < count; i++) all.push_back(std::to_string(i));
  std::string out = all[local];
  for (int i = 0; i < static_cast<int>(all.size()); i++)
    if (i != local) out += "," + all[i];
  return out;
}

// By keel's own launcher (KEEL_RANK) or another (RANK).
bool started_as_rank() { return std::getenv("KEEL_RANK") != nullptr || std::getenv("RANK") != nullptr; }

// --backend `name` runs one device per rank (CUDA: --backend cuda, or auto with a GPU visible).
bool one_device_per_rank(const std::string& name) { return backend::wants_device(name); }

}  // namespace

Result<std::optional<RankEnv>> rank_from_environment() {
  const bool ours = std::getenv("KEEL_RANK") != nullptr;
  if (!ours && std::getenv("RANK") == nullptr) return std::optional<RankEnv>();
  RankEnv e;
  KEEL_ASSIGN_OR_RETURN(e.world, env_int("KEEL_WORLD_SIZE", "WORLD_SIZE", 1, 4096));
  KEEL_ASSIGN_OR_RETURN(e.rank, env_int("KEEL_RANK", "RANK", 0, e.world - 1));
  KEEL_ASSIGN_OR_RETURN(e.master_port, env_int("KEEL_MASTER_PORT", "MASTER_PORT", 1, 65535));
  if (const char* a = env_first("KEEL_MASTER_ADDR", "MASTER_ADDR"); a != nullptr && *a != '\0') e.master_addr = a;
  // An outside launcher says which GPU by LOCAL_RANK; keel's own sets CUDA_VISIBLE_DEVICES itself.
  if (!ours && std::getenv("LOCAL_RANK") != nullptr) {
    KEEL_ASSIGN_OR_RETURN(int local, env_int("LOCAL_RANK", "LOCAL_RANK", 0, 1023));
    const char* vis = std::getenv("CUDA_VISIBLE_DEVICES");
    std::vector<std::string> ids = vis != nullptr ? split(vis, ',') : std::vector<std::string>{};
    if (!ids.empty() && local >= static_cast<int>(ids.size()))
      return invalid_argument("LOCAL_RANK={} but CUDA_VISIBLE_DEVICES={} lists {} GPUs", local, vis, ids.size());
    setenv("CUDA_VISIBLE_DEVICES", gpus_for(local, ids, local + 1).c_str(), 1);
  }
  setenv("NCCL_NVLS_ENABLE", "0", 1);
  return std::optional<RankEnv>(e);
}

Status check_layout(const DistOptions& d, const model::ModelConfig& config, const std::string& backend) {
  if (d.tensor_parallel < 1) return invalid_argument("--tensor-parallel {} must be at least 1", d.tensor_parallel);
  if (d.pipeline_parallel < 1)
    return invalid_argument("--pipeline-parallel {} must be at least 1", d.pipeline_parallel);
  if (d.timeout_s <= 0) return invalid_argument("--dist-timeout {} must be positive", d.timeout_s);
  model::ShardSpec spec;
  spec.size = d.tensor_parallel;
  spec.stages = d.pipeline_parallel;
  KEEL_RETURN_IF_ERROR(model::shard_layout(config, spec).status());
  if (one_device_per_rank(backend) && d.world() > 1 && !started_as_rank()) {
    const int gpus = backend::device_count(backend);
    if (gpus < d.world())
      return invalid_argument("--tensor-parallel {} x --pipeline-parallel {} needs {} GPUs (one per rank); {} visible",
                              d.tensor_parallel, d.pipeline_parallel, d.world(), gpus);
  }
  return Status();
}

int launch_ranks(const LaunchOptions& o) {
  std::vector<std::string> command = o.command.empty() ? own_command_line() : o.command;
  const std::string exe = o.executable.empty() ? "/proc/self/exe" : o.executable;
  const int port = o.master_port > 0 ? o.master_port : dist::free_port();
  std::vector<std::string> gpus;
  if (const char* vis = std::getenv("CUDA_VISIBLE_DEVICES"); vis != nullptr) gpus = split(vis, ',');
  const int visible = o.device_per_rank ? o.visible_devices : 0;
  if (o.device_per_rank && !gpus.empty() && static_cast<int>(gpus.size()) < o.world) {
    std::fprintf(stderr, "error: CUDA_VISIBLE_DEVICES=%s lists %zu GPUs for %d ranks\n", std::getenv("CUDA_VISIBLE_DEVICES"),
                 gpus.size(), o.world);
    return 1;
  }

  // Signals arrive through sigtimedwait below, in this thread only.
  sigset_t set, old;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGINT, SIGTERM}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, &old);

  std::vector<char*> argv;
  for (auto& a : command) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<pid_t> pids(o.world, -1);
  std::vector<bool> running(o.world, false);
  for (int r = 0; r < o.world; r++) {
    const pid_t pid = fork();
    if (pid < 0) {
      std::fprintf(stderr, "error: cannot start rank %d: %s\n", r, std::strerror(errno));
      for (int i = 0; i < r; i++) kill(pids[i], SIGKILL);
      return 1;
    }
    if (pid == 0) {
      // The terminal's Ctrl-C reaches the launcher only (it stops the group in order); a launcher that dies
      // takes its ranks with it.
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      setenv("KEEL_RANK", std::to_string(r).c_str(), 1);
      setenv("KEEL_WORLD_SIZE", std::to_string(o.world).c_str(), 1);
      setenv("KEEL_MASTER_ADDR", "127.0.0.1", 1);
      setenv("KEEL_MASTER_PORT", std::to_string(port).c_str(), 1);
      setenv("NCCL_NVLS_ENABLE", "0", 1);
      if (o.device_per_rank) setenv("CUDA_VISIBLE_DEVICES", gpus_for(r, gpus, std::max(o.world, visible)).c_str(), 1);
      // CPU ranks share the host's cores: OpenMP workers spinning after a parallel region took the cycles of the
      // rank their own was waiting on (keel generate --tensor-parallel 2 on 2 cores: 8.5 s spinning, 0.03 s
      // passive). A user's own setting stays.
      if (!o.device_per_rank) setenv("OMP_WAIT_POLICY", "passive", 0);
      execv(exe.c_str(), argv.data());
      std::fprintf(stderr, "error: rank %d: cannot run %s: %s\n", r, exe.c_str(), std::strerror(errno));
      _exit(127);
    }
    pids[r] = pid;
    running[r] = true;
  }
  std::string pid_list;
  for (pid_t p : pids) pid_list += (pid_list.empty() ? "" : " ") + std::to_string(p);
  log::info(fmt::format("launched {} ranks (pids {}), master port {}", o.world, pid_list, port));

  int alive = o.world;
  bool failed = false;
  // Rank 0 finished cleanly: its work is done and the followers were told to exit. One that has not within a
  // few seconds is stuck in teardown; it is killed, and that is not a failure of the group's work.
  bool leader_done = false;
  std::vector<bool> reaped(o.world, false);
  constexpr auto kAfterLeader = std::chrono::seconds(5);
  auto deadline = Clock::time_point::max();
  while (alive > 0) {
    timespec tick{0, 200 * 1000 * 1000};
    siginfo_t info;
    const int sig = sigtimedwait(&set, &info, &tick);
    if ((sig == SIGINT || sig == SIGTERM) && deadline == Clock::time_point::max()) {
      // Rank 0 drains, finishes in-flight requests, then ends the followers.
      log::info(fmt::format("{} received; stopping rank 0, which stops the others", strsignal(sig)));
      if (running[0]) kill(pids[0], SIGTERM);
      deadline = Clock::now() + o.stop_grace;
    }
    int status = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      for (int r = 0; r < o.world; r++) {
        if (pids[r] != pid || !running[r]) continue;
        running[r] = false;
        alive--;
        const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (r == 0 && clean && alive > 0 && !failed) {
          leader_done = true;
          deadline = std::min(deadline, Clock::now() + std::chrono::duration_cast<std::chrono::milliseconds>(kAfterLeader));
        }
        if (reaped[r]) continue;  // killed below after rank 0's clean finish
        if (!clean && !failed) {
          failed = true;
          log::error(fmt::format("rank {} (pid {}) {}; the other ranks fail their work and stop (killed in {:.0f} s)",
                                 r, pid, describe_exit(status), o.grace.count() / 1000.0));
          deadline = std::min(deadline, Clock::now() + o.grace);
        } else if (!clean) {
          log::warn(fmt::format("rank {} (pid {}) {}", r, pid, describe_exit(status)));
        }
      }
    }
    if (alive > 0 && Clock::now() >= deadline && leader_done && !failed) {
      for (int r = 0; r < o.world; r++) {
        if (!running[r]) continue;
        log::warn(fmt::format("rank {} (pid {}) did not exit within {} s of rank 0's clean finish; killing it (its work "
                              "was done)", r, pids[r], static_cast<long long>(kAfterLeader.count())));
        kill(pids[r], SIGKILL);
        reaped[r] = true;
      }
      deadline = Clock::time_point::max();
    } else if (alive > 0 && Clock::now() >= deadline) {
      for (int r = 0; r < o.world; r++) {
        if (!running[r]) continue;
        log::warn(fmt::format("rank {} (pid {}) still running after the grace period; killing it", r, pids[r]));
        kill(pids[r], SIGKILL);
      }
      failed = true;
      deadline = Clock::time_point::max();  // the SIGCHLDs follow
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (failed) std::fprintf(stderr, "error: the tensor-parallel group failed (see the ranks' messages above)\n");
  return failed ? 1 : 0;
}

Result<RankGroup> join_group(const RankEnv& env, const DistOptions& d, backend::Backend* backend) {
  if (env.world != d.world())
    return invalid_argument("this rank's world size is {} but --tensor-parallel {} x --pipeline-parallel {} is {}",
                            env.world, d.tensor_parallel, d.pipeline_parallel, d.world());
  const int tp = d.tensor_parallel, pp = d.pipeline_parallel;
  const int stage = env.rank / tp, t = env.rank % tp;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(d.timeout_s * 1000));
  auto tcp = [&](int rank, int world, const std::string& addr, int port) {
    dist::TcpOptions o;
    o.rank = rank;
    o.world = world;
    o.master_addr = addr;
    o.master_port = port;
    o.timeout = timeout;
    return dist::TcpCommunicator::connect(o);
  };
  RankGroup g;
  KEEL_ASSIGN_OR_RETURN(g.world, tcp(env.rank, env.world, env.master_addr, env.master_port));
  dist::Communicator* tensor_tcp = nullptr;
  if (tp > 1 && pp > 1) {
    // Sub-groups: stage s's TP group, led by global rank s*tp, and TP rank t's pipeline, led by global rank t.
    // Each leader listens on a port free on its own host (the grid may span hosts) at the address rank 0 saw it
    // connect from; every rank sends the world its two ports (stage group, pipeline; 0 where it leads none).
    // (Fixed ports above the master's were taken by another group's listener in a parallel test run.)
    std::vector<int32_t> ports(2 * static_cast<size_t>(env.world), 0);
    for (int r = 0; r < env.world; r++) {
      int32_t* mine = ports.data() + 2 * r;
      if (r == env.rank) {
        if (t == 0) mine[0] = dist::free_port();
        if (stage == 0) {
          do {
            mine[1] = dist::free_port();
          } while (mine[1] == mine[0]);
        }
      }
      KEEL_RETURN_IF_ERROR(g.world->broadcast(mine, 2 * sizeof(int32_t), r));
    }
    const int stage_leader = stage * tp, pipe_leader = t;
    KEEL_ASSIGN_OR_RETURN(g.stage, tcp(t, tp, g.world->address(stage_leader), ports[2 * stage_leader]));
    KEEL_ASSIGN_OR_RETURN(g.pipe, tcp(stage, pp, g.world->address(pipe_leader), ports[2 * pipe_leader + 1]));
    tensor_tcp = g.stage.get();
    g.pipeline = g.pipe.get();
  } else if (tp > 1) {
    tensor_tcp = g.world.get();
  } else if (pp > 1) {
    g.pipeline = g.world.get();
  }
  g.tensor = tensor_tcp;
  g.plans = g.world.get();
  g.describe = fmt::format("rank {} of {} (TP rank {} of {}, stage {} of {})", env.rank, env.world, t, tp, stage, pp);
  KEEL_ASSIGN_OR_RETURN(const backend::BackendKind* kind, backend::resolve(backend->name()));
  if (tensor_tcp != nullptr && kind->device) {
    // The layers' collectives run on the device (NCCL on CUDA), over the TCP group's ranks.
    if (!kind->join_group) return unsupported("--tensor-parallel on {}: it has no device collectives", kind->name);
    KEEL_ASSIGN_OR_RETURN(backend::DeviceGroup devices, kind->join_group(tensor_tcp, backend, timeout));
    g.device_bytes = devices.device_bytes;
    g.describe += fmt::format(", {} ({} MiB of device memory)", devices.version, g.device_bytes >> 20);
    g.tensor = devices.communicator.get();
    g.device = std::move(devices.communicator);
  }
  return g;
}

namespace {

struct WireLoadOptions {
  int32_t ok = 0;  // 0: rank 0 failed before loading; the followers exit
  int32_t max_batch_tokens = 0, kv_blocks = 0, block_size = 0, micro_batches = 0, max_logit_rows = 0;
};

}  // namespace

Status wait_until_loaded(RankGroup& group) {
  return group.world->barrier_within(std::chrono::milliseconds(0)).with_context("waiting for every rank to load");
}

Status send_load_options(dist::Communicator& plans, const model::LoadOptions& o) {
  WireLoadOptions w{1, o.max_batch_tokens, o.kv_blocks, o.block_size, o.micro_batches, o.max_logit_rows};
  return plans.broadcast(&w, sizeof(w), 0);
}

Result<model::LoadOptions> receive_load_options(dist::Communicator& plans) {
  WireLoadOptions w;
  KEEL_RETURN_IF_ERROR(plans.broadcast(&w, sizeof(w), 0));
  if (w.ok != 1) return internal_error("rank 0 did not load the model");
  model::LoadOptions o;
  o.max_batch_tokens = w.max_batch_tokens;
  o.kv_blocks = w.kv_blocks;
  o.block_size = w.block_size;
  o.micro_batches = w.micro_batches;
  o.max_logit_rows = w.max_logit_rows;
  return o;
}

std::optional<int> dispatch_rank(const DistOptions& d, const model::ModelConfig& config, const std::string& backend,
                                 const LoadShard& load, std::optional<RankEnv>* rank) {
  if (Status s = check_layout(d, config, backend); !s.ok()) return report(s);
  auto env = rank_from_environment();
  if (!env.ok()) return report(env.status());
  if (!env->has_value()) {
    if (d.world() == 1) return std::nullopt;
    LaunchOptions lo;
    lo.world = d.world();
    lo.device_per_rank = one_device_per_rank(backend);
    lo.visible_devices = backend::device_count(backend);
    lo.master_port = d.master_port;
    lo.grace = std::chrono::milliseconds(static_cast<int64_t>(1000 * std::max(10.0, d.timeout_s + 5)));
    return launch_ranks(lo);
  }
  const RankEnv& e = **env;
  if (e.rank == 0) {
    *rank = e;
    return std::nullopt;
  }
  // A follower: its errors name the rank, since every rank writes to the same terminal.
  const std::string who = fmt::format("rank {}", e.rank);
  auto b = backend::create(backend);
  if (!b.ok()) return report(b.status().with_context(who));
  auto group = join_group(e, d, b->get());
  if (!group.ok()) return report(group.status().with_context(who));
  auto options = receive_load_options(*group->plans);
  if (!options.ok()) return report(options.status().with_context(who));
  options->communicator = group->tensor;
  options->pipeline = group->pipeline;
  auto m = load(b->get(), *options);
  if (!m.ok()) return report(m.status().with_context(who));
  if (Status s = wait_until_loaded(*group); !s.ok()) return report(s.with_context(who));
  if (Status s = engine::run_follower(**m, *group->plans, group->tensor); !s.ok()) {
    report(s.with_context(who));
    // The group is broken: leave without the destructors, which may wait on a device or NCCL that will not answer.
    std::fflush(stderr);
    std::_Exit(1);
  }
  // Done: rank 0 sent the shutdown plan and nothing is in flight. KEEL_TEST_STUCK_AT_EXIT (a test's fault
  // injection) makes the follower stall here, as one stuck in a driver's teardown would.
  if (std::getenv("KEEL_TEST_STUCK_AT_EXIT") != nullptr) std::this_thread::sleep_for(std::chrono::seconds(120));
  exit_rank(0);
}

void exit_rank(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

std::optional<int> dispatch_model_rank(const std::string& dir, const std::string& backend, const DistOptions& d,
                                       std::optional<RankEnv>* rank) {
  if (d.world() == 1 && !started_as_rank()) return std::nullopt;
  auto config = model::load_config(env::Env::posix(), dir);
  if (!config.ok()) return report(config.status());
  LoadShard load = [dir](backend::Backend* b, const model::LoadOptions& lo) {
    return model::Model::load(env::Env::posix(), dir, b, lo);
  };
  return dispatch_rank(d, *config, backend, load, rank);
}

Result<RankModel> load_rank_model(const std::string& dir, const std::string& backend, const DistOptions& d,
                                  const std::optional<RankEnv>& rank, model::LoadOptions options) {
  RankModel m;
  KEEL_ASSIGN_OR_RETURN(m.backend, backend::create(backend));
  if (rank) {
    KEEL_ASSIGN_OR_RETURN(m.group, join_group(*rank, d, m.backend.get()));
    log::info(m.group.describe);
    options.communicator = m.group.tensor;
    options.pipeline = m.group.pipeline;
    KEEL_RETURN_IF_ERROR(send_load_options(*m.group.plans, options));
  }
  KEEL_ASSIGN_OR_RETURN(m.model, model::Model::load(env::Env::posix(), dir, m.backend.get(), options));
  if (rank) {
    KEEL_RETURN_IF_ERROR(wait_until_loaded(m.group));
    m.leader = std::make_unique<engine::StepLeader>(m.group.plans);
  }
  return m;
}

Status end_followers(RankModel& m, Status result) {
  if (m.leader == nullptr) return result;
  Status told = m.leader->shutdown();
  return result.ok() ? told : result;
}

std::optional<int> dispatch_serve_rank(ServeOptions& o) {
  if (o.dist.world() == 1 && !started_as_rank()) return std::nullopt;
  if (!o.synthetic.empty()) {
    auto config = model::synthetic_config(o.synthetic);
    if (!config.ok()) return report(config.status());
    // The seed Serving::start uses: every rank's shard of the same random model.
    LoadShard load = [c = *config](backend::Backend* b, const model::LoadOptions& lo) {
      return model::Model::synthetic(c, b, lo, 42);
    };
    return dispatch_rank(o.dist, *config, o.backend, load, &o.rank);
  }
  const std::string dir = o.dir.empty() ? demo_model_dir() : o.dir;
  if (dir.empty()) return report(not_found("no MODEL_DIR given and the bundled demo model was not found"));
  return dispatch_model_rank(dir, o.backend, o.dist, &o.rank);
}

std::optional<int> dispatch_bench_rank(const std::string& dir, const std::string& synthetic, const std::string& backend,
                                       const DistOptions& d, std::optional<RankEnv>* rank) {
  if (d.world() == 1 && !started_as_rank()) return std::nullopt;
  if (!dir.empty()) return dispatch_model_rank(dir, backend, d, rank);
  // keel bench's default shape, decided the same way on every rank.
  const std::string shape = synthetic.empty() ? (one_device_per_rank(backend) ? "llama3-8b" : "llama-100m") : synthetic;
  auto config = model::synthetic_config(shape);
  if (!config.ok()) return report(config.status());
  LoadShard load = [c = *config](backend::Backend* b, const model::LoadOptions& lo) {
    return model::Model::synthetic(c, b, lo, 42);
  };
  return dispatch_rank(d, *config, backend, load, rank);
}

}  // namespace keel::runtime
