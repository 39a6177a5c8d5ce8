// Tool round trips as the official clients make them, against keel's server over a scripted generator
// (fake_serve.cpp, started by run_fake.sh: KEEL_URL): the model answers with reasoning, text and two tool calls,
// and with a final text once the tools' results come back. The SDKs' own stream accumulators are the oracle for
// the streamed deltas: what they assemble must equal the non-streamed answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const baseURL = process.env.KEEL_URL;
const openai = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'none', maxRetries: 0 });
const anthropic = new Anthropic({ baseURL, apiKey: 'none', maxRetries: 0 });
const model = 'test-model';
const question = [{ role: 'user', content: 'What is the weather in Paris, and the time there?' }];

const weather = {
  name: 'get_weather',
  description: 'Current weather in a city',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
    required: ['city'],
  },
};
const time = {
  name: 'get_time',
  description: 'Current time in a time zone',
  parameters: { type: 'object', properties: { tz: { type: 'string' } }, required: ['tz'] },
};
const openaiTools = [weather, time].map((f) => ({ type: 'function', function: f }));
const anthropicTools = [weather, time].map((f) => ({ name: f.name, description: f.description, input_schema: f.parameters }));

const expectedCalls = [
  { name: 'get_weather', args: { city: 'Paris', unit: 'celsius' } },
  { name: 'get_time', args: { tz: 'Europe/Paris' } },
];

test('openai: tool calls, then the tool results give the final answer', async () => {
  const r = await openai.chat.completions.create({ model, messages: question, tools: openaiTools });
  const msg = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(msg.content, 'Let me look that up.');
  assert.equal(msg.reasoning_content, 'The user wants the weather in Paris and the time.');
  assert.deepEqual(
    msg.tool_calls.map((c) => ({ name: c.function.name, args: JSON.parse(c.function.arguments) })),
    expectedCalls,
  );
  for (const c of msg.tool_calls) {
    assert.match(c.id, /^call_[A-Za-z0-9]{24}$/);
    assert.equal(c.type, 'function');
  }

  const results = msg.tool_calls.map((c) => ({
    role: 'tool',
    tool_call_id: c.id,
    content: c.function.name === 'get_weather' ? '{"weather": "sunny", "degrees": 21}' : '{"time": "14:05"}',
  }));
  const second = await openai.chat.completions.create({
    model,
    messages: [...question, { role: 'assistant', content: null, tool_calls: msg.tool_calls }, ...results],
    tools: openaiTools,
  });
  assert.equal(second.choices[0].finish_reason, 'stop');
  assert.equal(second.choices[0].message.content, 'It is sunny and 21 degrees in Paris.');
  assert.equal(second.choices[0].message.tool_calls, undefined);
});

test('openai: the SDK assembles the streamed tool call deltas into the non-streamed message', async () => {
  // openai 4 has the helper under beta; 5 and later under chat.completions.
  const completions = openai.chat.completions.stream ? openai.chat.completions : openai.beta.chat.completions;
  const stream = completions.stream({ model, messages: question, tools: openaiTools });
  const reasoning = [];
  stream.on('chunk', (chunk) => {
    const d = chunk.choices[0]?.delta;
    if (d?.reasoning_content) reasoning.push(d.reasoning_content);
  });
  const final = await stream.finalChatCompletion();
  const msg = final.choices[0].message;
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.equal(msg.content, 'Let me look that up.');
  assert.equal(reasoning.join(''), 'The user wants the weather in Paris and the time.');
  assert.deepEqual(
    msg.tool_calls.map((c) => ({ name: c.function.name, args: JSON.parse(c.function.arguments) })),
    expectedCalls,
  );
  assert.notEqual(msg.tool_calls[0].id, msg.tool_calls[1].id);
});

test('openai: tool_choice none leaves the text as generated; a bad tool_choice is a 400', async () => {
  const r = await openai.chat.completions.create({ model, messages: question, tools: openaiTools, tool_choice: 'none' });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.match(r.choices[0].message.content, /^Let me look that up.\n<tool_call>\n\{"name": "get_weather"/);
  await assert.rejects(
    openai.chat.completions.create({
      model,
      messages: question,
      tools: openaiTools,
      tool_choice: { type: 'function', function: { name: 'nope' } },
    }),
    (e) => e.status === 400 && e.param === 'tool_choice.function.name',
  );
});

test('anthropic: thinking, text and tool_use blocks; the stream assembles to the same message', async () => {
  const params = { model, max_tokens: 1024, messages: question, tools: anthropicTools };
  const m = await anthropic.messages.create(params);
  assert.equal(m.stop_reason, 'tool_use');
  assert.deepEqual(
    m.content.map((b) => b.type),
    ['thinking', 'text', 'tool_use', 'tool_use'],
  );
  assert.equal(m.content[0].thinking, 'The user wants the weather in Paris and the time.');
  assert.equal(m.content[1].text, 'Let me look that up.');
  assert.deepEqual(m.content.slice(2).map((b) => ({ name: b.name, args: b.input })), expectedCalls);
  for (const b of m.content.slice(2)) assert.match(b.id, /^toolu_[A-Za-z0-9]{24}$/);

  const streamed = await anthropic.messages.stream(params).finalMessage();
  assert.equal(streamed.stop_reason, 'tool_use');
  const withoutIds = (blocks) => blocks.map(({ id, ...rest }) => rest);
  assert.deepEqual(withoutIds(streamed.content), withoutIds(m.content));
});

test('anthropic: disable_parallel_tool_use keeps the first call only', async () => {
  const m = await anthropic.messages.create({
    model,
    max_tokens: 1024,
    messages: question,
    tools: anthropicTools,
    tool_choice: { type: 'auto', disable_parallel_tool_use: true },
  });
  assert.equal(m.stop_reason, 'tool_use');
  assert.deepEqual(m.content.filter((b) => b.type === 'tool_use').map((b) => b.name), ['get_weather']);
});
