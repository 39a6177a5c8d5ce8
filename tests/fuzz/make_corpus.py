#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/seed-* from the repo's own test data: the demo model,
the golden configs and chat-template cases (tests/golden), and the real chat templates of .npm-tokenizers
(`make tokenizers`). Deterministic; rerun after changing it and commit the result. Files not named seed-* (crash
reproducers, named crash-*) are left alone. Standard library only."""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def read(rel, mode="r"):
    with open(os.path.join(ROOT, rel), mode) as f:
        return f.read()


def write_corpus(target, seeds):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if name.startswith("seed-"):
            os.remove(os.path.join(d, name))
    for name, data in seeds.items():
        if isinstance(data, (dict, list)):
            data = json.dumps(data, ensure_ascii=False)
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)


def golden_template_cases():
    cases = []
    for name in ["qwen3", "llama31", "mistral", "gemma3", "features"]:
        for c in json.load(open(os.path.join(ROOT, "tests/golden/templates", name + ".json")))["cases"]:
            cases.append((name + "-" + c["name"], c))
    return cases


def real_templates():
    out = {}
    demo = json.loads(read("models/demo/tokenizer_config.json"))
    out["demo"] = demo["chat_template"]
    for name in ["llama31", "mistral", "features"]:
        out[name] = json.load(open(os.path.join(ROOT, "tests/golden/templates", name + ".json")))["chat_template"]
    for name in ["qwen3", "llama3", "gemma3"]:
        path = os.path.join(ROOT, ".npm-tokenizers", name, "package/models/tokenizer_config.json")
        if os.path.exists(path):
            out[name] = json.load(open(path))["chat_template"]
        else:
            print(f"make_corpus: {path} missing (make tokenizers); its template is not a seed", file=sys.stderr)
    return out


def openai_seeds():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    return {
        "chat-minimal": {"model": "demo", "messages": [{"role": "user", "content": "Tell me a fortune."}]},
        "chat-full": {"model": "demo", "messages": msgs, "max_tokens": 8, "temperature": 0.7, "top_p": 0.9,
                      "top_k": 40, "min_p": 0.05, "seed": 7, "stop": ["\n", "END"], "frequency_penalty": 0.5,
                      "presence_penalty": -0.5, "repetition_penalty": 1.1, "logprobs": True, "top_logprobs": 3,
                      "stream": True, "stream_options": {"include_usage": True}, "n": 1,
                      "max_completion_tokens": 16, "stop_token_ids": [1, 2], "logit_bias": {"5": -100}},
        "chat-parts": {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                                 {"type": "text", "text": "b"}]}]},
        "chat-tools": {"messages": [{"role": "user", "content": "2+2?"},
                                    {"role": "assistant", "content": None, "tool_calls": [
                                        {"id": "c1", "type": "function",
                                         "function": {"name": "add", "arguments": "{\"a\":2,\"b\":2}"}}]},
                                    {"role": "tool", "tool_call_id": "c1", "content": "4"}],
                       "tools": [{"type": "function", "function": {"name": "add", "parameters": {
                           "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}],
                       "chat_template_kwargs": {"enable_thinking": False}, "add_generation_prompt": True},
        "chat-bad-types": {"messages": "hi", "max_tokens": "8", "temperature": 9, "stop": [1]},
        "completion-text": {"model": "demo", "prompt": "Once upon a time", "max_tokens": 16, "echo": True,
                            "logprobs": 2, "stop": "\n"},
        "completion-ids": {"prompt": [1, 2, 300, 4095], "max_tokens": 4},
        "completion-bad-ids": {"prompt": [[1, 2]], "max_tokens": -1},
        "completion-list": {"prompt": ["a", "b"], "max_tokens": 2147483648},
    }


def anthropic_seeds():
    return {
        "minimal": {"model": "demo", "max_tokens": 16, "messages": [{"role": "user", "content": "Hello"}]},
        "full": {"model": "demo", "max_tokens": 32, "system": "Be brief.", "temperature": 0.5, "top_p": 0.9,
                 "top_k": 5, "stop_sequences": ["\n\n"], "stream": True, "metadata": {"user_id": "u"},
                 "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                              {"role": "assistant", "content": "Hello."},
                              {"role": "user", "content": "Again"}]},
        "system-blocks": {"max_tokens": 1, "system": [{"type": "text", "text": "S"}],
                          "messages": [{"role": "user", "content": "x"}]},
        "bad-types": {"max_tokens": 0, "messages": [{"role": "robot", "content": [{"type": "image"}]}]},
    }


def chat_message_seeds():
    seeds = {}
    for name, c in golden_template_cases():
        body = {"messages": c["messages"], "add_generation_prompt": c["add_generation_prompt"]}
        if c.get("tools"):
            body["tools"] = c["tools"]
        if c.get("kwargs"):
            body["chat_template_kwargs"] = c["kwargs"]
        seeds["chat-" + name] = body
    seeds["messages-minimal"] = anthropic_seeds()["full"]
    return seeds


def jinja_seeds():
    seeds = {"real-" + k: v for k, v in real_templates().items()}
    seeds.update({
        "loops": "{% for m in messages %}{{ loop.index }}:{{ m.role|upper }}{% if not loop.last %},{% endif %}"
                 "{% else %}none{% endfor %}",
        "macro": "{% macro f(x, y=2) %}{{ x * y }}{% endmacro %}{{ f(3) }}{{ f(3, y=4) }}",
        "namespace": "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                     "{% endfor %}{{ ns.n }}",
        "filters": "{{ messages|length }}{{ 'a,b'.split(',')|join('-') }}{{ tools|tojson }}"
                   "{{ ' x '|trim }}{{ [3,1,2]|sort|list }}{{ 'abc'[1:] }}{{ 7 // 2 }}{{ 2 ** 8 }}",
        "strings": "{{ 'x' ~ 1 ~ none }}{{ \"q\\\"\" }}{{ 'abc'.startswith('a') }}{{ '%d' % 3 if false else 'y' }}",
        "set-block": "{% set x %}body{% endset %}{{ x }}{% raw %}{{ raw }}{% endraw %}{#- comment -#}",
        "whitespace": "  {%- if true -%}  a  {%+ endif %}\n{{- 'b' -}}\n",
        "raise": "{{ raise_exception('no') }}",
    })
    return seeds


def tokenizer_seeds():
    texts = {
        "english": "The quick brown fox jumps over the lazy dog. It's 12:30, isn't it?",
        "chatml": "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
        "unicode": "naïve café — 日本語のテキスト 🙂 e\u0301 \u00a0\t\r\n  x",
        "code": "def f(x):\n    return x**2  # comment\n\n\n",
        "specials": "<|endoftext|><bos><start_of_turn>user<end_of_turn><|begin_of_text|>",
    }
    seeds = {}
    for i, (name, t) in enumerate(texts.items()):
        for tok in range(3):  # demo, qwen3, gemma3 (fuzz/tokenizer.cpp)
            flags = tok | (0x10 if i % 2 else 0) | (0x20 if tok == 1 else 0)
            seeds[f"{name}-{tok}"] = bytes([flags]) + t.encode()
    seeds["invalid-utf8"] = bytes([0x00]) + b"\xff\xfe\xc3\x28\xe2\x82\xf0\x9f\x98" + b"ok"
    ids = [1, 72, 101, 2, 0, 4095, 4096, -1, 2**31 - 1, 151643, 262143, 300, 301, 302]
    seeds["ids"] = bytes([0x20]) + struct.pack("<%di" % len(ids), *ids)
    byte_tokens = list(range(200, 260))  # demo ids around the byte tokens: partial UTF-8 sequences
    seeds["byte-ids"] = bytes([0x00]) + struct.pack("<%di" % len(byte_tokens), *byte_tokens)
    return seeds


def safetensors(header, data=b""):
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    demo = read("models/demo/model.safetensors", "rb")
    (n,) = struct.unpack("<Q", demo[:8])
    tensors = {"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
               "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]},
               "c": {"dtype": "F16", "shape": [], "data_offsets": [22, 24]},
               "d": {"dtype": "I32", "shape": [0, 5], "data_offsets": [24, 24]},
               "__metadata__": {"format": "pt"}}
    return {
        "small": safetensors(tensors, bytes(range(24))),
        "demo-header-truncated": demo[:8 + n + 64],  # the demo model's real header, data cut short
        "empty-header": safetensors({}),
        "bad-offsets": safetensors({"x": {"dtype": "F32", "shape": [4], "data_offsets": [8, 4]}}, bytes(16)),
        "huge-shape": safetensors({"x": {"dtype": "BF16", "shape": [2**40, 2**30], "data_offsets": [0, 0]}}),
    }


def config_seeds():
    seeds = {"demo": read("models/demo/config.json")}
    base = os.path.join(ROOT, "tests/golden/models")
    for name in sorted(os.listdir(base)):
        path = os.path.join(base, name, "config.json")
        if os.path.exists(path):
            seeds[name] = open(path).read()
    return seeds


def ssd_segment_seeds():
    # Odd first byte: the rest describes records (fuzz/ssd_segment.cpp), encoded with real checksums.
    def record(fill, tokens, payload_words, damage=0):
        return (bytes([fill]) * 48 + struct.pack("<H", tokens) + bytes([6, 4, 32, 16, 2, payload_words])
                + bytes((fill + i) % 256 for i in range(payload_words * 4)) + bytes([damage]))
    raw = b"KVBK\x01\x00\x68\x00" + bytes(96) + bytes(40) + b"KVBK" + bytes(10)
    return {
        "records": b"\x01" + record(1, 16, 8) + record(2, 16, 8) + record(3, 7, 0),
        "records-flipped": b"\x01" + record(4, 16, 8, 0xF3) + bytes([0x10, 0x02, 0x00]) + record(5, 16, 2),
        "records-cut": b"\x01" + record(6, 16, 8) + record(7, 16, 8, 0xE9) + bytes([0x40, 0, 0]),
        "raw": b"\x00" + raw,
        "raw-magic-tail": b"\x00" + bytes(30) + b"KVB",
    }


def ssd_checkpoint_seeds():
    # Odd first byte: the harness writes the true checksum over the last 8 bytes.
    def ckpt(segments, version=1):
        out = b"KVBKCKPT" + struct.pack("<II", version, 0) + bytes(range(16)) + struct.pack("<Q", len(segments))
        for seg_id, size, entries in segments:
            out += struct.pack("<QQQ", seg_id, size, len(entries))
            for i, (off, length) in enumerate(entries):
                out += bytes([i]) * 16 + struct.pack("<QQ", off, length)
        return out + bytes(8)
    return {
        "empty": b"\x01" + ckpt([]),
        "two-segments": b"\x01" + ckpt([(1, 4096, [(0, 1000), (1104, 2000)]), (2, 0, [])]),
        "bad-version": b"\x01" + ckpt([(1, 1, [])], version=2),
        "count-too-big": b"\x01" + ckpt([(1, 1, [])])[:-8 - 8] + struct.pack("<Q", 2**63) + bytes(8),
        "unchecked": b"\x00" + ckpt([(3, 3, [(0, 0)])]),
    }


def main():
    write_corpus("openai_request", openai_seeds())
    write_corpus("anthropic_request", anthropic_seeds())
    write_corpus("chat_messages", chat_message_seeds())
    write_corpus("jinja_template", jinja_seeds())
    write_corpus("tokenizer", tokenizer_seeds())
    write_corpus("safetensors_header", safetensors_seeds())
    write_corpus("model_config", config_seeds())
    write_corpus("ssd_segment", ssd_segment_seeds())
    write_corpus("ssd_checkpoint", ssd_checkpoint_seeds())


if __name__ == "__main__":
    main()
