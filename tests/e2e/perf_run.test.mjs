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
