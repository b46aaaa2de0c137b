// limits.test.mjs — the gateway's `http:` limits from the config file (header timeout, header
// count) reach the listener, a reload changes the timeouts of a running gateway, and the access
// log is reopened on SIGHUP and on POST /reload (rename-then-signal log rotation).
// Pass criteria are orders of events and counts, never durations.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync, readFileSync, existsSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { start, stopAll } from './lib.mjs';

const ADMIN_KEY = 'limits-admin-key';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let dir, gw, sim, cfgPath, accessPath;

const config = (headerTimeoutMs) => `listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, key: ${ADMIN_KEY}}
http:
  header_timeout_ms: ${headerTimeoutMs}
  max_headers: 16
access_log: ${accessPath}
backends:
  sim: {addresses: [127.0.0.1:${sim.port}], health_check: false}
routes:
  m:
    variants:
      only: {backend: sim}
`;

// Write `parts` to the gateway `gapMs` apart; resolve {status, sent, closed} once the server
// answers and closes, or after every part and `waitMs` more. `sent` counts the parts written
// before the first byte of the answer arrived.
function trickle(parts, gapMs, waitMs = 15000, port = gw.port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '', sent = 0, sentAtAnswer = -1, done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      s.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, sent: sentAtAnswer < 0 ? sent : sentAtAnswer, closed, text });
    };
    s.on('data', (d) => { if (sentAtAnswer < 0) sentAtAnswer = sent; text += d.toString('latin1'); if (/\r\n\r\n/.test(text) && /content-length: *0|\}\s*$/i.test(text)) finish(false); });
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    (async () => {
      for (const p of parts) {
        if (done) return;
        s.write(p);
        sent++;
        await sleep(gapMs);
      }
      await sleep(waitMs);
      finish(false);
    })();
  });
}

// A chat completion tagged with a request id (the access log records the id).
async function chat(id) {
  const r = await fetch(`http://127.0.0.1:${gw.port}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }),
  });
  await r.text();
  return r.status;
}

async function get(path, headers = {}) {
  const r = await fetch(`http://127.0.0.1:${gw.port}${path}`, { headers });
  return { status: r.status, text: await r.text() };
}

async function until(fn, what, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const logged = (path, id) => existsSync(path) && readFileSync(path, 'utf8').includes(`"request_id":"${id}"`);

before(async () => {
  assert.ok(process.env.TOLLGATE_BIN, 'TOLLGATE_BIN must point at the tollgate binary');
  dir = mkdtempSync(join(tmpdir(), 'tollgate-limits-'));
  cfgPath = join(dir, 'gw.yaml');
  accessPath = join(dir, 'access.log');
  const s = await start(['sim', '--port', '0', '--threads', '1'], /listening on [\d.]+:(\d+)/);
  sim = { p: s.p, port: Number(s.m[1]) };
  writeFileSync(cfgPath, config(1000));
  const g = await start(['gateway', '-c', cfgPath], /listening on [\d.]+:(\d+) admin [\d.]+:(\d+)/);
  gw = { p: g.p, port: Number(g.m[1]), admin: Number(g.m[2]) };
});

after(async () => {
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// A head sent a byte every 100 ms: 300 bytes would take 30 s.
const slowHead = [...`GET /v1/models HTTP/1.1\r\nhost: x\r\n${'x-pad: abcdefghijklmnopqrstuvwxyz\r\n'.repeat(8)}\r\n`];

test('http.header_timeout_ms from the config: a slow loris gets 408 before its head is complete', async () => {
  const r = await trickle(slowHead, 100);
  assert.equal(r.status, 408, `answer: ${r.text.slice(0, 200)}`);
  assert.ok(r.sent < slowHead.length, `408 came after the whole head (${r.sent} of ${slowHead.length} bytes)`);
  assert.equal((await get('/v1/models')).status, 200, 'others still served');
});

test('the admin listener has the same head timeout and header limit', async () => {
  const r = await trickle(slowHead, 100, 15000, gw.admin);
  assert.equal(r.status, 408, `answer: ${r.text.slice(0, 200)}`);
  // 1 s configured: about 10 bytes in; the 10 s default would let about 100 through
  assert.ok(r.sent < 40, `408 after ${r.sent} bytes: not the configured 1 s`);
  const many = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`x-h${i}`, 'v']));
  const h = await fetch(`http://127.0.0.1:${gw.admin}/health`, { headers: many });
  assert.equal(h.status, 431);
  assert.equal((await fetch(`http://127.0.0.1:${gw.admin}/health`)).status, 200, 'admin still served');
});

test('http.max_headers from the config: 20 header lines get 431 (the default allows 64)', async () => {
  const many = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`x-h${i}`, 'v']));
  assert.equal((await get('/v1/models', many)).status, 431);
  const few = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`x-h${i}`, 'v']));
  assert.equal((await get('/v1/models', few)).status, 200);
});

test('a reload raises the header timeout of the running gateway: the same slow head is served', async () => {
  writeFileSync(cfgPath, config(60000));
  const r = await fetch(`http://127.0.0.1:${gw.admin}/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  assert.equal(r.status, 200, await r.text());
  const cfg = await (await fetch(`http://127.0.0.1:${gw.admin}/config`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).json();
  assert.equal(cfg.http.header_timeout_ms, 60000, 'GET /config shows the new timeout');
  assert.equal(cfg.http.max_headers, 16);
  const t = await trickle(slowHead, 100);
  assert.equal(t.sent, slowHead.length, 'answered only after the whole head');
  assert.equal(t.status, 200, `answer: ${t.text.slice(0, 200)}`);
});

test('access log: rename then SIGHUP writes to a fresh file; POST /reload does the same', async () => {
  assert.equal(await chat('before-rotation'), 200);
  await until(() => logged(accessPath, 'before-rotation'), 'the first line');
  renameSync(accessPath, `${accessPath}.1`);
  process.kill(gw.p.pid, 'SIGHUP');
  await until(() => existsSync(accessPath), 'the access log reopened after SIGHUP');
  assert.equal(await chat('after-rotation'), 200);
  await until(() => logged(accessPath, 'after-rotation'), 'the line in the new file');
  assert.ok(logged(`${accessPath}.1`, 'before-rotation'), 'the old line stays in the rotated file');
  assert.ok(!logged(`${accessPath}.1`, 'after-rotation'), 'nothing new goes to the rotated file');
  assert.ok(!logged(accessPath, 'before-rotation'), 'the new file starts empty');

  renameSync(accessPath, `${accessPath}.2`);
  const r = await fetch(`http://127.0.0.1:${gw.admin}/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  assert.equal(r.status, 200, await r.text());
  assert.ok(existsSync(accessPath), 'reopened by the time /reload answered');
  assert.equal(await chat('after-admin-reload'), 200);
  await until(() => logged(accessPath, 'after-admin-reload'), 'the line after /reload');
  assert.ok(!logged(`${accessPath}.2`, 'after-admin-reload'));
});
