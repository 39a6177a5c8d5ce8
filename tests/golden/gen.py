#!/usr/bin/env python3
"""Builds tiny random models of every family keel supports and writes transformers' reference outputs.

Run on a machine with torch + transformers 5.x (the GPU device machine; CPU is enough):
    python3 tests/golden/gen.py --out DIR
For each model DIR/<name>/ gets: config.json, model.safetensors (or shards + index),
golden.json {tokens, greedy, greedy_prompt_len, ...} and logits.npy (float32 [n_tokens, vocab]).

Reference logits are computed in float32 (eager attention) from the saved weights, so a bf16/f16
checkpoint tests that keel reads those dtypes exactly; keel's CPU backend also computes in float32.
Some configs are rewritten after saving into the transformers 4.x style (rope_theta + rope_scaling,
sliding_window_pattern) and reloaded to check that transformers itself reads them identically.
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

SEED = 1234
VOCAB = 256


def base(**kw):
    d = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
             rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
             pad_token_id=0)
    d.update(kw)
    return d


# name -> (config class name, config kwargs, options)
MODELS = {
    # llama3 rope scaling; head_dim 16 and theta 1e4 make the three frequency bands (kept, smoothed,
    # divided) all occur with original_max_position_embeddings=32, and the sequence is longer than that.
    "llama3_v4": ("LlamaConfig", base(rope_parameters=dict(
        rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
        original_max_position_embeddings=32)), dict(style="v4", n_tokens=48)),
    "llama_linear_v5": ("LlamaConfig", base(num_hidden_layers=3, attention_bias=True, mlp_bias=True,
        rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0)), dict(n_tokens=40)),
    "llama_dynamic": ("LlamaConfig", base(max_position_embeddings=24, rope_parameters=dict(
        rope_type="dynamic", rope_theta=10000.0, factor=2.0)), dict(n_tokens=40, greedy=False)),
    "llama_sharded_f16": ("LlamaConfig", base(rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
        dict(dtype=torch.float16, shard="60KB", n_tokens=32)),
    # Explicit head_dim (32) unlike hidden/heads (16); bf16 checkpoint.
    "mistral_bf16": ("MistralConfig", base(head_dim=32, sliding_window=None,
        rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
        dict(dtype=torch.bfloat16, style="v4", n_tokens=36)),
    # Biases on q/k/v, tied embeddings.
    "qwen2_tied": ("Qwen2Config", base(tie_word_embeddings=True, num_key_value_heads=1,
        rope_parameters=dict(rope_type="default", rope_theta=1000000.0)), dict(n_tokens=40)),
    "qwen2_v4": ("Qwen2Config", base(rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
        dict(style="v4", n_tokens=33)),
    # q/k norm, explicit head_dim.
    "qwen3": ("Qwen3Config", base(head_dim=32, num_hidden_layers=3,
        rope_parameters=dict(rope_type="default", rope_theta=1000000.0)), dict(n_tokens=40)),
    "qwen3_yarn_v4": ("Qwen3Config", base(head_dim=16, rope_parameters=dict(
        rope_type="yarn", rope_theta=10000.0, factor=4.0, original_max_position_embeddings=32)),
        dict(style="v4", n_tokens=48)),
    "qwen3_moe": ("Qwen3MoeConfig", base(head_dim=16, num_hidden_layers=3, num_experts=8,
        num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True, decoder_sparse_step=1,
        mlp_only_layers=[0], rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
        dict(n_tokens=40)),
    "qwen3_moe_sparse2_v4": ("Qwen3MoeConfig", base(head_dim=16, num_hidden_layers=4, num_experts=6,
        num_experts_per_tok=3, moe_intermediate_size=24, norm_topk_prob=False, decoder_sparse_step=2,
        mlp_only_layers=[], tie_word_embeddings=True,
        rope_parameters=dict(rope_type="default", rope_theta=10000.0)), dict(style="v4", n_tokens=36)),
    # Sliding window 8 over a 40-token sequence, local/global rope bases, linear scaling on global layers,
    # query_pre_attn_scalar != head_dim, both soft-caps.
    "gemma3": ("Gemma3TextConfig", base(head_dim=16, num_hidden_layers=4, query_pre_attn_scalar=24,
        sliding_window=8, layer_types=["sliding_attention", "full_attention"] * 2,
        final_logit_softcapping=30.0, attn_logit_softcapping=50.0, tie_word_embeddings=True,
        hidden_activation="gelu_pytorch_tanh",
        rope_parameters={"full_attention": dict(rope_type="linear", rope_theta=1000000.0, factor=8.0),
                         "sliding_attention": dict(rope_type="default", rope_theta=10000.0)}),
        dict(n_tokens=40)),
    "gemma3_v4": ("Gemma3TextConfig", base(head_dim=16, num_hidden_layers=6, query_pre_attn_scalar=16,
        sliding_window=6, layer_types=["sliding_attention"] * 2 + ["full_attention"] + ["sliding_attention"] * 2
        + ["full_attention"], tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh",
        rope_parameters={"full_attention": dict(rope_type="default", rope_theta=1000000.0),
                         "sliding_attention": dict(rope_type="default", rope_theta=10000.0)}),
        dict(style="v4", n_tokens=30, dtype=torch.bfloat16)),
}


def randomize(model, gemma):
    """Weights large enough that logits have real spread; norms away from their identity value."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if gemma and "embed_tokens" in name:
                # gemma multiplies embeddings by sqrt(hidden); keep the residual stream near unit scale
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
            elif p.dim() == 1 and "norm" in name:
                if gemma:
                    p.copy_(0.3 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif "bias" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / fan_in ** 0.5))


def to_v4_style(cfg):
    """Rewrites a transformers 5.x config dict into the 4.x style."""
    rp = cfg.pop("rope_parameters", None)
    if rp is None:
        return cfg
    if "full_attention" in rp:  # per layer type (gemma3)
        full, local = rp["full_attention"], rp["sliding_attention"]
        cfg["rope_theta"] = full["rope_theta"]
        cfg["rope_local_base_freq"] = local["rope_theta"]
        scaling = {k: v for k, v in full.items() if k != "rope_theta"}
        cfg["rope_scaling"] = scaling if scaling.get("rope_type", "default") != "default" else None
        types = cfg.pop("layer_types", None)
        if types:
            # gemma3's 4.x pattern: every `pattern`-th layer is global.
            pattern = types.index("full_attention") + 1
            assert all((t == "full_attention") == ((i + 1) % pattern == 0) for i, t in enumerate(types))
            cfg["sliding_window_pattern"] = pattern
    else:
        cfg["rope_theta"] = rp["rope_theta"]
        scaling = {k: v for k, v in rp.items() if k != "rope_theta"}
        cfg["rope_scaling"] = scaling if scaling.get("rope_type", "default") != "default" else None
    cfg.pop("_sliding_window_pattern", None)
    if cfg.get("layer_types") and all(t == "full_attention" for t in cfg["layer_types"]):
        cfg.pop("layer_types")  # 4.x configs of these families have none
    if cfg.get("model_type") in ("llama", "qwen2") and \
            cfg.get("head_dim") == cfg["hidden_size"] // cfg["num_attention_heads"]:
        cfg.pop("head_dim")  # 4.x llama/qwen2 configs derive it (qwen3's default is 128, so it stays)
    if "num_local_experts" in cfg:
        cfg["num_experts"] = cfg.pop("num_local_experts")
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    cfg.pop("transformers_version", None)
    cfg["transformers_version"] = "4.51.0"
    return cfg


def reference(path, tokens, greedy):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    ids = torch.tensor([tokens])
    with torch.no_grad():
        logits = model(ids).logits[0].float().numpy()
    out = None
    if greedy:
        model.generation_config.eos_token_id = None
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=24, do_sample=False, min_new_tokens=0,
                                 pad_token_id=0, eos_token_id=None)
        out = gen[0, len(tokens):].tolist()
    return logits, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print("transformers", transformers.__version__, "torch", torch.__version__)
    summary = {}
    for name, (cls_name, kw, opt) in MODELS.items():
        if args.only and name not in args.only.split(","):
            continue
        torch.manual_seed(SEED)
        cfg = getattr(transformers, cls_name)(**kw)
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
        randomize(model, gemma=cls_name.startswith("Gemma"))
        dtype = opt.get("dtype", torch.float32)
        model = model.to(dtype)
        d = os.path.join(args.out, name)
        shutil.rmtree(d, ignore_errors=True)
        save_kw = dict(safe_serialization=True)
        if "shard" in opt:
            save_kw["max_shard_size"] = opt["shard"]
        model.save_pretrained(d, **save_kw)
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(d, extra)):
                os.remove(os.path.join(d, extra))
        rng = np.random.default_rng(SEED + len(name))
        tokens = rng.integers(3, VOCAB, size=opt.get("n_tokens", 32)).tolist()
        logits, greedy = reference(d, tokens, opt.get("greedy", True))
        if opt.get("style") == "v4":
            cpath = os.path.join(d, "config.json")
            with open(cpath) as f:
                cfg_dict = json.load(f)
            with open(cpath, "w") as f:
                json.dump(to_v4_style(cfg_dict), f, indent=2)
            logits_v4, greedy_v4 = reference(d, tokens, opt.get("greedy", True))
            err = float(np.linalg.norm(logits_v4 - logits) / np.linalg.norm(logits))
            assert err < 1e-6 and greedy_v4 == greedy, f"{name}: transformers reads its v4 config differently ({err})"
        np.save(os.path.join(d, "logits.npy"), logits.astype(np.float32))
        golden = dict(tokens=tokens, greedy=greedy, transformers=transformers.__version__,
                      dtype=str(dtype).replace("torch.", ""))
        with open(os.path.join(d, "golden.json"), "w") as f:
            json.dump(golden, f)
        spread = float(logits.std())
        summary[name] = dict(files=sorted(os.listdir(d)), logit_std=spread, greedy=greedy)
        print(f"{name}: {len(tokens)} tokens, logit std {spread:.3f}, greedy {greedy}, files {sorted(os.listdir(d))}")
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
