// keel bench-tokenizer DIR [--file F]: single-thread encode throughput (MB/s) on a multi-MB text, the number
// compared with HF tokenizers (tests/golden/gen_tokenizers.py --bench-text times HF on the same file, which
// tests/golden/tokenizer_texts.py writes).
#include <chrono>
#include <cstdint>
#include <cstdio>

#include "cli/commands.h"
#include "env/env.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

namespace keel::cli {

namespace {

struct BenchTokenizerArgs {
  std::string dir, file;
  int repeats = 3;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Without --file: a mixed text of about 4 MB (prose, code, numbers, CJK, Cyrillic, emoji).
std::string default_text() {
  const char* parts[] = {
      "The quick brown fox jumps over the lazy dog, and it's 42 times faster than we'd thought. ",
      "def tokenize(text):\n    return [vocab[w] for w in text.split()]  # 3.14159\n",
      "你好，世界！我们今天去公园散步。日本語のテキストです。", "Привет, как дела? Ёжик в тумане. ",
      "👨‍👩‍👧‍👦 family 👍🏽 ✨🚀 ", "مرحبا بالعالم، كيف حالك؟ ", "\n\n    indented\tline\r\n"};
  std::string text;
  for (size_t i = 0; text.size() < (4u << 20); ++i) text += parts[(i * 7 + i / 3) % 7];
  return text;
}

// FNV-1a 64 over the ids as little-endian int32, as tests/golden/gen_tokenizers.py prints for HF's ids.
uint64_t ids_fnv1a(const std::vector<int32_t>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t id : ids) {
    auto u = static_cast<uint32_t>(id);
    for (int k = 0; k < 4; ++k) h = (h ^ ((u >> (8 * k)) & 0xFF)) * 0x100000001b3ull;
  }
  return h;
}

int run_bench_tokenizer(const BenchTokenizerArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
  auto tok = tokenizer::Tokenizer::load(a.dir);
  if (!tok.ok()) return report(tok.status());
  double load_s = seconds_since(t0);
  std::string text;
  if (a.file.empty()) {
    text = default_text();
  } else {
    auto read = env::Env::posix()->read_file(a.file);
    if (!read.ok()) return report(read.status().with_context("--file"));
    text = std::move(read).value();
  }
  double best = 1e30;
  std::vector<int32_t> ids;
  for (int r = 0; r < std::max(1, a.repeats); ++r) {
    auto t1 = std::chrono::steady_clock::now();
    ids = tok->encode(text, false);
    best = std::min(best, seconds_since(t1));
  }
  auto t2 = std::chrono::steady_clock::now();
  std::string decoded = tok->decode(ids, false);
  double decode_s = seconds_since(t2);
  auto t3 = std::chrono::steady_clock::now();
  tokenizer::StreamDecoder stream(*tok, false);
  size_t streamed = 0;
  for (int32_t id : ids) streamed += stream.step(id).size();
  streamed += stream.flush().size();
  double stream_s = seconds_since(t3);
  std::printf("tokenizer %s: load %.2f s, vocab %d\n", a.dir.c_str(), load_s, tok->vocab_size());
  std::printf("encode: %zu bytes -> %zu ids (fnv1a %016llx), best of %d: %.3f s, %.2f MB/s (single thread)\n",
              text.size(), ids.size(), static_cast<unsigned long long>(ids_fnv1a(ids)), std::max(1, a.repeats), best,
              text.size() / best / 1e6);
  std::printf("decode: %.3f s, %.2f MB/s; stream decode: %.3f s, %.2f us/token; round trip %s\n", decode_s,
              decoded.size() / decode_s / 1e6, stream_s, stream_s / std::max<size_t>(1, ids.size()) * 1e6,
              decoded == text ? "exact" : "differs (normalized or invalid UTF-8 input)");
  if (streamed != decoded.size()) {
    return report(internal_error("stream decode gave {} bytes, decode {}", streamed, decoded.size()));
  }
  return 0;
}

}  // namespace

void add_bench_tokenizer(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<BenchTokenizerArgs>();
  CLI::App* cmd = app.add_subcommand("bench-tokenizer", "Tokenizer encode/decode throughput on a multi-MB text");
  cmd->add_option("DIR", a->dir, "Model or tokenizer directory (tokenizer.json)")->required();
  cmd->add_option("--file", a->file, "Text to encode (default: a built-in mixed text of about 4 MB)");
  cmd->add_option("--repeats", a->repeats, "Encode this many times and report the best (default 3)");
  cmd->callback([a, &ctx] { ctx.exit_code = run_bench_tokenizer(*a); });
}

}  // namespace keel::cli
