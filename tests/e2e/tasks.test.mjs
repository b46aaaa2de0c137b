// tasks.test.mjs — graceful degradation end to end against `tollgate sim` upstreams: tasks
// answer with the model's output when healthy and with the raw input within their deadline
// when the upstream is slow, failing, refusing connections or stalled; the circuit opens
// (fallback at once) and closes again; a slow canary aborts by itself with no failed client
// request; a healthy canary is promoted through its steps; sticky assignment holds; bad
// task input gets a clear 400. The OpenAI client makes the proxied calls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { start, stopAll } from './lib.mjs';

const BIN = process.env.TOLLGATE_BIN;
const ADMIN_KEY = 'e2e-task-admin-key';
const DEADLINE = 300; // ms, the tasks' deadline
const MARGIN = 400;   // ms: generous, a loaded CI machine must not fail the test
let dir, gw, sims = {};

async function sim(...args) {
  const { p, m } = await start(['sim', '--port', '0', '--threads', '1', '--output', 'echo', ...args], /listening on [\d.]+:(\d+)/);
  return { p, port: Number(m[1]) };
}

// A port nobody listens on: bind one, then close it.
function closedPort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function task(name, body, headers = {}) {
  const t0 = Date.now();
  const r = await fetch(`http://127.0.0.1:${gw.port}/v1/tasks/${name}`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json(), ms: Date.now() - t0 };
}

async function admin(method, path, body) {
  const r = await fetch(`http://127.0.0.1:${gw.admin}${path}`, {
    method, headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

async function simConfig(s, knobs) {
  const r = await fetch(`http://127.0.0.1:${s.port}/sim/config`, { method: 'POST', body: JSON.stringify(knobs) });
  assert.equal(r.status, 200);
}

let client;
async function chat(model, user) {
  const { data, response } = await client.chat.completions
    .create({ model, messages: [{ role: 'user', content: 'hello there' }], max_tokens: 4 },
      { headers: user ? { 'x-tollgate-user': user } : {} })
    .withResponse();
  return { variant: response.headers.get('x-tollgate-variant'), data };
}

before(async () => {
  assert.ok(BIN, 'TOLLGATE_BIN must point at the tollgate binary');
  dir = mkdtempSync(join(tmpdir(), 'tollgate-tasks-'));
  sims.good = await sim();
  sims.good2 = await sim();
  sims.slow = await sim('--ttft-ms', '3000');
  sims.failing = await sim('--fail-rate', '1');
  sims.stall = await sim('--stall-rate', '1');
  sims.flaky = await sim();
  sims.canary = await sim('--ttft-ms', '700');
  sims.shed = await sim('--ttft-ms', '800');
  const refused = await closedPort();
  const b = (name, port) => `  ${name}: {addresses: [127.0.0.1:${port}], health_check: false, ejection: {consecutive_failures: 0}}\n`;
  const cfg = `listen: 127.0.0.1:0
threads: 2
admin: {listen: 127.0.0.1:0, key: ${ADMIN_KEY}}
circuit_breaker: {consecutive_failures: 3, failure_ratio: 0, cooldown_ms: 1500, probes: 1}
backends:
${b('good', sims.good.port)}${b('good2', sims.good2.port)}${b('slow', sims.slow.port)}${b('failing', sims.failing.port)}${b('stall', sims.stall.port)}${b('flaky', sims.flaky.port)}${b('canary', sims.canary.port)}${b('refused', refused)}  shed: {addresses: [127.0.0.1:${sims.shed.port}], health_check: false, max_connections: 1}
routes:
  good: {variants: {v: {backend: good}}}
  slow: {variants: {v: {backend: slow}}}
  failing: {variants: {v: {backend: failing}}, retry: {max_attempts: 1}}
  stall: {variants: {v: {backend: stall}}}
  refused: {variants: {v: {backend: refused}}, retry: {max_attempts: 1}}
  flaky: {variants: {v: {backend: flaky}}, retry: {max_attempts: 1}}
  slowcanary:
    variants: {stable: {backend: good, weight: 100}, canary: {backend: canary, weight: 0}}
    canary: {steps: [50, 100], pause_ms: 600000, min_requests: 3, window_ms: 60000}
  healthy:
    variants: {stable: {backend: good, weight: 100}, canary: {backend: good2, weight: 0}}
    canary: {steps: [10, 50, 100], pause_ms: 100, min_requests: 2, window_ms: 60000}
  ab:
    variants: {a: {backend: good, weight: 50}, b: {backend: good2, weight: 50}}
    sticky: {header: x-tollgate-user}
  shed: {variants: {v: {backend: shed}}, retry: {max_attempts: 1}}
  withfallback:
    variants: {primary: {backend: refused, weight: 100}, backup: {backend: good2, weight: 0}}
    fallback: backup
    retry: {max_attempts: 1}
tasks:
  norm: {route: good, system: "Normalize the order.", template: "Order: {input}", deadline_ms: ${DEADLINE}, max_input_bytes: 100}
  slow: {route: slow, deadline_ms: ${DEADLINE}}
  failing: {route: failing, deadline_ms: ${DEADLINE}}
  stall: {route: stall, deadline_ms: ${DEADLINE}}
  refused: {route: refused, deadline_ms: ${DEADLINE}}
  flaky: {route: flaky, template: "Order: {input}", deadline_ms: ${DEADLINE}}
  fixed: {route: refused, deadline_ms: ${DEADLINE}, fallback: {text: "n/a"}}
# scraped without a key below: the opt-out for a listener only the scraper can reach
metrics: {public: true}
`;
  const path = join(dir, 'gw.yaml');
  writeFileSync(path, cfg);
  const { p, m } = await start(['gateway', '-c', path], /listening on [\d.]+:(\d+) admin [\d.]+:(\d+)/);
  gw = { p, port: Number(m[1]), admin: Number(m[2]) };
  client = new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: 'none', maxRetries: 0, timeout: 30000 });
  await task('norm', { input: 'warm up' });
});

after(async () => {
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a healthy upstream: the model output, marked as such', async () => {
  const r = await task('norm', { input: 'lgr pep pzza x2' });
  assert.equal(r.status, 200);
  assert.equal(r.body.output, 'Order: lgr pep pzza x2'); // the sim echoes the user message
  assert.equal(r.body.fallback, false);
  assert.equal(r.body.reason, null);
  assert.equal(r.body.model, 'good');
  assert.equal(r.body.variant, 'v');
  assert.equal(typeof r.body.latency_ms, 'number');
  assert.ok(r.body.latency_ms < DEADLINE);
});

for (const [name, reasons] of [['slow', ['timeout']], ['stall', ['timeout']],
  ['failing', ['upstream_error', 'upstream_rate_limited']], ['refused', ['upstream_error']]]) {
  test(`a ${name} upstream: the raw input within the deadline`, async () => {
    const r = await task(name, { input: 'lgr pep pzza x2' });
    assert.equal(r.status, 200);
    assert.deepEqual([r.body.output, r.body.fallback], ['lgr pep pzza x2', true]);
    assert.ok(reasons.includes(r.body.reason), r.body.reason);
    assert.ok(r.ms < DEADLINE + MARGIN, `answered after ${r.ms} ms`);
  });
}

test('a fixed fallback text, and fallbacks counted by reason', async () => {
  const r = await task('fixed', { input: 'anything' });
  assert.deepEqual([r.status, r.body.output, r.body.fallback], [200, 'n/a', true]);
  const text = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
  assert.match(text, /tollgate_fallbacks_total\{[^}]*model="slow"[^}]*reason="timeout"\} [1-9]/);
  assert.match(text, /tollgate_fallbacks_total\{[^}]*reason="upstream_error"\} [1-9]/);
});

test('bad task input: 400 / 404 with an OpenAI error', async () => {
  for (const [body, code] of [[{}, 'missing_input'], [{ input: 3 }, 'invalid_input'], [{ input: '' }, 'invalid_input'],
    [{ input: 'x'.repeat(101) }, 'input_too_long'], ['not json', 'invalid_json'], ['[1]', 'invalid_json']]) {
    const r = await task('norm', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.error.code, code);
    assert.equal(typeof r.body.error.message, 'string');
  }
  const r = await task('nosuch', { input: 'x' });
  assert.equal(r.status, 404);
  assert.equal(r.body.error.code, 'task_not_found');
  const g = await fetch(`http://127.0.0.1:${gw.port}/v1/tasks/norm`);
  assert.equal(g.status, 405);
});

test('the circuit opens after repeated failures (fallback at once) and closes again', async () => {
  assert.equal((await task('flaky', { input: 'a b' })).body.fallback, false);
  await simConfig(sims.flaky, { fail_rate: 1 });
  for (let i = 0; i < 3; i++) assert.equal((await task('flaky', { input: 'a b' })).body.fallback, true);
  const open = await task('flaky', { input: 'a b' });
  assert.deepEqual([open.body.fallback, open.body.reason], [true, 'circuit_open']);
  assert.ok(open.ms < DEADLINE / 2, `open circuit answered after ${open.ms} ms`);
  // The upstream recovers; after the cool-down one probe closes the circuit.
  await simConfig(sims.flaky, { fail_rate: 0 });
  await new Promise((r) => setTimeout(r, 1700));
  const probe = await task('flaky', { input: 'a b' });
  assert.deepEqual([probe.body.output, probe.body.fallback], ['Order: a b', false]);
  const after = await task('flaky', { input: 'c d' });
  assert.deepEqual([after.body.output, after.body.fallback], ['Order: c d', false]);
  const text = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
  assert.match(text, /tollgate_circuit_state\{backend="flaky"\} 0/);
  assert.match(text, /tollgate_circuit_opens_total\{backend="flaky"\} 1/);
  assert.match(text, /tollgate_circuit_rejected_total\{backend="flaky"\} [1-9]/);
});

test('a proxied call falls back to the route\'s fallback variant', async () => {
  const { variant, data } = await chat('withfallback');
  assert.equal(variant, 'backup');
  assert.ok(data.choices[0].message.content.length > 0);
});

test('a slow canary is aborted by itself, no client request fails, traffic returns to stable', async () => {
  const st = await admin('POST', '/canary/slowcanary/start');
  assert.equal(st.status, 200);
  assert.deepEqual([st.body.state, st.body.weight, st.body.canary], ['running', 50, 'canary']);
  let status;
  for (let i = 0; i < 60; i++) {
    await chat('slowcanary'); // throws on any failure
    status = (await admin('GET', '/canary/slowcanary')).body;
    if (status.state !== 'running') break;
  }
  assert.equal(status.state, 'aborted');
  assert.equal(status.weight, 0);
  assert.match(status.reason, /p99 latency .* > limit 500 ms/);
  const routes = (await admin('GET', '/routes/slowcanary/weights')).body;
  assert.deepEqual(routes.weights, { stable: 100, canary: 0 });
  for (let i = 0; i < 10; i++) assert.equal((await chat('slowcanary')).variant, 'stable');
  const metrics = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
  assert.match(metrics, /tollgate_canary_weight\{model="slowcanary",variant="canary"\} 0/);
  // Decided: commands that need a running canary are refused.
  assert.equal((await admin('POST', '/canary/slowcanary/promote')).status, 409);
});

test('a healthy canary is promoted through all its steps', async () => {
  const st = await admin('POST', '/canary/healthy/start');
  assert.deepEqual([st.status, st.body.weight], [200, 10]);
  const seen = new Set();
  let status;
  for (let i = 0; i < 400; i++) {
    const { variant } = await chat('healthy');
    if (variant === 'canary') seen.add((await admin('GET', '/canary/healthy')).body.weight);
    status = (await admin('GET', '/canary/healthy')).body;
    if (status.state === 'promoted') break;
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(status.state, 'promoted');
  assert.equal(status.weight, 100);
  assert.ok(seen.has(50), `weights seen: ${[...seen]}`);
  const routes = (await admin('GET', '/routes/healthy/weights')).body;
  assert.deepEqual(routes.weights, { stable: 0, canary: 100 });
  for (let i = 0; i < 5; i++) assert.equal((await chat('healthy')).variant, 'canary');
});

test('manual canary commands: pause, resume, promote, abort', async () => {
  // The healthy route's canary was promoted: a new start begins again at its first step.
  let r = await admin('POST', '/canary/healthy/start', { pause_ms: 0, steps: [20, 100] });
  assert.deepEqual([r.status, r.body.weight, r.body.state], [200, 20, 'running']);
  assert.equal((await admin('POST', '/canary/healthy/start')).status, 409);
  r = await admin('POST', '/canary/healthy/pause');
  assert.equal(r.body.state, 'paused');
  r = await admin('POST', '/canary/healthy/resume');
  assert.equal(r.body.state, 'running');
  r = await admin('POST', '/canary/healthy/abort', { reason: 'checking by hand' });
  assert.deepEqual([r.body.state, r.body.weight], ['aborted', 0]);
  assert.match(r.body.reason, /checking by hand/);
  assert.equal((await admin('POST', '/canary/nosuch/start')).status, 404);
  assert.equal((await admin('POST', '/canary/healthy/start', { steps: [50, 40] })).status, 400);
  const list = await admin('GET', '/canary');
  assert.ok(list.body.some((c) => c.model === 'slowcanary' && c.state === 'aborted'));
});

test('sticky assignment: one user sees one variant', async () => {
  const byUser = new Map();
  for (let u = 0; u < 20; u++) {
    for (let i = 0; i < 4; i++) {
      const { variant } = await chat('ab', `user-${u}`);
      if (!byUser.has(u)) byUser.set(u, new Set());
      byUser.get(u).add(variant);
    }
  }
  for (const [u, set] of byUser) assert.equal(set.size, 1, `user-${u} saw ${[...set]}`);
  const all = new Set([...byUser.values()].flatMap((s) => [...s]));
  assert.deepEqual([...all].sort(), ['a', 'b']);
});

test('tollgate canary: the command line over the admin API', async () => {
  const run = (...args) => spawnSync(BIN, ['canary', '--admin', `127.0.0.1:${gw.admin}`, ...args],
    { encoding: 'utf8', env: { ...process.env, TOLLGATE_ADMIN_KEY: ADMIN_KEY } });
  let r = run('start', 'healthy', '--steps', '30,100', '--pause-ms', '0');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual([JSON.parse(r.stdout).weight, JSON.parse(r.stdout).state], [30, 'running']);
  r = run('promote', 'healthy');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).state, 'promoted');
  r = run('abort', 'healthy', '--reason', 'too late');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /409.*promoted: cannot abort/);
  r = run('status');
  assert.equal(r.status, 0);
  assert.ok(JSON.parse(r.stdout).length >= 2);
  // A reload starts from the file's weights (canary 0); the promoted canary's are put back.
  const rl = await admin('POST', '/reload');
  assert.equal(rl.status, 200);
  assert.deepEqual((await admin('GET', '/routes/healthy/weights')).body.weights, { stable: 0, canary: 100 });
  r = run('frobnicate', 'healthy');
  assert.equal(r.status, 2);
  r = spawnSync(BIN, ['canary', '--admin', `127.0.0.1:${gw.admin}`, '--key', 'wrong', 'status'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /401/);
});

test('load shedding: a backend whose queue is full answers 503 at once', async () => {
  // max_connections 1 per worker, 2 workers: 2 in flight and 2 waiting are let through, then shed.
  const one = async () => {
    const t0 = Date.now();
    const r = await fetch(`http://127.0.0.1:${gw.port}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'shed', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
    });
    const body = await r.json();
    return { status: r.status, code: body.error?.code, ms: Date.now() - t0 };
  };
  const rs = await Promise.all(Array.from({ length: 7 }, one));
  const shed = rs.filter((r) => r.status === 503);
  assert.ok(shed.length >= 1, JSON.stringify(rs));
  for (const r of shed) {
    assert.equal(r.code, 'overloaded');
    assert.ok(r.ms < 500, `shed after ${r.ms} ms`);
  }
  assert.ok(rs.filter((r) => r.status === 200).length >= 2, JSON.stringify(rs));
});
