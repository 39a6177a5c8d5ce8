// keel tokenize / keel detokenize: the tokenizer of a model (or tokenizer-only) directory from the shell.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "env/env.h"
#include "tokenizer/tokenizer.h"

namespace keel::cli {

namespace {

struct TokenizeArgs {
  std::string dir, text, text_file;
  bool add_special = false;
};

struct DetokenizeArgs {
  std::string dir, ids;
  bool skip_special = false;
};

// "1 2 3", "1,2,3" and "[1, 2, 3]" all give {1, 2, 3}.
Result<std::vector<int32_t>> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::string token;
  auto flush = [&]() -> Status {
    if (token.empty()) return Status();
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(token, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != token.size() || v < 0 || v > INT32_MAX) {
      return invalid_argument("'{}' is not a token id, expected a non-negative integer (--ids)", token);
    }
    ids.push_back(static_cast<int32_t>(v));
    token.clear();
    return Status();
  };
  for (char c : s) {
    if (c == ' ' || c == ',' || c == '\t' || c == '\n' || c == '[' || c == ']') {
      KEEL_RETURN_IF_ERROR(flush());
    } else {
      token += c;
    }
  }
  KEEL_RETURN_IF_ERROR(flush());
  return ids;
}

Status run_tokenize(const TokenizeArgs& a) {
  KEEL_ASSIGN_OR_RETURN(auto tok, tokenizer::Tokenizer::load(a.dir));
  std::string text = a.text;
  if (!a.text_file.empty()) {
    auto read = env::Env::posix()->read_file(a.text_file);
    if (!read.ok()) {
      return Status(read.status().code(),
                    fmt::format("cannot read the text: {} (--text-file)", read.status().message()));
    }
    text = std::move(read).value();
  }
  std::vector<int32_t> ids = tok.encode(text, a.add_special);
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(ids[i]);
  }
  out += "]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return Status();
}

Status run_detokenize(const DetokenizeArgs& a) {
  KEEL_ASSIGN_OR_RETURN(auto tok, tokenizer::Tokenizer::load(a.dir));
  KEEL_ASSIGN_OR_RETURN(auto ids, parse_ids(a.ids));
  for (int32_t id : ids) {
    if (id >= tok.vocab_size() || !tok.id_to_token(id)) {
      return invalid_argument("id {} is not in the vocabulary of {} ids (--ids)", id, tok.vocab_size());
    }
  }
  std::string text = tok.decode(ids, a.skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return Status();
}

}  // namespace

void add_tokenizer_commands(CLI::App& app, Context& ctx) {
  auto targs = std::make_shared<TokenizeArgs>();
  CLI::App* t = app.add_subcommand("tokenize", "Print the token ids of a text as a JSON array on one line");
  t->add_option("DIR", targs->dir, "Model or tokenizer directory (tokenizer.json)")->required();
  auto* text = t->add_option("--text", targs->text, "The text; special tokens written in it are recognised");
  auto* file = t->add_option("--text-file", targs->text_file, "Read the text from this file (bytes as they are)");
  text->excludes(file);
  file->excludes(text);
  t->add_flag("--add-special", targs->add_special, "Add what the tokenizer adds around a text (e.g. BOS)");
  t->callback([targs, text, file, &ctx] {
    if (text->count() == 0 && file->count() == 0) {
      report(invalid_argument("give --text or --text-file (tokenize)"));
      ctx.exit_code = 2;  // a usage error
      return;
    }
    Status s = run_tokenize(*targs);
    ctx.exit_code = s.ok() ? 0 : report(s);
  });

  auto dargs = std::make_shared<DetokenizeArgs>();
  CLI::App* d = app.add_subcommand("detokenize", "Print the text of token ids (exactly, no newline added)");
  d->add_option("DIR", dargs->dir, "Model or tokenizer directory (tokenizer.json)")->required();
  d->add_option("--ids", dargs->ids, "Token ids: \"1 2 3\", \"1,2,3\" or \"[1, 2, 3]\"")->required();
  d->add_flag("--skip-special", dargs->skip_special, "Leave special tokens out of the text");
  d->callback([dargs, &ctx] {
    Status s = run_detokenize(*dargs);
    ctx.exit_code = s.ok() ? 0 : report(s);
  });
}

}  // namespace keel::cli
