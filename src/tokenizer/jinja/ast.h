// The syntax tree of a template: expressions and statements, each remembering where it came from so
// runtime errors can name the line and column.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace keel::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Expr {
  Expr() = default;
  Expr(const Expr&) = delete;
  Expr& operator=(const Expr&) = delete;
  // A chain like `a ~ b ~ c ~ ...` nests as deep as it is long: children are torn down from a stack, not by
  // recursion, so no template can overflow the stack by being destroyed.
  ~Expr() {
    std::vector<ExprPtr> pending;
    auto adopt_children = [&pending](Expr& e) {
      for (auto& a : e.args) {
        if (a) pending.push_back(std::move(a));
      }
      for (auto& kv : e.kwargs) {
        if (kv.second) pending.push_back(std::move(kv.second));
      }
    };
    adopt_children(*this);
    while (!pending.empty()) {
      ExprPtr e = std::move(pending.back());
      pending.pop_back();
      adopt_children(*e);
    }  // each `e` dies here with no children left
  }

  enum class Kind {
    kLiteral,   // value
    kName,      // name
    kList,      // args
    kTuple,     // args
    kDict,      // args: key, value, key, value...
    kAttr,      // args[0].name
    kItem,      // args[0][args[1]]
    kSlice,     // args[0][args[1]:args[2]:args[3]], absent parts are null
    kCall,      // args[0](args[1..], kwargs)
    kFilter,    // args[0] | name(args[1..], kwargs); args[0] null inside a filter block
    kTest,      // args[0] is [not] name(args[1..])
    kUnary,     // op args[0]: "-", "+", "not"
    kBinary,    // args[0] op args[1]: + - * / // % ** ~ and or
    kCompare,   // args[0] ops[0] args[1] ops[1] args[2]...: == != < <= > >= in notin
    kCond,      // args[1] if args[0] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  int column = 0;
  Value value;
  std::string name;
  std::vector<std::string> ops;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;
};

struct Stmt {
  enum class Kind {
    kText,         // text
    kEmit,         // {{ expr }}
    kIf,           // conds[i] -> bodies[i]; else_body
    kFor,          // targets in expr [if cond]: body; else_body
    kSet,          // targets (or target_obj.attr) = expr, or a block set capturing body through filters
    kMacro,        // name(params = defaults): body
    kCallBlock,    // {% call(params) expr %} body
    kFilterBlock,  // filters applied to body's output
    kBreak,
    kContinue,
  };
  Kind kind;
  int line = 0;
  int column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  Body body;
  Body else_body;
  std::vector<std::string> targets;  // names bound by for/set, params of macro/call
  std::string attr;                   // set ns.attr: targets[0] is the namespace variable
  std::vector<ExprPtr> defaults;      // macro parameter defaults, null where none
  std::vector<ExprPtr> filters;       // block set / filter block chain (kFilter with null input)
  bool unpack = false;                // for a, b in ... / set a, b = ...
};

}  // namespace keel::jinja
