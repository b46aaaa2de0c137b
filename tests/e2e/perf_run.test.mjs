// perf_run.test.mjs — `tollgate perf run` figures: anonymous weights, probed segments and the breakdown give the logits of a plain run bit for bit, the K/V and read-rate arithmetic, and `perf batch`.
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

test('perf run: the median decoded token lies between the fastest and twice the mean', () => {
  // one token is the first, the fastest and the median
  const one = perfRun(['--gen', '1']);
  assert.equal(one.gen_median_ms, one.gen_min_ms);
  assert.equal(one.gen_median_ms, one.gen_first_ms);
  const r = perfRun(['--gen', '9']);
  const med = Number(r.gen_median_ms), min = Number(r.gen_min_ms), mean = (1000 * Number(r.gen_s)) / 9;
  assert.ok(med >= min, `median ${med} < fastest ${min}`);
  // at least half the tokens take the median or longer, so it is at most twice the mean
  // (+1 ms for the rounding of the printed figures)
  assert.ok(med <= 2 * mean + 1, `median ${med} ms, mean ${mean} ms`);
  assert.equal(Number(perfRun(['--gen', '0']).gen_median_ms), 0);
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

test('perf run --bw-every: the decode is measured against the bandwidth probed around it, with the same logits', () => {
  const plain = perfRun(['--gen', '5']);
  const probed = perfRun(['--gen', '5', '--bw-every', '2']);
  // segments of 2, 2 and 1 tokens change nothing the engine computes
  assert.equal(probed.logits_fnv, plain.logits_fnv);
  assert.equal(plain.bw_around_gbps, undefined);
  const bw = Number(probed.bw_around_gbps), of = Number(probed.gen_of_limit);
  assert.ok(bw > 0 && of > 0, JSON.stringify(probed));
  // the fraction is the decode's read rate over the bandwidth around it
  const want = Number(probed.gen_read_gbps) / bw;
  assert.ok(Math.abs(of - want) <= 0.002 + 0.01 * want, `${of} vs ${want}`);
  // the probe's 2 x 256 MiB of buffers are not counted in the engine's peak memory (the
  // margin leaves room for a sanitizer's shadow of them, 64 MiB)
  assert.ok(Number(probed.peak_rss_mib) < Number(plain.peak_rss_mib) + 256, `${probed.peak_rss_mib} vs ${plain.peak_rss_mib}`);
  // no decoded tokens: rates of 0, not NaN
  const none = perfRun(['--gen', '0', '--bw-every', '2']);
  for (const k of ['gen_tps', 'gen_read_gbps', 'bw_around_gbps', 'gen_of_limit']) assert.equal(Number(none[k]), 0, `${k}=${none[k]}`);
  const bad = spawnSync(BIN, ['perf', 'run', '-m', MODEL, '--bw-every', '0'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--bw-every/);
});

test('perf run --breakdown: where the prompt and a decoded token went, with the logits of a plain run', () => {
  const plain = perfRun([]);
  const r = spawnSync(BIN, ['perf', 'run', '-m', MODEL, '--breakdown', '--threads', '2', '--prompt', '4', '--gen', '3'],
    { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('perf: '));
  assert.equal(lines.length, 3, r.stdout);
  const run = Object.fromEntries(lines[0].slice(6).split(' ').map((kv) => kv.split('=')));
  assert.equal(run.logits_fnv, plain.logits_fnv); // profiling changes nothing computed
  // the prompt's line: one forward pass of its 4 rows, the whole prompt's time
  assert.ok(lines[1].startsWith('perf: breakdown ms_per_prompt '), lines[1]);
  const p = Object.fromEntries(lines[1].slice(30).split(' ').map((kv) => [kv.split('=')[0], Number(kv.split('=')[1])]));
  assert.equal(p.products_per_prompt, 9, lines[1]);
  // prompt_s is printed to the millisecond
  assert.ok(Math.abs(p.total - Number(run.prompt_s) * 1000) <= 0.5 + 0.002, `${lines[1]} / prompt_s=${run.prompt_s}`);
  assert.ok(p.products > 0 && p.phases > 0 && p.products + p.phases <= p.total + 0.002, lines[1]);
  assert.ok(lines[2].startsWith('perf: breakdown ms_per_token '), lines[2]);
  const b = Object.fromEntries(lines[2].slice(29).split(' ').map((kv) => [kv.split('=')[0], Number(kv.split('=')[1])]));
  // llama-tiny has 2 layers: Q/K/V, the attention output, gate/up and down in each, then the output
  assert.equal(b.products_per_token, 9);
  const eps = 0.002;
  assert.ok(b.products > 0 && b.products + b.phases <= b.total + eps, JSON.stringify(b));
  for (const k of ['convert', 'wait', 'busy0', 'busy1']) assert.ok(b[k] >= 0 && b[k] <= b.products + eps, `${k}: ${JSON.stringify(b)}`);
  const phases = b.attn_norm + b.rope_kv + b.attend + b.ffn_norm + b.silu;
  assert.ok(Math.abs(phases - b.phases) <= 0.005, JSON.stringify(b));
  assert.ok(b.products_gbps > 0, JSON.stringify(b));
  // a plain run prints no breakdown
  const r0 = spawnSync(BIN, ['perf', 'run', '-m', MODEL, '--prompt', '4', '--gen', '3'], { encoding: 'utf8', timeout: 60000 });
  assert.equal(r0.stdout.split('\n').filter((l) => l.startsWith('perf: breakdown')).length, 0);
});

test('perf batch: one line per count of sequences decoding together, each with its step time and aggregate rate', () => {
  const r = spawnSync(BIN, ['perf', 'batch', '-m', MODEL, '--threads', '2', '--seqs', '1,3', '--steps', '3', '--pos', '7'],
    { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('perf: batch '));
  assert.equal(lines.length, 2, r.stdout);
  const f = lines.map((l) => Object.fromEntries(l.slice(12).split(' ').map((kv) => kv.split('='))));
  assert.deepEqual(f.map((x) => x.seqs), ['1', '3']);
  for (const x of f) {
    assert.equal(x.pos, '7');
    assert.equal(x.steps, '3');
    assert.ok(Number(x.step_ms_best) > 0 && Number(x.step_ms_best) <= Number(x.step_ms_mean), JSON.stringify(x));
    // aggregate tokens/s: the sequences of one step over its mean time
    const want = Number(x.seqs) / (Number(x.step_ms_mean) / 1000);
    assert.ok(Math.abs(Number(x.agg_tps) - want) <= 0.05 * want + 0.1, JSON.stringify(x));
  }
  assert.equal(f[0].vs_first, '1.00');
});

test('perf batch --breakdown: after each count, where its steps went, every product and phase of the step', () => {
  const r = spawnSync(BIN, ['perf', 'batch', '-m', MODEL, '--breakdown', '--threads', '2', '--seqs', '1,5', '--steps', '3'],
    { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('perf: '));
  assert.equal(lines.length, 4, r.stdout);
  for (const i of [0, 2]) {
    const step = Object.fromEntries(lines[i].slice(12).split(' ').map((kv) => kv.split('=')));
    assert.ok(lines[i + 1].startsWith('perf: breakdown ms_per_step '), lines[i + 1]);
    const b = Object.fromEntries(lines[i + 1].slice(28).split(' ').map((kv) => [kv.split('=')[0], Number(kv.split('=')[1])]));
    // every step: 9 products (as a decoded token's) however many rows it carries
    assert.equal(b.products_per_step, 9, lines[i + 1]);
    assert.ok(Math.abs(b.total - Number(step.step_ms_mean)) <= 0.002, `${lines[i]} / ${lines[i + 1]}`);
    const eps = 0.002;
    assert.ok(b.products > 0 && b.products + b.phases <= b.total + eps, JSON.stringify(b));
    for (const k of ['convert', 'wait', 'busy0', 'busy1']) assert.ok(b[k] >= 0 && b[k] <= b.products + eps, `${k}: ${JSON.stringify(b)}`);
    const phases = b.attn_norm + b.rope_kv + b.attend + b.ffn_norm + b.silu;
    assert.ok(phases > 0 && Math.abs(phases - b.phases) <= 0.005, JSON.stringify(b));
  }
});

test('perf batch: bad arguments are usage errors naming what is wrong', () => {
  for (const [args, re] of [[['--seqs', '0'], /--seqs/], [['--seqs', '1,x'], /--seqs/], [['--steps', '0'], /--steps/],
    [['--pos', '-1'], /--pos/], [['--pos', '100000'], /context/]]) {
    const r = spawnSync(BIN, ['perf', 'batch', '-m', MODEL, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  const none = spawnSync(BIN, ['perf', 'batch'], { encoding: 'utf8' });
  assert.equal(none.status, 2);
  assert.match(none.stderr, /-m FILE/);
});
