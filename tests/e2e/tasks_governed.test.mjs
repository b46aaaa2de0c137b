// tasks_governed.test.mjs — tasks behind governance: a service over its rate limit or daily
// token budget gets the task's fallback (reason rate_limited / budget) at once with 200;
// what the caller must fix (no key, a route the service may not use) stays an error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { start, stopAll } from './lib.mjs';

const BIN = process.env.TOLLGATE_BIN;
const KEYS = { orders: 'tg-task-orders-1', poor: 'tg-task-poor-2', other: 'tg-task-other-3' };
const hash = (k) => `sha256:${createHash('sha256').update(k).digest('hex')}`;
let dir, gw;

async function task(svc, input = 'lgr pep pzza x2') {
  const t0 = Date.now();
  const headers = { 'content-type': 'application/json' };
  if (svc) headers.authorization = `Bearer ${KEYS[svc]}`;
  const r = await fetch(`http://127.0.0.1:${gw.port}/v1/tasks/norm`, { method: 'POST', headers, body: JSON.stringify({ input }) });
  return { status: r.status, body: await r.json(), ms: Date.now() - t0 };
}

before(async () => {
  assert.ok(BIN, 'TOLLGATE_BIN must point at the tollgate binary');
  dir = mkdtempSync(join(tmpdir(), 'tollgate-taskgov-'));
  const sim = await start(['sim', '--port', '0', '--threads', '1', '--output', 'echo'], /listening on [\d.]+:(\d+)/);
  const cfg = `listen: 127.0.0.1:0
threads: 1
admin: {enabled: false}
backends:
  b: {addresses: [127.0.0.1:${sim.m[1]}], health_check: false}
routes:
  good: {variants: {v: {backend: b}}}
  elsewhere: {variants: {v: {backend: b}}}
services:
  orders:
    keys: [${hash(KEYS.orders)}]
    limits: {requests_per_minute: 2, requests_burst: 2}
  poor:
    keys: [${hash(KEYS.poor)}]
    limits: {daily_tokens: 30}
  other:
    keys: [${hash(KEYS.other)}]
    models: [elsewhere]
tasks:
  norm: {route: good, template: "Order: {input}", max_tokens: 16, deadline_ms: 500}
`;
  const path = join(dir, 'gw.yaml');
  writeFileSync(path, cfg);
  const { p, m } = await start(['gateway', '-c', path], /listening on [\d.]+:(\d+)/);
  gw = { p, port: Number(m[1]) };
});

after(async () => {
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('over the rate limit: the fallback, reason rate_limited, at once', async () => {
  for (let i = 0; i < 2; i++) {
    const r = await task('orders');
    assert.deepEqual([r.status, r.body.fallback, r.body.output], [200, false, 'Order: lgr pep pzza x2']);
  }
  const r = await task('orders');
  assert.deepEqual([r.status, r.body.fallback, r.body.reason, r.body.output], [200, true, 'rate_limited', 'lgr pep pzza x2']);
  assert.ok(r.ms < 250, `answered after ${r.ms} ms`);
});

test('over the daily budget: the fallback, reason budget', async () => {
  let r;
  for (let i = 0; i < 3 && !(r && r.body.fallback); i++) r = await task('poor');
  assert.deepEqual([r.status, r.body.fallback, r.body.reason], [200, true, 'budget']);
});

test('no key, or a route the service may not use: an error, not a fallback', async () => {
  let r = await task(null);
  assert.equal(r.status, 401);
  assert.ok(r.body.error.message);
  r = await task('other');
  assert.equal(r.status, 403);
  assert.ok(r.body.error.code);
});
