// governance.test.mjs — services, keys and limits through the gateway with the official OpenAI
// client: 401/403, the N-th request passes and N+1 gets 429 with Retry-After and x-ratelimit-*,
// a prompt over its limit gets 400 with both numbers (exact count with a GGUF tokenizer),
// max_tokens clamped (visible in the sim's usage), tokens per minute corrected by the actual
// usage (streamed and not), daily budget, concurrency.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import { start, stopAll } from './lib.mjs';

const BIN = process.env.TOLLGATE_BIN;
const REF = process.env.TOLLGATE_REF;
let dir, gw, sim, slow, cfgText, cfgPath;
const KEYS = { orders: 'tg-orders-key-0001', search: 'tg-search-key-0002', limited: 'tg-limited-key-0003',
  tpm: 'tg-tpm-key-0004', budget: 'tg-budget-key-0005', conc: 'tg-conc-key-0006' };
const hash = (k) => `sha256:${createHash('sha256').update(k).digest('hex')}`;

const client = (service, key = KEYS[service]) => new OpenAI({
  baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: key, maxRetries: 0, timeout: 10000 });
const msg = (content = 'lgr pep pzza x2') => [{ role: 'user', content }];

async function post(key, body) {
  const headers = { 'content-type': 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  const r = await fetch(`http://127.0.0.1:${gw.port}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: r.status, headers: r.headers, json: await r.json() };
}

before(async () => {
  assert.ok(BIN, 'TOLLGATE_BIN must point at the tollgate binary');
  dir = mkdtempSync(join(tmpdir(), 'tollgate-gov-'));
  sim = await start(['sim', '--port', '0', '--threads', '1', '--output', 'fixed:16'], /listening on [\d.]+:(\d+)/);
  slow = await start(['sim', '--port', '0', '--threads', '1', '--ttft-ms', '600'], /listening on [\d.]+:(\d+)/);
  const cfg = `listen: 127.0.0.1:0
threads: 2
admin: {listen: '127.0.0.1:0', key: '${hash('e2e-gov-admin')}'}
backends:
  sim: {addresses: [127.0.0.1:${sim.m[1]}], health_check: false}
  slow: {addresses: [127.0.0.1:${slow.m[1]}], health_check: false}
routes:
  m:
    variants: {v: {backend: sim}}
  exact:
    variants: {v: {backend: sim}}
    tokenizer: ${REF}/models/llama-tiny-Q8_0.gguf
  other:
    variants: {v: {backend: sim}}
  slow:
    variants: {v: {backend: slow}}
services:
  orders:
    keys: [${hash(KEYS.orders)}]
    models: [m, exact, slow]
    limits: {max_prompt_tokens: 12, max_completion_tokens: 5}
  search:
    keys: [${hash(KEYS.search)}]
    limits: {max_completion_tokens: 5, over_max_completion: reject}
    model_limits:
      other: {requests_per_minute: 1}
  limited:
    keys: [${hash(KEYS.limited)}]
    limits: {requests_per_minute: 3}
  tpm:
    keys: [${hash(KEYS.tpm)}]
    limits: {tokens_per_minute: 100}
  budget:
    keys: [${hash(KEYS.budget)}]
    limits: {daily_tokens: 30}
  conc:
    keys: [${hash(KEYS.conc)}]
    limits: {concurrent_requests: 1}
`;
  const path = join(dir, 'gw.yaml');
  writeFileSync(path, cfg);
  cfgText = cfg;
  cfgPath = path;
  const { p, m } = await start(['gateway', '-c', path], /listening on [\d.]+:(\d+) admin [\d.]+:(\d+)/);
  gw = { p, port: Number(m[1]), admin: Number(m[2]) };
});

after(async () => {
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('missing or unknown key: 401 in OpenAI error JSON', async () => {
  let r = await post(null, { model: 'm', messages: msg() });
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, 'missing_api_key');
  await assert.rejects(client('orders', 'tg-not-a-key-at-all').chat.completions.create({ model: 'm', messages: msg() }),
    (e) => e.status === 401 && e.code === 'invalid_api_key' && !e.message.includes('not-a-key'));
  r = await fetch(`http://127.0.0.1:${gw.port}/v1/models`);
  assert.equal(r.status, 401);
  const models = await client('orders').models.list();
  assert.ok(models.data.length >= 3);
});

test('a key not allowed to use a model: 403', async () => {
  await assert.rejects(client('orders').chat.completions.create({ model: 'other', messages: msg() }),
    (e) => e.status === 403 && e.code === 'model_not_allowed' && /orders/.test(e.message));
  const r = await client('search').chat.completions.create({ model: 'other', messages: msg(), max_tokens: 5 });
  assert.equal(r.object, 'chat.completion');
});

test('max_tokens above the cap is clamped, absent gets the cap, reject policy gives 400', async () => {
  let r = await client('orders').chat.completions.create({ model: 'm', messages: msg(), max_tokens: 100 });
  assert.equal(r.usage.completion_tokens, 5); // the sim would write 16: the gateway sent 5
  r = await client('orders').chat.completions.create({ model: 'm', messages: msg() });
  assert.equal(r.usage.completion_tokens, 5);
  r = await client('orders').chat.completions.create({ model: 'm', messages: msg(), max_tokens: 3 });
  assert.equal(r.usage.completion_tokens, 3);
  await assert.rejects(client('search').chat.completions.create({ model: 'm', messages: msg(), max_tokens: 6 }),
    (e) => e.status === 400 && e.code === 'max_tokens_too_large' && /6/.test(e.message) && /limit of 5/.test(e.message));
});

test('prompt over max_prompt_tokens: 400 naming both numbers, counted exactly with the tokenizer', async () => {
  // "[INST] hi [/INST]" with BOS is 9 tokens in the Llama vocabulary: under 12.
  const ok = await client('orders').chat.completions.create({ model: 'exact', messages: msg('hi') });
  assert.equal(ok.object, 'chat.completion');
  const long = 'lgr pep pzza x2 and a large garlic bread';
  await assert.rejects(client('orders').chat.completions.create({ model: 'exact', messages: msg(long) }),
    (e) => {
      const m = /prompt is (\d+) tokens, over the limit of 12 prompt tokens/.exec(e.message);
      return e.status === 400 && e.code === 'prompt_too_long' && m && Number(m[1]) > 12 && !/estimated/.test(e.message);
    });
  // Without a tokenizer the count is an estimate, and says so.
  await assert.rejects(client('orders').chat.completions.create({ model: 'm', messages: msg(long) }),
    (e) => e.status === 400 && /estimated/.test(e.message));
});

test('requests per minute: the 3rd passes, the 4th gets 429 with Retry-After and x-ratelimit-*', async () => {
  const body = { model: 'm', messages: msg(), max_tokens: 2 };
  for (let i = 1; i <= 3; i++) {
    const r = await post(KEYS.limited, body);
    assert.equal(r.status, 200, `request ${i}`);
    assert.equal(r.headers.get('x-ratelimit-limit-requests'), '3');
    assert.equal(r.headers.get('x-ratelimit-remaining-requests'), String(3 - i));
    assert.match(r.headers.get('x-ratelimit-reset-requests'), /^\d+(\.\d+)?m?s$|^\d+m\d+(\.\d+)?s$/);
  }
  const r = await post(KEYS.limited, body);
  assert.equal(r.status, 429);
  assert.equal(r.json.error.code, 'rate_limit_exceeded');
  assert.match(r.json.error.message, /requests per min \(RPM\): Limit 3/);
  const ra = Number(r.headers.get('retry-after'));
  assert.ok(ra >= 19 && ra <= 20, `Retry-After ${ra}`); // one request refills every 20 s
  assert.equal(r.headers.get('x-ratelimit-remaining-requests'), '0');
  // The OpenAI client surfaces it as a RateLimitError.
  await assert.rejects(client('limited').chat.completions.create(body), (e) => e.status === 429);
});

test('admin GET /limits: live bucket, in-flight and budget state per service', async () => {
  const r = await fetch(`http://127.0.0.1:${gw.admin}/limits`, { headers: { authorization: 'Bearer e2e-gov-admin' } });
  assert.equal(r.status, 200);
  const j = await r.json();
  assert.equal(j.services.limited.requests_per_minute, 3);
  assert.equal(j.services.limited.remaining_requests, 0);
  assert.equal(j.services.limited.in_flight, 0);
  assert.equal(j.services.orders.remaining_requests, null); // no RPM limit
  assert.ok(j.rejected.requests >= 2 && j.rejected.invalid_key >= 1 && j.rejected.model_not_allowed >= 1);
  assert.equal(j.shared, false);
  const denied = await fetch(`http://127.0.0.1:${gw.admin}/limits`);
  assert.equal(denied.status, 401);
});

test('a reload adds a key and keeps the limiter state (no fresh burst)', async () => {
  // Runs after the RPM test: 'limited' has used its 3 requests of the minute.
  const newKey = 'tg-limited-key-rotated';
  writeFileSync(cfgPath, cfgText.replace(`keys: [${hash(KEYS.limited)}]`,
    `keys: [${hash(KEYS.limited)}, ${hash(newKey)}]`));
  const r = await fetch(`http://127.0.0.1:${gw.admin}/reload`, { method: 'POST', headers: { authorization: 'Bearer e2e-gov-admin' } });
  assert.equal(r.status, 200, JSON.stringify(await r.json()));
  const body = { model: 'm', messages: msg(), max_tokens: 2 };
  const viaNew = await post(newKey, body);
  assert.equal(viaNew.status, 429, 'the new key belongs to the same, exhausted service');
  assert.equal(viaNew.json.error.code, 'rate_limit_exceeded');
  assert.equal((await post('tg-never-configured', body)).status, 401);
  writeFileSync(cfgPath, cfgText); // back as it was
  await fetch(`http://127.0.0.1:${gw.admin}/reload`, { method: 'POST', headers: { authorization: 'Bearer e2e-gov-admin' } });
  assert.equal((await post(newKey, body)).status, 401, 'a removed key is refused after the reload');
});

test('tokens per minute: charged prompt + max_tokens, corrected by the actual usage (stream too)', async () => {
  // Estimated prompt 12 + max_tokens 50 = 62 reserved; the sim writes 16, so 28 are kept.
  // Without the correction the second request (62 + 62 > 100) would be refused.
  const body = { model: 'm', messages: msg(), max_tokens: 50 };
  const stream = await client('tpm').chat.completions.create({ ...body, stream: true });
  let n = 0;
  for await (const c of stream) if (c.choices[0]?.delta?.content) n++;
  assert.ok(n > 0);
  const r2 = await post(KEYS.tpm, body);
  assert.equal(r2.status, 200);
  assert.ok(Number(r2.headers.get('x-ratelimit-remaining-tokens')) < 62);
  const r3 = await post(KEYS.tpm, body);
  assert.equal(r3.status, 429);
  assert.equal(r3.json.error.type, 'tokens');
  assert.match(r3.json.error.message, /Requested 62 \(prompt 12 \+ max_tokens 50\)/);
  assert.ok(Number(r3.headers.get('retry-after')) >= 1);
});

test('daily token budget: exhausted gives 429 with the reason and Retry-After until midnight UTC', async () => {
  const body = { model: 'm', messages: msg(), max_tokens: 16 };
  const r1 = await post(KEYS.budget, body); // reserves 12 + 16 = 28 of 30
  assert.equal(r1.status, 200);
  const used = r1.json.usage.prompt_tokens + r1.json.usage.completion_tokens; // the charge after correction
  const r2 = await post(KEYS.budget, body);
  assert.equal(r2.status, 429);
  assert.equal(r2.json.error.code, 'daily_budget_exceeded');
  assert.ok(r2.json.error.message.includes(`used ${used} of its daily budget of 30 tokens`), r2.json.error.message);
  const now = new Date();
  const toMidnight = Math.ceil((Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime()) / 1000);
  const ra = Number(r2.headers.get('retry-after'));
  assert.ok(Math.abs(ra - toMidnight) <= 2, `Retry-After ${ra} vs ${toMidnight}`);
});

test('concurrent requests: the second at once gets 429, and passes after the first ends', async () => {
  const body = { model: 'slow', messages: msg(), max_tokens: 2 };
  // 'conc' may not use 'slow'? It may: no models list means every route.
  const first = post(KEYS.conc, body);
  await new Promise((r) => setTimeout(r, 150));
  const second = await post(KEYS.conc, body);
  assert.equal(second.status, 429);
  assert.match(second.json.error.message, /1 requests in flight/);
  assert.equal((await first).status, 200);
  assert.equal((await post(KEYS.conc, body)).status, 200);
});

test('limits per service and model: the model has its own RPM on top of the service', async () => {
  // 'search' used its one request of the minute on 'other' in the 403 test.
  await assert.rejects(client('search').chat.completions.create({ model: 'other', messages: msg(), max_tokens: 5 }),
    (e) => e.status === 429 && /on model `other` on requests per min \(RPM\): Limit 1/.test(e.message));
  const r = await client('search').chat.completions.create({ model: 'm', messages: msg(), max_tokens: 5 });
  assert.equal(r.object, 'chat.completion');
});
