// /v1/responses as the official openai client (v6) sees it, against `keel serve` on the demo model (run.sh):
// the response object, the streamed events and the SDK's stream helper, previous_response_id, retrieve, delete.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.KEEL_URL;
const apiKey = process.env.KEEL_API_KEY;
const model = process.env.KEEL_MODEL;
const openai = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0 });

async function tokenCount(messages) {
  const res = await fetch(`${baseURL}/tokenize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ model, messages }),
  });
  return (await res.json()).count;
}

test('responses.create: a response object with one message, usage counted as the template renders it', async () => {
  const r = await openai.responses.create({
    model, input: 'Tell me about the sea.', instructions: 'Be brief.', max_output_tokens: 20, temperature: 0,
  });
  assert.equal(r.object, 'response');
  assert.match(r.id, /^resp_/);
  assert.ok(['completed', 'incomplete'].includes(r.status));
  assert.equal(r.output.length, 1);
  assert.equal(r.output[0].type, 'message');
  assert.equal(r.output[0].role, 'assistant');
  assert.equal(r.output[0].content[0].type, 'output_text');
  assert.ok(r.output_text.length > 0);  // the SDK's own join of the output_text parts
  assert.equal(r.output_text, r.output[0].content[0].text);
  const count = await tokenCount([{ role: 'system', content: 'Be brief.' },
                                  { role: 'user', content: 'Tell me about the sea.' }]);
  assert.equal(r.usage.input_tokens, count);
  assert.ok(r.usage.output_tokens >= 1 && r.usage.output_tokens <= 20);
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
  if (r.usage.output_tokens === 20) {
    assert.equal(r.status, 'incomplete');
    assert.equal(r.incomplete_details.reason, 'max_output_tokens');
  }
});

test('responses.create stream: the event sequence, numbered, whose text equals the non-streamed answer', async () => {
  const params = { model, input: 'Once upon a time', max_output_tokens: 16, temperature: 0 };
  const plain = await openai.responses.create(params);
  const stream = await openai.responses.create({ ...params, stream: true });
  const types = [];
  let text = '';
  let expected = 0;
  let final = null;
  for await (const event of stream) {
    assert.equal(event.sequence_number, expected++);
    if (types.at(-1) !== event.type) types.push(event.type);
    if (event.type === 'response.output_text.delta') text += event.delta;
    if (event.type === 'response.completed' || event.type === 'response.incomplete') final = event.response;
  }
  assert.deepEqual(types.slice(0, 4), ['response.created', 'response.in_progress', 'response.output_item.added',
                                       'response.content_part.added']);
  const end = final.status === 'completed' ? 'response.completed' : 'response.incomplete';
  assert.deepEqual(types.slice(-4), ['response.output_text.done', 'response.content_part.done',
                                     'response.output_item.done', end]);
  assert.equal(text, plain.output_text);
  assert.equal(final.output[0].content[0].text, plain.output_text);
  assert.deepEqual(final.usage, plain.usage);
});

test('responses.stream helper: finalResponse and text deltas', async () => {
  const runner = openai.responses.stream({ model, input: 'Say something.', max_output_tokens: 12, temperature: 0 });
  let deltas = '';
  runner.on('response.output_text.delta', (e) => { deltas += e.delta; });
  const final = await runner.finalResponse();
  assert.equal(final.output_text, deltas);
});

test('previous_response_id continues the conversation; retrieve and delete', async () => {
  const first = await openai.responses.create({ model, input: 'Hello.', max_output_tokens: 8, temperature: 0 });
  const second = await openai.responses.create({
    model, input: 'And then?', previous_response_id: first.id, max_output_tokens: 8, temperature: 0,
  });
  assert.equal(second.previous_response_id, first.id);
  const count = await tokenCount([{ role: 'user', content: 'Hello.' },
                                  { role: 'assistant', content: first.output_text },
                                  { role: 'user', content: 'And then?' }]);
  assert.equal(second.usage.input_tokens, count);
  const got = await openai.responses.retrieve(second.id);
  assert.equal(got.id, second.id);
  assert.equal(got.output_text, second.output_text);
  await openai.responses.delete(second.id);
  await assert.rejects(openai.responses.retrieve(second.id), (e) => e.status === 404);
  await assert.rejects(
    openai.responses.create({ model, input: 'x', previous_response_id: 'resp_unknown' }),
    (e) => e.status === 404 && e.code === 'previous_response_not_found' && e.param === 'previous_response_id');
});
