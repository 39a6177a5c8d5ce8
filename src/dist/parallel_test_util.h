// What the tensor- and pipeline-parallel tests share: the golden models, a prompt long enough for chunked
// prefill over KV history, and the load options of a rank.
#pragma once

#include <string>
#include <vector>

#include "backend/ops.h"
#include "dist/communicator.h"
#include "model/model.h"

namespace keel::dist::testing {

inline const std::string kGoldenDir = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/";

// 40 tokens, so that prefill runs in chunks of max_batch_tokens=16 over a KV cache with history.
inline std::vector<int32_t> prompt() {
  std::vector<int32_t> t;
  for (int i = 0; i < 40; i++) t.push_back((i * 97 + 13) % 256);
  return t;
}

// A rank of tensor-parallel group `tp` in pipeline `pp` (either null: not split that way).
inline model::LoadOptions options(Communicator* tp, Communicator* pp = nullptr, int micro_batches = 0) {
  model::LoadOptions o;
  o.max_batch_tokens = 16;
  o.kv_blocks = 8;
  o.communicator = tp;
  o.pipeline = pp;
  o.micro_batches = micro_batches;
  return o;
}

inline Result<std::unique_ptr<model::Model>> load(const std::string& name, const model::LoadOptions& o,
                                                  backend::Backend* backend) {
  return model::Model::load(env::Env::posix(), kGoldenDir + name, backend, o);
}

}  // namespace keel::dist::testing
