// Each budget of a render, hit on purpose: the render fails with an error naming the budget and its limit, a
// template just inside the budget still renders, and nothing overflows the stack or allocates without bound.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <map>
#include <functional>
#include <string>
#include <thread>

#include "tokenizer/jinja/template.h"

namespace keel::jinja {
namespace {

// The render's output, or "ERROR: " + the parse or render error. The clock stands still unless a test passes
// one: no budget but wall time may depend on how busy the machine is.
std::string run(const std::string& source, const RenderBudget& budget = {}, std::function<int64_t()> clock = nullptr,
                std::map<std::string, Value> vars = {}) {
  auto t = Template::parse(source, {}, budget);
  if (!t.ok()) return "ERROR: " + t.status().message();
  if (!clock) clock = [] { return int64_t{0}; };
  auto out = t->render(std::move(vars), std::move(clock));
  if (!out.ok()) return "ERROR: " + out.status().message();
  return *out;
}

// Runs `fn` on a thread with an 8 MiB stack, the default of the server's worker threads.
template <typename Fn>
void on_worker_thread(Fn fn) {
  std::thread t(fn);
  t.join();
}

::testing::AssertionResult failed_with(const std::string& out, const std::string& budget_message) {
  if (out.rfind("ERROR: ", 0) == 0 && out.find(budget_message) != std::string::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "expected an error with \"" << budget_message << "\", got: "
                                       << out.substr(0, 300);
}

TEST(RenderBudget, AMacroRecursingForeverStopsAtTheDepthBudget) {
  on_worker_thread([] {
    std::string out = run("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
    EXPECT_TRUE(failed_with(out, "chat template exceeded the recursion-depth budget (512)"));
    EXPECT_NE(out.find("line 1, column"), std::string::npos) << out;
  });
  // Recursion that ends renders.
  EXPECT_EQ(run("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(30) | length }}"),
            "51");
}

TEST(RenderBudget, LoopIterationsAreCountedOverTheWholeRender) {
  RenderBudget b;
  b.max_loop_iterations = 1000;
  // 10 outer + 10 * 99 inner = 1000: exactly the budget.
  EXPECT_EQ(run("{% for i in range(10) %}{% for j in range(99) %}{% endfor %}{% endfor %}ok", b), "ok");
  EXPECT_TRUE(failed_with(run("{% for i in range(10) %}{% for j in range(100) %}{% endfor %}{% endfor %}", b),
                          "chat template exceeded the loop-iteration budget (1000)"));
  // The default stops a billion iterations long before they run.
  EXPECT_TRUE(failed_with(run("{% for i in range(1000000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"),
                          "chat template exceeded the loop-iteration budget (1000000)"));
}

TEST(RenderBudget, RangeLengthIsCheckedBeforeTheListIsBuilt) {
  EXPECT_TRUE(failed_with(run("{{ range(10 ** 12) | length }}"), "exceeded the range-length budget (1000000)"));
  EXPECT_TRUE(failed_with(run("{{ range(-5, 9223372036854775807, 1) | length }}"), "range-length budget"));
  EXPECT_TRUE(failed_with(run("{{ range(0, -9223372036854775807, -3) | length }}"), "range-length budget"));
  EXPECT_EQ(run("{{ range(1000000) | length }} {{ range(10, 0, -3) | list }}"), "1000000 [10, 7, 4, 1]");
}

TEST(RenderBudget, AnyOneStringIsBoundedHoweverItIsBuilt) {
  RenderBudget b;
  b.max_string_bytes = 1 << 20;
  const std::string hit = "chat template exceeded the string-bytes budget (1048576)";
  EXPECT_TRUE(failed_with(run("{{ 'a' * 10 ** 12 }}"), "string-bytes budget (67108864)"));
  EXPECT_TRUE(failed_with(run("{{ 'ab' * 600000 }}", b), hit));
  EXPECT_EQ(run("{{ ('ab' * 500000) | length }}", b), "1000000");
  const char* doubling =
      "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s {} ns.s %}{% endfor %}";
  for (const char* op : {"~", "+"}) {
    std::string source = doubling;
    source.replace(source.find("{}"), 2, op);
    EXPECT_TRUE(failed_with(run(source, b), hit)) << op;
  }
  const std::string big = "{% set s = 'x' * 2000 %}";
  EXPECT_TRUE(failed_with(run(big + "{{ ([s] * 2000) | join(',') }}", b), hit));
  EXPECT_TRUE(failed_with(run(big + "{{ ','.join([s] * 2000) }}", b), hit));
  EXPECT_TRUE(failed_with(run(big + "{{ s | replace('x', s) }}", b), hit));
  EXPECT_TRUE(failed_with(run(big + "{{ s.replace('', s) }}", b), hit));
  EXPECT_TRUE(failed_with(run("{{ 'x' | center(10 ** 12) }}", b), hit));
  EXPECT_TRUE(failed_with(run("{{ 'x'.ljust(10 ** 12) }}", b), hit));
  EXPECT_TRUE(failed_with(run("{{ 'x'.zfill(10 ** 12) }}", b), hit));
  EXPECT_TRUE(failed_with(run("{{ 'a\nb' | indent(10 ** 12) }}", b), hit));
  EXPECT_TRUE(failed_with(run("{{ '%099999999999d' | format(1) }}", b), hit));
  EXPECT_TRUE(failed_with(run("{{ '{:>99999999999}'.format(1) }}", b), hit));
  EXPECT_TRUE(failed_with(run(big + "{{ ([s] * 2000) | tojson }}", b), hit));
  EXPECT_TRUE(failed_with(run("{{ [1, [2]] | tojson(indent=10 ** 9) }}", b), hit));
  // A list holding a list twice, 60 levels down, would print 2^60 items.
  const std::string dag = "{% set ns = namespace(a=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}";
  EXPECT_TRUE(failed_with(run(dag + "{{ ns.a }}", b), hit));
  EXPECT_TRUE(failed_with(run(dag + "{{ ns.a | string }}", b), hit));
  EXPECT_TRUE(failed_with(run(dag + "{{ ns.a | tojson }}", b), hit));
  // Comparing two such lists remembers the pairs already found equal instead of walking 2^60 of them.
  const std::string two = "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}"
                          "{% set ns.b = [ns.b, ns.b] %}{% endfor %}";
  EXPECT_EQ(run(two + "{{ ns.a == ns.b }} {{ ns.a < ns.b }} {{ ns.a in [ns.b] }}"), "True False True");
}

TEST(RenderBudget, ListsBuiltByRepetitionOrExtendAreBounded) {
  EXPECT_TRUE(failed_with(run("{{ ([1] * 10 ** 9) | length }}"), "chat template exceeded the list-items budget (1000000)"));
  EXPECT_TRUE(failed_with(
      run("{% set l = [1] %}{% for i in range(40) %}{% set _ = l.extend(l) %}{% endfor %}{{ l | length }}"),
      "list-items budget (1000000)"));
  EXPECT_EQ(run("{{ ([1, 2] * 3) | length }}"), "6");
}

TEST(RenderBudget, OutputBytesAreBounded) {
  RenderBudget b;
  b.max_output_bytes = 5000;
  EXPECT_EQ(run("{% for i in range(50) %}{{ 'x' * 100 }}{% endfor %}", b).size(), 5000u);
  EXPECT_TRUE(failed_with(run("{% for i in range(51) %}{{ 'x' * 100 }}{% endfor %}", b),
                          "chat template exceeded the output-bytes budget (5000)"));
}

TEST(RenderBudget, IntegerExponentIsBounded) {
  EXPECT_TRUE(failed_with(run("{{ 2 ** 100000000000 }}"), "chat template exceeded the exponent budget (1024)"));
  EXPECT_EQ(run("{{ 2 ** 10 }} {{ 1 ** 1024 }} {{ 2.0 ** 0.5 }}"), "1024 1 1.4142135623730951");
}

TEST(RenderBudget, WallTimeIsReadFromTheCallersClock) {
  RenderBudget b;
  b.max_wall_micros = 5'000'000;
  int64_t now = 0;
  auto one_second_per_read = [&now] { return now += 1'000'000; };
  EXPECT_TRUE(failed_with(run("{% for i in range(100) %}{{ i }}{% endfor %}", b, one_second_per_read),
                          "chat template exceeded the wall-time budget (5000000)"));
  auto frozen = [] { return int64_t{42}; };
  EXPECT_EQ(run("{% for i in range(3) %}{{ i }}{% endfor %}", b, frozen), "012");
}

TEST(RenderBudget, TheParserBoundsNestingAndExpressionDepth) {
  const std::string hit = "chat template exceeded the parse-depth budget (256)";
  on_worker_thread([&] {
    std::string parens = "{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}";
    EXPECT_TRUE(failed_with(run(parens), hit));
    for (const char* unary : {"not ", "- "}) {
      std::string chain = "{{ ";
      for (int i = 0; i < 50000; ++i) chain += unary;
      EXPECT_TRUE(failed_with(run(chain + "1 }}"), hit)) << unary;
    }
    std::string chain = "{{ 1";
    for (int i = 0; i < 100000; ++i) chain += " ~ 1";
    EXPECT_TRUE(failed_with(run(chain + " }}"), hit));
    std::string attrs = "{{ x";
    for (int i = 0; i < 100000; ++i) attrs += ".a";
    EXPECT_TRUE(failed_with(run(attrs + " }}"), hit));
    std::string filters = "{{ 'x'";
    for (int i = 0; i < 100000; ++i) filters += " | trim";
    EXPECT_TRUE(failed_with(run(filters + " }}"), hit));
    std::string ifs;
    for (int i = 0; i < 100000; ++i) ifs += "{% if true %}";
    EXPECT_TRUE(failed_with(run(ifs), hit));
  });
  std::string chain = "{{ 1";
  for (int i = 0; i < 200; ++i) chain += " + 1";
  EXPECT_EQ(run(chain + " }}"), "201");
}

TEST(RenderBudget, ValuesNestedPastTheValueDepthAreRefusedOrElided) {
  nlohmann::ordered_json deep = nlohmann::ordered_json::array();
  nlohmann::ordered_json* cur = &deep;
  for (int i = 0; i < 200; ++i) {
    cur->push_back(nlohmann::ordered_json::array());
    cur = &cur->back();
  }
  auto v = Value::from_json(deep);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "value nests deeper than 128 levels");

  // A list that contains itself prints as Python prints it, compares equal to itself, and is not JSON.
  const std::string self = "{% set l = [1] %}{% set _ = l.append(l) %}";
  on_worker_thread([&] {
    std::string printed = run(self + "{{ l }}");
    EXPECT_EQ(printed.rfind("[1, [1, [1, ", 0), 0u) << printed.substr(0, 100);
    EXPECT_NE(printed.find("[...]"), std::string::npos);
    EXPECT_EQ(run(self + "{{ l == l }} {{ [l] == [l] }}"), "True True");
    EXPECT_TRUE(failed_with(run(self + "{{ l | tojson }}"), "tojson: value nests deeper than 128 levels"));
  });
}

TEST(RenderBudget, ListsAndDictsNestedThreeHundredThousandDeepAreDestroyedWithoutRecursion) {
  on_worker_thread([] {
    EXPECT_EQ(run("{% set ns = namespace(a=[]) %}{% for i in range(300000) %}{% set ns.a = [ns.a] %}{% endfor %}"
                  "{{ ns.a | length }}"),
              "1");
    EXPECT_EQ(run("{% set ns = namespace(d={}) %}{% for i in range(300000) %}{% set ns.d = {'k': ns.d} %}{% endfor %}"
                  "{{ ns.d | length }}"),
              "1");
  });
}

}  // namespace
}  // namespace keel::jinja
