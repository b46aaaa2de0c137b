// perf_run.test.mjs — `tollgate perf run --weights anon` decodes from an anonymous copy of the weights with the same logits, bit for bit, as from the file mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const BIN = process.env.TOLLGATE_BIN;
const MODEL = join(process.env.TOLLGATE_REF ?? '/work/shared/ref', 'models', 'llama-tiny-Q4_K_M.gguf');

// The key=value figures of the one `perf:` line a run prints.
function perfRun(extra) {
  const r = spawnSync(BIN, ['perf', 'run', '-m', MODEL, '--threads', '2', '--prompt', '4', '--gen', '3', ...extra],
    { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  const line = r.stdout.split('\n').find((l) => l.startsWith('perf: '));
  assert.ok(line, r.stdout);
  return Object.fromEntries(line.slice(6).split(' ').map((kv) => kv.split('=')));
}

test('perf run: anonymous weights give the logits of the mapped file', () => {
  const mapped = perfRun([]);
  const anon = perfRun(['--weights', 'anon']);
  assert.equal(mapped.weights, 'mmap');
  assert.equal(anon.weights, 'anon');
  assert.match(mapped.logits_fnv, /^[0-9a-f]{16}$/);
  assert.equal(anon.logits_fnv, mapped.logits_fnv);
  // the checksum does see the logits: one decoded token fewer changes it
  const shorter = perfRun(['--gen', '2']);
  assert.notEqual(shorter.logits_fnv, mapped.logits_fnv);
});

test('perf run: --weights takes mmap or anon only', () => {
  const r = spawnSync(BIN, ['perf', 'run', '-m', MODEL, '--weights', 'huge'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--weights/);
});

test('perf run: the K/V cache read per decoded token grows with the context and counts in the read rate', () => {
  // decoded tokens see 5, 6, 7 positions after a 4-token prompt; 11, 12, 13 after 10
  const short = perfRun([]);
  const long = perfRun(['--prompt', '10']);
  const kvShort = Number(short.kv_bytes_per_token), kvLong = Number(long.kv_bytes_per_token);
  assert.ok(kvShort > 0, short.kv_bytes_per_token);
  assert.equal(kvLong, 2 * kvShort);
  // one position's keys and values over all layers: 2 halves x 2 bytes x layers x kv width
  assert.equal((kvShort / 6) % 4, 0);
  const rate = (Number(short.gen_tps) * (Number(short.bytes_per_token) + kvShort)) / 1e9;
  assert.ok(Math.abs(rate - Number(short.gen_read_gbps)) <= 0.01 + rate * 0.01, `${rate} vs ${short.gen_read_gbps}`);
});
