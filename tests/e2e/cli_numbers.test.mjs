// cli_numbers.test.mjs — every numeric flag refuses junk (trailing letters, words, out of range) as a usage error naming the flag; nothing starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const BIN = process.env.TOLLGATE_BIN;

// [arguments, the flag the message must name]. Each would have run with a silently wrong
// value before (atoi: '12x' -> 12, 'abc' -> 0) or starts a server when accepted.
const CASES = [
  [['train', '--menu', 'm.yaml', '--out', 'o.gguf', '--dim', '12x'], '--dim'],
  [['train', '--menu', 'm.yaml', '--out', 'o.gguf', '--steps', 'abc'], '--steps'],
  [['train', '--menu', 'm.yaml', '--out', 'o.gguf', '--lr', '1e999'], '--lr'],
  [['train', '--menu', 'm.yaml', '--out', 'o.gguf', '--seed', '-1'], '--seed'],
  [['train', '--menu', 'm.yaml', '--out', 'o.gguf', '--threads', ''], '--threads'],
  [['traingen', '--menu', 'm.yaml', '--count', '0'], '--count'],
  [['traingen', '--menu', 'm.yaml', '--seed', '7up'], '--seed'],
  [['eval', '--data', 'd.jsonl', '--model', 'm.gguf', '--show', 'x'], '--show'],
  [['eval', '--data', 'd.jsonl', '--model', 'm.gguf', '--limit', '-3'], '--limit'],
  [['logs', '-d', 'x.db', '--limit', '5x'], '--limit'],
  [['logs', '-d', 'x.db', 'show', '12abc'], 'show'],
  [['gateway', '-c', 'x.yaml', '--threads', '0'], '--threads'],
  [['gateway', '-c', 'x.yaml', '--port=70000'], '--port'],
  [['serve', '-m', 'x.gguf', '--ctx', '12x'], '--ctx'],
  [['serve', '-m', 'x.gguf', '--max-seqs', '999'], '--max-seqs'],
  [['sim', '--port', 'abc'], '--port'],
  [['sim', '--itl-ms', '1.5'], '--itl-ms'],
  [['orders', '--port', '5x'], '--port'],
  [['orders', '--deadline-ms', '0'], '--deadline-ms'],
];

for (const [args, flag] of CASES) {
  test(`tollgate ${args.join(' ')}: exit 2 naming ${flag}`, () => {
    const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 2, `exit ${r.status}, stderr: ${r.stderr}`);
    assert.ok(r.stderr.includes(flag), `stderr does not name ${flag}: ${r.stderr}`);
    assert.equal(r.stdout, '', 'nothing printed as if it ran');
  });
}
