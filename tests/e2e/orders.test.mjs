// orders.test.mjs — the example order service (`tollgate orders`) against a fake gateway task
// endpoint on 127.0.0.1 that answers like POST /v1/tasks/normalize_order: normal, slow past the
// deadline, 500, malformed, reset, refused connection, the gateway's own fallback. Every order
// must be created, within the deadline plus a margin, with the right description and source,
// and nothing acknowledged may be lost across SIGKILL / SIGTERM and a restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { procs, start as startProc } from './lib.mjs';

const BIN = process.env.TOLLGATE_BIN;
const KEY = 'orders-e2e-key';
const DEADLINE_MS = 300;
// Generous: the bound proves the deadline is enforced (a slow answer comes after 5 s), not speed.
const BOUND_MS = DEADLINE_MS + 1200;
let dir, fake, fakePort, seen = [], mode = 'normal';
const held = []; // mode 'hold': answers waiting for the test to release them

// The fake task endpoint. `mode` picks the behaviour of the next requests.
function fakeHandler(req, res) {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, body });
    let input = '';
    try { input = JSON.parse(body).input; } catch { /* recorded; answered below anyway */ }
    const ok = (obj) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(obj)); };
    switch (mode) {
      case 'normal':
        return ok({ output: `NORMALIZED(${input})`, fallback: false, reason: null, model: 'tinyorders', variant: 'stable', latency_ms: 3 });
      case 'slow':
        return setTimeout(() => ok({ output: 'too late', fallback: false, model: 'm', variant: 'stable', latency_ms: 5000 }), 5000);
      case '500':
        res.writeHead(500, { 'content-type': 'application/json' });
        return res.end('{"error":{"message":"boom"}}');
      case 'malformed':
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('{"output": 42, "fallback": "maybe"');
      case 'empty':
        return ok({ output: '   ', fallback: false, model: 'm', variant: 'stable' });
      case 'fallback':
        return ok({ output: input, fallback: true, reason: 'circuit_open', model: 'm', variant: 'canary', latency_ms: 0 });
      case 'reset':
        return req.socket.destroy();
      case 'hold':
        return held.push(() => ok({ output: `NORMALIZED(${input})`, fallback: false, reason: null, model: 'tinyorders', variant: 'stable', latency_ms: 3 }));
      default:
        throw new Error(`unknown mode ${mode}`);
    }
  });
}

// Start `tollgate orders`; resolve with its base URL once it prints its address.
function startOrders(db, gateway, extra = []) {
  const args = ['orders', '--port', '0', '--db', db, '--deadline-ms', String(DEADLINE_MS), ...extra];
  if (gateway) args.push('--gateway', gateway, '--gateway-key', KEY);
  const p = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(p);
  p.stderrText = '';
  p.stderr.on('data', (d) => { p.stderrText += d; });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`orders did not start: ${p.stderrText}`)), 10000);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on ([\d.]+):(\d+)/);
      if (m) { clearTimeout(timer); resolve({ p, url: `http://${m[1]}:${m[2]}` }); }
    });
    p.on('exit', (code) => { clearTimeout(timer); procs.delete(p); reject(new Error(`orders exited ${code}: ${p.stderrText}`)); });
  });
}

function kill(p, sig) {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve({ code: p.exitCode, signal: p.signalCode });
    p.removeAllListeners('exit');
    p.on('exit', (code, signal) => { procs.delete(p); resolve({ code, signal }); });
    p.kill(sig);
  });
}

async function order(base, items, customer = 'Ana') {
  const t0 = performance.now();
  const r = await fetch(`${base}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ items, customer }) });
  const ms = performance.now() - t0;
  return { status: r.status, body: await r.json(), ms, location: r.headers.get('location') };
}

async function metricValue(base, name, labels) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + (labels ? `{${labels}} ` : ' ')));
  return line ? Number(line.split(' ').pop()) : NaN;
}

// A port with nothing listening on it: bind, note the port, close.
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

before(async () => {
  assert.ok(BIN, 'TOLLGATE_BIN must point at the tollgate binary');
  dir = mkdtempSync(join(tmpdir(), 'orders-e2e-'));
  fake = http.createServer(fakeHandler);
  await new Promise((r) => fake.listen(0, '127.0.0.1', r));
  fakePort = fake.address().port;
});

after(async () => {
  for (const p of [...procs]) await kill(p, 'SIGKILL');
  fake.closeAllConnections();
  await new Promise((r) => fake.close(r));
  rmSync(dir, { recursive: true, force: true });
});

test('--help documents every flag; bad flags are usage errors', async () => {
  const help = await new Promise((resolve) => {
    const p = spawn(BIN, ['orders', '--help']);
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('exit', (code) => resolve({ code, out }));
  });
  assert.equal(help.code, 0);
  for (const f of ['--port', '--host', '--db', '--gateway', '--gateway-key', '--deadline-ms', '--task', '--threads'])
    assert.ok(help.out.includes(f), `--help lacks ${f}`);
  for (const args of [['--deadline-ms', '0'], ['--gateway', 'https://x'], ['--port', 'x'], ['--nope']]) {
    const code = await new Promise((resolve) => spawn(BIN, ['orders', ...args]).on('exit', resolve));
    assert.equal(code, 2, args.join(' '));
  }
  // A gateway name that does not resolve is a start-up error, not a silent raw-text service.
  const bad = await new Promise((resolve) => {
    const p = spawn(BIN, ['orders', '--port', '0', '--db', join(dir, 'x.db'), '--gateway', 'http://no-such-host.invalid:8080']);
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => resolve({ code, err }));
  });
  assert.equal(bad.code, 1);
  assert.match(bad.err, /cannot resolve the gateway host 'no-such-host.invalid'/);
});

test('every gateway outcome: the order is created in time, with the right description and source', async () => {
  const refused = await freePort();
  const { p, url } = await startOrders(join(dir, 'outcomes.db'), `http://127.0.0.1:${fakePort}`);
  const { url: urlRefused } = await startOrders(join(dir, 'refused.db'), `http://127.0.0.1:${refused}`);
  const cases = [
    { mode: 'normal', source: 'model', reason: null },
    { mode: 'slow', source: 'raw', reason: /^timeout/ },
    { mode: '500', source: 'raw', reason: 'http_status: 500' },
    { mode: 'malformed', source: 'raw', reason: /^malformed/ },
    { mode: 'empty', source: 'raw', reason: /^malformed: "output" must not be empty/ },
    { mode: 'reset', source: 'raw', reason: /^reset/ },
    { mode: 'fallback', source: 'raw', reason: 'gateway_fallback: circuit_open' },
  ];
  for (const c of cases) {
    mode = c.mode;
    seen = [];
    const items = `lgr pep pzza x2 ${c.mode}`;
    const r = await order(url, items, 'Bo');
    assert.equal(r.status, 201, `${c.mode}: ${JSON.stringify(r.body)}`);
    assert.ok(r.ms < BOUND_MS, `${c.mode}: took ${r.ms} ms`);
    assert.equal(r.body.items, items);
    assert.equal(r.body.customer, 'Bo');
    assert.equal(r.body.description_source, c.source, c.mode);
    assert.equal(r.body.description, c.source === 'model' ? `NORMALIZED(${items})` : items, c.mode);
    if (c.reason === null) assert.equal(r.body.reason, null);
    else if (c.reason instanceof RegExp) assert.match(r.body.reason, c.reason, c.mode);
    else assert.equal(r.body.reason, c.reason);
    assert.equal(r.location, `/orders/${r.body.id}`);
    // Stored as returned.
    const g = await (await fetch(`${url}/orders/${r.body.id}`)).json();
    assert.deepEqual(g, r.body);
    // The gateway saw the task contract with the service's key.
    assert.ok(seen.length >= 1, `${c.mode}: the fake gateway got no request`);
    assert.equal(seen[0].method, 'POST');
    assert.equal(seen[0].url, '/v1/tasks/normalize_order');
    assert.equal(seen[0].auth, `Bearer ${KEY}`);
    assert.deepEqual(JSON.parse(seen[0].body), { input: items });
  }
  mode = 'normal';
  const m = await order(url, 'x');
  assert.equal(m.body.model, 'tinyorders');
  assert.equal(m.body.variant, 'stable');

  const r = await order(urlRefused, 'sm coke');
  assert.equal(r.status, 201);
  assert.ok(r.ms < BOUND_MS, `refused: took ${r.ms} ms`);
  assert.equal(r.body.description_source, 'raw');
  assert.match(r.body.reason, /^unreachable/);

  assert.equal(await metricValue(url, 'tollgate_orders_created_total'), cases.length + 1);
  assert.equal(await metricValue(url, 'tollgate_orders_description_total', 'source="model",reason="none"'), 2);
  for (const reason of ['timeout', 'http_status', 'reset', 'gateway_fallback'])
    assert.equal(await metricValue(url, 'tollgate_orders_description_total', `source="raw",reason="${reason}"`), 1, reason);
  assert.equal(await metricValue(url, 'tollgate_orders_description_total', 'source="raw",reason="malformed"'), 2);
  assert.equal(await metricValue(urlRefused, 'tollgate_orders_description_total', 'source="raw",reason="unreachable"'), 1);
  const { code } = await kill(p, 'SIGTERM');
  assert.equal(code, 0);
  mode = 'normal';
});

test('the normalization call never blocks a worker: 20 orders at once on one thread, gateway holding', async () => {
  // The fake gateway holds every call until the test releases it, and the order service's
  // deadline is long. A worker that blocked on its call could never send the second one while
  // the first is held, so seeing all 20 calls arrive proves the call is asynchronous — by order
  // of events, not by timing.
  const { p, url } = await startOrders(join(dir, 'concurrent.db'), `http://127.0.0.1:${fakePort}`, ['--threads', '1', '--deadline-ms', '60000']);
  mode = 'hold';
  seen = [];
  const pending = Array.from({ length: 20 }, (_, i) => order(url, `conc ${i}`));
  const t0 = performance.now();
  while (seen.length < 20 && performance.now() - t0 < 30000) await new Promise((r) => setTimeout(r, 10));
  assert.equal(seen.length, 20, `only ${seen.length} of 20 calls reached the gateway while the first was held`);
  mode = 'normal';
  for (const release of held.splice(0)) release();
  const rs = await Promise.all(pending);
  for (const r of rs) {
    assert.equal(r.status, 201);
    assert.equal(r.body.description_source, 'model');
    assert.match(r.body.description, /^NORMALIZED\(conc \d+\)$/);
  }
  assert.equal(new Set(rs.map((r) => r.body.id)).size, 20);
  await kill(p, 'SIGTERM');
});

test('without --gateway orders keep their raw text (reason disabled)', async () => {
  const { url } = await startOrders(join(dir, 'nogw.db'), null);
  const r = await order(url, '2 gb');
  assert.equal(r.status, 201);
  assert.equal(r.body.description, '2 gb');
  assert.equal(r.body.description_source, 'raw');
  assert.equal(r.body.reason, 'disabled');
});

test('bad input gets a 400 with a clear JSON error and creates nothing', async () => {
  const { url } = await startOrders(join(dir, 'bad.db'), `http://127.0.0.1:${fakePort}`);
  const bad = [
    ['not json', /not valid JSON/, null],
    ['[]', /must be a JSON object/, null],
    ['{"customer":"Ana"}', /missing field "items"/, 'items'],
    ['{"items":"x"}', /missing field "customer"/, 'customer'],
    ['{"items":7,"customer":"Ana"}', /"items" must be a string/, 'items'],
    ['{"items":"   ","customer":"Ana"}', /"items" must not be empty/, 'items'],
    [JSON.stringify({ items: 'p'.repeat(501), customer: 'Ana' }), /the limit is 500/, 'items'],
    ['{"items":"x","customer":"Ana","qty":2}', /unknown field "qty"/, null],
  ];
  seen = [];
  for (const [body, re, param] of bad) {
    const r = await fetch(`${url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(r.status, 400, body);
    assert.match(r.headers.get('content-type'), /application\/json/);
    const j = await r.json();
    assert.match(j.error.message, re, body);
    assert.equal(j.error.param, param, body);
  }
  assert.equal(seen.length, 0, 'bad input must not reach the gateway');
  const list = await (await fetch(`${url}/orders`)).json();
  assert.deepEqual(list.orders, []);
  assert.equal(await metricValue(url, 'tollgate_orders_rejected_total', 'reason="bad_request"'), bad.length);
  for (const [path, status] of [['/orders/abc', 400], ['/orders/0', 400], ['/orders/999', 404], ['/orders?limit=0', 400], ['/orders?limit=5000', 400], ['/nope', 404]]) {
    const r = await fetch(url + path);
    assert.equal(r.status, status, path);
    assert.ok((await r.json()).error.message, path);
  }
  const r = await fetch(`${url}/orders/1`, { method: 'DELETE' });
  assert.equal(r.status, 405);
  assert.equal((await fetch(`${url}/health`)).status, 200);
});

test('GET /orders pages newest first', async () => {
  const { url } = await startOrders(join(dir, 'list.db'), `http://127.0.0.1:${fakePort}`);
  mode = 'normal';
  for (let i = 1; i <= 5; i++) assert.equal((await order(url, `item ${i}`)).status, 201);
  const a = await (await fetch(`${url}/orders?limit=2`)).json();
  assert.deepEqual(a.orders.map((o) => o.items), ['item 5', 'item 4']);
  const b = await (await fetch(`${url}/orders?limit=2&before=${a.next_before}`)).json();
  assert.deepEqual(b.orders.map((o) => o.items), ['item 3', 'item 2']);
  const c = await (await fetch(`${url}/orders?limit=2&before=${b.next_before}`)).json();
  assert.deepEqual(c.orders.map((o) => o.items), ['item 1']);
  assert.equal(c.next_before, null);
});

test('nothing acknowledged is lost: SIGKILL right after, SIGTERM during, restart on the same DB', async () => {
  const db = join(dir, 'durable.db');
  mode = 'normal';
  let { p, url } = await startOrders(db, `http://127.0.0.1:${fakePort}`);
  const acked = new Map();
  const batch = await Promise.all(Array.from({ length: 40 }, (_, i) => order(url, `batch ${i}`, `c${i}`)));
  for (const r of batch) { assert.equal(r.status, 201); acked.set(r.body.id, r.body); }
  await kill(p, 'SIGKILL'); // no chance to checkpoint or close: only committed data survives

  ({ p, url } = await startOrders(db, `http://127.0.0.1:${fakePort}`));
  // Orders in flight when SIGTERM arrives (their normalization is slow) are finished, not dropped.
  mode = 'slow';
  const asked = seen.length;
  const inflight = Array.from({ length: 6 }, (_, i) => order(url, `inflight ${i}`).catch((e) => ({ error: e })));
  // SIGTERM once all six are inside the service (each has asked for its normalization).
  const t0 = performance.now();
  while (seen.length < asked + 6 && performance.now() - t0 < 10000) await new Promise((r) => setTimeout(r, 10));
  assert.equal(seen.length, asked + 6, 'the six orders reached the normalization call');
  const exit = kill(p, 'SIGTERM');
  const results = await Promise.all(inflight);
  assert.equal((await exit).code, 0);
  for (const r of results) {
    assert.ok(!r.error, `an in-flight order failed at shutdown: ${r.error}`);
    assert.equal(r.status, 201);
    assert.equal(r.body.description_source, 'raw');
    acked.set(r.body.id, r.body);
  }
  mode = 'normal';

  ({ p, url } = await startOrders(db, `http://127.0.0.1:${fakePort}`));
  const list = await (await fetch(`${url}/orders?limit=1000`)).json();
  assert.equal(list.orders.length, acked.size);
  for (const [id, body] of acked) {
    const r = await fetch(`${url}/orders/${id}`);
    assert.equal(r.status, 200, `order ${id} lost`);
    assert.deepEqual(await r.json(), body);
  }
  // Ids keep growing after the restart.
  const n = await order(url, 'after restart');
  assert.ok(n.body.id > Math.max(...acked.keys()));
  await kill(p, 'SIGTERM');
});

test('through the real gateway and tollgate sim: model, gateway fallback, gateway down, wrong key', async (t) => {
  const { p: sim, m: sm } = await startProc(['sim', '--port', '0', '--threads', '1', '--output', 'echo'], /listening on [\d.]+:(\d+)/);
  const simUrl = `http://127.0.0.1:${sm[1]}`;
  const hash = 'sha256:' + createHash('sha256').update(KEY).digest('hex');
  const cfg = join(dir, 'gateway.yaml');
  writeFileSync(cfg, `listen: 127.0.0.1:0
threads: 1
backends:
  sim: {addresses: ["127.0.0.1:${sm[1]}"]}
routes:
  orders-model:
    variants: {stable: {backend: sim}}
services:
  orders:
    keys: [${hash}]
tasks:
  normalize_order:
    route: orders-model
    system: "Rewrite the order as it should appear on a receipt."
    template: "{input}"
    max_tokens: 32
    temperature: 0
    deadline_ms: 150
`);
  const { p: gw, m: gm } = await startProc(['gateway', '-c', cfg], /listening on ([\d.]+):(\d+)/);
  const gwUrl = `http://${gm[1]}:${gm[2]}`;
  // The task endpoint (issue 5) may not be in this build yet: say so instead of failing.
  const probe = await fetch(`${gwUrl}/v1/tasks/normalize_order`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: '{"input":"x"}' });
  if (probe.status !== 200) {
    t.skip(`the gateway has no task endpoint yet (POST /v1/tasks/normalize_order -> ${probe.status})`);
    await kill(gw, 'SIGKILL');
    await kill(sim, 'SIGKILL');
    return;
  }
  const { url } = await startOrders(join(dir, 'real.db'), gwUrl);
  // The simulator echoes the input words, so the "model's" description is the items text;
  // the source tells the two apart.
  let r = await order(url, 'lgr pep pzza x2');
  assert.equal(r.status, 201);
  assert.equal(r.body.description_source, 'model', JSON.stringify(r.body));
  assert.equal(r.body.description, 'lgr pep pzza x2');
  assert.equal(r.body.model, 'orders-model');
  assert.equal(r.body.variant, 'stable');
  assert.equal(r.body.reason, null);

  // The engine is slow: the gateway's task deadline (150 ms) falls back, well within ours.
  await fetch(`${simUrl}/sim/config`, { method: 'POST', body: JSON.stringify({ ttft_ms: 2000 }) });
  r = await order(url, 'sm coke');
  assert.equal(r.status, 201);
  assert.ok(r.ms < BOUND_MS, `slow engine: ${r.ms} ms`);
  assert.equal(r.body.description_source, 'raw');
  assert.equal(r.body.description, 'sm coke');
  assert.match(r.body.reason, /^gateway_fallback: /);

  // The engine is down: the gateway still answers, with its fallback.
  await kill(sim, 'SIGKILL');
  r = await order(url, '2 gb');
  assert.equal(r.status, 201);
  assert.ok(r.ms < BOUND_MS, `engine down: ${r.ms} ms`);
  assert.equal(r.body.description_source, 'raw');
  assert.match(r.body.reason, /^gateway_fallback: /);

  // A key the gateway does not know: 401, the order is still created.
  const { url: url2 } = await startOrders(join(dir, 'badkey.db'), null, ['--gateway', gwUrl, '--gateway-key', 'tg-not-a-known-key']);
  r = await order(url2, 'wings');
  assert.equal(r.status, 201);
  assert.equal(r.body.description_source, 'raw');
  assert.equal(r.body.reason, 'http_status: 401');

  // The gateway is down: connection refused, the order is still created at once.
  await kill(gw, 'SIGKILL');
  r = await order(url, 'lg marg');
  assert.equal(r.status, 201);
  assert.ok(r.ms < BOUND_MS, `gateway down: ${r.ms} ms`);
  assert.equal(r.body.description_source, 'raw');
  assert.match(r.body.reason, /^unreachable/);
  const list = await (await fetch(`${url}/orders`)).json();
  assert.equal(list.orders.length, 4);
});
