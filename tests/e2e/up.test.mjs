// up.test.mjs — the README's main command: `tollgate up` starts engine, simulators, gateway
// and order service, normalizes the sample orders with the shipped model, and stops cleanly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = process.env.TOLLGATE_BIN;

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(true));
  });
}

test('tollgate up runs the stack, normalizes sample orders and stops on SIGINT', { timeout: 110000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-up-'));
  const child = spawn(bin, ['up', '--db', join(dir, 'orders.db')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })));
  try {
    const t0 = Date.now();
    while (!out.includes('Ctrl-C stops everything') && Date.now() - t0 < 90000) {
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(out.includes('Ctrl-C stops everything'), `stack did not come up:\n${out}\n${err}`);
    const lines = out.split('\n').filter((l) => l.trimStart().startsWith('order '));
    assert.equal(lines.length, 3, out);
    for (const l of lines) assert.match(l, / -> 201 /, l);
    // The headline example of the project, through orders -> gateway task -> engine -> model.
    assert.match(lines[0], /-> 201 {2}2× Large Pepperoni Pizza {2}\(model\)/, lines[0]);
    // The order service really stored it.
    const res = await fetch('http://127.0.0.1:8090/orders?limit=10');
    assert.equal(res.status, 200);
    const list = await res.json();
    const orders = list.orders ?? list.data ?? list;
    assert.ok(Array.isArray(orders) && orders.length >= 3, JSON.stringify(list));
    // A second stack on the same ports is refused instead of answering for the first.
    const second = spawn(bin, ['up', '--db', join(dir, 'second.db')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let err2 = '';
    second.stderr.on('data', (d) => { err2 += d; });
    const code2 = await new Promise((resolve) => second.on('exit', (c) => resolve(c)));
    assert.equal(code2, 1);
    assert.match(err2, /already in use/);
  } finally {
    child.kill('SIGINT');
  }
  const { code, sig } = await exited;
  assert.equal(sig, null);
  assert.equal(code, 0, err);
  assert.ok(out.includes('tollgate up: stopped'));
  for (const p of [8080, 8081, 8090, 9001, 9002, 9003]) assert.ok(await portFree(p), `port ${p} still open`);
  rmSync(dir, { recursive: true, force: true });
});
