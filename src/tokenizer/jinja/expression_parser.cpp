#include "tokenizer/jinja/expression_parser.h"

#include <fmt/format.h>

#include <cstdlib>

#include "tokenizer/jinja/builtins.h"

namespace keel::jinja {

std::string describe(const Token& t) {
  using T = Token::Type;
  switch (t.type) {
    case T::kEof: return "end of template";
    case T::kText: return "text";
    case T::kVarBegin: return "'{{'";
    case T::kVarEnd: return "'}}'";
    case T::kBlockBegin: return "'{%'";
    case T::kBlockEnd: return "'%}'";
    case T::kString: return "string";
    case T::kInt:
    case T::kFloat: return fmt::format("number {}", t.text);
    default: return fmt::format("'{}'", t.text);
  }
}

// `a, b` without parentheses makes a tuple (as in `{{ a, b }}` or `set x = 1, 2`).
Result<ExprPtr> ExpressionParser::parse_tuple(bool with_condexpr) {
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

Result<ExprPtr> ExpressionParser::parse_expression(bool with_condexpr) {
  Nesting nesting(depth_);
  KEEL_RETURN_IF_ERROR(check_nesting(cur()));
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

Result<ExprPtr> ExpressionParser::binary(const Token& op, ExprPtr l, ExprPtr r) {
  auto b = node(Expr::Kind::kBinary, op);
  b->name = op.text;
  b->args.push_back(std::move(l));
  b->args.push_back(std::move(r));
  return b;
}

Result<ExprPtr> ExpressionParser::parse_or() {
  KEEL_ASSIGN_OR_RETURN(ExprPtr left, parse_and());
  while (is_name("or")) {
    const Token at = cur();
    advance();
    KEEL_ASSIGN_OR_RETURN(ExprPtr right, parse_and());
    KEEL_ASSIGN_OR_RETURN(left, binary(at, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> ExpressionParser::parse_and() {
  KEEL_ASSIGN_OR_RETURN(ExprPtr left, parse_not());
  while (is_name("and")) {
    const Token at = cur();
    advance();
    KEEL_ASSIGN_OR_RETURN(ExprPtr right, parse_not());
    KEEL_ASSIGN_OR_RETURN(left, binary(at, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> ExpressionParser::parse_not() {
  if (is_name("not")) {
    Nesting nesting(depth_);
    KEEL_RETURN_IF_ERROR(check_nesting(cur()));
    auto n = node(Expr::Kind::kUnary, cur());
    n->name = "not";
    advance();
    KEEL_ASSIGN_OR_RETURN(ExprPtr operand, parse_not());
    n->args.push_back(std::move(operand));
    return n;
  }
  return parse_compare();
}

Result<ExprPtr> ExpressionParser::parse_compare() {
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

Result<ExprPtr> ExpressionParser::parse_math1() {
  KEEL_ASSIGN_OR_RETURN(ExprPtr left, parse_concat());
  while (is_op("+") || is_op("-")) {
    const Token at = cur();
    advance();
    KEEL_ASSIGN_OR_RETURN(ExprPtr right, parse_concat());
    KEEL_ASSIGN_OR_RETURN(left, binary(at, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> ExpressionParser::parse_concat() {
  KEEL_ASSIGN_OR_RETURN(ExprPtr left, parse_math2());
  while (is_op("~")) {
    const Token at = cur();
    advance();
    KEEL_ASSIGN_OR_RETURN(ExprPtr right, parse_math2());
    KEEL_ASSIGN_OR_RETURN(left, binary(at, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> ExpressionParser::parse_math2() {
  KEEL_ASSIGN_OR_RETURN(ExprPtr left, parse_pow());
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    const Token at = cur();
    advance();
    KEEL_ASSIGN_OR_RETURN(ExprPtr right, parse_pow());
    KEEL_ASSIGN_OR_RETURN(left, binary(at, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> ExpressionParser::parse_pow() {
  KEEL_ASSIGN_OR_RETURN(ExprPtr left, parse_unary(true));
  while (is_op("**")) {
    const Token at = cur();
    advance();
    KEEL_ASSIGN_OR_RETURN(ExprPtr right, parse_unary(true));
    KEEL_ASSIGN_OR_RETURN(left, binary(at, std::move(left), std::move(right)));
  }
  return left;
}

Result<ExprPtr> ExpressionParser::parse_unary(bool with_filter) {
  ExprPtr n;
  if (is_op("-") || is_op("+")) {
    Nesting nesting(depth_);
    KEEL_RETURN_IF_ERROR(check_nesting(cur()));
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

Result<ExprPtr> ExpressionParser::parse_primary() {
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

Result<ExprPtr> ExpressionParser::parse_postfix(ExprPtr n) {
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

Result<ExprPtr> ExpressionParser::parse_subscript(ExprPtr obj, const Token& at) {
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

Status ExpressionParser::parse_call_args(Expr& call) {
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

Result<ExprPtr> ExpressionParser::parse_call(ExprPtr callee) {
  auto call = node(Expr::Kind::kCall, cur());
  call->line = callee->line;  // errors point at what was called, not at its '('
  call->column = callee->column;
  call->args.push_back(std::move(callee));
  KEEL_RETURN_IF_ERROR(parse_call_args(*call));
  return call;
}

// `| name(args)`; `input` is null inside filter blocks and block sets.
Result<ExprPtr> ExpressionParser::parse_filter(ExprPtr input) {
  const Token at = cur();
  auto f = node(Expr::Kind::kFilter, at);
  KEEL_ASSIGN_OR_RETURN(f->name, expect_name());
  if (!is_known_filter(f->name)) return fail(at, fmt::format("unknown filter '{}'", f->name));
  f->args.push_back(std::move(input));
  if (is_op("(")) KEEL_RETURN_IF_ERROR(parse_call_args(*f));
  return f;
}

Result<ExprPtr> ExpressionParser::parse_filter_expr(ExprPtr n) {
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

}  // namespace keel::jinja
