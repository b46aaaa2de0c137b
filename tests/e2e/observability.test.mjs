// observability.test.mjs — issue 6 end to end: Prometheus rules (promtool check + unit
// tests), the Grafana dashboard's queries (parsed by promtool, then evaluated by a real
// Prometheus), the gateway's /metrics after known traffic to `tollgate sim`, a real
// Prometheus scraping the gateway with a recording rule evaluated, the request log (redacted,
// `tollgate logs`) and the access log, and no loss of accepted log entries on SIGTERM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import OpenAI from 'openai';

const BIN = process.env.TOLLGATE_BIN;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RULES = join(ROOT, 'deploy/prometheus/tollgate-rules.yml');
const RULE_TESTS = join(ROOT, 'deploy/prometheus/tests/rules.test.yml');
const DASHBOARD = join(ROOT, 'deploy/grafana/tollgate.json');
const procs = new Set();
let dir;

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60000, ...opts });
  return { code: r.status, out: (r.stdout || '') + (r.stderr || '') };
}

function stop(p) {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) { procs.delete(p); return resolve(); }
    p.removeAllListeners('exit');
    p.on('exit', () => { procs.delete(p); resolve(); });
    p.kill('SIGKILL');
  });
}

before(() => { dir = mkdtempSync(join(tmpdir(), 'tollgate-obs-')); });
after(async () => {
  for (const p of [...procs]) await stop(p);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Every expression of the dashboard, with Grafana's variables given concrete values.
function dashboardExprs() {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
  const out = [];
  const walk = (ps) => {
    for (const p of ps) {
      if (p.panels) walk(p.panels);
      for (const t of p.targets || []) out.push({ panel: p.title, expr: t.expr });
    }
  };
  walk(d.panels);
  return { d, exprs: out.map((e) => ({ ...e, concrete: e.expr.replaceAll('$__rate_interval', '1m').replaceAll('$service', '.*').replaceAll('$model', '.*') })) };
}

test('promtool: the rules file is valid', () => {
  const r = run('promtool', ['check', 'rules', RULES]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS: \d+ rules found/);
});

test('promtool: rule unit tests — every alert fires when it should and stays quiet otherwise', () => {
  const r = run('promtool', ['test', 'rules', RULE_TESTS]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS/);
  // Every alert of the rules file has a firing case in the tests.
  const rules = readFileSync(RULES, 'utf8'), tests = readFileSync(RULE_TESTS, 'utf8');
  const alerts = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
  assert.ok(alerts.length >= 6);
  for (const a of alerts) assert.match(tests, new RegExp(`alertname: ${a}\\n\\s+exp_alerts:\\n\\s+- exp_labels`), `${a} has no firing test`);
});

test('dashboard: valid JSON, the required panels, every query parsed by promtool', () => {
  const { d, exprs } = dashboardExprs();
  assert.equal(d.uid, 'tollgate-overview');
  const ids = new Set();
  const all = exprs.map((e) => e.expr).join('\n');
  for (const m of ['tollgate_request_duration_seconds_bucket', 'tollgate_time_to_first_token_seconds_bucket',
    'tollgate_time_per_output_token_seconds_bucket', 'tollgate_tokens_total', 'tollgate_fallbacks_total',
    'tollgate_rejected_total', 'tollgate_budget_used_ratio', 'tollgate_canary_weight', 'tollgate_upstream_up',
    'vllm:time_to_first_token_seconds_bucket', 'vllm:time_per_output_token_seconds_bucket', 'vllm:num_requests_running'])
    assert.ok(all.includes(m), `no panel uses ${m}`);
  const walk = (ps) => { for (const p of ps) { assert.ok(!ids.has(p.id), `duplicate panel id ${p.id}`); ids.add(p.id); if (p.panels) walk(p.panels); } };
  walk(d.panels);
  // promtool parses (and type-checks) every expression when it checks a rules file.
  const rules = 'groups:\n  - name: dashboard\n    rules:\n' + exprs.map((e, i) =>
    `      - record: dashboard:expr_${i}\n        expr: ${JSON.stringify(e.concrete)}\n`).join('');
  const f = join(dir, 'dashboard-rules.yml');
  writeFileSync(f, rules);
  const r = run('promtool', ['check', 'rules', f]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, new RegExp(`SUCCESS: ${exprs.length} rules found`));
});
