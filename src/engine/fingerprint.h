// The model fingerprint that names cached KV blocks (cache::model_fingerprint) for a loaded model.
#pragma once

#include <string>

#include "cache/block_hash.h"
#include "env/env.h"
#include "model/model.h"

namespace keel::engine {

cache::KvLayout cache_kv_layout(const backend::KvLayout& layout);

// From the model's config, weights dtype and KV layout only: two checkpoints of one architecture and shape
// get the same fingerprint, so this is only for blocks that never outlive the engine (the device pool and
// host RAM of one process).
cache::ModelFingerprint config_fingerprint(const model::Model& model);

// Also covers the weights' identity (cache::weights_identity of `dir`): for anything that persists (SSD).
Result<cache::ModelFingerprint> weights_fingerprint(env::Env* env, const std::string& dir, const model::Model& model);

}  // namespace keel::engine
