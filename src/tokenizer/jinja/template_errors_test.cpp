// A template keel cannot render fails with the line and column of what was not understood.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tokenizer/jinja/template.h"

namespace keel::jinja {
namespace {

std::string error_of(const std::string& source, std::map<std::string, Value> vars = {}) {
  auto t = Template::parse(source);
  if (!t.ok()) return t.status().message();
  auto out = t->render(std::move(vars));
  return out.ok() ? "rendered: " + *out : out.status().message();
}

TEST(JinjaErrors, UnknownFilterNamesLineAndColumn) {
  EXPECT_EQ(error_of("line one\n{{ messages | foo }}"), "chat template line 2, column 15: unknown filter 'foo'");
}

TEST(JinjaErrors, UnknownTestIsAParseError) {
  EXPECT_EQ(error_of("{% if x is shiny %}{% endif %}"), "chat template line 1, column 12: unknown test 'shiny'");
}

TEST(JinjaErrors, UnknownTag) {
  EXPECT_EQ(error_of("a\n  {% include 'x.j2' %}"), "chat template line 2, column 6: unknown tag 'include'");
}

TEST(JinjaErrors, UnclosedBlockSaysWhatWasExpected) {
  EXPECT_EQ(error_of("{% for m in messages %}\n{{ m }}"),
            "chat template line 2, column 8: unexpected end of template, expected 'else' or 'endfor'");
}

TEST(JinjaErrors, BadExpression) {
  EXPECT_EQ(error_of("{{ 1 + }}"), "chat template line 1, column 8: unexpected '}}'");
  EXPECT_EQ(error_of("{{ 'abc }}"), "chat template line 1, column 4: unterminated string literal");
  EXPECT_EQ(error_of("{{ a ? b }}"), "chat template line 1, column 6: unexpected character '?'");
}

TEST(JinjaErrors, MismatchedEndTag) {
  EXPECT_EQ(error_of("{% if x %}\n{% endfor %}"),
            "chat template line 2, column 4: unknown tag 'endfor'");
}

TEST(JinjaErrors, RaiseExceptionCarriesTheTemplatesMessage) {
  std::map<std::string, Value> vars;
  vars["raise_exception"] = Value::callable("raise_exception", [](Interpreter&, CallArgs& a) -> Result<Value> {
    return invalid_argument("{}", a.get(0, "message").str());
  });
  EXPECT_EQ(error_of("ok\n\n   {{ raise_exception('roles must alternate') }}", vars),
            "chat template line 3, column 7: roles must alternate");
}

TEST(JinjaErrors, TypeErrorsNameTheOperands) {
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"),
            "chat template line 1, column 8: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(error_of("{{ 2 - 'a' }}"),
            "chat template line 1, column 6: unsupported operand type(s) for -: 'int' and 'str'");
  EXPECT_EQ(error_of("{{ 1 // 0 }}"), "chat template line 1, column 6: division by zero");
}

// Found by fuzz/jinja_template: 2 ** 80 overflowed int64_t (undefined behaviour), and INT64_MIN // -1 traps.
TEST(JinjaErrors, IntegerResultsBeyond64BitsAreErrorsNotWrappedValues) {
  EXPECT_EQ(error_of("{{ 2 ** 80 }}"), "chat template line 1, column 6: integer overflow: 2 ** 80 does not fit in 64 bits");
  EXPECT_EQ(error_of("{{ 9223372036854775807 + 1 }}"),
            "chat template line 1, column 24: integer overflow: 9223372036854775807 + 1 does not fit in 64 bits");
  EXPECT_EQ(error_of("{{ 4611686018427387904 * 2 }}"),
            "chat template line 1, column 24: integer overflow: 4611686018427387904 * 2 does not fit in 64 bits");
  EXPECT_EQ(error_of("{{ (-9223372036854775807 - 1) // -1 }}"),
            "chat template line 1, column 31: integer overflow: -9223372036854775808 // -1 does not fit in 64 bits");
  EXPECT_NE(error_of("{{ -(-9223372036854775807 - 1) }}").find("integer overflow"), std::string::npos);
  EXPECT_EQ(error_of("{{ (-9223372036854775807 - 1) % -1 }} {{ 2 ** 62 }} {{ 7 // -2 }}"),
            "rendered: 0 4611686018427387904 -4");
}

TEST(JinjaErrors, UsingAnUndefinedValueSaysWhy) {
  std::map<std::string, Value> vars;
  vars["m"] = *Value::from_json(nlohmann::ordered_json::parse(R"({"role": "user"})"));
  EXPECT_EQ(error_of("{{ m.content.strip() }}", vars),
            "chat template line 1, column 13: 'dict object' has no attribute 'content'");
  EXPECT_EQ(error_of("{{ nothing + 1 }}"), "chat template line 1, column 12: 'nothing' is undefined");
  EXPECT_EQ(error_of("{{ [1][0].x.y }}", vars), "chat template line 1, column 12: 'int object' has no attribute 'x'");
}

TEST(JinjaErrors, TojsonOfUndefinedFails) {
  EXPECT_EQ(error_of("{{ nothing | tojson }}"),
            "chat template line 1, column 14: Object of type Undefined is not JSON serializable");
}

}  // namespace
}  // namespace keel::jinja
