#include "format/gguf.h"

#include <cstring>
#include <regex>

namespace keel::format {

namespace {

using nlohmann::json;

// Bounds every count read from the file before it sizes anything: a corrupt count is an error, not an
// allocation of 2^64.
constexpr uint64_t kMaxCount = uint64_t{1} << 28;
constexpr int kMaxArrayDepth = 4;

class Reader {
 public:
  Reader(const uint8_t* data, size_t size, std::string path) : p_(data), size_(size), path_(std::move(path)) {}

  template <typename T>
  Status read(T* out) {
    if (size_ - pos_ < sizeof(T))
      return corruption("{}: truncated at byte {} (reading {} bytes)", path_, pos_, sizeof(T));
    std::memcpy(out, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status();
  }
  Status read_string(std::string* out) {
    uint64_t n = 0;
    KEEL_RETURN_IF_ERROR(read(&n));
    if (n > size_ - pos_) return corruption("{}: a string of {} bytes at byte {} runs past the end", path_, n, pos_);
    out->assign(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return Status();
  }
  Status read_value(uint32_t type, json* out, int depth) {
    switch (type) {
      case 0: { uint8_t v; KEEL_RETURN_IF_ERROR(read(&v)); *out = v; return Status(); }
      case 1: { int8_t v; KEEL_RETURN_IF_ERROR(read(&v)); *out = v; return Status(); }
      case 2: { uint16_t v; KEEL_RETURN_IF_ERROR(read(&v)); *out = v; return Status(); }
      case 3: { int16_t v; KEEL_RETURN_IF_ERROR(read(&v)); *out = v; return Status(); }
      case 4: { uint32_t v; KEEL_RETURN_IF_ERROR(read(&v)); *out = v; return Status(); }
      case 5: { int32_t v; KEEL_RETURN_IF_ERROR(read(&v)); *out = v; return Status(); }
      case 6: { float v; KEEL_RETURN_IF_ERROR(read(&v)); *out = v; return Status(); }
      case 7: { uint8_t v; KEEL_RETURN_IF_ERROR(read(&v)); *out = v != 0; return Status(); }
      case 8: { std::string s; KEEL_RETURN_IF_ERROR(read_string(&s)); *out = std::move(s); return Status(); }
      case 9: {
        if (depth >= kMaxArrayDepth) return corruption("{}: arrays nested deeper than {}", path_, kMaxArrayDepth);
        uint32_t elem = 0;
        uint64_t n = 0;
        KEEL_RETURN_IF_ERROR(read(&elem));
        KEEL_RETURN_IF_ERROR(read(&n));
        if (n > kMaxCount || n > size_ - pos_) return corruption("{}: an array of {} values at byte {}", path_, n, pos_);
        *out = json::array();
        for (uint64_t i = 0; i < n; i++) {
          json v;
          KEEL_RETURN_IF_ERROR(read_value(elem, &v, depth + 1));
          out->push_back(std::move(v));
        }
        return Status();
      }
      case 10: { uint64_t v; KEEL_RETURN_IF_ERROR(read(&v)); *out = v; return Status(); }
      case 11: { int64_t v; KEEL_RETURN_IF_ERROR(read(&v)); *out = v; return Status(); }
      case 12: { double v; KEEL_RETURN_IF_ERROR(read(&v)); *out = v; return Status(); }
    }
    return corruption("{}: metadata value type {} at byte {} is not a GGUF type", path_, type, pos_);
  }
  size_t pos() const { return pos_; }

 private:
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  std::string path_;
};

// ggml type ids keel reads, and their layout.
struct TypeInfo {
  const char* name;
  QuantKind quant;  // kNone: a plain dtype
  DType dtype;
};
const TypeInfo* type_info(uint32_t type) {
  static const std::map<uint32_t, TypeInfo> types = {
      {0, {"F32", QuantKind::kNone, DType::kF32}},   {1, {"F16", QuantKind::kNone, DType::kF16}},
      {30, {"BF16", QuantKind::kNone, DType::kBF16}}, {8, {"Q8_0", QuantKind::kQ8_0, DType::kU8}},
      {2, {"Q4_0", QuantKind::kQ4_0, DType::kU8}},   {12, {"Q4_K", QuantKind::kQ4_K, DType::kU8}},
      {13, {"Q5_K", QuantKind::kQ5_K, DType::kU8}},  {14, {"Q6_K", QuantKind::kQ6_K, DType::kU8}},
  };
  auto it = types.find(type);
  return it == types.end() ? nullptr : &it->second;
}

Result<uint64_t> tensor_bytes(const GgufTensor& t, const std::string& path) {
  const TypeInfo* info = type_info(t.type);
  if (info == nullptr)
    return unsupported("{}: tensor '{}' has ggml type {}, which keel does not read (supported: F32, F16, BF16, Q8_0, "
                       "Q4_0, Q4_K, Q5_K, Q6_K)", path, t.name, t.type);
  uint64_t n = 1;
  for (int64_t d : t.dims)
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n))
      return corruption("{}: tensor '{}' has dimensions that overflow", path, t.name);
  if (info->quant == QuantKind::kNone) return n * dtype_size(info->dtype);
  const BlockShape b = ggml_block(info->quant);
  if (t.dims.empty() || t.dims[0] % b.values != 0)
    return corruption("{}: tensor '{}' ({}) has {} values a row, not a multiple of the block's {}", path, t.name,
                      info->name, t.dims.empty() ? 0 : t.dims[0], b.values);
  return n / b.values * b.bytes;
}

}  // namespace

bool is_gguf_path(const std::string& path) {
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0;
}

Result<std::unique_ptr<GgufFile>> GgufFile::open(env::Env* env, const std::string& path) {
  KEEL_ASSIGN_OR_RETURN(auto mapping, env->map_file(path));
  return parse(std::move(mapping));
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse(std::unique_ptr<env::MappedFile> mapping) {
  auto f = std::unique_ptr<GgufFile>(new GgufFile());
  f->path_ = mapping->path();
  const std::string& path = f->path_;
  Reader r(mapping->data(), mapping->size(), path);
  uint32_t magic = 0, version = 0;
  KEEL_RETURN_IF_ERROR(r.read(&magic));
  if (magic != 0x46554747u) return corruption("{}: not a GGUF file (magic {:#x})", path, magic);
  KEEL_RETURN_IF_ERROR(r.read(&version));
  if (version != 2 && version != 3) return unsupported("{}: GGUF version {} (supported: 2, 3)", path, version);
  uint64_t n_tensors = 0, n_kv = 0;
  KEEL_RETURN_IF_ERROR(r.read(&n_tensors));
  KEEL_RETURN_IF_ERROR(r.read(&n_kv));
  if (n_tensors > kMaxCount || n_kv > kMaxCount)
    return corruption("{}: {} tensors and {} metadata entries is not a plausible header", path, n_tensors, n_kv);
  for (uint64_t i = 0; i < n_kv; i++) {
    std::string key;
    uint32_t type = 0;
    KEEL_RETURN_IF_ERROR(r.read_string(&key));
    KEEL_RETURN_IF_ERROR(r.read(&type));
    json v;
    KEEL_RETURN_IF_ERROR(r.read_value(type, &v, 0));
    f->metadata_[key] = std::move(v);
  }
  uint64_t alignment = 32;
  if (auto* a = f->get("general.alignment"); a && a->is_number_unsigned()) alignment = a->get<uint64_t>();
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    return corruption("{}: general.alignment {} is not a power of two", path, alignment);
  std::vector<uint64_t> offsets;
  for (uint64_t i = 0; i < n_tensors; i++) {
    GgufTensor t;
    uint32_t n_dims = 0;
    KEEL_RETURN_IF_ERROR(r.read_string(&t.name));
    KEEL_RETURN_IF_ERROR(r.read(&n_dims));
    if (n_dims == 0 || n_dims > 4) return corruption("{}: tensor '{}' has {} dimensions", path, t.name, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) {
      uint64_t v = 0;
      KEEL_RETURN_IF_ERROR(r.read(&v));
      if (v > (uint64_t{1} << 40)) return corruption("{}: tensor '{}' dimension {} is {}", path, t.name, d, v);
      t.dims.push_back(static_cast<int64_t>(v));
    }
    uint64_t offset = 0;
    KEEL_RETURN_IF_ERROR(r.read(&t.type));
    KEEL_RETURN_IF_ERROR(r.read(&offset));
    offsets.push_back(offset);
    f->tensors_.push_back(std::move(t));
  }
  const uint64_t data_start = (r.pos() + alignment - 1) / alignment * alignment;
  const uint64_t size = mapping->size();
  for (size_t i = 0; i < f->tensors_.size(); i++) {
    GgufTensor& t = f->tensors_[i];
    KEEL_ASSIGN_OR_RETURN(uint64_t bytes, tensor_bytes(t, path));
    if (data_start > size || offsets[i] > size - data_start || bytes > size - data_start - offsets[i])
      return corruption("{}: tensor '{}' ({} bytes at offset {}) runs past the end of the file (truncated?)", path,
                        t.name, bytes, offsets[i]);
    t.data = mapping->data() + data_start + offsets[i];
  }
  if (auto* a = f->get("general.architecture"); a && a->is_string()) f->architecture_ = a->get<std::string>();
  f->mapping_ = std::move(mapping);
  return f;
}

const nlohmann::json* GgufFile::get(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &*it;
}

const GgufTensor* GgufFile::find(const std::string& name) const {
  for (const GgufTensor& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

std::string hf_tensor_name(const std::string& name, const std::string& arch) {
  if (name == "token_embd.weight") return "model.embed_tokens.weight";
  if (name == "output_norm.weight") return "model.norm.weight";
  if (name == "output.weight") return "lm_head.weight";
  static const std::regex block(R"(blk\.(\d+)\.(\w+)\.(weight|bias))");
  std::smatch m;
  if (!std::regex_match(name, m, block)) return "";
  const bool gemma = arch == "gemma3";
  static const std::map<std::string, std::string> common = {
      {"attn_norm", "input_layernorm"},
      {"post_attention_norm", "post_attention_layernorm"},
      {"post_ffw_norm", "post_feedforward_layernorm"},
      {"attn_q", "self_attn.q_proj"},
      {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"},
      {"attn_q_norm", "self_attn.q_norm"},
      {"attn_k_norm", "self_attn.k_norm"},
      {"ffn_gate", "mlp.gate_proj"},
      {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
      {"ffn_gate_inp", "mlp.gate"},
      {"ffn_gate_exps", "mlp.switch_mlp.gate_proj"},
      {"ffn_up_exps", "mlp.switch_mlp.up_proj"},
      {"ffn_down_exps", "mlp.switch_mlp.down_proj"},
  };
  std::string part = m[2].str();
  std::string hf;
  // llama.cpp's ffn_norm is the norm before the MLP: post_attention_layernorm in HF's llama and qwen, gemma's
  // pre_feedforward_layernorm (its post_attention_layernorm is GGUF's post_attention_norm).
  if (part == "ffn_norm") hf = gemma ? "pre_feedforward_layernorm" : "post_attention_layernorm";
  else if (auto it = common.find(part); it != common.end()) hf = it->second;
  else return "";
  return "model.layers." + m[1].str() + "." + hf + "." + m[3].str();
}

Result<std::unique_ptr<GgufWeights>> GgufWeights::open(env::Env* env, const std::string& path) {
  auto w = std::unique_ptr<GgufWeights>(new GgufWeights());
  KEEL_ASSIGN_OR_RETURN(w->file_, GgufFile::open(env, path));
  const GgufFile& f = *w->file_;
  const std::string& arch = f.architecture();
  auto meta_int = [&](const std::string& key) -> int64_t {
    const json* v = f.get(arch + "." + key);
    return v && v->is_number_integer() ? v->get<int64_t>() : 0;
  };
  const int64_t n_head = meta_int("attention.head_count");
  const int64_t n_head_kv = meta_int("attention.head_count_kv") > 0 ? meta_int("attention.head_count_kv") : n_head;
  for (const GgufTensor& t : f.tensors()) {
    const std::string name = hf_tensor_name(t.name, arch);
    if (name.empty()) continue;
    const TypeInfo* info = type_info(t.type);
    TensorView v;
    v.name = name;
    v.file = path;
    v.dtype = info->dtype;
    v.quant = info->quant;
    v.shape.assign(t.dims.rbegin(), t.dims.rend());
    v.data = t.data;
    // convert_hf_to_gguf.py permutes llama's q and k rows (weights and biases) for ggml's rope, which pairs
    // dimensions (2i, 2i+1) where HF pairs (i, i + head_dim/2): GGUF row head*D + 2j + h is HF row
    // head*D + h*D/2 + j. Rows are whole (a quantized row is its own blocks), so the inverse is a row copy.
    const bool q = t.name.find(".attn_q.") != std::string::npos, k = t.name.find(".attn_k.") != std::string::npos;
    if (arch == "llama" && (q || k)) {
      const int64_t heads = q ? n_head : n_head_kv;
      const int64_t rows = v.shape[0];
      if (heads <= 0 || rows % (2 * heads) != 0)
        return corruption("{}: tensor '{}' has {} rows, not a whole number of {} heads", path, t.name, rows, heads);
      const size_t row_bytes = v.nbytes() / rows;
      const int64_t D = rows / heads;
      auto buf = std::make_unique<uint8_t[]>(v.nbytes());
      for (int64_t head = 0; head < heads; head++)
        for (int64_t h = 0; h < 2; h++)
          for (int64_t j = 0; j < D / 2; j++)
            std::memcpy(buf.get() + (head * D + h * D / 2 + j) * row_bytes, t.data + (head * D + 2 * j + h) * row_bytes,
                        row_bytes);
      v.data = buf.get();
      w->owned_.push_back(std::move(buf));
    }
    w->views_.emplace(name, std::move(v));
  }
  return w;
}

}  // namespace keel::format
