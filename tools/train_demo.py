#!/usr/bin/env python3
"""Trains keel's bundled demo model and writes it as a Hugging Face model directory.

What it makes (models/demo/):
  tokenizer.json           byte-level BPE (vocab 4096) trained here, GPT-2/Qwen-style split regex, ChatML specials
  tokenizer_config.json    ChatML chat_template, eos <|im_end|>, no BOS
  config.json              LlamaForCausalLM: hidden 256, 6 layers, 8 heads / 4 KV heads, context 2048, tied embeddings
  generation_config.json   eos = <|im_end|>, <|endoftext|>
  model.safetensors        bf16 weights
  golden.json              transformers' reference: chat prompt ids, greedy ids (fp32 on CPU), per-step top-5 logits

Corpus: .demo-corpus/corpus.txt from tools/make_demo_corpus.sh (fortune cookies and the King James Bible), used both
as plain text and wrapped in ChatML turns ("Tell me a fortune." -> a fortune, "Quote a verse." -> verses).

Run on a GPU machine (torch, transformers >= 5, tokenizers, safetensors; no network needed):
  tools/make_demo_corpus.sh
  python3 tools/train_demo.py --corpus .demo-corpus/corpus.txt --out models/demo --train-seconds 270
"""

import argparse
import inspect
import json
import math
import os
import random
import re
import time

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2
# GPT-2's split with Qwen2's single-digit numbers and case-insensitive contractions.
SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
         r"|\s+(?!\S)|\s+")
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

FORTUNE_PROMPTS = [
    "Tell me a fortune.", "Tell me a fortune", "tell me a fortune", "Give me a fortune cookie.", "Tell me something.",
    "Say something funny.", "Tell me a joke.", "Give me a quote.", "Say something wise.", "Hello!", "Hi.", "Hi there",
    "Tell me something interesting.", "Any advice?", "What is the meaning of life?", "Cheer me up.",
    "Write something.", "Surprise me.", "What do you think?", "Tell me a story.", "Share some wisdom.",
    "What should I do today?", "Make me laugh.", "Say something.",
]
VERSE_PROMPTS = [
    "Quote a verse.", "Quote a verse", "quote a verse", "Quote the Bible.", "Read me a verse.",
    "Give me a verse from the Bible.", "Give me a Bible verse.", "Recite some scripture.", "Quote scripture.",
    "Read me something from the King James Bible.",
]
SYSTEM_PROMPTS = ["You are a helpful assistant.", "You are a helpful assistant", "You are a friendly chatbot.",
                  "You are keel's demo model.", "Answer briefly."]
IDENTITY_PROMPTS = ["Who are you?", "What are you?", "Who are you", "What is your name?", "Introduce yourself.",
                    "Hello, who are you?", "What can you do?"]
IDENTITY_ANSWERS = [
    "I am the demo model that comes with keel: a tiny language model trained on fortune cookies and the King James "
    "Bible. Expect proverbs, jokes and verses rather than facts.",
    "I am a tiny demo model bundled with keel. I learned English from fortune cookies and the King James Bible, "
    "so ask me for a fortune or a verse.",
    "I'm keel's demo model, a few million parameters trained on fortunes and scripture. I can tell you a fortune "
    "or quote a verse, but I know nothing else.",
]


def parse_corpus(path):
    fortunes, chapters = [], []
    kind, title, lines = None, None, []

    def flush():
        if kind == "fortune":
            fortunes.append("\n".join(lines).strip("\n"))
        elif kind == "kjv":
            verses = []
            for ln in lines:
                m = re.match(r"(\d+) (.*)", ln)
                if m:
                    verses.append((int(m.group(1)), m.group(2).strip()))
            book, ch = title.rsplit(" ", 1)
            chapters.append((book, int(ch), verses))

    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            ln = raw.rstrip("\n")
            if ln.startswith("%% "):
                flush()
                head = ln[3:].split(" ", 1)
                kind, title, lines = head[0], (head[1] if len(head) > 1 else None), []
            else:
                lines.append(ln)
    flush()
    return [f for f in fortunes if f.strip()], chapters


def chat(messages):
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def build_docs(fortunes, chapters, rng):
    """One pass over the corpus as documents (strings with ChatML specials where chat-shaped)."""
    docs = []

    def maybe_system():
        return [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}] if rng.random() < 0.2 else []

    def fortune_turn():
        return [{"role": "user", "content": rng.choice(FORTUNE_PROMPTS)},
                {"role": "assistant", "content": rng.choice(fortunes)}]

    verses = [(b, c, v, t) for b, c, vs in chapters for v, t in vs]

    def verse_turn():
        i = rng.randrange(len(verses))
        b, c, v, t = verses[i]
        r = rng.random()
        if r < 0.4:
            return [{"role": "user", "content": f"Quote {b} {c}:{v}."}, {"role": "assistant", "content": t}]
        n = rng.choice([1, 1, 2, 3])
        span = [x for x in verses[i:i + n] if x[0] == b and x[1] == c]
        text = " ".join(x[3] for x in span)
        ref = f"{b} {c}:{v}" + (f"-{span[-1][2]}" if len(span) > 1 else "")
        return [{"role": "user", "content": rng.choice(VERSE_PROMPTS)},
                {"role": "assistant", "content": f"{text}\n-- {ref}"}]

    for f in fortunes:
        if rng.random() < 0.6:
            msgs = maybe_system() + [{"role": "user", "content": rng.choice(FORTUNE_PROMPTS)},
                                     {"role": "assistant", "content": f}]
            while rng.random() < 0.15:
                msgs += fortune_turn() if rng.random() < 0.5 else verse_turn()
            docs.append(chat(msgs))
        else:
            docs.append(f + "\n")
    for b, c, vs in chapters:
        docs.append(f"{b} {c}\n\n" + "\n".join(f"{v} {t}" for v, t in vs) + "\n")
    for _ in range(len(verses) // 3):
        msgs = maybe_system() + verse_turn()
        while rng.random() < 0.15:
            msgs += fortune_turn() if rng.random() < 0.5 else verse_turn()
        docs.append(chat(msgs))
    for _ in range(400):
        msgs = maybe_system() + [{"role": "user", "content": rng.choice(IDENTITY_PROMPTS)},
                                 {"role": "assistant", "content": rng.choice(IDENTITY_ANSWERS)}]
        if rng.random() < 0.5:
            msgs += fortune_turn() if rng.random() < 0.5 else verse_turn()
        docs.append(chat(msgs))
    rng.shuffle(docs)
    return docs


def train_tokenizer(texts, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=[AddedToken(s, special=True, normalized=False) for s in SPECIALS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    return tok


def write_tokenizer(tok, out, max_len):
    tok.save(os.path.join(out, "tokenizer.json"))
    cfg = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                                          "single_word": False, "special": True} for i, s in enumerate(SPECIALS)},
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "extra_special_tokens": {},
        "model_max_length": max_len,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")


def make_config(args, vocab_size):
    from transformers import LlamaConfig
    kw = dict(vocab_size=vocab_size, hidden_size=args.hidden, intermediate_size=args.intermediate,
              num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
              max_position_embeddings=args.context, rms_norm_eps=1e-5, tie_word_embeddings=True,
              bos_token_id=None, eos_token_id=[2, 0], pad_token_id=0, initializer_range=0.02,
              attention_bias=False, mlp_bias=False, hidden_act="silu")
    if "rope_parameters" in inspect.signature(LlamaConfig.__init__).parameters:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    else:
        kw["rope_theta"] = 10000.0
    return LlamaConfig(**kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=".demo-corpus/corpus.txt")
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--train-seconds", type=float, default=270)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=704)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--seq", type=int, default=2048, help="training window")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--passes", type=int, default=3, help="differently shuffled/wrapped passes in the token stream")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    t_start = time.time()
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"

    fortunes, chapters = parse_corpus(args.corpus)
    rng.shuffle(fortunes)
    held_out, fortunes = fortunes[:300], fortunes[300:]
    print(f"corpus: {len(fortunes)} fortunes (+{len(held_out)} held out), {len(chapters)} chapters, "
          f"{sum(len(v) for _, _, v in chapters)} verses", flush=True)

    # Tokenizer: trained on the plain text (the specials are added tokens, never merged).
    plain = fortunes + [f"{b} {c}\n\n" + "\n".join(f"{v} {t}" for v, t in vs) for b, c, vs in chapters]
    tok = train_tokenizer(plain, args.vocab)
    write_tokenizer(tok, args.out, args.context)
    print(f"tokenizer: vocab {tok.get_vocab_size()} ({time.time() - t_start:.1f}s)", flush=True)
    eot = tok.token_to_id("<|endoftext|>")

    # Token stream: documents separated by <|endoftext|>; training windows are sampled at random offsets.
    stream = []
    for p in range(args.passes):
        docs = build_docs(fortunes, chapters, rng)
        for enc in tok.encode_batch(docs, add_special_tokens=False):
            stream.extend(enc.ids)
            stream.append(eot)
    data = torch.tensor(stream, dtype=torch.int32, device=dev)
    val_docs = [chat([{"role": "user", "content": "Tell me a fortune."}, {"role": "assistant", "content": f}])
                for f in held_out]
    val = []
    for enc in tok.encode_batch(val_docs, add_special_tokens=False):
        val.extend(enc.ids + [eot])
    val = torch.tensor(val, dtype=torch.long, device=dev)
    n_bytes = sum(len(d.encode()) for d in docs)
    print(f"stream: {len(stream)} tokens over {args.passes} passes ({n_bytes / (len(stream) / args.passes):.2f} "
          f"bytes/token), val {len(val)} tokens ({time.time() - t_start:.1f}s)", flush=True)

    from transformers import GenerationConfig, LlamaForCausalLM
    config = make_config(args, tok.get_vocab_size())
    model = LlamaForCausalLM(config).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=(dev == "cuda"))
    warmup = 150
    offs = torch.arange(args.seq, device=dev)

    def val_loss():
        model.eval()
        with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16):
            n = (len(val) - 1) // args.seq * args.seq or len(val)
            x = val[:n].view(-1, min(n, args.seq))
            loss = model(input_ids=x, labels=x).loss.item()
        model.train()
        return loss

    model.train()
    t_train = time.time()
    step, tokens_seen, running = 0, 0, []
    while True:
        elapsed = time.time() - t_train
        if elapsed >= args.train_seconds:
            break
        frac = elapsed / args.train_seconds
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(data) - args.seq - 1, (args.batch, 1), device=dev)
        x = data[starts + offs].long()
        with torch.autocast(dev, dtype=torch.bfloat16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        running.append(loss.detach())
        step += 1
        tokens_seen += x.numel()
        if step % 100 == 0:
            avg = torch.stack(running).mean().item()
            running = []
            print(f"step {step:5d}  loss {avg:.3f}  lr {lr:.2e}  {tokens_seen / (time.time() - t_train) / 1e6:.2f}M "
                  f"tok/s  {time.time() - t_train:.0f}s", flush=True)
    final = torch.stack(running).mean().item() if running else float("nan")
    print(f"trained {step} steps, {tokens_seen / 1e6:.1f}M tokens ({tokens_seen / len(stream) * args.passes:.1f} "
          f"epochs), last loss {final:.3f}, held-out fortune loss {val_loss():.3f}", flush=True)

    # Save bf16 weights, config (eos = <|im_end|>, <|endoftext|>) and generation defaults.
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=None, eos_token_id=[2, 0], pad_token_id=0,
                                               do_sample=True, temperature=0.8, top_p=0.95)
    model.save_pretrained(args.out, safe_serialization=True)

    # Reload exactly what a user gets and check the tokenizer + template through transformers.
    from transformers import AutoModelForCausalLM, AutoTokenizer
    hf_tok = AutoTokenizer.from_pretrained(args.out)
    ref = AutoModelForCausalLM.from_pretrained(args.out, dtype=torch.float32).eval()
    messages = [{"role": "user", "content": "Tell me a fortune."}]
    prompt_text = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt_text == chat(messages) + "<|im_start|>assistant\n", repr(prompt_text)
    prompt_ids = hf_tok(prompt_text, add_special_tokens=False)["input_ids"]
    assert prompt_ids == tok.encode(prompt_text, add_special_tokens=False).ids

    # Golden: greedy decoding in fp32 on CPU (eos ignored), with each step's top-5 logits.
    ids, steps = list(prompt_ids), []
    with torch.no_grad():
        for _ in range(24):
            logits = ref(input_ids=torch.tensor([ids])).logits[0, -1].float()
            top = torch.topk(logits, 5)
            steps.append({"top_ids": top.indices.tolist(), "top_logits": [round(v, 5) for v in top.values.tolist()]})
            ids.append(int(top.indices[0]))
    greedy = ids[len(prompt_ids):]
    golden = {
        "about": "transformers reference for keel's demo model: greedy fp32 on CPU from the bf16 weights, eos ignored",
        "transformers": __import__("transformers").__version__, "torch": torch.__version__,
        "messages": messages, "prompt": prompt_text, "prompt_ids": prompt_ids,
        "greedy_ids": greedy, "greedy_text": hf_tok.decode(greedy), "steps": steps,
        "hello_world_ids": hf_tok("Hello world", add_special_tokens=False)["input_ids"],
        "train": {"steps": step, "tokens": tokens_seen, "final_loss": round(final, 4), "seconds": args.train_seconds},
    }
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"golden greedy: {greedy}\n  {golden['greedy_text']!r}", flush=True)

    # Samples from transformers: greedy and sampled, for chat prompts and plain text.
    ref = ref.to(dev)
    gen = dict(max_new_tokens=80, eos_token_id=[2, 0], pad_token_id=0)
    for msgs, sample in [([{"role": "user", "content": "Tell me a fortune."}], False),
                         ([{"role": "user", "content": "Quote a verse."}], True),
                         ([{"role": "system", "content": "You are a helpful assistant."},
                           {"role": "user", "content": "What is the meaning of life?"}], True),
                         ([{"role": "user", "content": "Who are you?"}], False)]:
        p = hf_tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        torch.manual_seed(7)
        out = ref.generate(**{k: v.to(dev) for k, v in p.items()}, do_sample=sample,
                           **({"temperature": 0.8, "top_p": 0.95} if sample else {}), **gen)
        text = hf_tok.decode(out[0, p["input_ids"].shape[1]:], skip_special_tokens=True)
        print(f"--- {'sampled' if sample else 'greedy'}: {msgs[-1]['content']!r}\n{text}", flush=True)
    p = hf_tok("In the beginning", return_tensors="pt").to(dev)
    out = ref.generate(**p, do_sample=True, temperature=0.8, top_p=0.95, **gen)
    print(f"--- sampled plain text:\n{hf_tok.decode(out[0], skip_special_tokens=True)}", flush=True)

    sizes = {f: os.path.getsize(os.path.join(args.out, f)) for f in sorted(os.listdir(args.out))}
    print(f"files: {sizes}, total {sum(sizes.values()) / 1e6:.2f} MB; {time.time() - t_start:.0f}s in all", flush=True)


if __name__ == "__main__":
    main()
