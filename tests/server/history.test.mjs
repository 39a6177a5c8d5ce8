// An agent's second turn as the official clients send it: tool calls, tool results and thinking in the history,
// rendered through the demo model's own template; count_tokens; keep-alive comments the parsers skip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const baseURL = process.env.KEEL_URL;
const apiKey = process.env.KEEL_API_KEY;
const model = process.env.KEEL_MODEL;
const openai = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0 });
const anthropic = new Anthropic({ baseURL, apiKey, maxRetries: 0 });

const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];

async function countTokens(body) {
  const res = await fetch(`${baseURL}/v1/messages/count_tokens?beta=true`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': apiKey, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200);
  return (await res.json()).input_tokens;
}

test('openai: a second turn after a tool call (content null, arguments a string) is answered', async () => {
  const history = [
    { role: 'user', content: 'Weather in Oslo?' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: 'cold and clear' },
  ];
  const r = await openai.chat.completions.create({ model, messages: history, tools, max_tokens: 8, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  // The tool result is in the prompt: the same history without it is shorter.
  const without = await openai.chat.completions.create({ model, messages: history.slice(0, 2), tools, max_tokens: 1 });
  assert.ok(r.usage.prompt_tokens > without.usage.prompt_tokens);
  let text = '';
  for await (const chunk of await openai.chat.completions.create({ model, messages: history, tools, max_tokens: 8, temperature: 0, stream: true })) {
    for (const c of chunk.choices) text += c.delta.content ?? '';
  }
  assert.equal(text, r.choices[0].message.content);
});

test('anthropic: tool_use, tool_result and thinking history with Claude Code fields is answered', async () => {
  const body = {
    model,
    max_tokens: 4000,  // above the context (capped), below the SDK's non-streaming limit
    system: [{ type: 'text', text: 'You are an agent.', cache_control: { type: 'ephemeral' } }],
    thinking: { type: 'adaptive' },
    metadata: { user_id: 'test' },
    tools: [{ name: 'get_weather', description: 'Weather in a city', input_schema: tools[0].function.parameters }],
    messages: [
      { role: 'user', content: 'Weather in Oslo?' },
      { role: 'assistant', content: [
        { type: 'thinking', thinking: 'I will look it up.', signature: 'sig' },
        { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Oslo' } },
      ] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01', content: [{ type: 'text', text: 'cold' }] }] },
    ],
    temperature: 0,
  };
  const m = await anthropic.messages.create(body);
  assert.equal(m.type, 'message');
  assert.ok(['end_turn', 'max_tokens'].includes(m.stop_reason));
  // count_tokens answers what this request reported as its prompt.
  const counted = await countTokens({ ...body, max_tokens: undefined });
  assert.equal(counted, m.usage.input_tokens + m.usage.cache_read_input_tokens);
  const stream = anthropic.messages.stream(body);
  const final = await stream.finalMessage();
  assert.equal(final.content[0].text, m.content[0].text);
});

test('anthropic: count_tokens equals input_tokens of the same request on a cold cache', async () => {
  const body = { model, max_tokens: 4, messages: [{ role: 'user', content: `count me ${Date.now()}` }], cache_salt: `s${Date.now()}` };
  const m = await anthropic.messages.create(body);
  assert.equal(m.usage.cache_read_input_tokens, 0);
  assert.equal(await countTokens(body), m.usage.input_tokens);
});

test('images are refused with a 400 that names vision, on both APIs', async () => {
  await assert.rejects(
    anthropic.messages.create({ model, max_tokens: 4, messages: [{ role: 'user', content: [
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
    ] }] }),
    (err) => err.status === 400 && /no vision/.test(err.message),
  );
  await assert.rejects(
    openai.chat.completions.create({ model, max_tokens: 4, messages: [{ role: 'user', content: [
      { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
    ] }] }),
    (err) => err.status === 400 && /no vision/.test(err.message),
  );
});
