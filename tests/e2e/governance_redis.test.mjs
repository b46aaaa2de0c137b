// governance_redis.test.mjs — two gateway processes sharing one redis-server enforce one limit
// (not twice it); with Redis killed they keep serving on local limits; when it is back they
// share again. The OpenAI client is the caller.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import net from 'node:net';
import OpenAI from 'openai';
import { start as startProc, stop, stopAll } from './lib.mjs';

const BIN = process.env.TOLLGATE_BIN;
const KEY = 'tg-shared-e2e-key';
let dir, sim, redis, redisPort, gws = [];

const start = (cmd, args, re) => startProc(args, re, { cmd });

const freePort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

const startRedis = () => start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1',
  '--save', '', '--appendonly', 'no'], /Ready to accept connections/);

async function until(fn, ms = 5000, what = 'condition') {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Connections of a gateway's workers to Redis that came up so far (each of its 2 threads has one).
async function redisUps(gw) {
  const text = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
  const m = text.match(/^tollgate_redis_transitions_total\{to="up"\} (\d+)$/m);
  return m ? Number(m[1]) : 0;
}

const client = (gw) => new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: KEY, maxRetries: 0, timeout: 10000 });
async function ask(gw) {
  try {
    await client(gw).chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    return 200;
  } catch (e) {
    return e.status ?? 0;
  }
}

before(async () => {
  assert.ok(BIN, 'TOLLGATE_BIN must point at the tollgate binary');
  dir = mkdtempSync(join(tmpdir(), 'tollgate-govr-'));
  redisPort = await freePort();
  redis = await startRedis();
  sim = await start(BIN, ['sim', '--port', '0', '--threads', '1'], /listening on [\d.]+:(\d+)/);
  const cfg = `listen: 127.0.0.1:0
threads: 2
admin: {enabled: false}
metrics: {public: true}
backends:
  sim: {addresses: [127.0.0.1:${sim.m[1]}], health_check: false}
routes:
  m: {variants: {v: {backend: sim}}}
redis: {address: 127.0.0.1:${redisPort}, key_prefix: e2e${process.pid}, timeout_ms: 200}
services:
  orders:
    keys: [sha256:${createHash('sha256').update(KEY).digest('hex')}]
    limits: {requests_per_minute: 4}
  tpm:
    keys: [sha256:${createHash('sha256').update(KEY + '-tpm').digest('hex')}]
    limits: {tokens_per_minute: 100}
`;
  const path = join(dir, 'gw.yaml');
  writeFileSync(path, cfg);
  for (let i = 0; i < 2; i++) {
    const { p, m } = await start(BIN, ['gateway', '-c', path], /listening on [\d.]+:(\d+)/);
    gws.push({ p, port: Number(m[1]) });
  }
});

after(async () => {
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('two gateways sharing one redis enforce one limit, not two', async () => {
  // The gateways connect to Redis in the background: the first request may come before.
  for (const g of gws) await until(async () => (await redisUps(g)) >= 2, 10000, 'both workers connected to redis');
  const codes = [];
  for (let i = 0; i < 10; i++) codes.push(await ask(gws[i % 2]));
  assert.equal(codes.filter((c) => c === 200).length, 4, `codes ${codes}`);
  assert.equal(codes.filter((c) => c === 429).length, 6, `codes ${codes}`);
  assert.deepEqual(codes.slice(0, 4), [200, 200, 200, 200]);
  // The refusal carries the shared limiter's numbers.
  const r = await fetch(`http://127.0.0.1:${gws[1].port}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }) });
  assert.equal(r.status, 429);
  assert.equal(r.headers.get('x-ratelimit-limit-requests'), '4');
  assert.equal(r.headers.get('x-ratelimit-remaining-requests'), '0');
  const ra = Number(r.headers.get('retry-after'));
  assert.ok(ra >= 1 && ra <= 15, `Retry-After ${ra}`); // one request per 15 s
});

test('redis killed: both keep serving on local limits; restarted: shared again', async () => {
  await stop(redis.p);
  // Each gateway now has its own, fresh local limit (4 per process): served, not failed.
  const during = [];
  for (let i = 0; i < 4; i++) during.push(await ask(gws[i % 2]));
  assert.deepEqual(during, [200, 200, 200, 200]);
  for (const g of gws) assert.equal(g.p.exitCode, null, 'gateway still running');
  const upsBefore = await Promise.all(gws.map(redisUps));
  redis = await startRedis();
  // A fresh Redis has full buckets; once both are back, 4 pass in all across the two.
  // Every worker sees its connection close and reconnects on its own, with backoff.
  for (const [i, g] of gws.entries())
    await until(async () => (await redisUps(g)) >= upsBefore[i] + 2, 15000, 'workers reconnected to redis');
  const after = [];
  for (let i = 0; i < 8; i++) after.push(await ask(gws[i % 2]));
  assert.equal(after.filter((c) => c === 200).length, 4, `codes ${after}`);
});

test('shared tokens per minute corrected from the usage (streamed too), across both gateways', async () => {
  // Each request reserves its prompt + max_tokens 50 (about 59) of the 100 per minute and
  // keeps only what it used (the sim writes 16). Without the correction only one request
  // would pass; with it several do, alternating gateways, until the bucket runs dry.
  const c = (gw) => new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: KEY + '-tpm', maxRetries: 0, timeout: 10000 });
  const body = { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 };
  let passed = 0, refused = null;
  for (let i = 0; i < 10 && !refused; i++) {
    try {
      if (i % 2 === 0) {
        const stream = await c(gws[0]).chat.completions.create({ ...body, stream: true });
        for await (const _ of stream) { /* drain */ }
      } else {
        await c(gws[1]).chat.completions.create(body);
      }
      passed++;
    } catch (e) {
      refused = e;
    }
    await new Promise((r) => setTimeout(r, 50)); // the correction is fire-and-forget
  }
  assert.ok(passed >= 3, `only ${passed} passed`);
  assert.ok(refused && refused.status === 429 && refused.type === 'tokens', `refused: ${refused}`);
});
