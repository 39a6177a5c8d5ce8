// The bounded load test (issue 5): 36 concurrent streams through the official OpenAI client against
// `keel serve` (demo model), a third of them cancelled mid-stream by disconnecting; afterwards /metrics must show
// no running request, no KV block in use and no device allocation since warm-up, and a normal request still
// works. Run alone (its own server) by run.sh with KEEL_TEST_FILES=load.mjs; see the server_load ctest entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.KEEL_URL;
const apiKey = process.env.KEEL_API_KEY;
const model = process.env.KEEL_MODEL;
const openai = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0, timeout: 60000 });

const STREAMS = 36;
const MAX_TOKENS = 24;
const CANCEL_AFTER_CHUNKS = 3;

async function metrics() {
  const res = await fetch(`${baseURL}/metrics`, { headers: { Authorization: `Bearer ${apiKey}` } });
  assert.equal(res.status, 200);
  const values = {};
  for (const line of (await res.text()).split('\n')) {
    const m = /^(keel_[a-z_]+) (\S+)$/.exec(line);
    if (m) values[m[1]] = Number(m[2]);
  }
  return values;
}

// Streams one completion; when `cancel`, disconnects after a few chunks.
async function stream(i, cancel) {
  const s = await openai.completions.create({
    model,
    prompt: `Request ${i}: tell me about the sea and the ships that sail on it.`,
    max_tokens: MAX_TOKENS,
    temperature: 0.8,
    seed: i,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
  });
  let chunks = 0;
  let usage = null;
  let finish = null;
  for await (const chunk of s) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.text) chunks++;
      if (c.finish_reason) finish = c.finish_reason;
    }
    if (cancel && chunks >= CANCEL_AFTER_CHUNKS) {
      s.controller.abort();
      return { cancelled: true, chunks };
    }
  }
  return { cancelled: false, chunks, usage, finish };
}

test('load: 36 concurrent streams, a third cancelled mid-stream; KV and allocations return to rest', async () => {
  const before = await metrics();
  assert.equal(before.keel_kv_blocks_used, 0);
  const start = performance.now();
  const results = await Promise.all(
    Array.from({ length: STREAMS }, (_, i) => stream(i, i % 3 === 0).catch((e) => ({ error: e }))),
  );
  const streamsSeconds = (performance.now() - start) / 1000;
  for (const r of results) assert.equal(r.error, undefined, String(r.error));
  const cancelled = results.filter((r) => r.cancelled);
  const completed = results.filter((r) => !r.cancelled);
  assert.equal(cancelled.length, STREAMS / 3);
  for (const r of completed) {
    assert.equal(r.finish, 'length');
    assert.equal(r.usage.completion_tokens, MAX_TOKENS);
  }

  // Cancellation frees blocks within a step; allow the engine a moment to see the disconnects.
  let after;
  for (let i = 0; i < 100; i++) {
    after = await metrics();
    if (after.keel_requests_running === 0 && after.keel_requests_waiting === 0 && after.keel_kv_blocks_used === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(after.keel_requests_running, 0);
  assert.equal(after.keel_requests_waiting, 0);
  assert.equal(after.keel_kv_blocks_used, 0);
  assert.equal(after.keel_device_allocations_after_warmup, 0);

  const r = await openai.completions.create({ model, prompt: 'The sea', max_tokens: 8, temperature: 0 });
  assert.equal(r.choices.length, 1);
  assert.ok(r.choices[0].text.length > 0);
  assert.equal(r.usage.completion_tokens, 8);
  const final = await metrics();
  assert.equal(final.keel_kv_blocks_used, 0);
  assert.equal(final.keel_device_allocations_after_warmup, 0);

  console.log(
    `load: ${STREAMS} streams (${cancelled.length} cancelled after ${CANCEL_AFTER_CHUNKS} chunks, ` +
      `${completed.length} x ${MAX_TOKENS} tokens) in ${streamsSeconds.toFixed(1)} s; ` +
      `kv blocks used after: ${after.keel_kv_blocks_used} of ${after.keel_kv_blocks_total}; ` +
      `device allocations after warm-up: ${final.keel_device_allocations_after_warmup}`,
  );
});
