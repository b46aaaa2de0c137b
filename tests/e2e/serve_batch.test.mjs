// serve_batch.test.mjs — continuous batching in `tollgate serve` with the official OpenAI client: concurrent streams get the
// text they get alone, a short request finishes while a long one generates, the prefix cache shows in /metrics, a KV limit
// too small for one context is refused with a clear message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { start, stop, stopAll } from './lib.mjs';

const REF = process.env.TOLLGATE_REF;
const LLAMA = `${REF}/models/llama-tiny-Q8_0.gguf`;
let srv; // { url, client }

async function serve(args) {
  const { p, m } = await start(['serve', '--port', '0', ...args], /listening on (\S+):(\d+)/);
  const url = `http://127.0.0.1:${m[2]}`;
  for (let i = 0; i < 400; i++) {
    if ((await fetch(`${url}/health`)).status === 200) break;
    await new Promise((res) => setTimeout(res, 25));
  }
  return { p, url, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120000 }) };
}

async function streamText(client, body, onChunk) {
  let text = '', finish = null;
  for await (const c of await client.completions.create({ ...body, stream: true })) {
    text += c.choices[0]?.text ?? '';
    finish = c.choices[0]?.finish_reason ?? finish;
    if (onChunk) onChunk(c);
  }
  return { text, finish };
}

const metric = (text, name) => {
  const m = text.match(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
};

before(async () => {
  srv = await serve(['-m', LLAMA, '--ctx', '256', '--max-seqs', '4']);
});

after(stopAll);

test('concurrent streams, more than max-seqs of them, each get the text they get alone', async () => {
  const prompts = ['Once upon a time', 'The capital of France is', '1 2 3 4 5', 'Hello', 'lgr pep pzza x2', 'In a hole in the ground'];
  const body = (p) => ({ model: 'm', prompt: p, max_tokens: 16, temperature: 0 });
  const alone = [];
  for (const p of prompts) alone.push((await srv.client.completions.create(body(p))).choices[0].text);
  const together = await Promise.all(prompts.map((p) => streamText(srv.client, body(p))));
  together.forEach((r, i) => {
    assert.equal(r.text, alone[i], `prompt ${i}`);
    assert.equal(r.finish, 'length');
  });
});

test('a short request sent while a long one generates finishes first', async () => {
  const events = [];
  let started;
  const first = new Promise((res) => { started = res; });
  const long = streamText(srv.client, { model: 'm', prompt: 'Once upon a time', max_tokens: 150, temperature: 0 }, () => started())
    .then((r) => { events.push('long'); return r; });
  await first; // the long one is generating
  const short = await srv.client.completions.create({ model: 'm', prompt: 'Hello', max_tokens: 3, temperature: 0 });
  events.push('short');
  const l = await long;
  assert.equal(short.choices[0].finish_reason, 'length');
  assert.equal(l.finish, 'length');
  assert.deepEqual(events, ['short', 'long']);
});

test('/metrics: queue time, KV usage, prefix cache queries and hits after two requests with one long prefix', async () => {
  const before = await (await fetch(`${srv.url}/metrics`)).text();
  for (const name of ['vllm:request_queue_time_seconds_count', 'vllm:gpu_cache_usage_perc', 'vllm:kv_cache_usage_perc',
    'vllm:prefix_cache_queries_total', 'vllm:prefix_cache_hits_total', 'vllm:num_requests_running', 'vllm:num_requests_waiting'])
    assert.ok(!Number.isNaN(metric(before, name)), name);
  const prefix = 'You are the order assistant of a small pizza place. Answer with the order as JSON, nothing else. '.repeat(2);
  const a = await srv.client.completions.create({ model: 'm', prompt: prefix + 'One margherita please.', max_tokens: 2, temperature: 0 });
  const mid = await (await fetch(`${srv.url}/metrics`)).text();
  const b = await srv.client.completions.create({ model: 'm', prompt: prefix + 'Two pepperoni.', max_tokens: 2, temperature: 0 });
  const after = await (await fetch(`${srv.url}/metrics`)).text();
  const prefixTokens = (await (await fetch(`${srv.url}/tokenize`, { method: 'POST', body: JSON.stringify({ content: prefix }) })).json()).tokens.length;
  assert.ok(prefixTokens > 30);
  const hits = metric(after, 'vllm:prefix_cache_hits_total') - metric(mid, 'vllm:prefix_cache_hits_total');
  assert.ok(hits >= prefixTokens - 1, `hits ${hits}, prefix ${prefixTokens} tokens`);
  assert.ok(hits < b.usage.prompt_tokens);
  assert.equal(metric(after, 'vllm:prefix_cache_queries_total') - metric(before, 'vllm:prefix_cache_queries_total'),
    a.usage.prompt_tokens + b.usage.prompt_tokens);
  assert.equal(metric(after, 'vllm:request_queue_time_seconds_count') - metric(before, 'vllm:request_queue_time_seconds_count'), 2);
  assert.equal(metric(after, 'vllm:num_requests_running'), 0);
  assert.equal(metric(after, 'vllm:gpu_cache_usage_perc'), 0);
});

test('--kv-cache-mib smaller than one context: the model is refused with a clear message', async () => {
  // llama-tiny: 4 MiB of KV cache per 4096-token context
  const s = await start(['serve', '--port', '0', '-m', LLAMA, '--ctx', '4096', '--kv-cache-mib', '3'], /listening on/);
  const code = await new Promise((res) => { s.p.removeAllListeners('exit'); s.p.on('exit', (c) => res(c)); });
  assert.equal(code, 1);
  assert.match(s.p.stderrText, /--kv-cache-mib 3 holds no sequence of 4096 positions: one needs 4\.0 MiB/);
  await stop(s.p);
});

test('--tokenizer takes the vocabulary from another file; a different vocabulary size is refused', async () => {
  const s = await serve(['-m', `${REF}/models/llama-tiny-Q4_0.gguf`, '--tokenizer', LLAMA, '--ctx', '64']);
  const r = await s.client.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 4, temperature: 0 });
  assert.equal(r.usage.prompt_tokens, 5);
  assert.equal(r.usage.completion_tokens, 4);
  assert.ok(r.choices[0].text.length > 0);
  await stop(s.p);
  const bad = await start(['serve', '--port', '0', '-m', LLAMA, '--tokenizer', `${REF}/models/phi3-tiny-Q8_0.gguf`], /listening on/);
  const code = await new Promise((res) => { bad.p.removeAllListeners('exit'); bad.p.on('exit', (c) => res(c)); });
  assert.equal(code, 1);
  assert.match(bad.p.stderrText, /phi3-tiny-Q8_0\.gguf: the tokenizer has \d+ tokens, the model 32000/);
});
