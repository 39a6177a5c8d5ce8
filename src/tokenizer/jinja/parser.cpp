#include "tokenizer/jinja/parser.h"

#include "tokenizer/jinja/builtins.h"

#include <fmt/format.h>

#include <cstdlib>
#include <initializer_list>

namespace keel::jinja {
namespace {

using T = Token::Type;

std::string describe(const Token& t) {
  switch (t.type) {
    case T::kEof: return "end of template";
    case T::kText: return "text";
    case T::kVarBegin: return "'{{'";
    case T::kVarEnd: return "'}}'";
    case T::kBlockBegin: return "'{%'";
    case T::kBlockEnd: return "'%}'";
    case T::kString: return "string";
    case T::kInt:
    case T::kFloat: return "number " + t.text;
    default: return "'" + t.text + "'";
  }
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Result<Body> parse_template() {
    std::string stopped;
    KEEL_ASSIGN_OR_RETURN(Body body, parse_body({}, &stopped));
    return body;
  }

 private:
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
  StmtPtr stmt(Stmt::Kind kind, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  // Parses statements until a `{% name` with name in `stops` (consumed, stored in *stopped) or the end.
  Result<Body> parse_body(std::initializer_list<const char*> stops, std::string* stopped) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == T::kEof) {
        if (stops.size() == 0) return body;
        std::string expected;
        for (const char* s : stops) expected += (expected.empty() ? "'" : " or '") + std::string(s) + "'";
        return fail(t, fmt::format("unexpected end of template, expected {}", expected));
      }
      if (t.type == T::kText) {
        auto s = stmt(Stmt::Kind::kText, t);
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
      } else if (t.type == T::kVarBegin) {
        auto s = stmt(Stmt::Kind::kEmit, t);
        advance();
        KEEL_ASSIGN_OR_RETURN(s->expr, parse_tuple(true));
        if (cur().type != T::kVarEnd) return fail(cur(), fmt::format("expected '}}}}', got {}", describe(cur())));
        advance();
        body.push_back(std::move(s));
      } else if (t.type == T::kBlockBegin) {
        advance();
        const Token& name = cur();
        if (name.type != T::kName) return fail(name, fmt::format("expected a tag name, got {}", describe(name)));
        for (const char* s : stops) {
          if (name.text == s) {
            *stopped = name.text;
            advance();
            return body;
          }
        }
        KEEL_RETURN_IF_ERROR(parse_statement(body));
      } else {
        return fail(t, fmt::format("unexpected {}", describe(t)));
      }
    }
  }

  Status parse_statement(Body& body) {
    const Token& t = cur();
    const std::string tag = t.text;
    if (tag == "if") return parse_if(body);
    if (tag == "for") return parse_for(body);
    if (tag == "set") return parse_set(body);
    if (tag == "macro") return parse_macro(body);
    if (tag == "call") return parse_call_block(body);
    if (tag == "filter") return parse_filter_block(body);
    if (tag == "break" || tag == "continue") {
      auto s = stmt(tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, t);
      advance();
      KEEL_RETURN_IF_ERROR(expect_block_end());
      body.push_back(std::move(s));
      return Status();
    }
    if (tag == "generation") {  // transformers' AssistantTracker tag: renders its body unchanged
      advance();
      KEEL_RETURN_IF_ERROR(expect_block_end());
      std::string stopped;
      KEEL_ASSIGN_OR_RETURN(Body inner, parse_body({"endgeneration"}, &stopped));
      KEEL_RETURN_IF_ERROR(expect_block_end());
      for (auto& s : inner) body.push_back(std::move(s));
      return Status();
    }
    return fail(t, fmt::format("unknown tag '{}'", tag));
  }

  Status parse_if(Body& body) {
    auto s = stmt(Stmt::Kind::kIf, cur());
    advance();
    while (true) {
      KEEL_ASSIGN_OR_RETURN(ExprPtr cond, parse_tuple(true));
      KEEL_RETURN_IF_ERROR(expect_block_end());
      std::string stopped;
      KEEL_ASSIGN_OR_RETURN(Body branch, parse_body({"elif", "else", "endif"}, &stopped));
      s->conds.push_back(std::move(cond));
      s->bodies.push_back(std::move(branch));
      if (stopped == "elif") continue;
      if (stopped == "else") {
        KEEL_RETURN_IF_ERROR(expect_block_end());
        KEEL_ASSIGN_OR_RETURN(s->else_body, parse_body({"endif"}, &stopped));
      }
      KEEL_RETURN_IF_ERROR(expect_block_end());
      body.push_back(std::move(s));
      return Status();
    }
  }

  Status parse_targets(Stmt& s) {
    bool paren = skip_op("(");
    while (true) {
      KEEL_ASSIGN_OR_RETURN(std::string n, expect_name());
      s.targets.push_back(n);
      if (!skip_op(",")) break;
      s.unpack = true;
      if (cur().type != T::kName) break;
    }
    if (paren) {
      s.unpack = true;
      KEEL_RETURN_IF_ERROR(expect_op(")"));
    }
    return Status();
  }

  Status parse_for(Body& body) {
    auto s = stmt(Stmt::Kind::kFor, cur());
    advance();
    KEEL_RETURN_IF_ERROR(parse_targets(*s));
    if (!skip_name("in")) return fail(cur(), fmt::format("expected 'in', got {}", describe(cur())));
    KEEL_ASSIGN_OR_RETURN(s->expr, parse_tuple(false));
    if (skip_name("if")) {
      KEEL_ASSIGN_OR_RETURN(s->cond, parse_expression(true));
    }
    if (is_name("recursive")) return fail(cur(), "recursive loops are not supported");
    KEEL_RETURN_IF_ERROR(expect_block_end());
    std::string stopped;
    KEEL_ASSIGN_OR_RETURN(s->body, parse_body({"else", "endfor"}, &stopped));
    if (stopped == "else") {
      KEEL_RETURN_IF_ERROR(expect_block_end());
      KEEL_ASSIGN_OR_RETURN(s->else_body, parse_body({"endfor"}, &stopped));
    }
    KEEL_RETURN_IF_ERROR(expect_block_end());
    body.push_back(std::move(s));
    return Status();
  }

  Status parse_set(Body& body) {
    auto s = stmt(Stmt::Kind::kSet, cur());
    advance();
    if (cur().type == T::kName && peek().type == T::kOp && peek().text == ".") {
      s->targets.push_back(cur().text);
      advance();
      advance();
      KEEL_ASSIGN_OR_RETURN(s->attr, expect_name());
    } else {
      KEEL_RETURN_IF_ERROR(parse_targets(*s));
    }
    if (skip_op("=")) {
      KEEL_ASSIGN_OR_RETURN(s->expr, parse_tuple(true));
      KEEL_RETURN_IF_ERROR(expect_block_end());
      body.push_back(std::move(s));
      return Status();
    }
    while (skip_op("|")) {
      KEEL_ASSIGN_OR_RETURN(ExprPtr f, parse_filter(nullptr));
      s->filters.push_back(std::move(f));
    }
    KEEL_RETURN_IF_ERROR(expect_block_end());
    std::string stopped;
    KEEL_ASSIGN_OR_RETURN(s->body, parse_body({"endset"}, &stopped));
    KEEL_RETURN_IF_ERROR(expect_block_end());
    body.push_back(std::move(s));
    return Status();
  }

  Status parse_params(Stmt& s) {
    KEEL_RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      KEEL_ASSIGN_OR_RETURN(std::string n, expect_name());
      s.targets.push_back(n);
      ExprPtr def;
      if (skip_op("=")) {
        KEEL_ASSIGN_OR_RETURN(def, parse_expression(true));
      }
      s.defaults.push_back(std::move(def));
      if (!skip_op(",")) break;
    }
    return expect_op(")");
  }

  Status parse_macro(Body& body) {
    auto s = stmt(Stmt::Kind::kMacro, cur());
    advance();
    KEEL_ASSIGN_OR_RETURN(s->text, expect_name());
    KEEL_RETURN_IF_ERROR(parse_params(*s));
    KEEL_RETURN_IF_ERROR(expect_block_end());
    std::string stopped;
    KEEL_ASSIGN_OR_RETURN(s->body, parse_body({"endmacro"}, &stopped));
    if (cur().type == T::kName) advance();  // {% endmacro name %}
    KEEL_RETURN_IF_ERROR(expect_block_end());
    body.push_back(std::move(s));
    return Status();
  }

  Status parse_call_block(Body& body) {
    auto s = stmt(Stmt::Kind::kCallBlock, cur());
    advance();
    if (is_op("(")) KEEL_RETURN_IF_ERROR(parse_params(*s));
    KEEL_ASSIGN_OR_RETURN(s->expr, parse_expression(true));
    if (s->expr->kind != Expr::Kind::kCall) return fail(cur(), "expected a macro call after 'call'");
    KEEL_RETURN_IF_ERROR(expect_block_end());
    std::string stopped;
    KEEL_ASSIGN_OR_RETURN(s->body, parse_body({"endcall"}, &stopped));
    KEEL_RETURN_IF_ERROR(expect_block_end());
    body.push_back(std::move(s));
    return Status();
  }

  Status parse_filter_block(Body& body) {
    auto s = stmt(Stmt::Kind::kFilterBlock, cur());
    advance();
    do {
      KEEL_ASSIGN_OR_RETURN(ExprPtr f, parse_filter(nullptr));
      s->filters.push_back(std::move(f));
    } while (skip_op("|"));
    KEEL_RETURN_IF_ERROR(expect_block_end());
    std::string stopped;
    KEEL_ASSIGN_OR_RETURN(s->body, parse_body({"endfilter"}, &stopped));
    KEEL_RETURN_IF_ERROR(expect_block_end());
    body.push_back(std::move(s));
    return Status();
  }

  // ---- expressions, in jinja2's precedence order ----

  // `a, b` without parentheses makes a tuple (as in `{{ a, b }}` or `set x = 1, 2`).
  Result<ExprPtr> parse_tuple(bool with_condexpr) {
    const Token start = cur();
    KEEL_ASSIGN_OR_RETURN(ExprPtr first, parse_expression(with_condexpr));
    if (!is_op(",")) return first;
    auto t = node(Expr::Kind::kTuple, start);
    t->args.push_back(std::move(first));
    while (skip_op(",")) {
      if (cur().type == T::kBlockEnd || cur().type == T::kVarEnd || is_op(")")) break;
      KEEL_ASSIGN_OR_RETURN(ExprPtr e, parse_expression(with_condexpr));
      t->args.push_back(std::move(e));
    }
    return t;
  }

  Result<ExprPtr> parse_expression(bool with_condexpr) {
    if (!with_condexpr) return parse_or();
    const Token start = cur();
    KEEL_ASSIGN_OR_RETURN(ExprPtr expr, parse_or());
    while (skip_name("if")) {
      auto c = node(Expr::Kind::kCond, start);
      KEEL_ASSIGN_OR_RETURN(ExprPtr test, parse_or());
      ExprPtr otherwise;
      if (skip_name("else")) {
        KEEL_ASSIGN_OR_RETURN(otherwise, parse_expression(true));
      }
      c->args.push_back(std::move(test));
      c->args.push_back(std::move(expr));
      c->args.push_back(std::move(otherwise));
      expr = std::move(c);
    }
    return expr;
  }

  Result<ExprPtr> binary(const char* op, const Token& at, ExprPtr l, ExprPtr r) {
    auto b = node(Expr::Kind::kBinary, at);
    b->name = op;
    b->args.push_back(std::move(l));
    b->args.push_back(std::move(r));
    return b;
  }

  Result<ExprPtr> parse_or() {
    KEEL_ASSIGN_OR_RETURN(ExprPtr left, parse_and());
    while (is_name("or")) {
      const Token at = cur();
      advance();
      KEEL_ASSIGN_OR_RETURN(ExprPtr right, parse_and());
      KEEL_ASSIGN_OR_RETURN(left, binary("or", at, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_and() {
    KEEL_ASSIGN_OR_RETURN(ExprPtr left, parse_not());
    while (is_name("and")) {
      const Token at = cur();
      advance();
      KEEL_ASSIGN_OR_RETURN(ExprPtr right, parse_not());
      KEEL_ASSIGN_OR_RETURN(left, binary("and", at, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_not() {
    if (is_name("not")) {
      auto n = node(Expr::Kind::kUnary, cur());
      n->name = "not";
      advance();
      KEEL_ASSIGN_OR_RETURN(ExprPtr operand, parse_not());
      n->args.push_back(std::move(operand));
      return n;
    }
    return parse_compare();
  }

  Result<ExprPtr> parse_compare() {
    const Token start = cur();
    KEEL_ASSIGN_OR_RETURN(ExprPtr first, parse_math1());
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == T::kOp && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                   cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().type == T::kName && peek().text == "in") {
        op = "notin";
        advance();
        advance();
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(Expr::Kind::kCompare, start);
        cmp->args.push_back(std::move(first));
      }
      KEEL_ASSIGN_OR_RETURN(ExprPtr operand, parse_math1());
      cmp->ops.push_back(op);
      cmp->args.push_back(std::move(operand));
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  Result<ExprPtr> parse_math1() {
    KEEL_ASSIGN_OR_RETURN(ExprPtr left, parse_concat());
    while (is_op("+") || is_op("-")) {
      const Token at = cur();
      advance();
      KEEL_ASSIGN_OR_RETURN(ExprPtr right, parse_concat());
      KEEL_ASSIGN_OR_RETURN(left, binary(at.text == "+" ? "+" : "-", at, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_concat() {
    KEEL_ASSIGN_OR_RETURN(ExprPtr left, parse_math2());
    while (is_op("~")) {
      const Token at = cur();
      advance();
      KEEL_ASSIGN_OR_RETURN(ExprPtr right, parse_math2());
      KEEL_ASSIGN_OR_RETURN(left, binary("~", at, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_math2() {
    KEEL_ASSIGN_OR_RETURN(ExprPtr left, parse_pow());
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token at = cur();
      advance();
      KEEL_ASSIGN_OR_RETURN(ExprPtr right, parse_pow());
      static const char* kOps[] = {"*", "/", "//", "%"};
      const char* op = "*";
      for (const char* o : kOps) {
        if (at.text == o) op = o;
      }
      KEEL_ASSIGN_OR_RETURN(left, binary(op, at, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_pow() {
    KEEL_ASSIGN_OR_RETURN(ExprPtr left, parse_unary(true));
    while (is_op("**")) {
      const Token at = cur();
      advance();
      KEEL_ASSIGN_OR_RETURN(ExprPtr right, parse_unary(true));
      KEEL_ASSIGN_OR_RETURN(left, binary("**", at, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_unary(bool with_filter) {
    ExprPtr n;
    if (is_op("-") || is_op("+")) {
      n = node(Expr::Kind::kUnary, cur());
      n->name = cur().text;
      advance();
      KEEL_ASSIGN_OR_RETURN(ExprPtr operand, parse_unary(false));
      n->args.push_back(std::move(operand));
    } else {
      KEEL_ASSIGN_OR_RETURN(n, parse_primary());
    }
    KEEL_ASSIGN_OR_RETURN(n, parse_postfix(std::move(n)));
    if (with_filter) {
      KEEL_ASSIGN_OR_RETURN(n, parse_filter_expr(std::move(n)));
    }
    return n;
  }

  Result<ExprPtr> parse_primary() {
    const Token t = cur();
    switch (t.type) {
      case T::kName: {
        advance();
        auto n = node(Expr::Kind::kLiteral, t);
        if (t.text == "true" || t.text == "True") {
          n->value = Value(true);
        } else if (t.text == "false" || t.text == "False") {
          n->value = Value(false);
        } else if (t.text == "none" || t.text == "None") {
          n->value = Value::none();
        } else {
          n->kind = Expr::Kind::kName;
          n->name = t.text;
        }
        return n;
      }
      case T::kString: {
        std::string s;
        while (cur().type == T::kString) {
          s += cur().text;
          advance();
        }
        auto n = node(Expr::Kind::kLiteral, t);
        n->value = Value(s);
        return n;
      }
      case T::kInt: {
        advance();
        auto n = node(Expr::Kind::kLiteral, t);
        n->value = Value(static_cast<int64_t>(std::strtoll(t.text.c_str(), nullptr, 10)));
        return n;
      }
      case T::kFloat: {
        advance();
        auto n = node(Expr::Kind::kLiteral, t);
        n->value = Value(std::strtod(t.text.c_str(), nullptr));
        return n;
      }
      case T::kOp:
        if (t.text == "(") {
          advance();
          if (skip_op(")")) return node(Expr::Kind::kTuple, t);
          KEEL_ASSIGN_OR_RETURN(ExprPtr inner, parse_expression(true));
          if (is_op(",")) {
            auto tuple = node(Expr::Kind::kTuple, t);
            tuple->args.push_back(std::move(inner));
            while (skip_op(",")) {
              if (is_op(")")) break;
              KEEL_ASSIGN_OR_RETURN(ExprPtr e, parse_expression(true));
              tuple->args.push_back(std::move(e));
            }
            inner = std::move(tuple);
          }
          KEEL_RETURN_IF_ERROR(expect_op(")"));
          return inner;
        }
        if (t.text == "[") {
          advance();
          auto list = node(Expr::Kind::kList, t);
          while (!is_op("]")) {
            KEEL_ASSIGN_OR_RETURN(ExprPtr e, parse_expression(true));
            list->args.push_back(std::move(e));
            if (!skip_op(",")) break;
          }
          KEEL_RETURN_IF_ERROR(expect_op("]"));
          return list;
        }
        if (t.text == "{") {
          advance();
          auto dict = node(Expr::Kind::kDict, t);
          while (!is_op("}")) {
            KEEL_ASSIGN_OR_RETURN(ExprPtr k, parse_expression(true));
            KEEL_RETURN_IF_ERROR(expect_op(":"));
            KEEL_ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
            dict->args.push_back(std::move(k));
            dict->args.push_back(std::move(v));
            if (!skip_op(",")) break;
          }
          KEEL_RETURN_IF_ERROR(expect_op("}"));
          return dict;
        }
        break;
      default: break;
    }
    return fail(t, fmt::format("unexpected {}", describe(t)));
  }

  Result<ExprPtr> parse_postfix(ExprPtr n) {
    while (true) {
      const Token at = cur();
      if (skip_op(".")) {
        if (cur().type == T::kInt) {
          auto item = node(Expr::Kind::kItem, at);
          auto key = node(Expr::Kind::kLiteral, cur());
          key->value = Value(static_cast<int64_t>(std::strtoll(cur().text.c_str(), nullptr, 10)));
          advance();
          item->args.push_back(std::move(n));
          item->args.push_back(std::move(key));
          n = std::move(item);
          continue;
        }
        auto attr = node(Expr::Kind::kAttr, at);
        KEEL_ASSIGN_OR_RETURN(attr->name, expect_name());
        attr->args.push_back(std::move(n));
        n = std::move(attr);
      } else if (skip_op("[")) {
        KEEL_ASSIGN_OR_RETURN(n, parse_subscript(std::move(n), at));
      } else if (is_op("(")) {
        KEEL_ASSIGN_OR_RETURN(n, parse_call(std::move(n)));
      } else {
        return n;
      }
    }
  }

  Result<ExprPtr> parse_subscript(ExprPtr obj, const Token& at) {
    ExprPtr parts[3];
    bool is_slice = false;
    for (int i = 0; i < 3; ++i) {
      if (!is_op(":") && !is_op("]")) {
        KEEL_ASSIGN_OR_RETURN(parts[i], parse_expression(true));
      }
      if (i < 2 && skip_op(":")) {
        is_slice = true;
        continue;
      }
      break;
    }
    KEEL_RETURN_IF_ERROR(expect_op("]"));
    auto n = node(is_slice ? Expr::Kind::kSlice : Expr::Kind::kItem, at);
    n->args.push_back(std::move(obj));
    if (!is_slice && !parts[0]) return fail(at, "empty subscript");
    n->args.push_back(std::move(parts[0]));
    if (is_slice) {
      n->args.push_back(std::move(parts[1]));
      n->args.push_back(std::move(parts[2]));
    }
    return n;
  }

  Status parse_call_args(Expr& call) {
    KEEL_RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) return fail(cur(), "*args and **kwargs in calls are not supported");
      if (cur().type == T::kName && peek().type == T::kOp && peek().text == "=") {
        std::string key = cur().text;
        advance();
        advance();
        KEEL_ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
        call.kwargs.emplace_back(key, std::move(v));
      } else {
        KEEL_ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
        call.args.push_back(std::move(v));
      }
      if (!skip_op(",")) break;
    }
    return expect_op(")");
  }

  Result<ExprPtr> parse_call(ExprPtr callee) {
    auto call = node(Expr::Kind::kCall, cur());
    call->line = callee->line;  // errors point at what was called, not at its '('
    call->column = callee->column;
    call->args.push_back(std::move(callee));
    KEEL_RETURN_IF_ERROR(parse_call_args(*call));
    return call;
  }

  // `| name(args)`; `input` is null inside filter blocks and block sets.
  Result<ExprPtr> parse_filter(ExprPtr input) {
    const Token at = cur();
    auto f = node(Expr::Kind::kFilter, at);
    KEEL_ASSIGN_OR_RETURN(f->name, expect_name());
    if (!is_known_filter(f->name)) return fail(at, fmt::format("unknown filter '{}'", f->name));
    f->args.push_back(std::move(input));
    if (is_op("(")) KEEL_RETURN_IF_ERROR(parse_call_args(*f));
    return f;
  }

  Result<ExprPtr> parse_filter_expr(ExprPtr n) {
    while (true) {
      if (skip_op("|")) {
        KEEL_ASSIGN_OR_RETURN(n, parse_filter(std::move(n)));
      } else if (is_name("is")) {
        auto t = node(Expr::Kind::kTest, cur());
        advance();
        t->negated = skip_name("not");
        const Token at = cur();
        if (at.type == T::kOp && (at.text == "==" || at.text == "!=" || at.text == "<" || at.text == ">" ||
                                  at.text == "<=" || at.text == ">=")) {
          t->name = at.text;
          advance();
        } else {
          KEEL_ASSIGN_OR_RETURN(t->name, expect_name());
        }
        if (!is_known_test(t->name)) return fail(at, fmt::format("unknown test '{}'", t->name));
        t->args.push_back(std::move(n));
        if (is_op("(")) {
          KEEL_RETURN_IF_ERROR(parse_call_args(*t));
        } else if ((cur().type == T::kName || cur().type == T::kString || cur().type == T::kInt ||
                    cur().type == T::kFloat || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          KEEL_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
          KEEL_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
          t->args.push_back(std::move(arg));
        }
        n = std::move(t);
      } else if (is_op("(")) {
        KEEL_ASSIGN_OR_RETURN(n, parse_call(std::move(n)));
      } else {
        return n;
      }
    }
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
};

}  // namespace

Result<Body> parse(const std::string& source, const LexOptions& options) {
  KEEL_ASSIGN_OR_RETURN(std::vector<Token> tokens, lex(source, options));
  return Parser(std::move(tokens)).parse_template();
}

}  // namespace keel::jinja
