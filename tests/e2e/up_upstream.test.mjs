// up_upstream.test.mjs — `tollgate up --upstream URL` on free ports (--port-base 0, so it runs
// beside anything on the fixed ports): no engine of its own, the route "orders" goes to a server
// that already runs — a second `tollgate serve` with the order model under another name, and an
// OpenAI-compatible stand-in for a general model (no /health, one model in /v1/models) that
// records what it is asked, to show the model name and the system prompt reach it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import { start, stop, stopAll } from './lib.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.TOLLGATE_BIN;
const CONFIG = join(ROOT, 'examples/tollgate.yaml');
const MODEL = join(ROOT, 'models/orders.gguf');

const DIR = mkdtempSync(join(tmpdir(), 'tollgate-up-upstream-'));
after(async () => { await stopAll(); rmSync(DIR, { recursive: true, force: true }); });

// Start `tollgate up ARGS`; resolve with the process and its stdout up to the ready line.
async function up(args) {
  const { p, m } = await start(['up', '-c', CONFIG, '--port-base', '0', ...args], /[\s\S]*Ctrl-C stops everything/, { ms: 60000 });
  p.out = m[0];
  p.stdout.on('data', (d) => { p.out += d; });
  return p;
}

const port = (out, name) => Number(out.match(new RegExp(`^  ${name} +http://127\\.0\\.0\\.1:(\\d+)`, 'm'))[1]);
const samples = (out) => out.split('\n').filter((l) => l.trimStart().startsWith('order '));

async function interrupt(p) {
  await stop(p, 'SIGINT');
  assert.equal(p.signalCode, null);
  assert.equal(p.exitCode, 0, p.stderrText);
  assert.match(p.out, /tollgate up: stopped/);
}

test('up --upstream: a running tollgate serve answers the orders; up starts no engine and leaves the upstream running', { timeout: 100000 }, async () => {
  const serve = await start(['serve', '-m', MODEL, '--port', '0', '--model-name', 'orders-ext', '--log-level', 'warn'], /listening on [\d.]+:(\d+)/);
  const url = `http://127.0.0.1:${serve.m[1]}`;
  const p = await up(['--upstream', `${url}/v1`, '--prompt', 'trained', '--db', join(DIR, 'serve.db')]);
  try {
    // The model name came from the upstream's /v1/models; no engine line, an upstream line instead.
    assert.match(p.out, new RegExp(`upstream +http://127\\.0\\.0\\.1:${serve.m[1]}/v1 +\\(external; model "orders-ext"; health /health\\)`));
    assert.doesNotMatch(p.out, /^ {2}engine /m);
    assert.match(p.out, /prompt +trained/);
    const lines = samples(p.out);
    assert.equal(lines.length, 3, p.out);
    assert.match(lines[0], /-> 201 {2}2× Large Pepperoni Pizza {2}\(model\)/, lines[0]);
    // Through the gateway's free port, by the route's name: the upstream is asked for "orders-ext".
    const gw = port(p.out, 'gateway');
    assert.ok(![8080, 8081, 8090].includes(gw));
    const res = await fetch(`http://127.0.0.1:${gw}/v1/tasks/normalize_order`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: '2 marg sml, coke' }) });
    const task = await res.json();
    assert.equal(res.status, 200, JSON.stringify(task));
    assert.equal(task.fallback, false, JSON.stringify(task));
    assert.equal(task.output, '2× Small Margherita Pizza, 1× Coke');
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /vllm:request_success_total\{[^}]*model_name="orders-ext"[^}]*\} [1-9]/);
    // The generated config is a temporary file, gone after the stop.
    const conf = p.out.match(/gateway config: (\S+),/)[1];
    assert.ok(existsSync(conf));
    await interrupt(p);
    assert.ok(!existsSync(conf), `${conf} left behind`);
    // up stopped its own children only: the upstream still answers.
    assert.equal((await fetch(`${url}/health`)).status, 200);
  } finally {
    await stop(p);
    await stop(serve.p);
  }
});

test('up --upstream: a general model gets its name and the system prompt; health falls back to /v1/models', { timeout: 100000 }, async () => {
  const seen = { chats: [], gets: [] };
  const answers = { 'lgr pep pzza x2': '2× Large Pepperoni Pizza', '2 marg sml, coke': '2× Small Margherita Pizza, 1× Coke' };
  const mock = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const json = (status, obj) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(obj)); };
      if (req.method === 'GET') seen.gets.push(req.url);
      if (req.method === 'GET' && req.url === '/v1/models') return json(200, { object: 'list', data: [{ id: 'mistral-7b-instruct', object: 'model' }] });
      if (req.method === 'POST' && req.url === '/v1/chat/completions') {
        const r = JSON.parse(body);
        seen.chats.push(r);
        const user = r.messages.find((m) => m.role === 'user').content;
        return json(200, { id: 'c1', object: 'chat.completion', created: 0, model: r.model,
          choices: [{ index: 0, message: { role: 'assistant', content: answers[user] ?? user }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 60, completion_tokens: 8, total_tokens: 68 } });
      }
      json(404, { error: { message: 'not found' } });
    });
  });
  await new Promise((r) => mock.listen(0, '127.0.0.1', r));
  const mport = mock.address().port;
  let p;
  try {
    p = await up(['--upstream', `http://127.0.0.1:${mport}`, '--db', join(DIR, 'mock.db')]);
    assert.match(p.out, /model "mistral-7b-instruct"; health \/v1\/models/);
    assert.match(p.out, /prompt +instruct/);
    const lines = samples(p.out);
    assert.match(lines[0], /-> 201 {2}2× Large Pepperoni Pizza {2}\(model\)/, p.out);
    assert.ok(seen.chats.length >= 3, `${seen.chats.length} chat requests`);
    for (const c of seen.chats) {
      assert.equal(c.model, 'mistral-7b-instruct');
      assert.equal(c.messages[0].role, 'system');
      assert.match(c.messages[0].content, /^Rewrite the pizza order as receipt lines\./);
      assert.match(c.messages[0].content, /Answer with the line only\.$/);
      assert.equal(c.messages.at(-1).role, 'user');
    }
    assert.equal(seen.chats[0].messages.at(-1).content, 'lgr pep pzza x2');
    // The gateway's own health checks use /v1/models too (up's check was one or two GETs).
    const t0 = Date.now();
    while (seen.gets.filter((u) => u === '/v1/models').length < 4 && Date.now() - t0 < 10000) await new Promise((r) => setTimeout(r, 200));
    assert.ok(seen.gets.filter((u) => u === '/v1/models').length >= 4, JSON.stringify(seen.gets));
    await interrupt(p);
  } finally {
    if (p) await stop(p);
    mock.close();
  }
});

test('up --upstream refuses bad input with a clear message', () => {
  const run = (...args) => spawnSync(BIN, ['up', '-c', CONFIG, '--port-base', '0', ...args], { encoding: 'utf8', timeout: 30000 });
  let r = run('--upstream', 'https://example.com:443');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /plain HTTP/);
  r = run('--upstream', 'http://127.0.0.1:8000/api/other');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /only http:\/\/HOST:PORT/);
  r = run('--upstream', 'http://127.0.0.1:99999');
  assert.equal(r.status, 2);
  r = run('--upstream', 'http://127.0.0.1:9', '-m', MODEL);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /exclude each other/);
  r = run('--upstream-model', 'x');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /needs --upstream/);
  r = run('--prompt', 'chatty');
  assert.equal(r.status, 2);
  r = run('--port-base', '70000');
  assert.equal(r.status, 2);
  // Nothing listens on the discard port: exit 1 after the short wait, no stack left behind.
  r = run('--upstream', 'http://127.0.0.1:9');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /answers neither GET \/health nor GET \/v1\/models/);
  assert.doesNotMatch(r.stdout, /running/);
});

test('up --help documents every option', () => {
  const r = spawnSync(BIN, ['up', '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  for (const o of ['--config', '--model', '--upstream', '--upstream-model', '--prompt', '--port-base', '--db', '--ttft-ms', '--itl-ms', '--help'])
    assert.ok(r.stdout.includes(o), o);
});
