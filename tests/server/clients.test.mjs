// keel's HTTP API as the official clients see it. Started by run.sh against `keel serve` (KEEL_URL, KEEL_API_KEY,
// KEEL_MODEL); temperature 0 everywhere a test compares texts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const baseURL = process.env.KEEL_URL;
const apiKey = process.env.KEEL_API_KEY;
const model = process.env.KEEL_MODEL;
const openai = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0 });
const anthropic = new Anthropic({ baseURL, apiKey, maxRetries: 0 });
const messages = [{ role: 'user', content: 'Tell me about the sea.' }];

async function streamedChat(params) {
  const stream = await openai.chat.completions.create({ ...params, stream: true });
  let text = '';
  let finish = null;
  let role = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta.role) role = choice.delta.role;
      if (choice.delta.content) text += choice.delta.content;
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  return { text, finish, role, usage };
}

test('models lists the served model and its alias; both are accepted', async () => {
  const list = await openai.models.list();
  assert.deepEqual(list.data.map((m) => m.id), [model, 'keel-alias']);
  const r = await openai.chat.completions.create({ model: 'keel-alias', messages, max_tokens: 2 });
  assert.equal(r.model, 'keel-alias');
});

test('chat completion: text, finish reason and usage', async () => {
  const r = await openai.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  const tok = await (await fetch(`${baseURL}/tokenize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ model, messages }),
  })).json();
  assert.equal(r.usage.prompt_tokens, tok.count);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 24);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('chat streaming equals the non-streamed text at temperature 0, with usage', async () => {
  const params = { model, messages, max_tokens: 32, temperature: 0 };
  const plain = await openai.chat.completions.create(params);
  const streamed = await streamedChat({ ...params, stream_options: { include_usage: true } });
  assert.equal(streamed.role, 'assistant');
  assert.equal(streamed.text, plain.choices[0].message.content);
  assert.equal(streamed.finish, plain.choices[0].finish_reason);
  assert.deepEqual(streamed.usage, plain.usage);
});

test('completions: streaming equals non-streamed text; max_tokens gives length', async () => {
  const params = { model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 };
  const plain = await openai.completions.create(params);
  assert.equal(plain.object, 'text_completion');
  assert.equal(plain.usage.completion_tokens, 16);
  assert.equal(plain.choices[0].finish_reason, 'length');
  let text = '';
  for await (const chunk of await openai.completions.create({ ...params, stream: true })) {
    for (const c of chunk.choices) text += c.text;
  }
  assert.equal(text, plain.choices[0].text);
});

test('max_tokens: 1 generates exactly one token', async () => {
  const r = await openai.chat.completions.create({ model, messages, max_tokens: 1, temperature: 0 });
  assert.equal(r.usage.completion_tokens, 1);
  assert.equal(r.choices[0].finish_reason, 'length');
});

test('stop strings cut the text before the stop, streamed or not', async () => {
  const params = { model, prompt: 'The sea', max_tokens: 40, temperature: 0 };
  const full = (await openai.completions.create(params)).choices[0].text;
  // A stop string from the middle of what the model writes anyway.
  const at = Math.floor(full.length / 2);
  const stop = full.slice(at, at + 3);
  const expected = full.slice(0, full.indexOf(stop));
  const r = await openai.completions.create({ ...params, stop: [stop] });
  assert.equal(r.choices[0].text, expected);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(r.usage.completion_tokens < 40);
  let text = '';
  let finish = null;
  for await (const chunk of await openai.completions.create({ ...params, stop, stream: true })) {
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, expected);
  assert.equal(finish, 'stop');
});

test('context guard: max_tokens is capped by the context; a prompt too long is a 400 with the numbers', async () => {
  // Agents send max_tokens of 32,000 or more whatever the model: it is a cap, and the context is the lower one.
  // A prompt that leaves ~100 tokens of the context: the answer stops there, with `length`.
  const contextLen = (await openai.models.list()).data[0].max_model_len;
  const tokenize = async (body) => (await (await fetch(`${baseURL}/tokenize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ model, ...body }),
  })).json()).count;
  const perRepeat = (await tokenize({ prompt: 'Tell me about the sea. '.repeat(100), add_special_tokens: false })) / 100;
  const near = [{ role: 'user', content: 'Tell me about the sea. '.repeat(Math.floor((contextLen - 120) / perRepeat)) }];
  const promptTokens = await tokenize({ messages: near });
  assert.ok(contextLen - promptTokens > 0 && contextLen - promptTokens < 300, `${promptTokens} of ${contextLen}`);
  const capped = await openai.chat.completions.create({ model, messages: near, max_tokens: 1000000, temperature: 0, ignore_eos: true });
  assert.equal(capped.choices[0].finish_reason, 'length');
  assert.equal(capped.usage.total_tokens, contextLen);
  const long = [{ role: 'user', content: 'Tell me about the sea. '.repeat(2000) }];
  await assert.rejects(
    openai.chat.completions.create({ model, messages: long, max_tokens: 10 }),
    (err) => {
      assert.equal(err.status, 400);
      assert.equal(err.code, 'context_length_exceeded');
      assert.match(err.message, /maximum context length is \d+ tokens. However, you requested \d+ tokens \(\d+ in the prompt, 1 for the completion\)/);
      return true;
    },
  );
  await assert.rejects(
    anthropic.messages.create({ model, max_tokens: 4000, messages: long }),
    (err) => err.status === 400 && err.error?.error?.type === 'invalid_request_error',
  );
  const m = await anthropic.messages.create({ model, max_tokens: 4000, messages, temperature: 0 });
  assert.ok(['end_turn', 'max_tokens'].includes(m.stop_reason));
});

test('unknown model: 404', async () => {
  await assert.rejects(openai.chat.completions.create({ model: 'no-such-model', messages }), (err) => err.status === 404);
});

test('auth: a wrong key is refused on both APIs, /health needs none', async () => {
  const bad = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (err) => err.status === 401 && err.type === 'authentication_error');
  const badAnthropic = new Anthropic({ baseURL, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(
    badAnthropic.messages.create({ model, max_tokens: 4, messages }),
    (err) => err.status === 401 && err.error?.error?.type === 'authentication_error',
  );
  const health = await fetch(`${baseURL}/health`);
  assert.equal(health.status, 200);
});

test('anthropic messages: text, stop reasons and usage', async () => {
  const r = await anthropic.messages.create({ model, max_tokens: 12, messages, temperature: 0 });
  assert.equal(r.type, 'message');
  assert.equal(r.role, 'assistant');
  assert.equal(r.content[0].type, 'text');
  assert.equal(r.stop_reason, 'max_tokens');
  assert.equal(r.usage.output_tokens, 12);
  assert.ok(r.usage.input_tokens > 0);
  const text = r.content[0].text;
  const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
  const s = await anthropic.messages.create({ model, max_tokens: 12, messages, temperature: 0, stop_sequences: [stop] });
  assert.equal(s.stop_reason, 'stop_sequence');
  assert.equal(s.stop_sequence, stop);
  assert.equal(s.content[0].text, text.slice(0, text.indexOf(stop)));
});

test('anthropic streaming: event sequence and text equal the non-streamed message', async () => {
  const params = { model, max_tokens: 20, messages, temperature: 0 };
  const plain = await anthropic.messages.create(params);
  const events = [];
  let text = '';
  const stream = await anthropic.messages.create({ ...params, stream: true });
  for await (const e of stream) {
    if (events.at(-1) !== e.type) events.push(e.type);
    if (e.type === 'content_block_delta') text += e.delta.text;
  }
  // The SDK consumes ping events itself.
  assert.deepEqual(events, ['message_start', 'content_block_start', 'content_block_delta',
    'content_block_stop', 'message_delta', 'message_stop']);
  assert.equal(text, plain.content[0].text);
  // The SDK's helper assembles the final message from the same events.
  const final = await anthropic.messages.stream(params).finalMessage();
  assert.equal(final.content[0].text, plain.content[0].text);
  assert.equal(final.stop_reason, plain.stop_reason);
  assert.equal(final.usage.output_tokens, plain.usage.output_tokens);
});
