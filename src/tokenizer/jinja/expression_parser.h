// The expression half of the template parser (parser.cpp holds the statements): a cursor over the lexer's
// tokens and jinja2's expression grammar, in its operator precedence. Internal to the jinja module.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/lexer.h"

namespace keel::jinja {

// How a token reads in an error message: "'}}'", "number 3", "end of template".
std::string describe(const Token& t);

class ExpressionParser {
 public:
  ExpressionParser(std::vector<Token> tokens, int max_depth) : toks_(std::move(tokens)), max_depth_(max_depth) {}

 protected:
  using T = Token::Type;

  // One level of recursive descent (a block, a parenthesis, an operand), counted for as long as it lives;
  // check_nesting fails once more than max_depth_ are open.
  struct Nesting {
    explicit Nesting(int& depth) : depth(depth) { ++depth; }
    ~Nesting() { --depth; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;
    int& depth;
  };
  Status check_nesting(const Token& at) const {
    if (depth_ <= max_depth_) return Status();
    return fail(at, budget_exceeded("parse-depth", max_depth_).message());
  }
  int max_depth() const { return max_depth_; }

  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t n = 1) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool is_op(const char* op) const { return cur().type == T::kOp && cur().text == op; }
  bool is_name(const char* name) const { return cur().type == T::kName && cur().text == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }
  Status fail(const Token& t, const std::string& what) const { return template_error(t.line, t.column, what); }
  Status expect_op(const char* op) {
    if (skip_op(op)) return Status();
    return fail(cur(), fmt::format("expected '{}', got {}", op, describe(cur())));
  }
  Status expect_block_end() {
    if (cur().type == T::kBlockEnd) {
      advance();
      return Status();
    }
    return fail(cur(), fmt::format("expected '%}}', got {}", describe(cur())));
  }
  Result<std::string> expect_name() {
    if (cur().type != T::kName) return fail(cur(), fmt::format("expected a name, got {}", describe(cur())));
    std::string n = cur().text;
    advance();
    return n;
  }

  ExprPtr node(Expr::Kind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }

  // ---- expressions, in jinja2's precedence order ----

  // `a, b` without parentheses makes a tuple (as in `{{ a, b }}` or `set x = 1, 2`).
  Result<ExprPtr> parse_tuple(bool with_condexpr);
  Result<ExprPtr> parse_expression(bool with_condexpr);
  // l op r, named by the operator's token (its text: "or", "+", "**", ...).
  Result<ExprPtr> binary(const Token& op, ExprPtr l, ExprPtr r);
  Result<ExprPtr> parse_or();
  Result<ExprPtr> parse_and();
  Result<ExprPtr> parse_not();
  Result<ExprPtr> parse_compare();
  Result<ExprPtr> parse_math1();
  Result<ExprPtr> parse_concat();
  Result<ExprPtr> parse_math2();
  Result<ExprPtr> parse_pow();
  Result<ExprPtr> parse_unary(bool with_filter);
  Result<ExprPtr> parse_primary();
  Result<ExprPtr> parse_postfix(ExprPtr n);
  Result<ExprPtr> parse_subscript(ExprPtr obj, const Token& at);
  Status parse_call_args(Expr& call);
  Result<ExprPtr> parse_call(ExprPtr callee);
  // `| name(args)`; `input` is null inside filter blocks and block sets.
  Result<ExprPtr> parse_filter(ExprPtr input);
  Result<ExprPtr> parse_filter_expr(ExprPtr n);

 private:
  std::vector<Token> toks_;
  size_t pos_ = 0;

 protected:
  const int max_depth_;
  int depth_ = 0;
};

}  // namespace keel::jinja
