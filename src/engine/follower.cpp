#include "engine/follower.h"

#include <chrono>
#include <cstring>

namespace keel::engine {

namespace {

constexpr uint32_t kMagic = 0x7074736b;  // "kstp"
enum Kind : uint32_t { kForward = 1, kShutdown = 2, kAllReduceBench = 3, kHeartbeat = 4 };

struct Header {
  uint32_t magic = kMagic;
  uint32_t kind = 0;
  uint64_t bytes = 0;
};

class Writer {
 public:
  explicit Writer(std::vector<uint8_t>* out) : out_(out) {}
  template <typename T>
  void put(T v) {
    const size_t at = out_->size();
    out_->resize(at + sizeof(T));
    std::memcpy(out_->data() + at, &v, sizeof(T));
  }
  void put(const std::vector<int32_t>& v) {
    const size_t at = out_->size();
    out_->resize(at + v.size() * sizeof(int32_t));
    if (!v.empty()) std::memcpy(out_->data() + at, v.data(), v.size() * sizeof(int32_t));
  }

 private:
  std::vector<uint8_t>* out_;
};

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), left_(size) {}
  template <typename T>
  Status get(T* v) {
    if (left_ < sizeof(T)) return corruption("step plan: truncated ({} bytes left, {} needed)", left_, sizeof(T));
    std::memcpy(v, p_, sizeof(T));
    p_ += sizeof(T), left_ -= sizeof(T);
    return Status();
  }
  Status get(std::vector<int32_t>* v, uint64_t n) {
    if (n > left_ / sizeof(int32_t))
      return corruption("step plan: {} ids announced, {} bytes left", n, left_);
    v->resize(n);
    if (n > 0) std::memcpy(v->data(), p_, n * sizeof(int32_t));
    p_ += n * sizeof(int32_t), left_ -= n * sizeof(int32_t);
    return Status();
  }
  size_t left() const { return left_; }

 private:
  const uint8_t* p_;
  size_t left_;
};

}  // namespace

constexpr uint32_t kGreedy = 1;  // forward payload flags

std::vector<uint8_t> encode_forward(const model::Batch& b, bool greedy) {
  std::vector<uint8_t> out;
  Writer w(&out);
  w.put(greedy ? kGreedy : 0u);
  w.put(static_cast<uint32_t>(b.tokens.size()));
  w.put(static_cast<uint32_t>(b.meta.seqs.size()));
  w.put(static_cast<uint32_t>(b.logit_rows.size()));
  w.put(b.tokens);
  w.put(b.meta.positions);
  w.put(b.meta.slot_mapping);
  for (const backend::SeqSlice& s : b.meta.seqs) {
    w.put(s.q_start);
    w.put(s.q_len);
    w.put(s.kv_len);
    w.put(static_cast<uint32_t>(s.block_table.size()));
    w.put(s.block_table);
  }
  w.put(b.logit_rows);
  return out;
}

Result<ForwardPlan> decode_forward(const uint8_t* data, size_t size) {
  Reader r(data, size);
  ForwardPlan plan;
  model::Batch& b = plan.batch;
  uint32_t flags = 0, tokens = 0, seqs = 0, rows = 0;
  KEEL_RETURN_IF_ERROR(r.get(&flags));
  if ((flags & ~kGreedy) != 0) return corruption("step plan: unknown flags {:#x}", flags);
  plan.greedy = (flags & kGreedy) != 0;
  KEEL_RETURN_IF_ERROR(r.get(&tokens));
  KEEL_RETURN_IF_ERROR(r.get(&seqs));
  KEEL_RETURN_IF_ERROR(r.get(&rows));
  KEEL_RETURN_IF_ERROR(r.get(&b.tokens, tokens));
  KEEL_RETURN_IF_ERROR(r.get(&b.meta.positions, tokens));
  KEEL_RETURN_IF_ERROR(r.get(&b.meta.slot_mapping, tokens));
  if (seqs > r.left() / 16) return corruption("step plan: {} sequences announced, {} bytes left", seqs, r.left());
  b.meta.seqs.resize(seqs);
  for (backend::SeqSlice& s : b.meta.seqs) {
    uint32_t blocks = 0;
    KEEL_RETURN_IF_ERROR(r.get(&s.q_start));
    KEEL_RETURN_IF_ERROR(r.get(&s.q_len));
    KEEL_RETURN_IF_ERROR(r.get(&s.kv_len));
    KEEL_RETURN_IF_ERROR(r.get(&blocks));
    KEEL_RETURN_IF_ERROR(r.get(&s.block_table, blocks));
  }
  KEEL_RETURN_IF_ERROR(r.get(&b.logit_rows, rows));
  if (r.left() != 0) return corruption("step plan: {} bytes after the end", r.left());
  return plan;
}

Status StepLeader::send(uint32_t kind, const std::vector<uint8_t>& payload) {
  Header h{kMagic, kind, payload.size()};
  KEEL_RETURN_IF_ERROR(comm_->broadcast(&h, sizeof(h), 0));
  if (payload.empty()) return Status();
  // broadcast() takes a mutable buffer; the root's is only read.
  return comm_->broadcast(const_cast<uint8_t*>(payload.data()), payload.size(), 0);
}

Status StepLeader::forward(const model::Batch& batch, bool greedy) {
  return send(kForward, encode_forward(batch, greedy));
}

Status StepLeader::all_reduce_bench(uint64_t elements, uint32_t iterations) {
  std::vector<uint8_t> payload;
  Writer w(&payload);
  w.put(elements);
  w.put(iterations);
  return send(kAllReduceBench, payload);
}

Status StepLeader::heartbeat() {
  KEEL_RETURN_IF_ERROR(send(kHeartbeat, {}));
  return comm_->barrier();
}

Status StepLeader::shutdown() {
  if (shut_) return Status();
  shut_ = true;
  return send(kShutdown, {});
}

Status run_follower(model::Model& model, dist::Communicator& comm, dist::Communicator* tensor) {
  if (comm.rank() == 0) return invalid_argument("run_follower: rank 0 leads; followers are ranks 1..N-1");
  std::vector<uint8_t> payload;
  std::vector<float> logits;
  std::vector<int32_t> tokens;
  backend::Tensor scratch;
  while (true) {
    Header h;
    KEEL_RETURN_IF_ERROR(comm.broadcast(&h, sizeof(h), 0));
    if (h.magic != kMagic) return corruption("step plan: bad magic {:#x} (ranks out of step)", h.magic);
    payload.resize(h.bytes);
    if (h.bytes > 0) KEEL_RETURN_IF_ERROR(comm.broadcast(payload.data(), payload.size(), 0));
    switch (h.kind) {
      case kShutdown: return Status();
      case kHeartbeat: KEEL_RETURN_IF_ERROR(comm.barrier()); break;
      case kForward: {
        KEEL_ASSIGN_OR_RETURN(ForwardPlan plan, decode_forward(payload.data(), payload.size()));
        Status s = plan.greedy ? model.forward_greedy(plan.batch, &tokens) : model.forward(plan.batch, &logits);
        KEEL_RETURN_IF_ERROR(s.with_context(fmt::format("rank {}", comm.rank())));
        break;
      }
      case kAllReduceBench: {
        Reader r(payload.data(), payload.size());
        uint64_t elements = 0;
        uint32_t iterations = 0;
        KEEL_RETURN_IF_ERROR(r.get(&elements));
        KEEL_RETURN_IF_ERROR(r.get(&iterations));
        dist::Communicator& group = tensor != nullptr ? *tensor : comm;
        KEEL_RETURN_IF_ERROR(time_all_reduce(model, group, elements, iterations, &scratch).status());
        break;
      }
      default: return corruption("step plan: unknown message kind {}", h.kind);
    }
  }
}

Result<double> time_all_reduce(model::Model& model, dist::Communicator& comm, uint64_t elements,
                               uint32_t iterations, backend::Tensor* scratch) {
  if (elements == 0 || iterations == 0) return invalid_argument("time_all_reduce: nothing to time");
  backend::Backend& b = model.backend();
  std::vector<float> host;
  auto once = [&]() -> Status {
    if (comm.on_device()) return comm.all_reduce_sum_device(scratch->data, elements, DType::kF32);
    return comm.all_reduce_sum(host.data(), elements);
  };
  if (comm.on_device()) {
    if (static_cast<uint64_t>(scratch->numel()) < elements) {
      KEEL_ASSIGN_OR_RETURN(*scratch, b.alloc(DType::kF32, 1, static_cast<int64_t>(elements)));
    }
  } else {
    host.assign(elements, 1.0f);
  }
  KEEL_RETURN_IF_ERROR(once());
  KEEL_RETURN_IF_ERROR(comm.synchronize());
  KEEL_RETURN_IF_ERROR(comm.barrier());
  const auto t0 = std::chrono::steady_clock::now();
  for (uint32_t i = 0; i < iterations; i++) KEEL_RETURN_IF_ERROR(once());
  KEEL_RETURN_IF_ERROR(comm.synchronize());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iterations;
}

}  // namespace keel::engine
