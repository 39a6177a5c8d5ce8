"""Deterministic texts for the tokenizer goldens and the tokenizer benchmark (stdlib only).

`golden_texts()` gives the varied, seeded texts the goldens are made of; `bench_text(n_bytes)` gives the
multi-MB mixed text `keel bench-tokenizer` and HF tokenizers are timed on (same bytes on both sides).
Run as a script to write the benchmark text: `python3 tests/golden/tokenizer_texts.py OUT [N_BYTES]`.
"""
import random
import sys
import unicodedata

SPECIALS = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>",
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    "<|reserved_special_token_5|>", "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>",
    "<unk>", "<unused7>", "<start_of_image>", "<mask>", "<|fim_prefix|>",
]

FRAGMENTS = {
    "english": ["The quick brown fox jumps over the lazy dog.", "Hello, world!", "It's a beautiful day",
                "Don't stop believing", "We're here; they've gone, I'm sure you'll see what he'd do.",
                "IT'S LOUD, WE'RE LATE, YOU'VE WON, I'M DONE, SHE'LL GO, HE'D KNOW, CAN'T STOP",
                "It'S mIxEd: wE'Re, yOu'Ve, i'M, sHe'Ll, hE'd, doN'T", "rock 'n' roll", "'s 't 're"],
    "cjk": ["你好，世界！", "我们今天去公园散步。", "日本語のテキストです。カタカナとひらがな。",
            "한국어 문장입니다.", "中文、日本語、한국어を混ぜる", "東京都渋谷区"],
    "scripts": ["Привет, как дела? Ёжик в тумане.", "Γειά σου Κόσμε, ΑΒΓΔ αβγδ", "مرحبا بالعالم، كيف حالك؟",
                "नमस्ते दुनिया, आप कैसे हैं?", "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่าง", "שלום עולם",
                "Xin chào thế giới, Tiếng Việt có dấu", "Ṭhís ïs dïäcrïtïc-hëävÿ", "ქართული ენა",
                "Հայերեն լեզու", "தமிழ் மொழி", "বাংলা ভাষা", "አማርኛ ቋንቋ", "ᚠᛇᚻ᛫ᛒᛦᚦ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙"],
    "emoji": ["😀😃😄", "👍🏽 thumbs", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "🇯🇵🇺🇸🇩🇪", "❤️‍🔥", "🧑🏿‍💻 coder",
              "1️⃣ keycap", "✨🚀🔥💯"],
    "code": ["def f(x):\n    return x**2 + 1\n", "int main() { printf(\"%d\\n\", 42); return 0; }",
             "for (let i = 0; i < n; ++i) {\n\tsum += a[i];\n}", "SELECT * FROM users WHERE id = 7;",
             "<div class=\"a\">&nbsp;</div>", "x = {'a': [1, 2, 3], \"b\": None}  # comment",
             "    if (a != b && c >= d) { return; }\r\n", "$ ls -la ~/.config | grep -v '^d'",
             "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }", "λx. x → y ≠ z ∀ε>0 ∃δ"],
    "digits": ["0", "12", "123", "1234", "12345", "123456789", "3.14159", "1,000,000", "2024-06-01",
               "0x1F", "1e-10", "٣٤٥ Arabic-Indic", "१२३ Devanagari", "１２３ fullwidth", "½ ² ³ Ⅻ"],
    "space": ["  leading", "trailing   ", "a  b   c    d", "\n\n\n", "\t\ttabs\t", "line1\nline2\r\nline3",
              " \n \n ", "\u00a0nbsp\u00a0", "\u3000ideographic\u3000space", "\u2028\u2029", "\u200b zero\u200bwidth",
              "\u180e mongolian", "\u2009thin\u202fnarrow", "\x0bvt\x0cff", "\u0085nel"],
    "norm": ["cafe\u0301", "caf\u00e9", "A\u030a", "\u212b angstrom", "\u1e9b\u0323", "e\u0301\u0302\u0323",
             "\u0041\u0301\u0328", "ﬁ ligature", "\uff21\uff22 fullwidth", "한", "\u1112\u1161\u11ab jamo",
             "\u0958 nukta", "\u2126 ohm"],
    "edge": ["\ufffd", "a\ufffdb", "\ufeffBOM", "\x00nul\x01", "\uffff\U0010ffff", "\ue000 private",
             "\u0301 lone combining", "\x7f del", "\u200d zwj alone", "\U0001f600\u200d", "\U000e0041 tag"],
}


def _nfd(s):
    return unicodedata.normalize("NFD", s)


def golden_texts(n=200, seed=4):
    rng = random.Random(seed)
    texts = []
    for group in FRAGMENTS.values():
        texts.extend(group)
    texts.extend(SPECIALS)
    texts.extend([
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
        "text<|endoftext|>more text<|endoftext|>", "<think>\nreasoning\n</think>\n\nanswer",
        "<|im_start|><|im_end|><|im_start|>", " <|im_start|> spaced ", "<|im_star", "<|im_start|",
        "<bos><bos> double bos", "<unused7><unused99>x", _nfd("Crème brûlée à la française"),
        "\u00a0\u00a0\u00a0  \u00a0", " " * 40 + "x", "\n" * 25, "\t \n" * 12, "a" * 300,
        "abc" * 80, "1" * 50, "🙂" * 20, "".join(chr(0x4e00 + i) for i in range(60)),
        "<b> </b> and <i>  </i>", "a > </tag> >   </x>", "<p>\n</p> <br/> </br>", ">▁</ literal",
        "▁leading meta ▁▁ twice", "Ａ＇Ｓ ſ ﬀ K Å",
    ])
    pool = [f for group in FRAGMENTS.values() for f in group] + SPECIALS
    while len(texts) < n:
        k = rng.randint(2, 8)
        parts = []
        for _ in range(k):
            p = rng.choice(pool)
            if rng.random() < 0.2:
                p = _nfd(p)
            parts.append(p)
            parts.append(rng.choice(["", " ", "  ", "\n", " \n", "\t", "", ""]))
        if rng.random() < 0.3:
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 15))))
        texts.append("".join(parts))
    return texts


def bench_text(n_bytes=4 << 20, seed=7):
    """Mixed prose, code, numbers and other scripts: what a server sees, roughly 70% ASCII."""
    rng = random.Random(seed)
    words = ("the of and to in is that for it as was with be by on not he this are or his from at which but "
             "have an they you were her she there been one all we their has would when if so what who will "
             "more no out up said into than them can only other new some could time these two may first then "
             "do any like my now over such our man me even most made after also did many before must through "
             "back years where much your way well down should because each just those people how too little "
             "state good very make world still own see men work long get here between both life being under "
             "never day same another know while last might us great old year off come since against go came "
             "right used take three tokenizer server memory cache prefix attention kernel latency throughput").split()
    pool = [f for group in FRAGMENTS.values() for f in group]
    out = []
    size = 0
    while size < n_bytes:
        r = rng.random()
        if r < 0.6:
            n = rng.randint(8, 40)
            sent = " ".join(rng.choice(words) for _ in range(n))
            piece = sent[0].upper() + sent[1:] + rng.choice([". ", "? ", "! ", ", ", ".\n", ".\n\n"])
        elif r < 0.9:
            piece = rng.choice(pool) + rng.choice([" ", "\n", ""])
        else:
            piece = f"{rng.randint(0, 10 ** rng.randint(1, 9))} "
        out.append(piece)
        size += len(piece.encode("utf-8"))
    return "".join(out).encode("utf-8")[:n_bytes].decode("utf-8", errors="ignore")


if __name__ == "__main__":
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4 << 20
    with open(sys.argv[1], "w", encoding="utf-8", newline="") as f:
        f.write(bench_text(n))
