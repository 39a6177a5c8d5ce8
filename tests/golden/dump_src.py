#!/usr/bin/env python3
"""Prints the transformers source keel's model code follows (rope init, MoE, gemma3), to read, not copy."""
import inspect

import transformers
from transformers import modeling_rope_utils as r
from transformers.models.gemma3 import modeling_gemma3 as g
from transformers.models.qwen3_moe import modeling_qwen3_moe as q

for obj in [r._compute_yarn_parameters, r._compute_llama3_parameters, r._compute_dynamic_ntk_parameters,
            r.dynamic_rope_update, q.Qwen3MoeSparseMoeBlock, g.Gemma3TextScaledWordEmbedding,
            g.Gemma3RotaryEmbedding, g.Gemma3Attention.forward]:
    print("#" * 20, getattr(obj, "__qualname__", obj))
    print(inspect.getsource(obj))
for name in dir(q):
    if "Expert" in name or "Router" in name:
        print("#" * 20, name)
        print(inspect.getsource(getattr(q, name)))
