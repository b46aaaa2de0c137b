// serve.test.mjs — `tollgate serve` on the reference models with the official OpenAI client: reference greedy
// outputs, streaming = non-streaming, usage, logprobs, /tokenize, concurrency, bad input, client abort, phi3 chat.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const BIN = process.env.TOLLGATE_BIN;
const REF = process.env.TOLLGATE_REF;
const LLAMA = `${REF}/models/llama-tiny-Q8_0.gguf`;
const PHI3 = `${REF}/models/phi3-tiny-Q8_0.gguf`;
const llamaRef = JSON.parse(readFileSync(`${REF}/expected/llama-tiny-Q8_0.ref.json`, 'utf8'));
const phi3Ref = JSON.parse(readFileSync(`${REF}/expected/phi3-tiny-Q8_0.ref.json`, 'utf8'));
// Tolerance on log-probabilities for Q8_0 files, in nats: the reference quantizes activations to
// 8 bits inside quantized dot products; an independent engine of good repute differs from it by up to
// about 0.2 nats on these random models (logit sd ~12). Greedy choices closer than this may differ.
const TOL = 0.2;

const children = [];
let llama; // { url, client, proc }

function startServe(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, ['serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(p);
    let out = '';
    const timer = setTimeout(() => reject(new Error('serve did not start: ' + out)), 10000);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (\S+):(\d+)/);
      if (m) {
        clearTimeout(timer);
        const url = `http://127.0.0.1:${m[2]}`;
        resolve({ url, proc: p, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60000 }) });
      }
    });
    p.stderr.on('data', (d) => { out += d; });
    p.on('exit', (code) => { clearTimeout(timer); reject(new Error(`serve exited ${code}: ${out}`)); });
  });
}

async function waitHealthy(url) {
  const seen = new Set();
  for (let i = 0; i < 200; i++) {
    const r = await fetch(`${url}/health`);
    const j = await r.json();
    seen.add(`${r.status} ${j.status}`);
    if (r.status === 200) {
      assert.equal(j.status, 'ok');
      return seen;
    }
    assert.equal(r.status, 503);
    assert.equal(j.status, 'loading');
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error('never healthy: ' + [...seen].join(', '));
}

async function post(url, path, body, raw = false) {
  const r = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw ? body : JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

before(async () => {
  llama = await startServe(['-m', LLAMA, '--ctx', '128']);
  await waitHealthy(llama.url);
});

after(() => {
  for (const p of children) p.kill('SIGKILL');
});

test('/health is 200 ok; /v1/models lists the model with its context', async () => {
  const r = await fetch(`${llama.url}/health`);
  assert.equal(r.status, 200);
  const models = await llama.client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].id, 'llama-tiny-Q8_0');
  assert.equal(models.data[0].object, 'model');
  assert.equal(models.data[0].max_model_len, 128);
});

test('/tokenize gives the reference ids for every tokenize entry; /detokenize inverts it', async () => {
  for (const t of llamaRef.tokenize) {
    const r = await post(llama.url, '/tokenize', { content: t.text, add_special: t.add_special, parse_special: t.parse_special });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.tokens, t.tokens, JSON.stringify(t.text));
  }
  const d = await post(llama.url, '/detokenize', { tokens: [15043, 3186] });
  assert.equal(d.status, 200);
  assert.equal(d.json.content, ' Hello world');
  const p = await post(llama.url, '/tokenize', { content: 'Hello', add_special: true, with_pieces: true });
  assert.deepEqual(p.json.tokens, [{ id: 1, piece: '<s>' }, { id: 15043, piece: ' Hello' }]);
  // llama.cpp's defaults: add_special false, parse_special true
  const def = await post(llama.url, '/tokenize', { content: '<s>Hello' });
  assert.deepEqual(def.json.tokens, [1, 15043]);
});

// Compare our greedy completion with the reference step by step, up to the first step where the
// reference's top two are closer than TOL (there either choice is right and the texts may part).
function compareWithReference(c, lp, text) {
  let steps = 0;
  for (let i = 0; i < c.steps.length; i++) {
    const s = c.steps[i];
    assert.ok(i < lp.tokens.length, `step ${i}: we stopped early`);
    const refMargin = s.top[0].logprob - s.top[1].logprob;
    if (!s.text.includes('\uFFFD')) assert.equal(lp.tokens[i], s.text, `step ${i} of ${JSON.stringify(c.prompt)}`);
    assert.ok(Math.abs(lp.token_logprobs[i] - s.logprob) <= TOL,
      `step ${i}: logprob ${lp.token_logprobs[i]} vs reference ${s.logprob}`);
    // the reference's alternatives are ours too, with close log-probabilities
    const tops = lp.top_logprobs[i];
    for (const alt of s.top.slice(0, 3)) {
      const refText = alt.id === s.id ? s.text : null;
      if (refText && !refText.includes('\uFFFD')) assert.ok(refText in tops, `step ${i}: ${refText} missing from top_logprobs`);
    }
    steps++;
    if (refMargin < TOL) break;
  }
  if (steps === c.steps.length && !c.greedy_text.includes('\uFFFD')) assert.equal(text, c.greedy_text);
  return steps;
}

test('completions at temperature 0 reproduce the reference greedy outputs (logprobs: 5)', async () => {
  let compared = 0;
  for (const c of llamaRef.completions) {
    const r = await llama.client.completions.create({
      model: 'llama-tiny-Q8_0', prompt: c.prompt, max_tokens: c.n_predict, temperature: 0, logprobs: 5,
    });
    const ch = r.choices[0];
    assert.equal(r.object, 'text_completion');
    assert.ok(ch.finish_reason === 'length' || ch.finish_reason === 'stop');
    const lp = ch.logprobs;
    assert.equal(lp.tokens.length, lp.token_logprobs.length);
    assert.equal(lp.tokens.length, lp.top_logprobs.length);
    assert.equal(lp.tokens.length, lp.text_offset.length);
    assert.equal(r.usage.completion_tokens, c.n_predict);
    const ids = await post(llama.url, '/tokenize', { content: c.prompt, add_special: true });
    assert.equal(r.usage.prompt_tokens, ids.json.tokens.length);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    compared += compareWithReference(c, lp, ch.text);
    // the text is the concatenation of the tokens (text_offset counts characters)
    assert.equal(lp.text_offset[0], 0);
    for (let i = 1; i < lp.tokens.length; i++) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
  }
  assert.ok(compared >= 8, `compared ${compared} steps`);
});

test('chat: streamed text equals the non-streamed text at temperature 0; usage chunk; logprobs consistent', async () => {
  const messages = [{ role: 'system', content: 'You normalise orders.' }, { role: 'user', content: 'lgr pep pzza x2' }];
  const full = await llama.client.chat.completions.create({
    model: 'llama-tiny-Q8_0', messages, max_tokens: 20, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const ch = full.choices[0];
  assert.equal(full.object, 'chat.completion');
  assert.match(full.id, /^chatcmpl-/);
  assert.equal(ch.message.role, 'assistant');
  assert.equal(typeof ch.message.content, 'string');
  const content = ch.logprobs.content;
  assert.equal(content.map((t) => t.token).join(''), ch.message.content);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(t.logprob <= 0);
    for (let k = 1; k < 3; k++) assert.ok(t.top_logprobs[k - 1].logprob >= t.top_logprobs[k].logprob);
    assert.ok(t.logprob <= t.top_logprobs[0].logprob + 1e-6);
    assert.equal(t.token, t.top_logprobs[0].token); // greedy: the chosen one is the most likely
    if (!t.token.includes('\uFFFD')) assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')]);
  }
  // prompt tokens = the rendered Mistral template, tokenized with BOS and special tokens
  const rendered = '[INST] You normalise orders.\n\nlgr pep pzza x2 [/INST]';
  const ids = await post(llama.url, '/tokenize', { content: rendered, add_special: true, parse_special: true });
  assert.equal(full.usage.prompt_tokens, ids.json.tokens.length);
  const eos = ch.finish_reason === 'stop' ? 1 : 0;
  assert.equal(full.usage.completion_tokens, content.length + eos);

  const stream = await llama.client.chat.completions.create({
    model: 'llama-tiny-Q8_0', messages, max_tokens: 20, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '', finish = null, usage = null, first = true, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.equal(chunk.model, 'llama-tiny-Q8_0');
    if (first) { assert.equal(chunk.choices[0].delta.role, 'assistant'); first = false; }
    if (chunk.usage) { usage = chunk.usage; assert.equal(chunk.choices.length, 0); continue; }
    text += chunk.choices[0].delta.content ?? '';
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.ok(chunks >= 3);
  assert.equal(text, ch.message.content);
  assert.equal(finish, ch.finish_reason);
  assert.deepEqual(usage, full.usage);
});

test('completions: streamed = non-streamed, max_tokens -> length, stop strings cut across tokens', async () => {
  const prompt = 'The capital of France is';
  const full = await llama.client.completions.create({ model: 'm', prompt, max_tokens: 16, temperature: 0 });
  const text = full.choices[0].text;
  assert.equal(full.choices[0].finish_reason, 'length');
  assert.equal(full.usage.completion_tokens, 16);
  const stream = await llama.client.completions.create({ model: 'm', prompt, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let s = '', usage = null, finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) { usage = chunk.usage; continue; }
    assert.equal(chunk.object, 'text_completion');
    s += chunk.choices[0].text;
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(s, text);
  assert.equal(finish, 'length');
  assert.deepEqual(usage, full.usage);

  // a stop string spanning the second and third tokens' text
  const toks = (await llama.client.completions.create({ model: 'm', prompt, max_tokens: 16, temperature: 0, logprobs: 0 })).choices[0].logprobs.tokens;
  const at = toks[0].length + toks[1].length - 2;
  const stop = text.slice(at, at + 4);
  for (const streamIt of [false, true]) {
    const opts = { model: 'm', prompt, max_tokens: 16, temperature: 0, stop: ['\u0001', stop] };
    let got, fr;
    if (!streamIt) {
      const r = await llama.client.completions.create(opts);
      got = r.choices[0].text;
      fr = r.choices[0].finish_reason;
    } else {
      got = '';
      for await (const chunk of await llama.client.completions.create({ ...opts, stream: true })) {
        got += chunk.choices[0]?.text ?? '';
        fr = chunk.choices[0]?.finish_reason ?? fr;
      }
    }
    assert.equal(got, text.slice(0, text.indexOf(stop)), `stream=${streamIt}`);
    assert.equal(fr, 'stop');
  }
});

test('sampling with a seed is reproducible; top_k 1 is greedy', async () => {
  const opts = { model: 'm', prompt: '1 2 3 4 5', max_tokens: 12, temperature: 1.0, top_p: 0.9, seed: 1234 };
  const a = await llama.client.completions.create(opts);
  const b = await llama.client.completions.create(opts);
  assert.equal(a.choices[0].text, b.choices[0].text);
  const greedy = await llama.client.completions.create({ model: 'm', prompt: '1 2 3 4 5', max_tokens: 12, temperature: 0 });
  const k1 = await llama.client.completions.create({ model: 'm', prompt: '1 2 3 4 5', max_tokens: 12, temperature: 1.5, top_k: 1, seed: 9 });
  assert.equal(k1.choices[0].text, greedy.choices[0].text);
});

test('several concurrent requests are all answered correctly', async () => {
  const prompts = llamaRef.completions.map((c) => c.prompt);
  const solo = [];
  for (const p of prompts) solo.push((await llama.client.completions.create({ model: 'm', prompt: p, max_tokens: 10, temperature: 0 })).choices[0].text);
  const all = await Promise.all([...prompts, ...prompts].map((p, i) => i % 2
    ? llama.client.completions.create({ model: 'm', prompt: p, max_tokens: 10, temperature: 0 }).then((r) => r.choices[0].text)
    : (async () => {
      let t = '';
      for await (const c of await llama.client.completions.create({ model: 'm', prompt: p, max_tokens: 10, temperature: 0, stream: true })) t += c.choices[0]?.text ?? '';
      return t;
    })()));
  all.forEach((t, i) => assert.equal(t, solo[i % prompts.length], `request ${i}`));
});

test('bad input: 400 with an OpenAI error naming the field; 404; 405', async () => {
  const msgs = [{ role: 'user', content: 'hi' }];
  const cases = [
    ['/v1/chat/completions', '{"messages": [', null],
    ['/v1/chat/completions', {}, 'messages'],
    ['/v1/chat/completions', { messages: 'hi' }, 'messages'],
    ['/v1/chat/completions', { messages: [] }, 'messages'],
    ['/v1/chat/completions', { messages: [{ role: 'robot', content: 'x' }] }, 'messages'],
    ['/v1/chat/completions', { messages: msgs, temperature: 2.5 }, 'temperature'],
    ['/v1/chat/completions', { messages: msgs, temperature: 'hot' }, 'temperature'],
    ['/v1/chat/completions', { messages: msgs, max_tokens: -1 }, 'max_tokens'],
    ['/v1/chat/completions', { messages: msgs, max_tokens: 1.5 }, 'max_tokens'],
    ['/v1/chat/completions', { messages: msgs, n: 2 }, 'n'],
    ['/v1/chat/completions', { messages: msgs, top_p: 1.5 }, 'top_p'],
    ['/v1/chat/completions', { messages: msgs, top_logprobs: 3 }, 'top_logprobs'],
    ['/v1/chat/completions', { messages: msgs, logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
    ['/v1/chat/completions', { messages: msgs, stop: 5 }, 'stop'],
    ['/v1/chat/completions', { messages: msgs, stream: 'yes' }, 'stream'],
    ['/v1/completions', { max_tokens: 3 }, 'prompt'],
    ['/v1/completions', { prompt: ['a', 'b'] }, 'prompt'],
    ['/v1/completions', { prompt: 'a', logprobs: 50 }, 'logprobs'],
    ['/v1/completions', { prompt: [1, 99999999] }, 'prompt'],
    ['/v1/completions', { prompt: 'word '.repeat(300) }, 'prompt'],
    ['/v1/completions', { prompt: 'hi', max_tokens: 200 }, 'max_tokens'],
    ['/tokenize', { text: 'x' }, 'content'],
    ['/detokenize', { tokens: [-1] }, 'tokens'],
  ];
  for (const [path, body, param] of cases) {
    const r = await post(llama.url, path, typeof body === 'string' ? body : JSON.stringify(body), true);
    assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}`);
    assert.equal(typeof r.json.error.message, 'string');
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.equal(r.json.error.param, param, `${path} ${JSON.stringify(body)}: ${r.json.error.message}`);
  }
  const long = await post(llama.url, '/v1/completions', { prompt: 'word '.repeat(300) });
  assert.equal(long.json.error.code, 'context_length_exceeded');
  assert.match(long.json.error.message, /maximum context length is 128 tokens/);
  // the official client surfaces it as a BadRequestError
  await assert.rejects(llama.client.chat.completions.create({ model: 'm', messages: msgs, temperature: 9 }),
    (e) => e.status === 400 && e.param === 'temperature');
  assert.equal((await fetch(`${llama.url}/v1/nothing`)).status, 404);
  const r405 = await fetch(`${llama.url}/v1/chat/completions`);
  assert.equal(r405.status, 405);
  assert.equal(r405.headers.get('allow'), 'POST');
  assert.equal((await r405.json()).error.type, 'invalid_request_error');
});

test('a client abort mid-stream cancels its job and does not hurt the next request', async () => {
  const ref = (await llama.client.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 8, temperature: 0 })).choices[0].text;
  const stream = await llama.client.completions.create({ model: 'm', prompt: 'lgr pep pzza x2', max_tokens: 100, temperature: 0, stream: true });
  let n = 0;
  for await (const c of stream) { // eslint-disable-line no-unused-vars
    if (++n === 3) { stream.controller.abort(); break; }
  }
  const t0 = Date.now();
  const next = (await llama.client.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 8, temperature: 0 })).choices[0].text;
  assert.equal(next, ref);
  // the aborted job stopped early: nothing left running, and fewer than 100 tokens went to it
  const m = await (await fetch(`${llama.url}/metrics`)).text();
  assert.match(m, /vllm:num_requests_running\{model_name="llama-tiny-Q8_0"\} 0/);
  assert.ok(Date.now() - t0 < 30000);
});

test('/metrics: vLLM names with counts that add up', async () => {
  const before = await (await fetch(`${llama.url}/metrics`)).text();
  const val = (text, re) => { const m = text.match(re); return m ? Number(m[1]) : NaN; };
  const gen0 = val(before, /^vllm:generation_tokens_total\{[^}]*\} (\S+)$/m);
  const len0 = val(before, /^vllm:request_success_total\{finished_reason="length"[^}]*\} (\S+)$/m);
  const ttft0 = val(before, /^vllm:time_to_first_token_seconds_count\{[^}]*\} (\S+)$/m);
  const r = await llama.client.completions.create({ model: 'm', prompt: 'Hello', max_tokens: 5, temperature: 0 });
  const res = await fetch(`${llama.url}/metrics`);
  assert.match(res.headers.get('content-type'), /^text\/plain/);
  const after = await res.text();
  for (const name of ['vllm:num_requests_running', 'vllm:num_requests_waiting', 'vllm:time_to_first_token_seconds_bucket',
    'vllm:time_per_output_token_seconds_bucket', 'vllm:e2e_request_latency_seconds_bucket', 'vllm:prompt_tokens_total',
    'vllm:generation_tokens_total', 'vllm:request_success_total']) assert.ok(after.includes(name), name);
  assert.equal(val(after, /^vllm:generation_tokens_total\{[^}]*\} (\S+)$/m) - gen0, r.usage.completion_tokens);
  assert.equal(val(after, /^vllm:request_success_total\{finished_reason="length"[^}]*\} (\S+)$/m) - len0, 1);
  assert.equal(val(after, /^vllm:time_to_first_token_seconds_count\{[^}]*\} (\S+)$/m) - ttft0, 1);
  assert.match(after, /vllm:e2e_request_latency_seconds_bucket\{[^}]*le="0.5"/);
});

test('a full queue answers 503 with an OpenAI error', async () => {
  // one sequence runs at a time and one request may wait: once a long request is
  // streaming (200 tokens, ~130 ms on this model), of four more exactly one waits and
  // three are turned away
  const s = await startServe(['-m', LLAMA, '--max-seqs', '1', '--max-queue', '1', '--ctx', '256']);
  await waitHealthy(s.url);
  const body = { model: 'm', prompt: 'Once upon a time', max_tokens: 200, temperature: 0 };
  const stream = await s.client.completions.create({ ...body, stream: true });
  const it = stream[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.done, false);
  const rs = await Promise.all(Array.from({ length: 4 }, () => post(s.url, '/v1/completions', body)));
  const codes = rs.map((r) => r.status).sort();
  assert.deepEqual(codes, [200, 503, 503, 503]);
  for (const r of rs.filter((x) => x.status === 200)) assert.equal(r.json.usage.completion_tokens, 200);
  for (const b of rs.filter((x) => x.status === 503)) assert.equal(typeof b.json.error.message, 'string');
  let chunks = 1;
  for (let r = await it.next(); !r.done; r = await it.next()) chunks++;
  assert.ok(chunks >= 2, `${chunks} chunks`);
  s.proc.kill('SIGTERM');
});

test('phi3: chat applies the Phi-3 template; /tokenize matches the reference; greedy completion', async () => {
  const s = await startServe(['-m', PHI3, '--model-name', 'phi3-mini']);
  await waitHealthy(s.url);
  for (const t of phi3Ref.tokenize) {
    const r = await post(s.url, '/tokenize', { content: t.text, add_special: t.add_special, parse_special: t.parse_special });
    assert.deepEqual(r.json.tokens, t.tokens, JSON.stringify(t.text));
  }
  const r = await s.client.chat.completions.create({ model: 'phi3-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8, temperature: 0 });
  assert.equal(r.model, 'phi3-mini');
  const ids = await post(s.url, '/tokenize', { content: '<|user|>\nhi<|end|>\n<|assistant|>\n', add_special: true });
  assert.deepEqual(ids.json.tokens, [1, 32010, 7251, 32007, 32001]);
  assert.equal(r.usage.prompt_tokens, 5);
  assert.ok(r.choices[0].message.content.length > 0 || r.choices[0].finish_reason === 'stop');
  const c = phi3Ref.completions[0];
  const comp = await s.client.completions.create({ model: 'phi3-mini', prompt: c.prompt, max_tokens: c.n_predict, temperature: 0, logprobs: 5 });
  compareWithReference(c, comp.choices[0].logprobs, comp.choices[0].text);
  s.proc.kill('SIGTERM');
});

test('--weights anon (weights copied into memory) answers bit for bit as the mapped file does', async () => {
  const s = await startServe(['-m', LLAMA, '--ctx', '128', '--weights', 'anon', '--model-name', 'llama-tiny-Q8_0']);
  await waitHealthy(s.url);
  const body = { model: 'llama-tiny-Q8_0', prompt: 'Once upon a time', max_tokens: 12, temperature: 0, logprobs: 3 };
  const a = await s.client.completions.create(body);
  const b = await llama.client.completions.create(body);
  assert.equal(a.choices[0].text, b.choices[0].text);
  assert.deepEqual(a.choices[0].logprobs.token_logprobs, b.choices[0].logprobs.token_logprobs);
  assert.deepEqual(a.choices[0].logprobs.top_logprobs, b.choices[0].logprobs.top_logprobs);
  // the copy replaced the file mapping: only the mmap server still maps the model file
  const { readFileSync } = await import('node:fs');
  assert.ok(readFileSync(`/proc/${llama.proc.pid}/maps`, 'utf8').includes('llama-tiny-Q8_0.gguf'));
  assert.ok(!readFileSync(`/proc/${s.proc.pid}/maps`, 'utf8').includes('llama-tiny-Q8_0.gguf'));
  s.proc.kill('SIGTERM');
  const { spawnSync } = await import('node:child_process');
  const bad = spawnSync(BIN, ['serve', '-m', LLAMA, '--weights', 'ram'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--weights: mmap or anon/);
});

test('command line: --help, usage errors, a missing or corrupt model exits 1 naming it', async () => {
  const { spawnSync } = await import('node:child_process');
  const help = spawnSync(BIN, ['serve', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  for (const f of ['--model', '--host', '--port', '--threads', '--ctx', '--chat-template', '--model-name', '--max-queue', '--max-seqs', '--kv-cache-mib', '--tokenizer', '--weights', '/tokenize', '/metrics'])
    assert.ok(help.stdout.includes(f), f);
  assert.equal(spawnSync(BIN, ['serve'], { encoding: 'utf8' }).status, 2);
  assert.equal(spawnSync(BIN, ['serve', '-m', LLAMA, '--port', 'x'], { encoding: 'utf8' }).status, 2);
  const tmpl = spawnSync(BIN, ['serve', '-m', LLAMA, '--chat-template', 'nope'], { encoding: 'utf8' });
  assert.equal(tmpl.status, 2);
  assert.match(tmpl.stderr, /unknown chat template 'nope'/);
  for (const bad of ['/nonexistent/model.gguf', `${REF}/expected/llama-tiny-Q8_0.ref.json`]) {
    const r = spawnSync(BIN, ['serve', '-m', bad, '--port', '0'], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /listening on/); // the listener was up while it loaded
    assert.ok(r.stderr.includes(bad), r.stderr);
  }
});

test('SIGTERM lets an in-flight stream finish, then exits 0', async () => {
  const s = await startServe(['-m', LLAMA, '--model-name', 'drain']);
  await waitHealthy(s.url);
  const exited = new Promise((res) => s.proc.on('exit', (code) => res(code)));
  const stream = await s.client.completions.create({ model: 'drain', prompt: 'Once upon a time', max_tokens: 30, temperature: 0, stream: true });
  let text = '', finish = null, n = 0;
  for await (const c of stream) {
    if (++n === 1) s.proc.kill('SIGTERM');
    text += c.choices[0]?.text ?? '';
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(finish, 'length');
  assert.ok(text.length > 0);
  assert.equal(await exited, 0);
});

test('while the model loads: /health 503 loading, generation 503; SIGTERM does not wait for the load', async () => {
  // A FIFO as the model file: the loader blocks in open() until a writer comes, so the
  // server stays in its loading state for as long as the test wants.
  const { spawnSync } = await import('node:child_process');
  const { mkdtempSync, rmSync, openSync, closeSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(`${tmpdir()}/tollgate-serve-`);
  const fifo = `${dir}/slow.gguf`;
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const exitOf = (p) => { p.removeAllListeners('exit'); return new Promise((res) => p.on('exit', (code) => res(code))); };
  try {
    const s = await startServe(['-m', fifo]);
    const exited = exitOf(s.proc);
    const h = await fetch(`${s.url}/health`);
    assert.equal(h.status, 503);
    assert.deepEqual(await h.json(), { status: 'loading' });
    const g = await post(s.url, '/v1/completions', { prompt: 'x' });
    assert.equal(g.status, 503);
    assert.match(g.json.error.message, /loading/);
    assert.equal((await post(s.url, '/tokenize', { content: 'x' })).status, 503);
    assert.equal((await fetch(`${s.url}/v1/models`)).status, 200);
    assert.equal((await fetch(`${s.url}/metrics`)).status, 200);
    s.proc.kill('SIGTERM');
    assert.equal(await exited, 0);

    // the same, then the "file" arrives empty: the load fails and the server exits 1
    const t = await startServe(['-m', fifo]);
    const exited2 = exitOf(t.proc);
    assert.equal((await fetch(`${t.url}/health`)).status, 503);
    closeSync(openSync(fifo, 'w'));
    assert.equal(await exited2, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
