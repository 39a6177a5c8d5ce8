// config.json of the hybrid families, as their Hub checkpoints write it.
#include <gtest/gtest.h>

#include "model/config.h"

namespace keel::model {
namespace {

TEST(HybridConfig, Qwen3NextTakesItsLayerPatternFromFullAttentionInterval) {
  auto c = parse_config(R"({"architectures": ["Qwen3NextForCausalLM"], "vocab_size": 10, "hidden_size": 8,
    "intermediate_size": 16, "num_hidden_layers": 8, "num_attention_heads": 2, "num_key_value_heads": 1,
    "head_dim": 8, "full_attention_interval": 4, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
    "linear_key_head_dim": 4, "linear_value_head_dim": 2, "num_experts": 4, "num_experts_per_tok": 2,
    "moe_intermediate_size": 4, "shared_expert_intermediate_size": 6, "rope_theta": 10000})", "c");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->arch, Arch::kQwen3Next);
  std::vector<bool> linear;
  for (auto& l : c->layers) linear.push_back(l.linear);
  EXPECT_EQ(linear, (std::vector<bool>{true, true, true, false, true, true, true, false}));
  EXPECT_EQ(c->rotary_dim(), 2);  // partial_rotary_factor defaults to 0.25
  EXPECT_TRUE(c->norm_add_one && c->qk_norm && c->attn_output_gate && c->norm_topk_prob);
  EXPECT_TRUE(c->linear.fused_qkvz);
  EXPECT_EQ(c->linear.conv_dim(), 2 * 8 + 8);
  EXPECT_EQ(c->shared_expert_intermediate_size, 6);
  EXPECT_EQ(c->weight_prefix, "model.");
  EXPECT_TRUE(c->layers[0].moe);
}

TEST(HybridConfig, Qwen3_5MoeMultimodalCheckpointReadsTextConfig) {
  auto c = parse_config(R"({"architectures": ["Qwen3_5MoeForConditionalGeneration"], "model_type": "qwen3_5_moe",
    "tie_word_embeddings": true, "vision_config": {"depth": 1},
    "text_config": {"model_type": "qwen3_5_moe_text", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 4,
      "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
      "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"],
      "linear_num_key_heads": 1, "linear_num_value_heads": 2, "linear_key_head_dim": 4,
      "linear_value_head_dim": 4, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 4,
      "shared_expert_intermediate_size": 6,
      "rope_parameters": {"rope_type": "default", "rope_theta": 10000, "partial_rotary_factor": 0.5,
                          "mrope_section": [1, 1, 0], "mrope_interleaved": true}}})", "c");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->arch, Arch::kQwen3_5Moe);
  EXPECT_EQ(c->weight_prefix, "model.language_model.");
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->rotary_dim(), 4);
  EXPECT_EQ(c->intermediate_size, 6);  // no dense MLP: the shared expert's width
  EXPECT_FALSE(c->linear.fused_qkvz);
  EXPECT_EQ(c->num_linear_layers(), 3);
  for (auto& l : c->layers) EXPECT_TRUE(l.moe);
  EXPECT_TRUE(c->norm_topk_prob);
}

TEST(HybridConfig, ValueHeadsMustBeAMultipleOfKeyHeads) {
  auto c = parse_config(R"({"architectures": ["Qwen3_5ForCausalLM"], "vocab_size": 10, "hidden_size": 8,
    "intermediate_size": 16, "num_hidden_layers": 4, "num_attention_heads": 2, "head_dim": 8,
    "linear_num_key_heads": 3, "linear_num_value_heads": 4})", "config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("linear_num_key_heads=3 does not divide linear_num_value_heads=4"),
            std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace keel::model
