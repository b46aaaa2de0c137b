// governance_fair.test.mjs — a saturated backend shared fairly: one service floods, the other's
// requests still get their share (not stuck behind the flood); a full queue answers 429 at
// once; a request that waits past the queue deadline gets 503. OpenAI client as the caller.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import { start, stopAll } from './lib.mjs';

const BIN = process.env.TOLLGATE_BIN;
const KEYS = { flood: 'tg-flood-key-1', orders: 'tg-orders-key-2' };
let dir, gw, sim, slowSim;
const hash = (k) => `sha256:${createHash('sha256').update(k).digest('hex')}`;
const TTFT = 100; // ms per request at the upstream: the pool does one at a time

const clients = {};
const client = (svc) => (clients[svc] ??= new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: KEYS[svc], maxRetries: 0, timeout: 30000 }));
async function raw(svc, model = 'm') {
  const t0 = Date.now();
  const r = await fetch(`http://127.0.0.1:${gw.port}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEYS[svc]}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
  });
  const body = await r.json();
  return { status: r.status, code: body.error?.code, ms: Date.now() - t0 };
}

async function ask(svc, model = 'm') {
  const t0 = Date.now();
  try {
    await client(svc).chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    return { status: 200, ms: Date.now() - t0 };
  } catch (e) {
    return { status: e.status ?? 0, code: e.code, ms: Date.now() - t0 };
  }
}

before(async () => {
  assert.ok(BIN, 'TOLLGATE_BIN must point at the tollgate binary');
  dir = mkdtempSync(join(tmpdir(), 'tollgate-fair-'));
  sim = await start(['sim', '--port', '0', '--threads', '1', '--ttft-ms', String(TTFT)], /listening on [\d.]+:(\d+)/);
  slowSim = await start(['sim', '--port', '0', '--threads', '1', '--ttft-ms', '500'], /listening on [\d.]+:(\d+)/);
  const cfg = `listen: 127.0.0.1:0
threads: 1
admin: {enabled: false}
backends:
  pool: {addresses: [127.0.0.1:${sim.m[1]}], health_check: false}
  tiny: {addresses: [127.0.0.1:${slowSim.m[1]}], health_check: false}
routes:
  m: {variants: {v: {backend: pool}}, deadlines: {total_ms: 30000}}
  t: {variants: {v: {backend: tiny}}, deadlines: {total_ms: 30000}}
fair_queue:
  pool: {max_in_flight: 1, max_waiting: 100, timeout_ms: 20000}
  tiny: {max_in_flight: 1, max_waiting: 2, timeout_ms: 300}
services:
  flood:
    keys: [${hash(KEYS.flood)}]
  orders:
    keys: [${hash(KEYS.orders)}]
`;
  const path = join(dir, 'gw.yaml');
  writeFileSync(path, cfg);
  const { p, m } = await start(['gateway', '-c', path], /listening on [\d.]+:(\d+)/);
  gw = { p, port: Number(m[1]) };
  // Warm the clients up (the first call of a client pays for its set-up, ~0.5 s).
  await ask('flood');
  await ask('orders');
});

after(async () => {
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('one service floods a saturated pool: the other still gets its share', async () => {
  const N = 40;
  const flood = [];
  for (let i = 0; i < N; i++) flood.push(raw('flood'));
  await new Promise((r) => setTimeout(r, 5 * TTFT)); // the flood is queued at the gateway
  // Served one at a time in arrival order, orders' request would wait for the ~35 flood
  // requests ahead of it (~3.5 s). With equal shares it is served after at most the one in
  // flight and one more: about 2 * TTFT.
  const mine = [];
  for (let i = 0; i < 3; i++) mine.push(await ask('orders'));
  for (const r of mine) {
    assert.equal(r.status, 200);
    assert.ok(r.ms < 5 * TTFT, `orders waited ${r.ms} ms behind the flood (all: ${mine.map((x) => x.ms)})`);
  }
  const fl = await Promise.all(flood);
  assert.equal(fl.filter((r) => r.status === 200).length, N, 'the flood is served too, only later');
  assert.ok(Math.max(...fl.map((r) => r.ms)) >= (N - 5) * TTFT, 'the pool really was saturated');
});

test('queue full: 429 at once; waiting past the deadline: 503', async () => {
  // tiny: 1 in flight, 2 waiting with a 300 ms deadline; its upstream takes 500 ms.
  await raw('flood', 't'); // a warm keep-alive connection to the slow upstream
  const rs = await Promise.all([0, 1, 2, 3, 4, 5].map(() => raw('flood', 't')));
  const by = (s) => rs.filter((r) => r.status === s);
  assert.equal(by(200).length, 1, `statuses ${rs.map((r) => r.status)}`);
  assert.equal(by(503).length, 2, `statuses ${rs.map((r) => r.status)}`);
  assert.equal(by(429).length, 3, `statuses ${rs.map((r) => r.status)}`);
  // Order of events rather than absolute times (the machine may be busy): a full queue
  // refuses while the one admitted request (500 ms upstream) is still running, and a waiter
  // is given up at its 300 ms queue deadline — never before it, and before that request ends.
  const admitted = by(200)[0].ms;
  for (const r of by(429)) {
    assert.equal(r.code, 'queue_full');
    assert.ok(r.ms < admitted, `refused after ${r.ms} ms, not while the admitted request ran (${admitted} ms)`);
  }
  for (const r of by(503)) {
    assert.equal(r.code, 'queue_timeout');
    assert.ok(r.ms >= 290 && r.ms < admitted, `503 after ${r.ms} ms (deadline 300, admitted request ${admitted} ms)`);
  }
});
