// Each construct of the interpreter, checked against what jinja2 3.1 renders with transformers' settings
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, ensure_ascii=False tojson).
// The expected strings were produced by jinja2 itself, not typed by hand.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "tokenizer/jinja/template.h"

namespace keel::jinja {
namespace {

std::string render(const std::string& source, const char* vars_json) {
  auto t = Template::parse(source);
  if (!t.ok()) return "PARSE ERROR: " + t.status().message();
  std::map<std::string, Value> vars;
  const auto parsed = nlohmann::ordered_json::parse(vars_json);
  for (const auto& [k, v] : parsed.items()) vars[k] = *Value::from_json(v);
  auto out = t->render(std::move(vars));
  if (!out.ok()) return "RENDER ERROR: " + out.status().message();
  return *out;
}


TEST(Jinja, TrimBlocksRemovesNewlineAfterTag) {
  EXPECT_EQ(render(R"J({% if true %}
A
{% endif %}
B)J",
                   R"J({})J"),
            R"J(A
B)J");
}

TEST(Jinja, LstripBlocksRemovesIndentBeforeTag) {
  EXPECT_EQ(render(R"J(x
    {% if true %}
    in
    {% endif %}
y)J",
                   R"J({})J"),
            R"J(x
    in
y)J");
}

TEST(Jinja, MinusStripsAllWhitespace) {
  EXPECT_EQ(render(R"J(a  
  {%- if true -%}  
  b  
  {%- endif -%}  
  c)J",
                   R"J({})J"),
            R"J(abc)J");
}

TEST(Jinja, VariableMinusStrips) {
  EXPECT_EQ(render(R"J(a 
 {{- 'b' -}} 
 c)J",
                   R"J({})J"),
            R"J(abc)J");
}

TEST(Jinja, PlusKeepsIndent) {
  EXPECT_EQ(render(R"J(x
    {%+ if true %}y{% endif %})J",
                   R"J({})J"),
            R"J(x
    y)J");
}

TEST(Jinja, CommentsAreDropped) {
  EXPECT_EQ(render(R"J(a
  {# note #}
b{#- x -#}  c)J",
                   R"J({})J"),
            R"J(a
bc)J");
}

TEST(Jinja, TrailingNewlineDropped) {
  EXPECT_EQ(render(R"J(a
)J",
                   R"J({})J"),
            R"J(a)J");
}

TEST(Jinja, CrlfBecomesLf) {
  EXPECT_EQ(render(R"J(a
b
{% if true %}
c{% endif %})J",
                   R"J({})J"),
            R"J(a
b
c)J");
}

TEST(Jinja, IndentedTagAtTemplateStart) {
  EXPECT_EQ(render(R"J(   {% if true %}x{% endif %})J",
                   R"J({})J"),
            R"J(x)J");
}

TEST(Jinja, RawBlock) {
  EXPECT_EQ(render(R"J({% raw %}{{ x }}{% endraw %})J",
                   R"J({})J"),
            R"J({{ x }})J");
}

TEST(Jinja, LoopVariables) {
  EXPECT_EQ(render(R"J({% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.cycle('<', '>') }}|{% endfor %})J",
                   R"J({})J"),
            R"J(1032TrueFalse3<|2121FalseFalse3>|3210FalseTrue3<|)J");
}

TEST(Jinja, LoopPrevNext) {
  EXPECT_EQ(render(R"J({% for x in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %})J",
                   R"J({})J"),
            R"J(-2;1-3;2-;)J");
}

TEST(Jinja, LoopFilterCountsOnlyKept) {
  EXPECT_EQ(render(R"J({% for x in range(6) if x is odd %}{{ x }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %})J",
                   R"J({})J"),
            R"J(1/3,3/3,5/3)J");
}

TEST(Jinja, LoopElse) {
  EXPECT_EQ(render(R"J({% for x in [] %}x{% else %}empty{% endfor %})J",
                   R"J({})J"),
            R"J(empty)J");
}

TEST(Jinja, LoopOverDictUnpacksItems) {
  EXPECT_EQ(render(R"J({% for k, v in d.items() %}{{ k }}={{ v }} {% endfor %}{% for k in d %}{{ k }}{% endfor %})J",
                   R"J({"d": {"b": 1, "a": [2]}})J"),
            R"J(b=1 a=[2] ba)J");
}

TEST(Jinja, ReversedMessages) {
  EXPECT_EQ(render(R"J({% for m in messages[::-1] %}{{ m.role }} {% endfor %})J",
                   R"J({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})J"),
            R"J(assistant user system )J");
}

TEST(Jinja, BreakContinue) {
  EXPECT_EQ(render(R"J({% for i in range(10) %}{% if i is even %}{% continue %}{% endif %}{% if i > 6 %}{% break %}{% endif %}{{ i }}{% endfor %})J",
                   R"J({})J"),
            R"J(135)J");
}

TEST(Jinja, SetInLoopDoesNotLeak) {
  EXPECT_EQ(render(R"J({% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }})J",
                   R"J({})J"),
            R"J(21)J");
}

TEST(Jinja, SetInIfLeaks) {
  EXPECT_EQ(render(R"J({% if true %}{% set x = 5 %}{% endif %}{{ x }})J",
                   R"J({})J"),
            R"J(5)J");
}

TEST(Jinja, NamespaceCarriesOutOfLoop) {
  EXPECT_EQ(render(R"J({% set ns = namespace(n=0, found=false) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.n }} {{ ns.found }})J",
                   R"J({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})J"),
            R"J(3 True)J");
}

TEST(Jinja, BlockSetWithFilter) {
  EXPECT_EQ(render(R"J({% set s | upper %} a{{ 1 }} {% endset %}[{{ s }}])J",
                   R"J({})J"),
            R"J([ A1 ])J");
}

TEST(Jinja, TupleUnpackingSet) {
  EXPECT_EQ(render(R"J({% set a, b = 1, 'two' %}{{ a }}{{ b }})J",
                   R"J({})J"),
            R"J(1two)J");
}

TEST(Jinja, MacroDefaultsAndKeywords) {
  EXPECT_EQ(render(R"J({% macro f(a, b='B', c=3) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ f(1) }} {{ f(1, c=9) }} {{ f('x', 'y', 'z') }})J",
                   R"J({})J"),
            R"J(1B3 1B9 xyz)J");
}

TEST(Jinja, CallBlockPassesCaller) {
  EXPECT_EQ(render(R"J({% macro box(t) %}[{{ t }}:{{ caller() }}]{% endmacro %}{% call box('T') %}inner{% endcall %})J",
                   R"J({})J"),
            R"J([T:inner])J");
}

TEST(Jinja, FilterBlock) {
  EXPECT_EQ(render(R"J({% filter trim | upper %}  shout  {% endfilter %})J",
                   R"J({})J"),
            R"J(SHOUT)J");
}

TEST(Jinja, StringEscapes) {
  EXPECT_EQ(render(R"J({{ 'a\nb\t\x41\u00e9\\' }}|{{ "it's" }})J",
                   R"J({})J"),
            R"J(a
b	Aé\|it's)J");
}

TEST(Jinja, FloatPrinting) {
  EXPECT_EQ(render(R"J({{ 1.0 }} {{ -0.5 }} {{ 1e100 }} {{ 1e17 }} {{ 123456789.123 }} {{ 0.0001 }} {{ 0.00001 }} {{ 2.5e-300 }} {{ 1/3 }})J",
                   R"J({})J"),
            R"J(1.0 -0.5 1e+100 1e+17 123456789.123 0.0001 1e-05 2.5e-300 0.3333333333333333)J");
}

TEST(Jinja, IntegerArithmetic) {
  EXPECT_EQ(render(R"J({{ 10 / 4 }} {{ 10 // 4 }} {{ -10 // 4 }} {{ -3 % 5 }} {{ 7.5 // 2 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 1 + 2 * 3 - 4 }})J",
                   R"J({})J"),
            R"J(2.5 2 -3 2 3.0 0.5 64 4 3)J");
}

TEST(Jinja, ConcatBindsTighterThanPlus) {
  EXPECT_EQ(render(R"J({{ 1 ~ 2 + 3 ~ 4 if false else 'e' }}|{{ 'a' ~ 1 ~ 2 }})J",
                   R"J({})J"),
            R"J(e|a12)J");
}

TEST(Jinja, Slicing) {
  EXPECT_EQ(render(R"J({{ 'abcdef'[1:-1] }} {{ 'abcdef'[-2:] }} {{ 'abcdef'[::-2] }} {{ [1,2,3,4][10:] }} {{ [1,2,3,4][-10:2] }} {{ [1,2,3,4][3:0:-1] }} {{ 'héllo wörld'[-5:] }})J",
                   R"J({})J"),
            R"J(bcde ef fdb [] [1, 2] [4, 3, 2] wörld)J");
}

TEST(Jinja, PythonReprOfContainers) {
  EXPECT_EQ(render(R"J({{ [1, 'a', none, true, 1.5, ('t',), {'k': 'v'}] }} {{ {'q': "'", 'd': '"', 'n': '\n'} }} {{ ('a', 'b') }})J",
                   R"J({})J"),
            R"J([1, 'a', None, True, 1.5, ('t',), {'k': 'v'}] {'q': "'", 'd': '"', 'n': '\n'} ('a', 'b'))J");
}

TEST(Jinja, UndefinedIsLenient) {
  EXPECT_EQ(render(R"J([{{ nope }}] {{ nope is defined }} {{ nope | default('d') }} {{ nope ~ 'x' }} {{ nope | length }} {% for a in nope %}never{% endfor %}{{ 'a' in nope }} {{ nope is none }} {{ not nope }})J",
                   R"J({})J"),
            R"J([] False d x 0 False False True)J");
}

TEST(Jinja, MissingKeyIsUndefined) {
  EXPECT_EQ(render(R"J({{ m.missing is defined }} {{ m['missing'] is undefined }} {{ m.get('missing', 'dflt') }} {{ m.missing | default('dd') }})J",
                   R"J({"m": {"a": 1}})J"),
            R"J(False True dflt dd)J");
}

TEST(Jinja, InlineIfWithoutElse) {
  EXPECT_EQ(render(R"J([{{ 'x' if false }}])J",
                   R"J({})J"),
            R"J([])J");
}

TEST(Jinja, StringMethods) {
  EXPECT_EQ(render(R"J({{ 'a,b,,c'.split(',', 1) }} {{ '  a b  '.split() }} {{ 'xyhixy'.strip('xy') }} {{ 'Hi There'.swapcase is defined }} {{ 'ab'.upper() }}{{ 'AB'.lower() }} {{ 'hello world'.title() }} {{ 'a-b'.replace('-', '+') }} {{ '{}-{}'.format(1, 'x') }} {{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ '\n\nx\n'.lstrip('\n') }}|{{ 'x\n\n'.rstrip() }}|)J",
                   R"J({})J"),
            R"J(['a', 'b,,c'] ['a', 'b'] hi True ABab Hello World a+b 1-x True True x
|x|)J");
}

TEST(Jinja, Tojson) {
  EXPECT_EQ(render(R"J({{ d | tojson }} {{ d | tojson(indent=2) }} {{ 'é"' | tojson }} {{ [1.0, 2, none] | tojson }} {{ d | tojson(sort_keys=true) }} {{ 'é' | tojson(true) }})J",
                   R"J({"d": {"z": "ü😀", "a": [1, {"x": null}], "e": {}}})J"),
            R"J({"z": "ü😀", "a": [1, {"x": null}], "e": {}} {
  "z": "ü😀",
  "a": [
    1,
    {
      "x": null
    }
  ],
  "e": {}
} "é\"" [1.0, 2, null] {"a": [1, {"x": null}], "e": {}, "z": "ü😀"} "\u00e9")J");
}

TEST(Jinja, Filters) {
  EXPECT_EQ(render(R"J({{ [3,1,2] | sort | join(',') }} {{ ['b','A'] | sort(case_sensitive=true) }} {{ [{'n': 2}, {'n': 1}] | sort(attribute='n') | map(attribute='n') | list }} {{ {'b': 1, 'a': 2} | dictsort(by='value') }} {{ [1,1,2] | unique | list }} {{ 'abc' | first }}{{ 'abc' | last }} {{ 'Abc' | capitalize }} {{ '  x  ' | trim }} {{ 'x' | center(5) }}| {{ 3.14159 | round(2) }} {{ '7' | int * 2 }} {{ 'a b' | replace(' ', '_') }} {{ [1, 2] | map('string') | join }} {{ 'x\ny' | indent(2, first=true) }} {{ '<&>' | e }} {{ 'a' | safe }} {{ [1,2,3] | count }} {{ -1.5 | abs }} {{ '3.5' | float }})J",
                   R"J({})J"),
            R"J(1,2,3 ['A', 'b'] [1, 2] [('b', 1), ('a', 2)] [1, 2] ac Abc x   x  | 3.14 14 a_b 12   x
  y &lt;&amp;&gt; a 3 1.5 3.5)J");
}

TEST(Jinja, Tests) {
  EXPECT_EQ(render(R"J({{ 1 is odd }} {{ 2 is even }} {{ 6 is divisibleby 3 }} {{ none is none }} {{ 'x' is string }} {{ 1.5 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ {} is mapping }} {{ [] is iterable }} {{ 'a' is sequence }} {{ false is boolean }} {{ true is true }} {{ 1 is true }} {{ 'a' is in 'cat' }} {{ 2 is equalto 2 }} {{ 2 is eq(3) }} {{ 2 is not none }} {{ x is callable }})J",
                   R"J({"x": 1})J"),
            R"J(True True True True True True True True True True True True True False True True False True False)J");
}

TEST(Jinja, Comparisons) {
  EXPECT_EQ(render(R"J({{ 1 < 2 <= 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 == true }} {{ 'a' != 'b' }} {{ 'x' not in 'abc' }} {{ none == none }} {{ {'a': 1} == {'a': 1} }})J",
                   R"J({})J"),
            R"J(True True True True True True True True)J");
}

TEST(Jinja, BooleanOperatorsReturnOperands) {
  EXPECT_EQ(render(R"J({{ 0 or 'b' }} {{ 'a' and 'b' }} {{ '' and 'b' }}| {{ not 0 }} {{ none or [] }})J",
                   R"J({})J"),
            R"J(b b | True [])J");
}

TEST(Jinja, ItemAndAttributeAccess) {
  EXPECT_EQ(render(R"J({{ d.a }} {{ d['a'] }} {{ d.items | default('x') is defined }} {{ l[0] }} {{ l[-1] }} {{ l.0 }} {{ d.keys() | list }})J",
                   R"J({"d": {"a": 1}, "l": [5, 6]})J"),
            R"J(1 1 True 5 6 5 ['a'])J");
}

TEST(Jinja, DictLiteralsKeepOrder) {
  EXPECT_EQ(render(R"J({% set d = {'z': 1, 'a': 2} %}{{ d }} {{ d | tojson }}{% for k in d %}{{ k }}{% endfor %})J",
                   R"J({})J"),
            R"J({'z': 1, 'a': 2} {"z": 1, "a": 2}za)J");
}

TEST(Jinja, Qwen3ThinkSplit) {
  EXPECT_EQ(render(R"J({% set c = '<think>\nr\n</think>\n\nanswer' %}{{ c.split('</think>')[-1].lstrip('\n') }}|{{ c.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') }})J",
                   R"J({})J"),
            R"J(answer|r)J");
}

TEST(Jinja, RawKeepsNewlineAfterOpeningTag) {
  EXPECT_EQ(render(R"J({% raw %}
  a
  {% endraw %}
b)J",
                   R"J({})J"),
            R"J(
  a
b)J");
}

TEST(Jinja, LoopBodyWhitespaceWithTrimAndLstrip) {
  EXPECT_EQ(render(R"J({% for i in [1,2] %}
  {{ i }}
{% endfor %}
)J",
                   R"J({})J"),
            R"J(  1
  2
)J");
}

TEST(Jinja, MinusInsideLoopTags) {
  EXPECT_EQ(render(R"J({% for i in [1,2] -%}
  {{ i }}
{%- endfor %})J",
                   R"J({})J"),
            R"J(12)J");
}

TEST(Jinja, PlusDisablesLstripMinusStrips) {
  EXPECT_EQ(render(R"J(text
    {%+ if true %}kept{% endif %}
    {%- if true %}gone{% endif %})J",
                   R"J({})J"),
            R"J(text
    keptgone)J");
}

TEST(Jinja, MacroBodyWhitespace) {
  EXPECT_EQ(render(R"J({% macro f() %}
  body
{% endmacro %}
[{{ f() }}])J",
                   R"J({})J"),
            R"J([  body
])J");
}

TEST(Jinja, RoundIsHalfEvenOnExactValue) {
  EXPECT_EQ(render(R"J({{ 2.675 | round(2) }} {{ 0.5 | round }} {{ 1.5 | round }} {{ 2.5 | round }} {{ 2.1 | round(0, 'floor') }})J",
                   R"J({})J"),
            R"J(2.67 0.0 2.0 2.0 2.0)J");
}

TEST(Jinja, JinjaTitleVsStrTitle) {
  EXPECT_EQ(render(R"J({{ "o'neil mc-donald" | title }} {{ "o'neil".title() }})J",
                   R"J({})J"),
            R"J(O'neil Mc-Donald O'Neil)J");
}

TEST(Jinja, RangeAndSums) {
  EXPECT_EQ(render(R"J({{ range(5)[::-1] | list }} {{ range(3, 0, -1) | list }} {{ true + 1 }} {{ 1 in [true] }})J",
                   R"J({})J"),
            R"J([4, 3, 2, 1, 0] [3, 2, 1] 2 True)J");
}

TEST(Jinja, MapWithDefault) {
  EXPECT_EQ(render(R"J({{ messages | map(attribute='missing', default='?') | list }} {{ messages | selectattr('role', 'in', ['user']) | map(attribute='role') | list }})J",
                   R"J({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})J"),
            R"J(['?', '?', '?'] ['user'])J");
}

}  // namespace
}  // namespace keel::jinja
