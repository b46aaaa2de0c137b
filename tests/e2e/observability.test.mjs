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
import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import { procs, start } from './lib.mjs';

const BIN = process.env.TOLLGATE_BIN;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RULES = join(ROOT, 'deploy/prometheus/tollgate-rules.yml');
const RULE_TESTS = join(ROOT, 'deploy/prometheus/tests/rules.test.yml');
const DASHBOARD = join(ROOT, 'deploy/grafana/tollgate.json');
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
    'vllm:time_to_first_token_seconds_bucket', 'vllm:time_per_output_token_seconds_bucket', 'vllm:num_requests_running',
    'tollgate_canary_state'])
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

// ---------- the gateway live: /metrics, logs, a real Prometheus ----------

const hash = (k) => `sha256:${createHash('sha256').update(k).digest('hex')}`;
const KEYS = { orders: 'obs-orders-key', search: 'obs-search-key' };
const ADMIN_KEY = 'obs-admin-key', METRICS_KEY = 'obs-metrics-key';
let gw, sim, slowSim, cfgPath, dbPath, accessPath;

async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// Parse the exposition text into { 'name{labels}': value }.
function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}
async function scrape() {
  const r = await fetch(`http://127.0.0.1:${gw.port}/metrics`, { headers: { authorization: `Bearer ${METRICS_KEY}` } });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parseMetrics(await r.text());
}

async function startGateway() {
  const { p, m } = await start(['gateway', '-c', cfgPath], /listening on [\d.]+:(\d+) admin [\d.]+:(\d+)/);
  return { p, port: Number(m[1]), admin: Number(m[2]) };
}

const client = (key) => new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: key, maxRetries: 0, timeout: 10000 });
const EMAIL = 'jane.doe@example.com', CARD = '4111 1111 1111 1111';
const chat = (model, content, extra = {}) => ({ model, messages: [{ role: 'user', content }], max_tokens: 8, ...extra });

test('live: gateway /metrics after known traffic to tollgate sim — counts, buckets, tokens', async () => {
  sim = (await start(['sim', '--port', '0', '--threads', '1'], /listening on [\d.]+:(\d+)/));
  slowSim = (await start(['sim', '--port', '0', '--threads', '1', '--ttft-ms', '600'], /listening on [\d.]+:(\d+)/));
  dbPath = join(dir, 'requests.db');
  accessPath = join(dir, 'access.log');
  cfgPath = join(dir, 'gw.yaml');
  writeFileSync(cfgPath, `listen: 127.0.0.1:0
threads: 2
admin:
  listen: 127.0.0.1:0
  key: ${hash(ADMIN_KEY)}
backends:
  fast: {addresses: [127.0.0.1:${sim.m[1]}]}
  slow: {addresses: [127.0.0.1:${slowSim.m[1]}], health_check: false}
routes:
  m:
    variants: {stable: {backend: fast}}
  slow:
    variants: {only: {backend: slow}}
  c:
    variants: {stable: {backend: fast, weight: 100}, canary: {backend: fast, weight: 0}}
services:
  orders:
    keys: [${hash(KEYS.orders)}]
  search:
    keys: [${hash(KEYS.search)}]
request_log:
  path: ${dbPath}
  retention: 72h
  sample_rate: 0
  services: {orders: 1}
access_log: ${accessPath}
metrics:
  keys: [${hash(METRICS_KEY)}]
`);
  gw = await startGateway();
  const orders = client(KEYS.orders);
  let completion = 0, prompt = 0;
  for (let i = 0; i < 5; i++) {
    const r = await orders.chat.completions.create(chat('m', `lgr pep pzza x${i} for ${EMAIL}, card ${CARD}`));
    completion += r.usage.completion_tokens; prompt += r.usage.prompt_tokens;
  }
  for (let i = 0; i < 3; i++) {
    const s = await orders.chat.completions.create(chat('m', 'stream me', { stream: true, stream_options: { include_usage: true } }));
    for await (const c of s) if (c.usage) { completion += c.usage.completion_tokens; prompt += c.usage.prompt_tokens; }
  }
  for (let i = 0; i < 2; i++) await orders.chat.completions.create(chat('slow', 'slow one'));
  await client(KEYS.search).chat.completions.create(chat('m', 'search text never logged'));
  await assert.rejects(client('wrong-key').chat.completions.create(chat('m', 'x')), (e) => e.status === 401);
  await assert.rejects(orders.chat.completions.create(chat('no-such-model', 'x')), (e) => e.status === 404);

  const m = await scrape();
  const L = 'service="orders",model="m",variant="stable"';
  assert.equal(m[`tollgate_requests_total{${L},code="200"}`], 8);
  assert.equal(m[`tollgate_requests_total{service="orders",model="slow",variant="only",code="200"}`], 2);
  assert.equal(m[`tollgate_requests_total{service="search",model="m",variant="stable",code="200"}`], 1);
  assert.equal(m[`tollgate_request_duration_seconds_count{${L}}`], 8);
  assert.equal(m[`tollgate_request_duration_seconds_bucket{${L},le="+Inf"}`], 8);
  assert.ok(m[`tollgate_request_duration_seconds_bucket{${L},le="0.5"}`] <= 8);
  // The slow upstream takes 600 ms before its first token: both above the SLO bucket.
  const S = 'service="orders",model="slow",variant="only"';
  assert.equal(m[`tollgate_request_duration_seconds_bucket{${S},le="0.5"}`], 0);
  assert.equal(m[`tollgate_request_duration_seconds_bucket{${S},le="+Inf"}`], 2);
  assert.ok(m[`tollgate_request_duration_seconds_sum{${S}}`] >= 1.2);
  // TTFT and TPOT only for the 3 streams.
  assert.equal(m[`tollgate_time_to_first_token_seconds_count{${L}}`], 3);
  assert.equal(m[`tollgate_time_per_output_token_seconds_count{${L}}`], 3);
  assert.equal(m[`tollgate_time_to_first_token_seconds_count{${S}}`], 0);
  // Tokens: what the upstream reported to the client, summed.
  assert.equal(m[`tollgate_tokens_total{service="orders",model="m",kind="completion"}`], completion);
  assert.equal(m[`tollgate_tokens_total{service="orders",model="m",kind="prompt"}`], prompt);
  assert.equal(m[`tollgate_prompt_tokens_count{service="orders",model="m"}`], 8);
  assert.equal(m[`tollgate_prompt_tokens_sum{service="orders",model="m"}`], prompt);
  assert.equal(m['tollgate_overhead_seconds_count'], 11);
  assert.equal(m['tollgate_rejected_total{reason="invalid_key"}'], 1);
  // A refusal counts by its status but stays out of the latency histograms.
  assert.equal(m['tollgate_requests_total{service="",model="",variant="",code="401"}'], 1);
  assert.equal(m['tollgate_request_duration_seconds_count{service="",model="",variant=""}'], 0);
  // An unknown model: counted for the service, without the client's model name as a label.
  assert.equal(m['tollgate_requests_total{service="orders",model="",variant="",code="404"}'], 1);
  assert.ok(!Object.keys(m).some((k) => k.includes('no-such-model')));
  assert.equal(m['tollgate_upstream_up{backend="fast"}'], 1);
  assert.equal(m['tollgate_canary_weight{model="m",variant="stable"}'], 1);
  assert.ok('tollgate_budget_used_ratio{service="orders"}' in m);
  // The request log: orders sampled at 1, search at 0.
  await until(async () => (await scrape())['tollgate_request_log_entries_total{result="written"}'] === 10, 10000, 'request log written');
  const m2 = await scrape();
  assert.equal(m2['tollgate_request_log_entries_total{result="accepted"}'], 10);
  assert.equal(m2['tollgate_request_log_entries_total{result="dropped"}'], 0);
});

test('live: request log redacted on disk, `tollgate logs` filters and shows; access log lines', () => {
  const logs = (...a) => run(BIN, ['logs', '-c', cfgPath, ...a]);
  let r = logs('--json', '--limit', '100');
  assert.equal(r.code, 0, r.out);
  const rows = r.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.length, 10);
  assert.ok(rows.every((x) => x.service === 'orders'));
  const redacted = rows.filter((x) => x.prompt.includes('lgr pep pzza'));
  assert.equal(redacted.length, 5);
  for (const x of redacted) {
    assert.match(x.prompt, /^user: lgr pep pzza x\d for \[EMAIL\], card \[CARD\]$/);
    assert.equal(x.redactions, 2);
    assert.equal(x.outcome, 'ok');
    assert.ok(x.response.length > 0 && x.completion_tokens > 0 && x.latency_ms > 0);
  }
  const streams = rows.filter((x) => x.stream === 1);
  assert.equal(streams.length, 3);
  assert.ok(streams.every((x) => x.ttft_ms !== null && x.response.length > 0), 'stream text reassembled from SSE');
  // Nothing unredacted reached the database files.
  for (const f of [dbPath, `${dbPath}-wal`]) {
    if (!existsSync(f)) continue;
    const bytes = readFileSync(f);
    assert.ok(!bytes.includes(EMAIL) && !bytes.includes(CARD) && !bytes.includes('search text never logged'), `${f} holds raw text`);
  }
  r = logs('--model', 'slow');
  assert.equal(r.code, 0, r.out);
  assert.equal(r.out.trim().split('\n').length, 3, r.out); // header + 2
  r = logs('--grep', '[CARD]', '--json');
  assert.equal(r.out.trim().split('\n').length, 5);
  r = logs('--outcome', 'error');
  assert.equal(r.out.trim().split('\n').length, 1); // header only
  r = logs('--until', '2000-01-01');
  assert.equal(r.out.trim().split('\n').length, 1);
  r = logs('--since', '1h', '--limit', '2');
  assert.equal(r.out.trim().split('\n').length, 3);
  r = logs('show', String(redacted[0].id));
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /--- prompt ---\nuser: lgr pep pzza x\d for \[EMAIL\]/);
  assert.match(r.out, /service: +orders/);
  r = logs('show', '999999');
  assert.equal(r.code, 1);
  r = run(BIN, ['logs']);
  assert.equal(r.code, 2);

  const lines = readFileSync(accessPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 13); // every request, every service, the 401 and the 404 too
  assert.equal(lines.filter((x) => x.status === 404 && x.reason === 'model_not_found' && x.service === 'orders').length, 1);
  const refused = lines.find((x) => x.status === 401);
  assert.equal(refused.service, null);
  assert.equal(refused.reason, 'invalid_api_key');
  assert.equal(refused.attempts, 0);
  assert.ok(!readFileSync(accessPath, 'utf8').includes('lgr pep'), 'no prompt text in the access log');
  const s = lines.find((x) => x.stream);
  assert.equal(s.service, 'orders');
  assert.equal(s.status, 200);
  assert.ok(s.ttft_ms >= 0 && s.duration_ms >= s.ttft_ms && s.completion_tokens > 0);
});

test('live: canary state and weights on /metrics follow the admin API (start, abort)', async () => {
  const admin = async (path, body) => {
    const r = await fetch(`http://127.0.0.1:${gw.admin}${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` }, body: JSON.stringify(body) });
    return { status: r.status, text: await r.text() };
  };
  let m = await scrape();
  assert.equal(m['tollgate_canary_weight{model="c",variant="canary"}'], 0);
  let r = await admin('/canary/c/start', { stable: 'stable', canary: 'canary' });
  assert.equal(r.status, 200, r.text);
  m = await scrape();
  assert.equal(m['tollgate_canary_state{model="c",canary="canary",state="running"}'], 1);
  assert.equal(m['tollgate_canary_state{model="c",canary="canary",state="aborted"}'], 0);
  assert.ok(m['tollgate_canary_weight{model="c",variant="canary"}'] > 0);
  r = await admin('/canary/c/abort', { reason: 'e2e' });
  assert.equal(r.status, 200, r.text);
  m = await scrape();
  assert.equal(m['tollgate_canary_state{model="c",canary="canary",state="aborted"}'], 1);
  assert.equal(m['tollgate_canary_state{model="c",canary="canary",state="running"}'], 0);
  assert.equal(m['tollgate_canary_weight{model="c",variant="canary"}'], 0);
});

test('live: a real Prometheus scrapes gateway and sim; recording rules evaluate; dashboard queries run', async () => {
  const port = await freePort();
  const pdir = join(dir, 'prom');
  // The shipped rules, with 1 s evaluation so that the test need not wait 30 s.
  const rules = readFileSync(RULES, 'utf8').replaceAll('interval: 30s', 'interval: 1s');
  writeFileSync(join(dir, 'rules.yml'), rules);
  writeFileSync(join(dir, 'prometheus.yml'), `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [${join(dir, 'rules.yml')}]
scrape_configs:
  - job_name: tollgate-gateway
    authorization: {type: Bearer, credentials: ${METRICS_KEY}}
    static_configs: [{targets: ['127.0.0.1:${gw.port}']}]
  - job_name: tollgate-engine
    static_configs: [{targets: ['127.0.0.1:${sim.m[1]}']}]
`);
  const prom = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${pdir}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn', '--storage.tsdb.retention.time=1h'], { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.add(prom);
  let perr = '';
  prom.stderr.on('data', (d) => { perr += d; });
  const api = async (q) => (await (await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`)).json());
  // Traffic while Prometheus scrapes, so that rates are above zero.
  const orders = client(KEYS.orders);
  let stopTraffic = false;
  const traffic = (async () => {
    while (!stopTraffic) {
      await orders.chat.completions.create(chat('m', 'lgr pep pzza x2', { stream: true })).then(async (s) => { for await (const _ of s); }).catch(() => {});
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    await until(async () => { try { return (await fetch(`http://127.0.0.1:${port}/-/ready`)).status === 200; } catch { return false; } }, 20000, `prometheus ready (${perr})`);
    const rec = await until(async () => {
      const r = await api('tollgate:requests:rate5m{service="orders",model="m"}');
      return r.status === 'success' && r.data.result.length && Number(r.data.result[0].value[1]) > 0 && r.data.result;
    }, 40000, 'recording rule tollgate:requests:rate5m evaluated over scraped data');
    assert.equal(rec[0].metric.service, 'orders');
    await until(async () => (await api('tollgate:time_to_first_token_seconds:p99_5m{service="orders"}')).data.result.length, 20000, 'TTFT p99 recorded');
    const up = await api('up{job="tollgate-gateway"}');
    assert.equal(up.data.result[0].value[1], '1');
    // Every dashboard query is accepted by Prometheus; the gateway's and the engine's return data.
    // A rate needs two scrapes of a series inside its window, and each job is scraped on its own
    // schedule, so a panel may still be empty on the first pass on a loaded machine: ask again
    // until every panel that must have data has it, or the deadline passes.
    // Fallbacks, rejections by reason, slow buckets: no such traffic here; everything else has data.
    const mayBeEmpty = new Set(['Fallback rate', 'Fallbacks by reason', 'Rejections by reason', 'Engine requests finished']);
    const { exprs } = dashboardExprs();
    let unexpected = [];
    const deadline = Date.now() + 30000;
    do {
      if (unexpected.length) await new Promise((r) => setTimeout(r, 1000));
      const empty = [];
      for (const e of exprs) {
        const r = await api(e.concrete.replaceAll('[1m]', '[30s]'));
        assert.equal(r.status, 'success', `${e.panel}: ${e.expr}: ${JSON.stringify(r)}`);
        if (!r.data.result.length) empty.push(e.panel);
      }
      unexpected = [...new Set(empty.filter((p) => !mayBeEmpty.has(p)))];
    } while (unexpected.length && Date.now() < deadline);
    assert.deepEqual(unexpected, [], `panels without data: ${unexpected.join(', ')}`);
  } finally {
    stopTraffic = true;
    await traffic;
    await stop(prom);
  }
});

test('live: SIGTERM drains the request log — every accepted entry is on disk', async () => {
  const before = (await scrape())['tollgate_request_log_entries_total{result="accepted"}'];
  const orders = client(KEYS.orders);
  const N = 200;
  await Promise.all(Array.from({ length: N }, (_, i) => orders.chat.completions.create(chat('m', `order ${i} to ${EMAIL}`))));
  const accepted = (await scrape())['tollgate_request_log_entries_total{result="accepted"}'];
  assert.ok(accepted >= before + N);
  const exited = new Promise((r) => gw.p.once('exit', (code) => r(code)));
  gw.p.kill('SIGTERM');
  assert.equal(await exited, 0);
  const r = run('sqlite3', [dbPath, 'SELECT count(*) FROM requests']);
  assert.equal(Number(r.out.trim()), accepted, 'rows on disk = entries accepted');
  const red = run('sqlite3', [dbPath, "SELECT count(*) FROM requests WHERE prompt LIKE '%[EMAIL]%' AND prompt LIKE 'user: order %'"]);
  assert.equal(Number(red.out.trim()), N);
});
