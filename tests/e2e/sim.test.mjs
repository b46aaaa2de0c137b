// sim.test.mjs — `tollgate sim` driven by the official OpenAI client: shapes, streaming, faults, knobs, metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import OpenAI from 'openai';

const BIN = process.env.TOLLGATE_BIN;
let sim, base, client;

// Start the simulator on a free port and read "listening on HOST:PORT" from its stdout.
function startSim(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, ['sim', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const timer = setTimeout(() => reject(new Error('sim did not print its address')), 10000);
    p.on('error', reject);
    p.on('exit', (code) => reject(new Error(`sim exited early (${code})`)));
    createInterface({ input: p.stdout }).once('line', (line) => {
      clearTimeout(timer);
      const m = /^listening on (\S+):(\d+)$/.exec(line);
      if (!m) return reject(new Error(`unexpected first line: ${line}`));
      resolve({ proc: p, url: `http://${m[1]}:${m[2]}` });
    });
  });
}

async function setKnobs(obj) {
  const r = await fetch(`${base}/sim/config`, { method: 'POST', body: JSON.stringify(obj) });
  assert.equal(r.status, 200);
  return r.json();
}

// Sum of all samples of a metric (any labels) in the Prometheus text.
async function metric(name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name + '{') || line.startsWith(name + ' ')) sum += Number(line.split(' ').pop());
  }
  return sum;
}

const msgs = [{ role: 'user', content: 'lgr pep pzza x2 please' }];

before(async () => {
  assert.ok(BIN, 'TOLLGATE_BIN must point at the tollgate binary');
  const s = await startSim(['--threads', '2', '--output', 'fixed:8', '--seed', '7']);
  sim = s.proc;
  base = s.url;
  client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'x', maxRetries: 0, timeout: 10000 });
});

after(() => {
  if (sim) {
    sim.removeAllListeners('exit');
    sim.kill('SIGKILL');
  }
});

test('chat completion, not streamed: content and usage', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages: msgs });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'tiny');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(typeof r.created, 'number');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content.split(' ').length, 8);
  assert.equal(r.choices[0].finish_reason, 'stop');
  // 22 bytes of prompt -> ceil(22 / 4) = 6 estimated tokens
  assert.deepEqual(r.usage, { prompt_tokens: 6, completion_tokens: 8, total_tokens: 14 });
});

test('max_tokens cuts the answer with finish_reason length', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages: msgs, max_tokens: 3 });
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 3);
  assert.equal(r.choices[0].message.content.split(' ').length, 3);
});

test('chat completion, streamed: role first, content pieces, finish, usage chunk', async () => {
  const stream = await client.chat.completions.create({
    model: 'tiny', messages: msgs, stream: true, stream_options: { include_usage: true }, seed: 42,
  });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.ok(chunks.length >= 10);
  for (const c of chunks) {
    assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(c.id, chunks[0].id);
  }
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(text.split(' ').length, 8);
  const fin = chunks[chunks.length - 2];
  assert.equal(fin.choices[0].finish_reason, 'stop');
  const last = chunks[chunks.length - 1];
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, { prompt_tokens: 6, completion_tokens: 8, total_tokens: 14 });
  // the same seed gives the same words, streamed or not
  const again = await client.chat.completions.create({ model: 'tiny', messages: msgs, seed: 42 });
  assert.equal(again.choices[0].message.content, text);
});

test('streamed without include_usage: no usage chunk', async () => {
  const stream = await client.chat.completions.create({ model: 'tiny', messages: msgs, stream: true });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, 'stop');
  assert.ok(chunks.every((c) => c.choices.length === 1));
});

test('completions endpoint, streamed and not', async () => {
  const r = await client.completions.create({ model: 'tiny', prompt: 'abcdefgh', max_tokens: 4 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text.split(' ').length, 4);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.deepEqual(r.usage, { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 });
  const s = await client.completions.create({
    model: 'tiny', prompt: 'abcdefgh', stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage;
  for await (const c of s) {
    text += c.choices[0]?.text ?? '';
    if (c.usage) usage = c.usage;
  }
  assert.equal(text.split(' ').length, 8);
  assert.equal(usage.completion_tokens, 8);
});

test('models list', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  assert.deepEqual(ids, ['tollgate-sim']);
  assert.equal(page.data[0].object, 'model');
});

test('x-sim-fail forces 429, 500 and 503 with the right error classes', async () => {
  const call = (v) => client.chat.completions.create({ model: 'tiny', messages: msgs }, { headers: { 'x-sim-fail': v } });
  await assert.rejects(call('429'), (e) => e instanceof OpenAI.RateLimitError && e.status === 429 && e.type === 'rate_limit_error');
  await assert.rejects(call('500'), (e) => e instanceof OpenAI.InternalServerError && e.status === 500);
  await assert.rejects(call('503'), (e) => e instanceof OpenAI.InternalServerError && e.status === 503);
  await assert.rejects(call('bogus'), (e) => e instanceof OpenAI.BadRequestError && e.param === 'x-sim-fail');
});

test('x-sim-fail reset breaks a stream after its first chunk', async () => {
  const stream = await client.chat.completions.create(
    { model: 'tiny', messages: msgs, stream: true }, { headers: { 'x-sim-fail': 'reset' } });
  const got = [];
  await assert.rejects(async () => {
    for await (const c of stream) got.push(c);
  });
  assert.ok(got.length >= 1 && got.length < 10, `got ${got.length} chunks before the reset`);
  assert.ok(got.every((c) => c.choices[0].finish_reason === null));
});

test('x-sim-fail stall: the client times out', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'tiny', messages: msgs }, { headers: { 'x-sim-fail': 'stall' }, timeout: 300 }),
    (e) => e instanceof OpenAI.APIConnectionTimeoutError);
});

test('x-sim-fail slow:<ms> delays the answer by at least that long', async () => {
  const t0 = Date.now();
  await client.chat.completions.create({ model: 'tiny', messages: msgs }, { headers: { 'x-sim-fail': 'slow:300' } });
  assert.ok(Date.now() - t0 >= 280); // a lower bound only: never flaky on a slow machine
});

test('bad input is a 400 OpenAI error', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'tiny' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages');
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: 'hi' }),
    (e) => e instanceof OpenAI.BadRequestError);
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: msgs, max_tokens: 'x' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens');
  const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', body: '{"model":' });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.type, 'invalid_request_error');
  const nf = await fetch(`${base}/v1/nothing`);
  assert.equal(nf.status, 404);
  const m = await fetch(`${base}/v1/chat/completions`);
  assert.equal(m.status, 405);
  assert.equal(m.headers.get('allow'), 'POST');
});

test('knobs change at run time through /sim/config', async () => {
  const before = await (await fetch(`${base}/sim/config`)).json();
  assert.equal(before.output, 'fixed');
  assert.equal(before.output_tokens, 8);
  const after = await setKnobs({ output: 'fixed:3' });
  assert.equal(after.output_tokens, 3);
  let r = await client.chat.completions.create({ model: 'tiny', messages: msgs });
  assert.equal(r.usage.completion_tokens, 3);
  await setKnobs({ output: 'echo' });
  r = await client.chat.completions.create({ model: 'tiny', messages: msgs });
  assert.equal(r.choices[0].message.content, 'lgr pep pzza x2 please');
  const bad = await fetch(`${base}/sim/config`, { method: 'POST', body: '{"fail_rate": 2}' });
  assert.equal(bad.status, 400);
  const unknown = await fetch(`${base}/sim/config`, { method: 'POST', body: '{"nope": 1}' });
  assert.equal(unknown.status, 400);
  await setKnobs({ fail_rate: 1 });
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: msgs }), (e) => [429, 500, 503].includes(e.status));
  await setKnobs({ output: 'fixed:8', fail_rate: 0 });
});

test('max_seqs queues requests; all of them finish', async () => {
  await setKnobs({ max_seqs: 1, itl_ms: 10 });
  const q0 = await metric('vllm:request_queue_time_seconds_count');
  const rs = await Promise.all([1, 2, 3].map(() => client.chat.completions.create({ model: 'tiny', messages: msgs })));
  assert.ok(rs.every((r) => r.usage.completion_tokens === 8));
  assert.equal(await metric('vllm:request_queue_time_seconds_count') - q0, 3);
  assert.equal(await metric('vllm:num_requests_waiting'), 0);
  assert.equal(await metric('vllm:num_requests_running'), 0);
  await setKnobs({ max_seqs: 0, itl_ms: 0 });
});

test('/metrics has the vLLM names and counts requests', async () => {
  const ok0 = await metric('vllm:request_success_total');
  const gen0 = await metric('vllm:generation_tokens_total');
  for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: 'tiny', messages: msgs });
  assert.equal(await metric('vllm:request_success_total') - ok0, 3);
  assert.equal(await metric('vllm:generation_tokens_total') - gen0, 24);
  const text = await (await fetch(`${base}/metrics`)).text();
  for (const name of ['vllm:num_requests_running', 'vllm:num_requests_waiting', 'vllm:time_to_first_token_seconds_bucket',
    'vllm:time_per_output_token_seconds_bucket', 'vllm:e2e_request_latency_seconds_bucket', 'vllm:prompt_tokens_total',
    'vllm:generation_tokens_total', 'vllm:request_success_total']) {
    assert.ok(text.includes(name), `missing ${name}`);
  }
  assert.match(text, /vllm:request_success_total\{model_name="tollgate-sim",finished_reason="stop"\} \d+/);
});

test('/tokenize (llama.cpp form) and /health', async () => {
  const r = await fetch(`${base}/tokenize`, { method: 'POST', body: JSON.stringify({ content: 'hello world!' }) });
  assert.equal(r.status, 200);
  const j = await r.json();
  assert.equal(j.tokens.length, 3);
  assert.ok(j.tokens.every(Number.isInteger));
  const h = await fetch(`${base}/health`);
  assert.equal(h.status, 200);
});
