// Model loading and the forward pass's batching contract, on the golden checkpoints.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "backend/ops.h"
#include "engine/model_runner.h"
#include "kv/block_pool.h"
#include "model/model.h"

namespace keel::model {

namespace {

namespace fs = std::filesystem;
const std::string kGoldenDir = std::string(KEEL_SOURCE_DIR) + "/tests/golden/models/";

// A scratch copy of a golden model directory that a test may damage.
class ModelDir {
 public:
  explicit ModelDir(const std::string& name) {
    char tmpl[] = "/tmp/keel_model_XXXXXX";
    path_ = mkdtemp(tmpl);
    fs::copy(kGoldenDir + name, path_, fs::copy_options::recursive);
  }
  ~ModelDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

  nlohmann::json config() const {
    std::ifstream f(path_ + "/config.json");
    return nlohmann::json::parse(f);
  }
  void write_config(const nlohmann::json& j) const { std::ofstream(path_ + "/config.json") << j.dump(2); }
  // Rewrites the safetensors header with `edit` applied (same data section).
  template <typename F>
  void edit_header(F edit) const {
    std::string file = path_ + "/model.safetensors";
    std::ifstream in(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
    auto header = nlohmann::json::parse(bytes.substr(8, n));
    edit(header);
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    for (int i = 0; i < 8; i++) out[i] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
    out += h + bytes.substr(8 + n);
    std::ofstream(file, std::ios::binary | std::ios::trunc) << out;
  }

 private:
  std::string path_;
};

Status load_status(const std::string& dir) {
  auto backend = backend::make_cpu_backend();
  LoadOptions o;
  o.max_batch_tokens = 8;
  o.kv_blocks = 4;
  auto m = Model::load(env::Env::posix(), dir, backend.get(), o);
  return m.ok() ? Status() : m.status();
}

void expect_error(const Status& s, std::initializer_list<const char*> needles) {
  ASSERT_FALSE(s.ok());
  for (const char* n : needles) EXPECT_NE(s.message().find(n), std::string::npos) << s.message() << " lacks " << n;
}

}  // namespace

TEST(ModelBatch, ThreeSequencesInOneForwardEqualEachAlone) {
  for (const char* name : {"qwen3_moe", "gemma3", "llama3_v4"}) {
    SCOPED_TRACE(name);
    const std::vector<std::vector<int32_t>> seqs = {
        {5, 17, 99, 3, 250, 41, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, {42}, {7, 7, 7, 100, 200}};
    // Alone: each sequence's last-position logits, in its own model instance.
    std::vector<std::vector<float>> alone;
    for (auto& s : seqs) {
      auto backend = backend::make_cpu_backend();
      LoadOptions o;
      o.max_batch_tokens = 32;
      o.kv_blocks = 4;
      auto m = Model::load(env::Env::posix(), kGoldenDir + name, backend.get(), o);
      ASSERT_TRUE(m.ok()) << m.status().message();
      auto l = engine::all_logits(**m, s);
      ASSERT_TRUE(l.ok());
      alone.push_back(*l);
    }
    // Together: one flattened batch over a shared pool with a block size of 4 (blocks interleave).
    auto backend = backend::make_cpu_backend();
    LoadOptions o;
    o.max_batch_tokens = 32;
    o.kv_blocks = 12;
    o.block_size = 4;
    auto m = Model::load(env::Env::posix(), kGoldenDir + name, backend.get(), o);
    ASSERT_TRUE(m.ok());
    kv::BlockPool pool(12, 4);
    std::vector<kv::BlockTable> tables(3, kv::BlockTable(4));
    Batch b;
    for (size_t i = 0; i < seqs.size(); i++) {
      ASSERT_TRUE(tables[i].append(pool, static_cast<int>(seqs[i].size())).ok());
      backend::SeqSlice slice;
      slice.q_start = static_cast<int32_t>(b.tokens.size());
      slice.q_len = slice.kv_len = static_cast<int32_t>(seqs[i].size());
      slice.block_table = tables[i].blocks();
      for (size_t p = 0; p < seqs[i].size(); p++) {
        b.tokens.push_back(seqs[i][p]);
        b.meta.positions.push_back(static_cast<int32_t>(p));
        b.meta.slot_mapping.push_back(tables[i].slot(static_cast<int>(p)));
        b.logit_rows.push_back(static_cast<int32_t>(b.tokens.size() - 1));
      }
      b.meta.seqs.push_back(slice);
    }
    std::vector<float> together;
    ASSERT_TRUE((*m)->forward(b, &together).ok());
    const size_t vocab = (*m)->config().vocab_size;
    // forward_greedy on the same batch (rewriting the same KV) gives each row's first maximum.
    std::vector<int32_t> greedy;
    ASSERT_TRUE((*m)->forward_greedy(b, &greedy).ok());
    ASSERT_EQ(greedy.size(), b.logit_rows.size());
    for (size_t r = 0; r < greedy.size(); r++) {
      const float* l = together.data() + r * vocab;
      EXPECT_EQ(greedy[r], std::max_element(l, l + vocab) - l) << "row " << r;
    }
    size_t row = 0;
    for (size_t i = 0; i < seqs.size(); i++) {
      for (size_t p = 0; p < seqs[i].size(); p++, row++) {
        for (size_t v = 0; v < vocab; v++)
          ASSERT_NEAR(together[row * vocab + v], alone[i][p * vocab + v], 1e-5) << "seq " << i << " pos " << p;
      }
    }
  }
}

TEST(ModelBatch, DecodeStepsAfterChunkedPrefillEqualOneFullForward) {
  auto backend = backend::make_cpu_backend();
  LoadOptions o;
  o.max_batch_tokens = 7;  // forces prefill in chunks of 7 over 3-token blocks
  o.kv_blocks = 16;
  o.block_size = 3;
  auto m = Model::load(env::Env::posix(), kGoldenDir + "gemma3", backend.get(), o);
  ASSERT_TRUE(m.ok());
  std::vector<int32_t> toks;
  for (int i = 0; i < 30; i++) toks.push_back((i * 37 + 11) % 256);
  auto chunked = engine::all_logits(**m, toks);
  ASSERT_TRUE(chunked.ok());
  auto backend2 = backend::make_cpu_backend();
  o.max_batch_tokens = 64;
  auto m2 = Model::load(env::Env::posix(), kGoldenDir + "gemma3", backend2.get(), o);
  ASSERT_TRUE(m2.ok());
  auto whole = engine::all_logits(**m2, toks);
  ASSERT_TRUE(whole.ok());
  ASSERT_EQ(chunked->size(), whole->size());
  for (size_t i = 0; i < whole->size(); i++) ASSERT_NEAR((*chunked)[i], (*whole)[i], 1e-5) << i;
}

TEST(ModelLoad, MissingDirectoryNamesIt) {
  expect_error(load_status("/nonexistent/model"), {"/nonexistent/model"});
}

TEST(ModelLoad, MissingConfigNamesTheFile) {
  ModelDir d("qwen2_v4");
  fs::remove(d.path() + "/config.json");
  expect_error(load_status(d.path()), {"config.json"});
}

TEST(ModelLoad, MissingWeightsNameTheDirectory) {
  ModelDir d("qwen2_v4");
  fs::remove(d.path() + "/model.safetensors");
  expect_error(load_status(d.path()), {"no model.safetensors"});
}

TEST(ModelLoad, TruncatedSafetensorsIsCorruption) {
  ModelDir d("qwen2_v4");
  fs::resize_file(d.path() + "/model.safetensors", fs::file_size(d.path() + "/model.safetensors") - 100);
  Status s = load_status(d.path());
  expect_error(s, {"model.safetensors", "truncated"});
  EXPECT_EQ(s.code(), Code::kCorruption);
}

TEST(ModelLoad, TinyFileIsCorruption) {
  ModelDir d("qwen2_v4");
  fs::resize_file(d.path() + "/model.safetensors", 5);
  expect_error(load_status(d.path()), {"too short"});
}

TEST(ModelLoad, MissingShardNamesIt) {
  ModelDir d("llama_sharded_f16");
  fs::remove(d.path() + "/model-00002-of-00004.safetensors");
  expect_error(load_status(d.path()), {"model-00002-of-00004.safetensors"});
}

TEST(ModelLoad, UnknownArchitectureIsNamed) {
  ModelDir d("qwen2_v4");
  auto j = d.config();
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  d.write_config(j);
  Status s = load_status(d.path());
  expect_error(s, {"GPT2LMHeadModel", "not supported"});
  EXPECT_EQ(s.code(), Code::kUnsupported);
}

TEST(ModelLoad, InconsistentHeadCountsAreNamed) {
  ModelDir d("qwen3");
  auto j = d.config();
  j["num_key_value_heads"] = 3;
  d.write_config(j);
  expect_error(load_status(d.path()), {"num_key_value_heads=3 does not divide num_attention_heads=4"});
}

TEST(ModelLoad, WrongFieldTypeNamesFieldAndValue) {
  ModelDir d("qwen3");
  auto j = d.config();
  j["hidden_size"] = "64";
  d.write_config(j);
  expect_error(load_status(d.path()), {"hidden_size must be an integer", "\"64\""});
}

TEST(ModelLoad, MissingTensorIsNamed) {
  ModelDir d("qwen2_v4");
  d.edit_header([](nlohmann::json& h) { h.erase("model.layers.1.self_attn.k_proj.bias"); });
  expect_error(load_status(d.path()), {"model.layers.1.self_attn.k_proj.bias", "missing"});
}

TEST(ModelLoad, WrongShapeNamesTensorExpectedAndGot) {
  ModelDir d("qwen2_v4");
  // Claim the config has more heads than the tensors were made for.
  auto j = d.config();
  j["num_attention_heads"] = 8;
  j["head_dim"] = 16;
  d.write_config(j);
  expect_error(load_status(d.path()), {"model.layers.0.self_attn.q_proj.weight", "has shape [64, 64]",
                                       "expected [128, 64]"});
}

TEST(ModelLoad, UnsupportedDtypeNamesTensor) {
  ModelDir d("qwen2_v4");
  d.edit_header([](nlohmann::json& h) {
    auto& t = h["model.norm.weight"];
    t["dtype"] = "I32";
  });
  expect_error(load_status(d.path()), {"model.norm.weight", "I32"});
}

TEST(ModelLoad, UnknownRopeTypeIsNamed) {
  ModelDir d("llama3_v4");
  auto j = d.config();
  j["rope_scaling"]["rope_type"] = "longrope";
  d.write_config(j);
  expect_error(load_status(d.path()), {"rope_scaling", "longrope"});
}

TEST(ModelForward, TokenOutsideVocabularyIsRefused) {
  auto backend = backend::make_cpu_backend();
  LoadOptions o;
  o.max_batch_tokens = 8;
  o.kv_blocks = 4;
  auto m = Model::load(env::Env::posix(), kGoldenDir + "qwen3", backend.get(), o);
  ASSERT_TRUE(m.ok());
  auto l = engine::all_logits(**m, {1, 2, 256});
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("token id 256 is outside the vocabulary [0, 256)"), std::string::npos);
}

TEST(ModelForward, LogitRowsAreCappedByMaxLogitRows) {
  auto backend = backend::make_cpu_backend();
  LoadOptions o;
  o.max_batch_tokens = 8;
  o.kv_blocks = 4;
  o.max_logit_rows = 2;
  auto m = Model::load(env::Env::posix(), kGoldenDir + "qwen3", backend.get(), o);
  ASSERT_TRUE(m.ok()) << m.status().message();
  // all_logits asks for every row of its chunk: 3 rows exceed the 2 the buffers hold, 2 are fine and match a
  // model without the cap.
  auto three = engine::all_logits(**m, {1, 2, 3});
  ASSERT_FALSE(three.ok());
  EXPECT_NE(three.status().message().find("3 logit rows exceed max_logit_rows=2"), std::string::npos)
      << three.status().message();
  auto capped = Model::load(env::Env::posix(), kGoldenDir + "qwen3", backend.get(), o);
  ASSERT_TRUE(capped.ok());
  auto two = engine::all_logits(**capped, {1, 2});
  ASSERT_TRUE(two.ok()) << two.status().message();
  auto other = backend::make_cpu_backend();
  o.max_logit_rows = 0;
  auto whole = Model::load(env::Env::posix(), kGoldenDir + "qwen3", other.get(), o);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(*two, *engine::all_logits(**whole, {1, 2}));

  o.max_logit_rows = -1;
  auto bad = Model::load(env::Env::posix(), kGoldenDir + "qwen3", other.get(), o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("max_logit_rows=-1 must be >= 0"), std::string::npos) << bad.status().message();
}

}  // namespace keel::model
