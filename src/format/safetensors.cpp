#include "format/safetensors.h"

#include <nlohmann/json.hpp>

#include <map>
#include <set>

#include "base/json_parse.h"
#include "format/gguf.h"

namespace keel::format {

using nlohmann::json;

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t TensorView::nbytes() const {
  if (quant == QuantKind::kNone || shape.empty()) return static_cast<size_t>(numel()) * dtype_size(dtype);
  const BlockShape b = ggml_block(quant);
  return static_cast<size_t>(numel() / b.values) * b.bytes;
}

std::string TensorView::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(env::Env* env, const std::string& path) {
  KEEL_ASSIGN_OR_RETURN(auto mapping, env->map_file(path));
  return parse(std::move(mapping));
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::parse(std::unique_ptr<env::MappedFile> mapping) {
  const std::string& path = mapping->path();
  const uint8_t* base = mapping->data();
  const size_t size = mapping->size();
  if (size < 8) return corruption("{}: file is {} bytes, too short for a safetensors header", path, size);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | base[i];
  if (header_len > size - 8)
    return corruption("{}: header length {} exceeds the file size {} (truncated file?)", path, header_len, size);
  Result<json> parsed = parse_json_bounded<json>(
      std::string_view(reinterpret_cast<const char*>(base + 8), header_len), kModelFileJsonDepth, path + " header");
  if (!parsed.ok()) return Status(Code::kCorruption, parsed.status().message());
  json header = std::move(parsed).value();
  if (!header.is_object()) return corruption("{}: header is not a JSON object", path);
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;

  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    // An init-capture: clang 14 (the fuzz build) cannot capture a structured binding.
    auto where = [&, &name = name] { return fmt::format("{}: tensor '{}'", path, name); };
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") ||
        !info.contains("data_offsets"))
      return corruption("{}: header entry needs dtype, shape and data_offsets", where());
    TensorView t;
    t.name = name;
    t.file = path;
    if (!info["dtype"].is_string()) return corruption("{}: dtype is not a string", where());
    auto dtype = parse_dtype(info["dtype"].get<std::string>());
    if (!dtype.ok()) return dtype.status().with_context(where());
    t.dtype = *dtype;
    if (!info["shape"].is_array()) return corruption("{}: shape is not an array", where());
    for (auto& d : info["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        return corruption("{}: shape {} has a non-integer or negative dimension", where(), info["shape"].dump());
      t.shape.push_back(d.get<int64_t>());
    }
    auto& off = info["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      return corruption("{}: data_offsets must be two unsigned integers", where());
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      return corruption("{}: data_offsets [{}, {}] fall outside the {} data bytes (truncated file?)", where(),
                        begin, end, data_size);
    // The size in unsigned arithmetic with overflow checks: a shape whose product wraps must not pass for a
    // small tensor (numel() is only safe once the shape is known to fit the file).
    uint64_t bytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes))
        return corruption("{}: shape {} of {} needs more than 2^64 bytes", where(), t.shape_str(),
                          dtype_name(t.dtype));
    }
    if (end - begin != bytes)
      return corruption("{}: shape {} of {} needs {} bytes but data_offsets span {}", where(), t.shape_str(),
                        dtype_name(t.dtype), bytes, end - begin);
    t.data = base + data_start + begin;
    file->tensors_.emplace(name, std::move(t));
  }
  file->mapping_ = std::move(mapping);
  return file;
}

Result<WeightFiles> WeightFiles::open(env::Env* env, const std::string& dir) {
  if (is_gguf_path(dir) && !env->is_directory(dir)) {
    WeightFiles wf;
    KEEL_ASSIGN_OR_RETURN(std::unique_ptr<GgufWeights> gguf, GgufWeights::open(env, dir));
    wf.gguf_ = std::move(gguf);
    for (auto& [name, t] : wf.gguf_->tensors()) wf.index_[name] = &t;
    return wf;
  }
  std::vector<std::string> paths;
  const std::string index_path = env::join_path(dir, "model.safetensors.index.json");
  const std::string single_path = env::join_path(dir, "model.safetensors");
  std::map<std::string, std::string> expected;  // tensor -> shard, from the index
  if (env->file_exists(index_path)) {
    KEEL_ASSIGN_OR_RETURN(std::string text, env->read_file(index_path));
    Result<json> parsed = parse_json_bounded<json>(text, kModelFileJsonDepth, index_path);
    if (!parsed.ok()) return Status(Code::kCorruption, parsed.status().message());
    json index = std::move(parsed).value();
    if (!index.is_object() || !index.contains("weight_map") ||
        !index["weight_map"].is_object())
      return corruption("{}: expected a JSON object with a weight_map object", index_path);
    std::set<std::string> shards;
    for (auto& [name, shard] : index["weight_map"].items()) {
      if (!shard.is_string()) return corruption("{}: weight_map['{}'] is not a string", index_path, name);
      expected[name] = shard.get<std::string>();
      shards.insert(shard.get<std::string>());
    }
    for (auto& s : shards) paths.push_back(env::join_path(dir, s));
  } else if (env->file_exists(single_path)) {
    paths.push_back(single_path);
  } else {
    return not_found("{}: no model.safetensors or model.safetensors.index.json", dir);
  }

  WeightFiles wf;
  for (auto& p : paths) {
    KEEL_ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(env, p));
    wf.files_.push_back(std::move(file));
  }
  for (auto& f : wf.files_) {
    for (auto& [name, t] : f->tensors()) {
      if (wf.index_.count(name))
        return corruption("tensor '{}' appears in both {} and {}", name, wf.index_[name]->file, t.file);
      wf.index_[name] = &t;
    }
  }
  for (auto& [name, shard] : expected) {
    if (!wf.index_.count(name))
      return corruption("{}: tensor '{}' is listed in shard {} but that file does not hold it", index_path,
                        name, shard);
  }
  return wf;
}

const TensorView* WeightFiles::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

uint64_t WeightFiles::total_bytes() const {
  uint64_t n = 0;
  for (auto& [name, t] : index_) n += t->nbytes();
  return n;
}

bool WeightFiles::quantized() const {
  for (auto& [name, t] : index_)
    if (t->quant != QuantKind::kNone || t->dtype == DType::kU32) return true;
  return false;
}

DType WeightFiles::dominant_dtype() const {
  std::map<DType, uint64_t> bytes;
  DType scales = DType::kBF16;  // MLX: what the packed words dequantize to
  for (auto& [name, t] : index_)
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".scales") == 0) scales = t->dtype;
  for (auto& [name, t] : index_) {
    DType d = t->dtype;
    if (t->quant != QuantKind::kNone) d = DType::kF16;
    else if (d == DType::kU32) d = scales;
    bytes[d] += t->nbytes();
  }
  DType best = DType::kF32;
  uint64_t most = 0;
  for (auto& [d, n] : bytes)
    if (n > most) most = n, best = d;
  return best;
}

}  // namespace keel::format
