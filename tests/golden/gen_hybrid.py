#!/usr/bin/env python3
"""Tiny random hybrid (Gated DeltaNet + gated full attention) models and transformers' reference outputs.

Run on a machine with torch + transformers 5.x that has Qwen3-Next and Qwen3.5 (CPU is enough, < 1 minute):
    python3 tests/golden/gen_hybrid.py --out tests/golden/models
Writes DIR/<name>/ in gen.py's format: config.json, model.safetensors, golden.json {tokens, greedy, ...},
logits.npy (float32 [n_tokens, vocab]).

- qwen3_next: Qwen3NextForCausalLM, 3 of 4 layers linear attention (full_attention_interval 4), MoE with a gated
  shared expert on every layer but one dense (mlp_only_layers), the fused in_proj_qkvz/in_proj_ba layout.
- qwen3_5: Qwen3_5ForConditionalGeneration as Hub checkpoints are (text under model.language_model.*, a tiny vision
  tower in the file, text_config nested), dense MLP, tied embeddings.
- qwen3_5_moe: Qwen3_5MoeForConditionalGeneration, every layer MoE with a shared expert.

80 tokens: more than transformers' chunk of 64 (its chunked delta rule carries state across chunks) and more than
the golden test's max_batch_tokens (keel's chunked prefill carries it across forwards). linear_value_head_dim
differs from linear_key_head_dim and value heads are twice the key heads, so a transposed state or a wrong head
repeat cannot pass. The reference runs the torch fallbacks (no flash-linear-attention / causal-conv1d on CPU).
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
import transformers

from gen import SEED, VOCAB, randomize

N_TOKENS = 80
GREEDY = 24

LINEAR = dict(linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=8,
              linear_num_key_heads=2, linear_num_value_heads=4)


def text_base(**kw):
    d = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=256, rms_norm_eps=1e-6,
             hidden_act="silu", attention_bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=0,
             partial_rotary_factor=0.5, **LINEAR)
    d.update(kw)
    return d


VISION = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3, patch_size=4,
              temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=64, num_position_embeddings=16)

# Qwen3.5's text rope is mrope; with text only, its three position streams are equal and it is plain rope over the
# rotary dims (head_dim 16 x 0.5 = 8 dims, 4 frequencies split 2/1/1).
MROPE = dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5, mrope_section=[2, 1, 1],
             mrope_interleaved=True)


def build(name):
    """Returns (model class, config)."""
    if name == "qwen3_next":
        cfg = transformers.Qwen3NextConfig(**text_base(
            intermediate_size=96, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
            shared_expert_intermediate_size=48, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[1],
            full_attention_interval=4, tie_word_embeddings=False,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5)))
        return transformers.Qwen3NextForCausalLM, cfg
    if name == "qwen3_5":
        text = text_base(intermediate_size=96, rope_parameters=MROPE, tie_word_embeddings=True,
                         layer_types=["linear_attention"] * 3 + ["full_attention"])
        cfg = transformers.Qwen3_5Config(text_config=text, vision_config=VISION, tie_word_embeddings=True)
        return transformers.Qwen3_5ForConditionalGeneration, cfg
    if name == "qwen3_5_moe":
        text = text_base(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                         shared_expert_intermediate_size=48, rope_parameters=MROPE, tie_word_embeddings=False,
                         layer_types=["linear_attention"] * 3 + ["full_attention"])
        cfg = transformers.Qwen3_5MoeConfig(text_config=text, vision_config=VISION, tie_word_embeddings=False)
        return transformers.Qwen3_5MoeForConditionalGeneration, cfg
    raise ValueError(name)


NAMES = ["qwen3_next", "qwen3_5", "qwen3_5_moe"]


def reference(cls, path, tokens):
    model = cls.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    ids = torch.tensor([tokens])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float().numpy()
        gen = model.generate(input_ids=ids, max_new_tokens=GREEDY, do_sample=False, min_new_tokens=0,
                             pad_token_id=0, eos_token_id=None)
    return logits, gen[0, len(tokens):].tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print("transformers", transformers.__version__, "torch", torch.__version__)
    for name in NAMES:
        if args.only and name not in args.only.split(","):
            continue
        torch.manual_seed(SEED)
        cls, cfg = build(name)
        model = cls(cfg)
        randomize(model, gemma=False)
        model = model.to(torch.float32)
        d = os.path.join(args.out, name)
        shutil.rmtree(d, ignore_errors=True)
        model.save_pretrained(d, safe_serialization=True)
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(d, extra)):
                os.remove(os.path.join(d, extra))
        rng = np.random.default_rng(SEED + len(name))
        tokens = rng.integers(3, VOCAB, size=N_TOKENS).tolist()
        logits, greedy = reference(cls, d, tokens)
        np.save(os.path.join(d, "logits.npy"), logits.astype(np.float32))
        with open(os.path.join(d, "golden.json"), "w") as f:
            json.dump(dict(tokens=tokens, greedy=greedy, transformers=transformers.__version__, dtype="float32"), f)
        print(f"{name}: {len(tokens)} tokens, logit std {float(logits.std()):.3f}, greedy {greedy}, "
              f"files {sorted(os.listdir(d))}")


if __name__ == "__main__":
    main()
