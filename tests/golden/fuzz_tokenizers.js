// Differential fuzzing against HF tokenizers through its Node binding (npm `tokenizers`, the same Rust
// core as the Python package), for machines without Python `tokenizers`. Writes goldens in the format of
// gen_tokenizers.py, which the golden test reads from $KEEL_TOKENIZER_GOLDENS instead of the committed ones:
//
//   (cd /tmp/hf && npm install tokenizers@0.23.2)
//   NODE_PATH=/tmp/hf/node_modules node tests/golden/fuzz_tokenizers.js /tmp/fuzz [N] [SEED]
//   KEEL_TOKENIZER_GOLDENS=/tmp/fuzz build-tok/keel_tokenizer_test --gtest_filter='RealTokenizers*'
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const outDir = process.argv[2] || '/tmp/fuzz';
const n = parseInt(process.argv[3] || '2000', 10);
let seed = parseInt(process.argv[4] || '1', 10);
function rand() {  // mulberry32: deterministic for a seed
  seed |= 0; seed = (seed + 0x6D2B79F5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

const ranges = [[0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], [0x00, 0x1f], [0xa0, 0xff], [0x100, 0x24f], [0x300, 0x36f],
  [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff], [0x600, 0x6ff], [0x900, 0x97f], [0x980, 0x9ff], [0xe00, 0xe7f],
  [0x1100, 0x11ff], [0xac00, 0xd7a3], [0x3040, 0x30ff], [0x4e00, 0x9fff], [0xff00, 0xffef], [0x1f300, 0x1faff],
  [0x2000, 0x206f], [0x2100, 0x22ff], [0x1d400, 0x1d7ff], [0x10000, 0x1007f], [0xe000, 0xe0ff], [0xfe00, 0xfe0f],
  // combining marks and scripts that compose, for NFC (some newer than HF's Unicode 9.0 tables)
  [0x0591, 0x05c7], [0x0610, 0x065f], [0x08d0, 0x08ff], [0x0900, 0x0dff], [0x0f00, 0x0fff], [0x1ab0, 0x1aff],
  [0x1dc0, 0x1dff], [0x20d0, 0x20ff], [0x11000, 0x111ff], [0x11300, 0x1137f], [0x1e900, 0x1e95f], [0x2f800, 0x2fa1f],
  [0xf900, 0xfaff], [0x1f1e6, 0x1f1ff]];
const spaces = [' ', ' ', '  ', '\n', '\n\n', '\t', '\r\n', '\u00a0', '\u3000', '\u2009', '\u200b', '\u180e', '\u0085',
  '\u2028', '\u1680', '\u202f', '    ', ' \n ', '\f', '\v'];
const words = ['the', 'Hello', 'world', "it's", "I'M", "we'Re", "they'VE", "you'll", "he'd", "don'T", "'s", "'ll",
  'x', 'über', 'naïve', 'Ñandú', 'код', 'λόγος', 'مرحبا', 'नमस्ते', 'ภาษา', '中文', '日本語', '한국어', '👨‍👩‍👧', '🏳️‍🌈',
  '👍🏽', '1️⃣', 'fn', 'def', '{}', '()', '=>', '->', '!=', '...', '--', '__init__', 'http://a.b/c?d=e', '▁', '>▁</',
  '> </', '<b>', '</b>', '<0x41>', '<unk>', '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>', '</think>',
  '<|begin_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<start_of_turn>', '<end_of_turn>', '<bos>', '<eos>',
  '<pad>', '<mask>', '<unused12>', '[multimodal]', '<start_of_image>', '<|im_start', 'im_end|>', '<|', '|>'];

function segment() {
  const r = rand();
  if (r < 0.35) return pick(words);
  if (r < 0.55) return pick(spaces);
  if (r < 0.65) return String(int(0, 10 ** int(1, 12)));
  if (r < 0.72) return pick(spaces).repeat(int(2, 30));
  let s = '';
  const [lo, hi] = pick(ranges);
  for (let k = int(1, 8); k > 0; --k) s += String.fromCodePoint(int(lo, hi));
  return s;
}

function text() {
  let s = '';
  for (let k = int(1, 25); k > 0; --k) s += segment();
  if (rand() < 0.15) s = s.normalize('NFD');
  return s;
}

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const root = path.join(__dirname, '..', '..', '.npm-tokenizers');
  const texts = [];
  for (let i = 0; i < n; ++i) texts.push(text());
  for (const name of ['qwen3', 'llama3', 'gemma3']) {
    const tok = Tokenizer.fromFile(path.join(root, name, 'package', 'models', 'tokenizer.json'));
    const cases = [];
    for (const t of texts) {
      const ids = (await tok.encode(t, null, { addSpecialTokens: false })).getIds();
      const idsSpecial = (await tok.encode(t, null, { addSpecialTokens: true })).getIds();
      cases.push({ text: t, ids, ids_special: idsSpecial, decoded: await tok.decode(idsSpecial, false),
                   decoded_skip: await tok.decode(idsSpecial, true) });
    }
    fs.writeFileSync(path.join(outDir, name + '.json'), JSON.stringify({ tokenizer: name, cases, decode_cases: [] }));
    console.log(name, cases.length, 'cases');
  }
}
main();
