#!/usr/bin/env python3
"""Quantized golden models: MLX affine and GGUF files of tiny models, with transformers' reference outputs.

Run where torch + transformers 5.x are installed (the GPU device machine; CPU is enough, under a minute):
    python3 tests/golden/gen_quant.py --out tests/golden/models

For each case DIR/<model>_<format>/ gets the quantized model (MLX: config.json with a `quantization` entry and
model.safetensors; GGUF: model.gguf), golden.json {tokens, greedy, format, ...} and logits.npy (float32
[n_tokens, vocab]) in the shape tests/golden/gen.py writes. The reference is transformers fp32 (eager) on the
weights the quantized file dequantizes to, computed here with numpy from the packed bytes by dequantizers written
from the format definitions (mlx backend/cpu/quantized.cpp; ggml-common.h and ggml-quants.c dequantize_row_*),
in float32 with ggml's order of operations, so keel's CPU oracle must reproduce them to float rounding.

Sources: the golden models of gen.py (tests/golden/models/<name>, read with a numpy safetensors reader) for MLX,
Q8_0 and Q4_0; K-quants need rows of 256 values, so two extra tiny models with hidden size 256 are built here the
way gen.py builds its models (its randomize()) and only their quantized forms are kept.

Self-checks (the script stops on any failure): every packed tensor's byte size against the format's block size;
numpy's dequantization of the packed bytes reproduces the weights handed to transformers; the quantization error
of every tensor is within the format's expected bound (a broken packer would show as noise); transformers loads
exactly the dequantized weights (state dict compared after loading); the MLX bit stream read back code by code.
"""
import argparse
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# ---------------------------------------------------------------------------------------------- safetensors I/O

ST_DTYPES = {"F32": np.float32, "F16": np.float16, "U32": np.uint32, "U8": np.uint8}


def bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    """Round to nearest even, as torch and keel's float_to_bf16 do (NaN never occurs here)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = u + 0x7FFF + ((u >> 16) & 1)
    return (u >> 16).astype(np.uint16)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = np.frombuffer(data[a:b], dtype=np.uint16 if info["dtype"] == "BF16" else ST_DTYPES[info["dtype"]])
        arr = bf16_to_f32(raw) if info["dtype"] == "BF16" else raw.astype(np.float32)
        out[name] = arr.reshape(info["shape"])
    return out


def read_model_dir(d):
    if os.path.exists(os.path.join(d, "model.safetensors")):
        return read_safetensors(os.path.join(d, "model.safetensors"))
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    out = {}
    for s in shards:
        out.update(read_safetensors(os.path.join(d, s)))
    return out


def write_safetensors(path, tensors):
    """tensors: name -> (dtype string, numpy array of matching storage)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        dtype, arr = tensors[name]
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------------------------------------- MLX affine

def mlx_quantize(w, bits, group):
    """mlx.core.quantize (mode affine), backend/cpu/quantized.cpp: returns (packed uint32, scales bf16, biases bf16)."""
    shape = w.shape
    g = w.reshape(-1, group).astype(np.float32)
    n_bins = np.float32((1 << bits) - 1)
    w_max, w_min = g.max(axis=1), g.min(axis=1)
    mask = np.abs(w_min) > np.abs(w_max)
    scale = np.maximum((w_max - w_min) / n_bins, np.float32(1e-7)).astype(np.float32)
    scale = np.where(mask, scale, -scale).astype(np.float32)
    edge = np.where(mask, w_min, w_max).astype(np.float32)
    q0 = np.rint(edge / scale)
    nz = q0 != 0
    scale = np.where(nz, edge / np.where(nz, q0, 1), scale).astype(np.float32)
    bias = np.where(nz, edge, 0).astype(np.float32)
    codes = np.clip(np.rint((g - bias[:, None]) / scale[:, None]), 0, n_bins).astype(np.uint64)
    codes = codes.reshape(-1, shape[-1])  # rows
    rows, cols = codes.shape
    # Little-endian bit stream per row: code i at bits [i*bits, (i+1)*bits).
    bitmat = ((codes[:, :, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    stream = np.packbits(bitmat.reshape(rows, cols * bits), axis=1, bitorder="little")
    packed = stream.view(np.uint32).reshape(*shape[:-1], cols * bits // 32)
    gshape = (*shape[:-1], shape[-1] // group)
    return packed, f32_to_bf16(scale).reshape(gshape), f32_to_bf16(bias).reshape(gshape), codes


def mlx_dequantize(packed, scales, biases, bits, group):
    """keel's reading, from the bytes: codes from the bit stream, scale * q + bias in float32."""
    shape = (*packed.shape[:-1], packed.shape[-1] * 32 // bits)
    stream = np.ascontiguousarray(packed.reshape(-1, packed.shape[-1])).view(np.uint8)
    rows, cols = stream.shape[0], shape[-1]
    bitmat = np.unpackbits(stream, axis=1, bitorder="little").reshape(rows, cols, bits).astype(np.uint32)
    codes = (bitmat << np.arange(bits, dtype=np.uint32)).sum(axis=2).astype(np.uint32)
    s = bf16_to_f32(scales.reshape(rows, -1))
    b = bf16_to_f32(biases.reshape(rows, -1))
    s = np.repeat(s, group, axis=1)
    b = np.repeat(b, group, axis=1)
    return (s * codes.astype(np.float32) + b).astype(np.float32).reshape(shape), codes


def stack_experts(weights):
    """HF per-expert tensors -> mlx-lm's switch_mlp stacks [E, rows, cols]."""
    out, groups = {}, {}
    for name, w in weights.items():
        parts = name.split(".")
        if "experts" in parts and parts[-1] == "weight" and parts[parts.index("experts") + 1].isdigit():
            i = parts.index("experts")
            key = ".".join(parts[:i]) + ".switch_mlp." + parts[i + 2] + ".weight"
            groups.setdefault(key, {})[int(parts[i + 1])] = w
        else:
            out[name] = w
    for key, experts in groups.items():
        out[key] = np.stack([experts[e] for e in sorted(experts)])
    return out


def unstack_experts(weights):
    out = {}
    for name, w in weights.items():
        if ".switch_mlp." in name:
            prefix, rest = name.split(".switch_mlp.")
            for e in range(w.shape[0]):
                out[f"{prefix}.experts.{e}.{rest}"] = w[e]
        else:
            out[name] = w
    return out


def make_mlx(weights, config, bits, group):
    """(files for the MLX dir, config, dequantized HF weights). Like mlx-lm: every matrix whose last dimension
    is a multiple of the group is quantized (embedding included), norms and biases are not."""
    stacked = stack_experts(weights)
    tensors, deq = {}, {}
    for name, w in stacked.items():
        if w.ndim >= 2 and name.endswith(".weight") and w.shape[-1] % group == 0:
            packed, s, b, codes = mlx_quantize(w, bits, group)
            back, codes_back = mlx_dequantize(packed, s, b, bits, group)
            assert np.array_equal(codes_back, codes.astype(np.uint32)), f"{name}: MLX bit stream does not read back"
            assert packed.nbytes == w.size * bits // 8, name
            # mlx makes the larger-magnitude edge exact and may clip the other by a step; scales round to bf16.
            # A broken packer errs by many steps.
            step = float(np.max(np.abs(bf16_to_f32(s))))
            err = float(np.max(np.abs(back - w)))
            assert err <= 1.6 * step + 1e-2 * float(np.max(np.abs(w))), f"{name}: MLX error {err} vs step {step}"
            module = name[: -len(".weight")]
            tensors[name] = ("U32", packed)
            tensors[module + ".scales"] = ("BF16", s)
            tensors[module + ".biases"] = ("BF16", b)
            deq[name] = back
        else:
            tensors[name] = ("F32", w.astype(np.float32))
            deq[name] = w.astype(np.float32)
    cfg = dict(config)
    q = {"group_size": group, "bits": bits}
    cfg["quantization"] = q
    cfg["quantization_config"] = q
    return tensors, cfg, unstack_experts(deq)


# ---------------------------------------------------------------------------------------------- GGUF blocks

F16 = np.float16
GGML = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 8, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14}
BLOCK = {"Q8_0": (32, 34), "Q4_0": (32, 18), "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210)}


def f16(x):
    return np.asarray(x, dtype=np.float32).astype(F16)


def q8_0(x):
    b = x.reshape(-1, 32)
    d = (np.abs(b).max(axis=1) / 127).astype(np.float32)
    dh = f16(d)
    inv = np.where(d > 0, 1 / np.where(d > 0, d, 1), 0).astype(np.float32)
    q = np.clip(np.rint(b * inv[:, None]), -128, 127).astype(np.int8)
    out = np.zeros((b.shape[0], 34), dtype=np.uint8)
    out[:, 0:2] = dh.view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out


def deq_q8_0(blocks):
    d = blocks[:, 0:2].copy().view(F16).astype(np.float32)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)


def q4_0(x):
    b = x.reshape(-1, 32)
    idx = np.argmax(np.abs(b), axis=1)
    mx = b[np.arange(b.shape[0]), idx]
    d = (mx / -8).astype(np.float32)
    dh = f16(d)
    dq = dh.astype(np.float32)
    inv = np.where(dq != 0, 1 / np.where(dq != 0, dq, 1), 0).astype(np.float32)
    q = np.clip(np.rint(b * inv[:, None]) + 8, 0, 15).astype(np.uint8)
    out = np.zeros((b.shape[0], 18), dtype=np.uint8)
    out[:, 0:2] = dh.view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return out


def deq_q4_0(blocks):
    d = blocks[:, 0:2].copy().view(F16).astype(np.float32)
    qs = blocks[:, 2:]
    lo = (qs & 0xF).astype(np.int32) - 8
    hi = (qs >> 4).astype(np.int32) - 8
    q = np.concatenate([lo, hi], axis=1).astype(np.float32)
    return (q * d).reshape(-1)


def pack_scales_k4(sc, m):
    """8 six-bit scales and mins into ggml's 12 bytes (the inverse of get_scale_min_k4)."""
    n = sc.shape[0]
    q = np.zeros((n, 12), dtype=np.uint8)
    for j in range(4):
        q[:, j] = sc[:, j] | ((sc[:, j + 4] >> 4) << 6)
        q[:, j + 4] = m[:, j] | ((m[:, j + 4] >> 4) << 6)
        q[:, j + 8] = (sc[:, j + 4] & 0xF) | ((m[:, j + 4] & 0xF) << 4)
    return q


def unpack_scales_k4(q):
    sc = np.zeros((q.shape[0], 8), dtype=np.uint8)
    m = np.zeros_like(sc)
    for j in range(8):
        if j < 4:
            sc[:, j] = q[:, j] & 63
            m[:, j] = q[:, j + 4] & 63
        else:
            sc[:, j] = (q[:, j + 4] & 0xF) | ((q[:, j - 4] >> 6) << 4)
            m[:, j] = (q[:, j + 4] >> 4) | ((q[:, j] >> 6) << 4)
    return sc, m


def kquant_affine(x, levels):
    """Q4_K/Q5_K encoding (any valid one: the dequantized values define the reference): per 32-value sub-block
    y = d*sc*q - dmin*m with 6-bit sc, m and q in [0, levels]."""
    b = x.reshape(-1, 8, 32).astype(np.float32)
    lo = np.minimum(b.min(axis=2), 0)
    hi = b.max(axis=2)
    s = (hi - lo) / levels
    mins = -lo
    d = (s.max(axis=1) / 63).astype(np.float32)
    dmin = (mins.max(axis=1) / 63).astype(np.float32)
    dh, dminh = f16(d), f16(dmin)
    dq, dminq = dh.astype(np.float32), dminh.astype(np.float32)
    sc = np.clip(np.rint(s / np.where(dq > 0, dq, 1)[:, None]), 0, 63).astype(np.uint8)
    mq = np.clip(np.rint(mins / np.where(dminq > 0, dminq, 1)[:, None]), 0, 63).astype(np.uint8)
    d1 = (dq[:, None] * sc.astype(np.float32)).astype(np.float32)
    m1 = (dminq[:, None] * mq.astype(np.float32)).astype(np.float32)
    q = np.clip(np.rint((b + m1[:, :, None]) / np.where(d1 > 0, d1, 1)[:, :, None]), 0, levels).astype(np.uint8)
    q = np.where(d1[:, :, None] > 0, q, 0).astype(np.uint8)
    return dh, dminh, sc, mq, q


def q4_k(x):
    dh, dminh, sc, mq, q = kquant_affine(x, 15)
    n = q.shape[0]
    out = np.zeros((n, 144), dtype=np.uint8)
    out[:, 0:2] = dh.view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = dminh.view(np.uint8).reshape(-1, 2)
    out[:, 4:16] = pack_scales_k4(sc, mq)
    for i in range(4):
        out[:, 16 + 32 * i:16 + 32 * (i + 1)] = q[:, 2 * i] | (q[:, 2 * i + 1] << 4)
    return out


def deq_k_affine(d, dmin, sc, m, q):
    d1 = (d[:, None] * sc.astype(np.float32)).astype(np.float32)
    m1 = (dmin[:, None] * m.astype(np.float32)).astype(np.float32)
    return (d1[:, :, None] * q.astype(np.float32) - m1[:, :, None]).astype(np.float32).reshape(-1)


def deq_q4_k(blocks):
    d = blocks[:, 0:2].copy().view(F16).astype(np.float32).reshape(-1)
    dmin = blocks[:, 2:4].copy().view(F16).astype(np.float32).reshape(-1)
    sc, m = unpack_scales_k4(blocks[:, 4:16])
    qs = blocks[:, 16:]
    q = np.zeros((blocks.shape[0], 8, 32), dtype=np.uint8)
    for i in range(4):
        q[:, 2 * i] = qs[:, 32 * i:32 * (i + 1)] & 0xF
        q[:, 2 * i + 1] = qs[:, 32 * i:32 * (i + 1)] >> 4
    return deq_k_affine(d, dmin, sc, m, q)


def q5_k(x):
    dh, dminh, sc, mq, q = kquant_affine(x, 31)
    n = q.shape[0]
    out = np.zeros((n, 176), dtype=np.uint8)
    out[:, 0:2] = dh.view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = dminh.view(np.uint8).reshape(-1, 2)
    out[:, 4:16] = pack_scales_k4(sc, mq)
    qh = np.zeros((n, 32), dtype=np.uint8)
    for j in range(8):
        qh |= ((q[:, j] >> 4) & 1) << j
    out[:, 16:48] = qh
    for i in range(4):
        out[:, 48 + 32 * i:48 + 32 * (i + 1)] = (q[:, 2 * i] & 0xF) | ((q[:, 2 * i + 1] & 0xF) << 4)
    return out


def deq_q5_k(blocks):
    d = blocks[:, 0:2].copy().view(F16).astype(np.float32).reshape(-1)
    dmin = blocks[:, 2:4].copy().view(F16).astype(np.float32).reshape(-1)
    sc, m = unpack_scales_k4(blocks[:, 4:16])
    qh = blocks[:, 16:48]
    ql = blocks[:, 48:]
    q = np.zeros((blocks.shape[0], 8, 32), dtype=np.uint8)
    for i in range(4):
        q[:, 2 * i] = (ql[:, 32 * i:32 * (i + 1)] & 0xF) + (((qh >> (2 * i)) & 1) << 4)
        q[:, 2 * i + 1] = (ql[:, 32 * i:32 * (i + 1)] >> 4) + (((qh >> (2 * i + 1)) & 1) << 4)
    return deq_k_affine(d, dmin, sc, m, q)


def q6_k(x):
    b = x.reshape(-1, 16, 16).astype(np.float32)
    s = np.abs(b).max(axis=2) / 32
    d = (s.max(axis=1) / 127).astype(np.float32)
    dh = f16(d)
    dq = dh.astype(np.float32)
    sc = np.clip(np.rint(s / np.where(dq > 0, dq, 1)[:, None]), -128, 127).astype(np.int8)
    eff = (dq[:, None] * sc.astype(np.float32)).astype(np.float32)
    q = np.clip(np.rint(b / np.where(eff != 0, eff, 1)[:, :, None]), -32, 31)
    q = np.where(eff[:, :, None] != 0, q, 0).astype(np.int32) + 32  # 0..63
    q = q.reshape(-1, 2, 128).astype(np.uint8)
    n = q.shape[0]
    out = np.zeros((n, 210), dtype=np.uint8)
    for h in range(2):
        v = q[:, h]
        ql = np.zeros((n, 64), dtype=np.uint8)
        ql[:, :32] = (v[:, 0:32] & 0xF) | ((v[:, 64:96] & 0xF) << 4)
        ql[:, 32:] = (v[:, 32:64] & 0xF) | ((v[:, 96:128] & 0xF) << 4)
        qh = (v[:, 0:32] >> 4) | ((v[:, 32:64] >> 4) << 2) | ((v[:, 64:96] >> 4) << 4) | ((v[:, 96:128] >> 4) << 6)
        out[:, 64 * h:64 * (h + 1)] = ql
        out[:, 128 + 32 * h:128 + 32 * (h + 1)] = qh
    out[:, 192:208] = sc.view(np.uint8)
    out[:, 208:210] = dh.view(np.uint8).reshape(-1, 2)
    return out


def deq_q6_k(blocks):
    n = blocks.shape[0]
    d = blocks[:, 208:210].copy().view(F16).astype(np.float32).reshape(-1)
    sc = blocks[:, 192:208].copy().view(np.int8).astype(np.float32)
    y = np.zeros((n, 256), dtype=np.float32)
    for h in range(2):
        ql = blocks[:, 64 * h:64 * (h + 1)]
        qh = blocks[:, 128 + 32 * h:128 + 32 * (h + 1)]
        q1 = (ql[:, :32] & 0xF) | (((qh >> 0) & 3) << 4)
        q2 = (ql[:, 32:] & 0xF) | (((qh >> 2) & 3) << 4)
        q3 = (ql[:, :32] >> 4) | (((qh >> 4) & 3) << 4)
        q4 = (ql[:, 32:] >> 4) | (((qh >> 6) & 3) << 4)
        for k, qk in enumerate((q1, q2, q3, q4)):
            for half16 in range(2):
                l = slice(16 * half16, 16 * (half16 + 1))
                s = sc[:, 8 * h + half16 + 2 * k]
                dsc = (d * s).astype(np.float32)
                y[:, 128 * h + 32 * k + 16 * half16:128 * h + 32 * k + 16 * (half16 + 1)] = \
                    dsc[:, None] * (qk[:, l].astype(np.float32) - 32)
    return y.reshape(-1)


QUANT = {"Q8_0": (q8_0, deq_q8_0), "Q4_0": (q4_0, deq_q4_0), "Q4_K": (q4_k, deq_q4_k),
         "Q5_K": (q5_k, deq_q5_k), "Q6_K": (q6_k, deq_q6_k)}
# Largest |error| over the largest |weight| of a tensor a sane encoding stays within (4-bit: 1/15 of the range).
BOUND = {"Q8_0": 0.01, "Q4_0": 0.14, "Q4_K": 0.15, "Q5_K": 0.08, "Q6_K": 0.05}


def quantize_tensor(name, w, kind):
    """(ggml type name, raw bytes, dequantized float32 of w's shape)."""
    block_values, block_bytes = BLOCK[kind]
    blocks = QUANT[kind][0](w.astype(np.float32).reshape(-1))
    assert blocks.shape == (w.size // block_values, block_bytes), f"{name}: {kind} block size"
    back = QUANT[kind][1](blocks).reshape(w.shape).astype(np.float32)
    err = float(np.max(np.abs(back - w))) / max(float(np.max(np.abs(w))), 1e-12)
    assert err <= BOUND[kind], f"{name}: {kind} relative error {err:.3g} > {BOUND[kind]}: packer or dequantizer broken"
    return kind, blocks.tobytes(), back


# ---------------------------------------------------------------------------------------------- GGUF writer

GGUF_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen3_moe": "qwen3moe",
             "gemma3_text": "gemma3"}


def gguf_name(hf, gemma):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")
    assert parts[0] == "model" and parts[1] == "layers", hf
    i, mid, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
    table = {"input_layernorm": "attn_norm",
             "post_attention_layernorm": "post_attention_norm" if gemma else "ffn_norm",
             "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
             "mlp.gate": "ffn_gate_inp", "mlp.switch_mlp.gate_proj": "ffn_gate_exps",
             "mlp.switch_mlp.up_proj": "ffn_up_exps", "mlp.switch_mlp.down_proj": "ffn_down_exps"}
    return f"blk.{i}.{table[mid]}.{kind}"


def llama_permute(w, n_head):
    """convert_hf_to_gguf.py LlamaModel.permute."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class Gguf:
    def __init__(self):
        self.kv = []
        self.tensors = []

    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value))

    def tensor(self, name, ggml_type, shape, data):
        self.tensors.append((name, ggml_type, shape, data))

    @staticmethod
    def _str(s):
        b = s.encode()
        return struct.pack("<Q", len(b)) + b

    def _value(self, vtype, v):
        fmt = {"u32": (4, "<I"), "i32": (5, "<i"), "f32": (6, "<f"), "bool": (7, "<B")}
        if vtype in fmt:
            t, f = fmt[vtype]
            return struct.pack("<I", t) + struct.pack(f, v)
        if vtype == "str":
            return struct.pack("<I", 8) + self._str(v)
        raise ValueError(vtype)

    def write(self, path):
        out = bytearray(b"GGUF")
        out += struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))
        for k, t, v in self.kv:
            out += self._str(k) + self._value(t, v)
        off = 0
        for name, ggml_type, shape, data in self.tensors:
            out += self._str(name) + struct.pack("<I", len(shape))
            for dim in reversed(shape):  # innermost first
                out += struct.pack("<Q", dim)
            out += struct.pack("<IQ", GGML[ggml_type], off)
            off += (len(data) + 31) // 32 * 32
        out += b"\0" * ((32 - len(out) % 32) % 32)
        for _, _, _, data in self.tensors:
            out += data + b"\0" * ((32 - len(data) % 32) % 32)
        with open(path, "wb") as f:
            f.write(out)


def make_gguf(weights, config, pick, path):
    """Writes `weights` (HF names) as GGUF; pick(gguf_name, shape) -> ggml type. Returns the dequantized HF weights."""
    mt = config["model_type"]
    arch = GGUF_ARCH[mt]
    gemma = arch == "gemma3"
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    g = Gguf()
    g.add("general.architecture", "str", arch)
    g.add("general.alignment", "u32", 32)
    p = lambda k: f"{arch}.{k}"  # noqa: E731
    g.add(p("context_length"), "u32", config["max_position_embeddings"])
    g.add(p("embedding_length"), "u32", config["hidden_size"])
    g.add(p("feed_forward_length"), "u32", config["intermediate_size"])
    g.add(p("block_count"), "u32", config["num_hidden_layers"])
    g.add(p("attention.head_count"), "u32", heads)
    g.add(p("attention.head_count_kv"), "u32", kv_heads)
    g.add(p("attention.layer_norm_rms_epsilon"), "f32", config["rms_norm_eps"])
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    g.add(p("attention.key_length"), "u32", head_dim)
    g.add(p("attention.value_length"), "u32", head_dim)
    # transformers 5's rope_parameters (flat or per layer type), or the 4.x fields (gen.py's *_v4 configs).
    rp = config.get("rope_parameters")
    if rp:
        full, local = rp.get("full_attention", rp), rp.get("sliding_attention", {})
    else:
        full = dict(rope_theta=config.get("rope_theta", 10000.0), **(config.get("rope_scaling") or {}))
        local = dict(rope_theta=config.get("rope_local_base_freq", 10000.0))
    assert full.get("rope_type", full.get("type", "default")) == "default", \
        "GGUF goldens use default rope (llama.cpp's rope_freqs tensor is not read by keel)"
    g.add(p("rope.freq_base"), "f32", full["rope_theta"])
    experts = config.get("num_experts") or config.get("num_local_experts")
    if experts:
        g.add(p("expert_count"), "u32", experts)
        g.add(p("expert_used_count"), "u32", config["num_experts_per_tok"])
        g.add(p("expert_feed_forward_length"), "u32", config["moe_intermediate_size"])
        g.add(p("expert_weights_norm"), "bool", bool(config.get("norm_topk_prob", False)))
    if gemma:
        types = config.get("layer_types")
        pattern = types.index("full_attention") + 1 if types else config.get("sliding_window_pattern", 6)
        assert not types or all((t == "full_attention") == ((i + 1) % pattern == 0) for i, t in enumerate(types))
        assert config.get("query_pre_attn_scalar", head_dim) == head_dim, "llama.cpp scales gemma3 by 1/sqrt(head_dim)"
        assert config.get("final_logit_softcapping") is None, "gemma3 GGUFs carry no soft-cap"
        assert local.get("rope_theta", 10000.0) == 10000.0 and local.get("rope_type", "default") == "default"
        g.add(p("attention.sliding_window"), "u32", config["sliding_window"])
        g.add(p("attention.sliding_window_pattern"), "u32", pattern)
    deq = {}
    for name, w in sorted(stack_experts(weights).items()):
        gname = gguf_name(name, gemma)
        stored = w.astype(np.float32)
        if arch == "llama" and (".q_proj." in name or ".k_proj." in name):
            stored = llama_permute(stored, heads if ".q_proj." in name else kv_heads)
        if gemma and "norm" in name:
            stored = stored + np.float32(1)
        kind = pick(gname, stored.shape) if stored.ndim >= 2 else "F32"
        if kind == "F32":
            data, back = stored.astype(np.float32).tobytes(), stored
        else:
            kind, data, back = quantize_tensor(gname, stored, kind)
        g.tensor(gname, kind, list(stored.shape), data)
        if arch == "llama" and (".q_proj." in name or ".k_proj." in name):
            back = llama_unpermute(back, heads if ".q_proj." in name else kv_heads)
        if gemma and "norm" in name:
            back = w.astype(np.float32)  # keel reads 1 + w in f32 and adds nothing; transformers adds 1 to w
        deq[name] = back
    g.write(path)
    return unstack_experts(deq)


def pick_all(kind):
    block = BLOCK[kind][0]
    return lambda name, shape: kind if shape[-1] % block == 0 else ("Q8_0" if shape[-1] % 32 == 0 else "F32")


def pick_q4_k_m(name, shape):
    """llama.cpp's Q4_K_M recipe, simplified: Q6_K for the head, attn_v and layer 0's ffn_down; Q4_K elsewhere."""
    if shape[-1] % 256 != 0:
        return "Q8_0" if shape[-1] % 32 == 0 else "F32"
    if name == "output.weight" or ".attn_v." in name or name.startswith("blk.0.ffn_down"):
        return "Q6_K"
    return "Q4_K"


# ---------------------------------------------------------------------------------------------- references

def write_hf(d, weights, config):
    os.makedirs(d, exist_ok=True)
    cfg = {k: v for k, v in config.items() if k not in ("quantization", "quantization_config")}
    cfg["dtype"] = "float32"
    cfg.pop("torch_dtype", None)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    write_safetensors(os.path.join(d, "model.safetensors"),
                      {n: ("F32", w.astype(np.float32)) for n, w in weights.items()})


def check_loaded(path, weights):
    """transformers must hold exactly the weights handed to it: loaded, then saved again in the hub layout (so a
    model that fuses its experts in memory, as transformers 5's MoE models do, is compared tensor by tensor)."""
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    with tempfile.TemporaryDirectory() as saved:
        model.save_pretrained(saved, safe_serialization=True)
        state = read_model_dir(saved)
    for name, w in weights.items():
        assert name in state, f"transformers has no {name} (it saved {sorted(state)[:8]}...)"
        assert np.array_equal(state[name], w.astype(np.float32)), f"transformers changed {name}"


def golden(out_dir, src_name, weights, config, tokens, extra):
    import gen  # tests/golden/gen.py: the reference forward
    with tempfile.TemporaryDirectory() as tmp:
        write_hf(tmp, weights, config)
        check_loaded(tmp, weights)
        logits, greedy = gen.reference(tmp, tokens, True)
    np.save(os.path.join(out_dir, "logits.npy"), logits.astype(np.float32))
    g = dict(tokens=tokens, greedy=greedy, source=src_name, **extra)
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(g, f)
    return float(logits.std())


# ---------------------------------------------------------------------------------------------- cases

MLX_CASES = [  # (golden model, bits, group, output name)
    ("qwen3", 4, 64, "qwen3_mlx4"), ("qwen3", 8, 32, "qwen3_mlx8"), ("qwen3", 3, 64, "qwen3_mlx3"),
    ("qwen3_moe", 4, 32, "qwen3_moe_mlx4"), ("gemma3", 4, 64, "gemma3_mlx4"), ("llama3_v4", 4, 64, "llama3_v4_mlx4"),
    ("qwen2_tied", 8, 32, "qwen2_tied_mlx8"),
]
GGUF_CASES = [  # (model, recipe, output name)
    ("llama_sharded_f16", "Q8_0", "llama_q8_0"), ("qwen2_tied", "Q4_0", "qwen2_tied_q4_0"),
    ("qwen3", "Q8_0", "qwen3_q8_0"), ("qwen3_moe", "Q4_0", "qwen3_moe_q4_0"), ("gemma3_v4", "Q8_0", "gemma3_q8_0"),
    ("k_llama", "Q4_K", "k_llama_q4_k"), ("k_llama", "Q5_K", "k_llama_q5_k"), ("k_llama", "Q6_K", "k_llama_q6_k"),
    ("k_llama", "Q4_K_M", "k_llama_q4_k_m"), ("k_qwen3_moe", "Q4_K_M", "k_qwen3_moe_q4_k_m"),
]
# K-quants need rows of 256 values: the golden models' hidden size is 64, so these two are built here.
K_MODELS = {
    "k_llama": ("LlamaConfig", dict(hidden_size=256, intermediate_size=512, num_attention_heads=4,
                                    num_key_value_heads=2, head_dim=64)),
    "k_qwen3_moe": ("Qwen3MoeConfig", dict(hidden_size=256, intermediate_size=512, num_attention_heads=4,
                                           num_key_value_heads=2, head_dim=64, num_experts=4, num_experts_per_tok=2,
                                           moe_intermediate_size=256, norm_topk_prob=True, mlp_only_layers=[0],
                                           decoder_sparse_step=1)),
}


def k_model(name):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    import gen
    cls, kw = K_MODELS[name]
    torch.manual_seed(gen.SEED)
    cfg = getattr(transformers, cls)(**gen.base(rope_parameters=dict(rope_type="default", rope_theta=10000.0), **kw))
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    gen.randomize(model, gemma=False)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        with open(os.path.join(tmp, "config.json")) as f:
            config = json.load(f)
        weights = read_model_dir(tmp)
    tokens = np.random.default_rng(gen.SEED + len(name)).integers(3, gen.VOCAB, size=32).tolist()
    return weights, config, tokens


def numpy_k_model(name):
    """The K-quant models' shapes with numpy weights: for --no-reference (no torch), which checks the writers
    against keel, not against transformers."""
    _, kw = K_MODELS[name]
    moe = "num_experts" in kw
    config = dict(vocab_size=256, num_hidden_layers=2, max_position_embeddings=256, rms_norm_eps=1e-6,
                  tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                  rope_parameters=dict(rope_type="default", rope_theta=10000.0), **kw)
    config.update(model_type="qwen3_moe" if moe else "llama",
                  architectures=["Qwen3MoeForCausalLM" if moe else "LlamaForCausalLM"])
    rng = np.random.default_rng(1234 + len(name))
    H, I, D = kw["hidden_size"], kw["intermediate_size"], kw["head_dim"]
    Q, KV = kw["num_attention_heads"] * D, kw["num_key_value_heads"] * D
    mat = lambda r, c: (rng.standard_normal((r, c)) * 1.5 / c ** 0.5).astype(np.float32)  # noqa: E731
    vec = lambda n: (1 + 0.3 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731
    w = {"model.embed_tokens.weight": mat(256, H), "model.norm.weight": vec(H), "lm_head.weight": mat(256, H)}
    for i in range(2):
        p = f"model.layers.{i}."
        w.update({p + "input_layernorm.weight": vec(H), p + "post_attention_layernorm.weight": vec(H),
                  p + "self_attn.q_proj.weight": mat(Q, H), p + "self_attn.k_proj.weight": mat(KV, H),
                  p + "self_attn.v_proj.weight": mat(KV, H), p + "self_attn.o_proj.weight": mat(H, Q)})
        if moe:
            w[p + "self_attn.q_norm.weight"] = vec(D)
            w[p + "self_attn.k_norm.weight"] = vec(D)
        if moe and i not in kw["mlp_only_layers"]:
            E, M = kw["num_experts"], kw["moe_intermediate_size"]
            w[p + "mlp.gate.weight"] = mat(E, H)
            for e in range(E):
                w.update({p + f"mlp.experts.{e}.gate_proj.weight": mat(M, H),
                          p + f"mlp.experts.{e}.up_proj.weight": mat(M, H),
                          p + f"mlp.experts.{e}.down_proj.weight": mat(H, M)})
        else:
            w.update({p + "mlp.gate_proj.weight": mat(I, H), p + "mlp.up_proj.weight": mat(I, H),
                      p + "mlp.down_proj.weight": mat(H, I)})
    return w, config, rng.integers(3, 256, size=32).tolist()


def source(models_dir, name, torch_free=False):
    if name in K_MODELS:
        return numpy_k_model(name) if torch_free else k_model(name)
    d = os.path.join(models_dir, name)
    with open(os.path.join(d, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(d, "golden.json")) as f:
        tokens = json.load(f)["tokens"]
    return read_model_dir(d), config, tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="where the <model>_<format> directories go (tests/golden/models)")
    ap.add_argument("--models", default=os.path.join(HERE, "models"), help="the golden models of gen.py")
    ap.add_argument("--only", default="", help="comma-separated output names")
    ap.add_argument("--no-reference", action="store_true",
                    help="no torch: write each case's dequantized weights as an F32 model beside it "
                         "(<name>.dequantized) instead of transformers' outputs, to check the writers against keel")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    summary = {}
    for src, bits, group, out in MLX_CASES:
        if only and out not in only:
            continue
        weights, config, tokens = source(args.models, src, args.no_reference)
        d = os.path.join(args.out, out)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        tensors, cfg, deq = make_mlx(weights, config, bits, group)
        write_safetensors(os.path.join(d, "model.safetensors"), tensors)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        if args.no_reference:
            write_hf(d + ".dequantized", deq, config)
            with open(os.path.join(d, "tokens.json"), "w") as f:
                json.dump(tokens, f)
            print(f"{out}: MLX {bits}-bit g{group} of {src} (no reference)")
            continue
        spread = golden(d, src, deq, config, tokens, dict(format=f"mlx-affine {bits}-bit g{group}"))
        summary[out] = spread
        print(f"{out}: MLX {bits}-bit g{group} of {src}, logit std {spread:.3f}")
    for src, recipe, out in GGUF_CASES:
        if only and out not in only:
            continue
        weights, config, tokens = source(args.models, src, args.no_reference)
        d = os.path.join(args.out, out)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        pick = pick_q4_k_m if recipe == "Q4_K_M" else pick_all(recipe)
        deq = make_gguf(weights, config, pick, os.path.join(d, "model.gguf"))
        if args.no_reference:
            write_hf(d + ".dequantized", deq, config)
            with open(os.path.join(d, "tokens.json"), "w") as f:
                json.dump(tokens, f)
            print(f"{out}: GGUF {recipe} of {src} (no reference)")
            continue
        spread = golden(d, src, deq, config, tokens, dict(format=f"gguf {recipe}"))
        summary[out] = spread
        print(f"{out}: GGUF {recipe} of {src}, logit std {spread:.3f}")
    with open(os.path.join(args.out, "summary_quant.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
