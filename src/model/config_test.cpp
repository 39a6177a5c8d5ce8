#include "model/config.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace keel::model {

namespace {

nlohmann::json base(const char* arch) {
  return {{"architectures", {arch}}, {"vocab_size", 32}, {"hidden_size", 64}, {"intermediate_size", 128},
          {"num_hidden_layers", 6}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}};
}

Result<ModelConfig> parse(const nlohmann::json& j) { return parse_config(j.dump(), "config.json"); }

}  // namespace

TEST(Config, DefaultsFollowTransformers) {
  auto c = parse(base("LlamaForCausalLM"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->rope.type, RopeType::kDefault);
  EXPECT_DOUBLE_EQ(c->rope.theta, 10000.0);
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_FLOAT_EQ(c->attn_scale, 0.25f);
}

TEST(Config, Qwen2HasQkvBiasButNoOutputBias) {
  auto c = parse(base("Qwen2ForCausalLM"));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->qkv_bias);
  EXPECT_FALSE(c->o_bias);
}

TEST(Config, Gemma3LegacyPatternMakesEverySixthLayerGlobal) {
  auto j = base("Gemma3ForCausalLM");
  j["sliding_window"] = 512;
  j["head_dim"] = 32;
  j["query_pre_attn_scalar"] = 64;
  auto c = parse(j);
  ASSERT_TRUE(c.ok()) << c.status().message();
  for (int i = 0; i < 6; i++) EXPECT_EQ(c->layers[i].sliding, i != 5) << i;
  EXPECT_FLOAT_EQ(c->attn_scale, 0.125f);
  EXPECT_TRUE(c->norm_add_one);
  EXPECT_FLOAT_EQ(c->embed_scale, 8.0f);
  EXPECT_DOUBLE_EQ(c->rope_local.theta, 10000.0);
  EXPECT_DOUBLE_EQ(c->rope.theta, 1000000.0);
}

TEST(Config, Gemma3EmbedScaleRoundsToBf16LikeTransformers) {
  auto j = base("Gemma3ForCausalLM");
  j["hidden_size"] = 3840;
  j["num_attention_heads"] = 16;
  j["num_key_value_heads"] = 8;
  j["sliding_window"] = 1024;
  j["torch_dtype"] = "bfloat16";
  auto c = parse(j);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_FLOAT_EQ(c->embed_scale, 62.0f);  // sqrt(3840) = 61.97 in bf16
}

TEST(Config, V5PerLayerTypeRopeParameters) {
  auto j = base("Gemma3ForCausalLM");
  j["sliding_window"] = 4;
  j["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention", "full_attention",
                      "sliding_attention", "full_attention"};
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "linear"}, {"rope_theta", 1e6}, {"factor", 8.0}}},
                          {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}};
  auto c = parse(j);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->rope.type, RopeType::kLinear);
  EXPECT_DOUBLE_EQ(c->rope.factor, 8.0);
  EXPECT_DOUBLE_EQ(c->rope_local.theta, 1e4);
  EXPECT_TRUE(c->layers[0].sliding);
  EXPECT_FALSE(c->layers[1].sliding);
}

TEST(Config, V4RopeScalingWithLegacyTypeKey) {
  auto j = base("LlamaForCausalLM");
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  auto c = parse(j);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->rope.type, RopeType::kLinear);
  EXPECT_DOUBLE_EQ(c->rope.theta, 500000.0);
}

TEST(Config, Llama3RopeNeedsItsFactors) {
  auto j = base("LlamaForCausalLM");
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  auto c = parse(j);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("low_freq_factor"), std::string::npos) << c.status().message();
}

TEST(Config, MoeLayersFollowSparseStepAndMlpOnlyLayers) {
  auto j = base("Qwen3MoeForCausalLM");
  j["num_experts"] = 8;
  j["num_experts_per_tok"] = 2;
  j["moe_intermediate_size"] = 32;
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = {3};
  auto c = parse(j);
  ASSERT_TRUE(c.ok()) << c.status().message();
  std::vector<bool> moe;
  for (auto& l : c->layers) moe.push_back(l.moe);
  EXPECT_EQ(moe, (std::vector<bool>{false, true, false, false, false, true}));
}

TEST(Config, MlpOnlyLayerOutOfRangeIsNamed) {
  auto j = base("Qwen3MoeForCausalLM");
  j["num_experts"] = 8;
  j["num_experts_per_tok"] = 2;
  j["moe_intermediate_size"] = 32;
  j["mlp_only_layers"] = {9};
  auto c = parse(j);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("mlp_only_layers entry 9"), std::string::npos);
}

TEST(Config, TopKAboveExpertCountIsRefused) {
  auto j = base("Qwen3MoeForCausalLM");
  j["num_experts"] = 4;
  j["num_experts_per_tok"] = 5;
  j["moe_intermediate_size"] = 32;
  EXPECT_FALSE(parse(j).ok());
}

TEST(Config, QwenSlidingWindowStartsAtMaxWindowLayers) {
  auto j = base("Qwen2ForCausalLM");
  j["use_sliding_window"] = true;
  j["sliding_window"] = 128;
  j["max_window_layers"] = 4;
  auto c = parse(j);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->layers[3].sliding);
  EXPECT_TRUE(c->layers[4].sliding);
}

TEST(Config, NotJsonIsCorruption) {
  auto c = parse_config("{not json", "x/config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kCorruption);
  EXPECT_NE(c.status().message().find("x/config.json"), std::string::npos);
}

// Found by fuzz/model_config: rotary_dim() cast head_dim * 1e300 to int (undefined behaviour) before the range
// check; sliding layers' own factor (rope_parameters.sliding_attention) was never checked.
TEST(Config, PartialRotaryFactorOutsideZeroToOneIsRefusedBeforeAnyCast) {
  auto j = base("LlamaForCausalLM");
  j["partial_rotary_factor"] = 1e300;
  auto c = parse(j);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("partial_rotary_factor=1e+300"), std::string::npos) << c.status().message();

  auto g = base("Gemma3ForCausalLM");
  g["sliding_window"] = 512;
  g["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}, {"rope_theta", 1e6}}},
                          {"sliding_attention", {{"rope_type", "default"}, {"partial_rotary_factor", -3.0}}}};
  c = parse(g);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("partial_rotary_factor=-3"), std::string::npos) << c.status().message();
}

TEST(Config, HeadsTimesHeadDimBeyondAnIntIsRefused) {
  auto j = base("LlamaForCausalLM");
  j["num_attention_heads"] = 65536;
  j["num_key_value_heads"] = 1;
  j["head_dim"] = 65536;
  auto c = parse(j);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("does not fit a 32-bit size"), std::string::npos) << c.status().message();
}

}  // namespace keel::model
