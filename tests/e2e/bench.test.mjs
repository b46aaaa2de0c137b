// bench.test.mjs — `tollgate bench` end to end against `tollgate sim`: counts, tokens, TTFT <= e2e, errors by status.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = process.env.TOLLGATE_BIN;
const children = [];
let dir;

// Start `tollgate sim --port 0 ARGS` and resolve with its base URL once it prints
// "listening on HOST:PORT".
function startSim(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, ['sim', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(p);
    let out = '';
    const timer = setTimeout(() => reject(new Error('sim did not start: ' + out)), 10000);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (\S+):(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${m[2]}`);
      }
    });
    p.stderr.on('data', (d) => { out += d; });
    p.on('exit', (code) => { clearTimeout(timer); reject(new Error(`sim exited ${code}: ${out}`)); });
  });
}

// Run bench to completion; returns { status, stdout, stderr, json }.
function bench(name, args) {
  const file = join(dir, name + '.json');
  const r = spawnSync(BIN, ['bench', ...args, '--quiet', '--json', file], { encoding: 'utf8', timeout: 60000 });
  let json = null;
  if (r.status === 0) json = JSON.parse(readFileSync(file, 'utf8'));
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json };
}

let fast; // 8 output tokens, small latencies
let failing; // every request answered 429/500/503

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-'));
  fast = await startSim(['--ttft-ms', '5', '--itl-ms', '2', '--output', 'fixed:8']);
  failing = await startSim(['--fail-rate', '1']);
});

after(() => {
  for (const p of children) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function checkSuccess(j, n) {
  assert.equal(j.requests.sent, n);
  assert.equal(j.requests.ok, n);
  assert.equal(j.requests.errors, 0);
  assert.equal(j.requests.unfinished, 0);
  assert.equal(j.latency_ms.e2e.count, n);
  assert.equal(j.tokens.total, 8 * n);
  assert.equal(j.tokens.min, 8);
  assert.equal(j.tokens.max, 8);
  assert.ok(j.rps > 0);
  for (const k of ['p50', 'p90', 'p99', 'max']) {
    assert.ok(j.latency_ms.ttft[k] <= j.latency_ms.e2e[k], `ttft ${k} <= e2e ${k}`);
    assert.ok(j.latency_ms.e2e[k] > 0);
  }
  assert.ok(j.latency_ms.e2e.p50 <= j.latency_ms.e2e.p99);
  assert.ok(j.latency_ms.e2e.p99 <= j.latency_ms.e2e.max);
  assert.deepEqual(j.errors.http, {});
}

test('non-streaming closed loop: 200 requests, 8 tokens each, no errors', () => {
  const r = bench('plain', ['--url', fast, '--requests', '200', '--concurrency', '4']);
  assert.equal(r.status, 0, r.stderr);
  checkSuccess(r.json, 200);
  assert.equal(r.json.stream, false);
  assert.equal(r.json.load.mode, 'closed');
  assert.equal(r.json.load.concurrency, 4);
  assert.equal(r.json.latency_ms.tpot.count, 0); // no stream, no per-token timing
  assert.ok(r.json.connections.opened <= 4, 'keep-alive: at most one connection per slot');
  assert.match(r.stdout, /200 ok, 0 errors/);
  assert.match(r.stdout, /e2e/);
});

test('a path in --url is the endpoint, named once in the report', () => {
  const r = bench('urlpath', ['--url', `${fast}/v1/completions`, '--requests', '10', '--concurrency', '2']);
  assert.equal(r.status, 0, r.stderr);
  checkSuccess(r.json, 10);
  assert.equal(r.json.path, '/v1/completions');
  assert.equal(r.json.url, fast);
  assert.match(r.stdout, new RegExp(`POST ${fast}/v1/completions `));
  assert.equal(r.stdout.split('/v1/completions').length - 1, 1, r.stdout);
});

test('streaming closed loop: TTFT before the end, TPOT measured', () => {
  const r = bench('stream', ['--url', fast, '--requests', '200', '--concurrency', '4', '--stream']);
  assert.equal(r.status, 0, r.stderr);
  checkSuccess(r.json, 200);
  assert.equal(r.json.stream, true);
  assert.equal(r.json.latency_ms.tpot.count, 200);
  // With 8 tokens the first one arrives strictly before the last: TTFT < e2e per request,
  // so the medians differ too.
  assert.ok(r.json.latency_ms.ttft.p50 < r.json.latency_ms.e2e.p50);
});

test('open loop: every scheduled request is sent and counted', () => {
  const r = bench('open', ['--url', fast, '--rate', '400', '--requests', '100', '--arrival', 'constant', '--stream']);
  assert.equal(r.status, 0, r.stderr);
  checkSuccess(r.json, 100);
  assert.equal(r.json.load.mode, 'constant');
  assert.equal(r.json.load.rate, 400);
});

test('forced failures: every request is an HTTP error, counted by status', () => {
  const r = bench('fail', ['--url', failing, '--requests', '200', '--concurrency', '4']);
  assert.equal(r.status, 0, r.stderr);
  const j = r.json;
  assert.equal(j.requests.sent, 200);
  assert.equal(j.requests.ok, 0);
  assert.equal(j.requests.errors, 200);
  const codes = Object.keys(j.errors.http);
  assert.ok(codes.length >= 1);
  for (const c of codes) assert.ok(['429', '500', '503'].includes(c), `unexpected status ${c}`);
  assert.equal(Object.values(j.errors.http).reduce((a, b) => a + b, 0), 200);
  assert.equal(j.errors.connect, 0);
  assert.equal(j.latency_ms.e2e.count, 0);
  assert.match(r.stdout, /http (429|500|503)/);
});

test('a header forces failures per request (x-sim-fail via --header)', () => {
  const r = bench('hdr', ['--url', fast, '--requests', '50', '--concurrency', '2', '--header', 'x-sim-fail: 503']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.json.errors.http, { 503: 50 });
});

test('connection refused is counted as a connect error', () => {
  // Port 1 (tcpmux): nothing listens there on this machine.
  const r = bench('refused', ['--url', 'http://127.0.0.1:1', '--requests', '10', '--concurrency', '2', '--timeout', '2']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.json.requests.errors, 10);
  assert.equal(r.json.errors.connect, 10);
});

test('usage errors and --help', () => {
  const h = spawnSync(BIN, ['bench', '--help'], { encoding: 'utf8' });
  assert.equal(h.status, 0);
  for (const opt of ['--url', '--rate', '--arrival', '--concurrency', '--stream', '--header', '--json', '--body-file', '--threads', '--connections'])
    assert.ok(h.stdout.includes(opt), `--help mentions ${opt}`);
  assert.equal(spawnSync(BIN, ['bench'], { encoding: 'utf8' }).status, 2);
  assert.equal(spawnSync(BIN, ['bench', '--url', 'https://x'], { encoding: 'utf8' }).status, 2);
  assert.equal(spawnSync(BIN, ['bench', '--url', 'http://127.0.0.1:9', '--rate', '5', '--concurrency', '2'], { encoding: 'utf8' }).status, 2);
});
