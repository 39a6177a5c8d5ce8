// A test-side GGUF writer (docs/gguf.md of ggml) and llama.cpp's conventions applied the way
// convert_hf_to_gguf.py applies them (tensor names, llama q/k row permutation, gemma norms as 1 + w), written
// independently of keel's reader so a round trip checks the reader against the format.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "base/dtype.h"

namespace keel::model::testing {

struct GgufTensorOut {
  uint32_t type = 0;            // 0 F32, 8 Q8_0
  std::vector<int64_t> shape;   // outermost first, as HF
  std::string bytes;
};

class GgufWriter {
 public:
  void u32(const std::string& key, uint32_t v) { kv(key, 4, &v, 4); }
  void f32(const std::string& key, float v) { kv(key, 6, &v, 4); }
  void boolean(const std::string& key, bool v) { uint8_t b = v; kv(key, 7, &b, 1); }
  void str(const std::string& key, const std::string& v) {
    std::string raw = len(v.size()) + v;
    kv(key, 8, raw.data(), raw.size());
  }
  void str_array(const std::string& key, const std::vector<std::string>& v) {
    std::string raw;
    put(raw, uint32_t{8});
    raw += len(v.size());
    for (const std::string& s : v) raw += len(s.size()) + s;
    kv(key, 9, raw.data(), raw.size());
  }
  void i32_array(const std::string& key, const std::vector<int32_t>& v) {
    std::string raw;
    put(raw, uint32_t{5});
    raw += len(v.size());
    for (int32_t x : v) put(raw, x);
    kv(key, 9, raw.data(), raw.size());
  }
  void tensor(const std::string& name, GgufTensorOut t) { tensors_[name] = std::move(t); }

  void write(const std::string& path) const {
    std::string out;
    put(out, uint32_t{0x46554747});
    put(out, uint32_t{3});
    put(out, static_cast<uint64_t>(tensors_.size()));
    put(out, static_cast<uint64_t>(n_kv_));
    out += kvs_;
    uint64_t offset = 0;
    for (auto& [name, t] : tensors_) {
      out += len(name.size()) + name;
      put(out, static_cast<uint32_t>(t.shape.size()));
      for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put(out, static_cast<uint64_t>(*it));
      put(out, t.type);
      put(out, offset);
      offset += (t.bytes.size() + 31) / 32 * 32;
    }
    out.append((32 - out.size() % 32) % 32, '\0');
    for (auto& [name, t] : tensors_) {
      out += t.bytes;
      out.append((32 - t.bytes.size() % 32) % 32, '\0');
    }
    std::ofstream(path, std::ios::binary | std::ios::trunc) << out;
  }

 private:
  template <typename T>
  static void put(std::string& s, T v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  static std::string len(uint64_t n) { return std::string(reinterpret_cast<const char*>(&n), 8); }
  void kv(const std::string& key, uint32_t type, const void* v, size_t n) {
    kvs_ += len(key.size()) + key;
    put(kvs_, type);
    kvs_.append(static_cast<const char*>(v), n);
    n_kv_++;
  }
  std::string kvs_;
  size_t n_kv_ = 0;
  std::map<std::string, GgufTensorOut> tensors_;
};

// Q8_0 as ggml's quantize_row_q8_0_ref: per 32 values d = max|x| / 127, q = round(x / d), d stored as f16.
// `dequantized` receives d16 * q.
inline std::string quantize_q8_0(const std::vector<float>& x, std::vector<float>* dequantized) {
  std::string out;
  dequantized->resize(x.size());
  for (size_t b = 0; b < x.size() / 32; b++) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    const uint16_t d16 = float_to_f16(d);
    out.append(reinterpret_cast<const char*>(&d16), 2);
    for (int j = 0; j < 32; j++) {
      const int8_t q = static_cast<int8_t>(std::round(x[b * 32 + j] * id));
      out.push_back(static_cast<char>(q));
      (*dequantized)[b * 32 + j] = f16_to_float(d16) * q;
    }
  }
  return out;
}

// HF name -> GGUF name (convert_hf_to_gguf.py's tensor map for these families); "" for none.
inline std::string gguf_name(const std::string& hf, bool gemma) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  static const std::regex layer(R"(model\.layers\.(\d+)\.(.+)\.(weight|bias))");
  std::smatch m;
  if (!std::regex_match(hf, m, layer)) return "";
  const std::map<std::string, std::string> names = {
      {"input_layernorm", "attn_norm"},
      {"post_attention_layernorm", gemma ? "post_attention_norm" : "ffn_norm"},
      {"pre_feedforward_layernorm", "ffn_norm"},
      {"post_feedforward_layernorm", "post_ffw_norm"},
      {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"}, {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"},
      {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"}, {"mlp.down_proj", "ffn_down"},
      {"mlp.gate", "ffn_gate_inp"}, {"mlp.switch_mlp.gate_proj", "ffn_gate_exps"},
      {"mlp.switch_mlp.up_proj", "ffn_up_exps"}, {"mlp.switch_mlp.down_proj", "ffn_down_exps"}};
  auto it = names.find(m[2].str());
  if (it == names.end()) return "";
  return "blk." + m[1].str() + "." + it->second + "." + m[3].str();
}

// convert_hf_to_gguf.py's LlamaModel.permute: rows (head, half, j) move to (head, j, half).
inline std::vector<float> llama_permute(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t heads) {
  std::vector<float> out(w.size());
  const int64_t D = rows / heads;
  for (int64_t h = 0; h < heads; h++)
    for (int64_t half = 0; half < 2; half++)
      for (int64_t j = 0; j < D / 2; j++)
        std::memcpy(&out[(h * D + 2 * j + half) * cols], &w[(h * D + half * D / 2 + j) * cols], cols * sizeof(float));
  return out;
}

}  // namespace keel::model::testing
