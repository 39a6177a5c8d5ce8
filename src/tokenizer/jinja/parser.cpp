#include "tokenizer/jinja/parser.h"

#include <fmt/format.h>

#include <initializer_list>
#include <utility>
#include <vector>

#include "tokenizer/jinja/expression_parser.h"

namespace keel::jinja {
namespace {

// The statement half: a template is text, {{ expressions }} and {% statements %} with bodies.
class Parser : public ExpressionParser {
 public:
  using ExpressionParser::ExpressionParser;

  Result<Body> parse_template() {
    std::string stopped;
    KEEL_ASSIGN_OR_RETURN(Body body, parse_body({}, &stopped));
    KEEL_RETURN_IF_ERROR(check_expression_depth(body));
    return body;
  }

 private:
  StmtPtr stmt(Stmt::Kind kind, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  // Operator chains (`a + b + ...`, `x|f|g...`, `a.b.c...`) are built by loops, not recursion, so the parser's
  // nesting count does not see how deep they make a tree: each tree is measured here, with a stack.
  Status check_expression_depth(const Body& body) const {
    for (const auto& s : body) {
      for (const Expr* e : {s->expr.get(), s->cond.get()}) KEEL_RETURN_IF_ERROR(check_tree(e));
      for (const auto& e : s->conds) KEEL_RETURN_IF_ERROR(check_tree(e.get()));
      for (const auto& e : s->defaults) KEEL_RETURN_IF_ERROR(check_tree(e.get()));
      for (const auto& e : s->filters) KEEL_RETURN_IF_ERROR(check_tree(e.get()));
      for (const auto& b : s->bodies) KEEL_RETURN_IF_ERROR(check_expression_depth(b));
      KEEL_RETURN_IF_ERROR(check_expression_depth(s->body));
      KEEL_RETURN_IF_ERROR(check_expression_depth(s->else_body));
    }
    return Status();
  }

  Status check_tree(const Expr* root) const {
    std::vector<std::pair<const Expr*, int>> pending;
    if (root) pending.emplace_back(root, 1);
    while (!pending.empty()) {
      auto [e, depth] = pending.back();
      pending.pop_back();
      if (depth > max_depth()) {
        return template_error(e->line, e->column, budget_exceeded("parse-depth", max_depth()).message());
      }
      for (const auto& a : e->args) {
        if (a) pending.emplace_back(a.get(), depth + 1);
      }
      for (const auto& kv : e->kwargs) {
        if (kv.second) pending.emplace_back(kv.second.get(), depth + 1);
      }
    }
    return Status();
  }

  // Parses statements until a `{% name` with name in `stops` (consumed, stored in *stopped) or the end.
  Result<Body> parse_body(std::initializer_list<const char*> stops, std::string* stopped) {
    Nesting nesting(depth_);
    KEEL_RETURN_IF_ERROR(check_nesting(cur()));
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
};

}  // namespace

Result<Body> parse(const std::string& source, const LexOptions& options, int max_depth) {
  KEEL_ASSIGN_OR_RETURN(std::vector<Token> tokens, lex(source, options));
  return Parser(std::move(tokens), max_depth).parse_template();
}

}  // namespace keel::jinja
