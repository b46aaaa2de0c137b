// deploy.test.mjs — deploy/ validated without a cluster: `kubectl kustomize` renders every
// overlay; every object passes its schema (kubernetes-models, incl. Argo Rollouts and the
// Prometheus Operator kinds); references between objects resolve; workloads are Guaranteed
// QoS, non-root and probed; the canary analysis gates on p99 > 0.5 s and on errors, its
// queries parse (promtool) and select series the gateway and a vLLM-compatible upstream
// really export; the gateway config the cluster would run passes `tollgate gateway --check`;
// the PrometheusRule is tollgate-rules.yml (the file promtool tests) and the Grafana dashboard
// ConfigMap is deploy/grafana/tollgate.json, labelled for the sidecar, using only metrics that
// tollgate exports; yamllint is clean; the Dockerfile is multi-stage and non-root. The schemas do not reject
// unknown fields (the Kubernetes OpenAPI allows them), so field names are also checked where
// it matters below.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const BIN = process.env.TOLLGATE_BIN;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const KDIR = join(ROOT, 'deploy/kustomize');
const OVERLAYS = readdirSync(join(KDIR, 'overlays')).sort();
const WORKLOADS = ['Deployment', 'StatefulSet', 'Job', 'Rollout'];
// Secrets an operator creates out of band in an overlay that does not generate them.
const EXTERNAL_SECRETS = ['tollgate-gateway-keys', 'tollgate-orders-key'];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60000, ...opts });
  return { code: r.status, out: r.stdout || '', err: r.stderr || '', error: r.error };
}

const rendered = new Map();
function render(overlay) {
  if (!rendered.has(overlay)) {
    const r = run('kubectl', ['kustomize', join(KDIR, 'overlays', overlay)]);
    assert.equal(r.error, undefined, `kubectl not found: run scripts/setup.sh (${r.error})`);
    assert.equal(r.code, 0, `kubectl kustomize ${overlay}: ${r.err}`);
    const docs = parseAllDocuments(r.out);
    for (const d of docs) assert.deepEqual(d.errors, [], `${overlay}: YAML errors`);
    const objs = docs.map((d) => d.toJS()).filter(Boolean);
    // kustomize may fold a Secret's base64 over several lines; the API server's decoder (Go's
    // encoding/base64) ignores newlines, the schema's "byte" format does not: unfold first.
    for (const o of objs) if (o.kind === 'Secret') for (const k in o.data || {}) o.data[k] = o.data[k].replace(/\s+/g, '');
    rendered.set(overlay, objs);
  }
  return rendered.get(overlay);
}

// The model class for an object: kubernetes-models for built-in groups, the Argo Rollouts and
// Prometheus Operator packages for theirs. Unknown kinds are an error, not a skip.
async function modelFor(apiVersion, kind) {
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  const pkg = group === 'argoproj.io' ? '@kubernetes-models/argo-rollouts'
    : group === 'monitoring.coreos.com' ? '@kubernetes-models/prometheus-operator'
    : 'kubernetes-models';
  const mod = await import(`${pkg}/${apiVersion}/${kind}`);
  return mod[kind];
}

const podSpec = (o) => (o.kind === 'Job' ? o.spec.template.spec : o.spec.template.spec);
const allContainers = (o) => [...(podSpec(o).initContainers || []), ...podSpec(o).containers];
const find = (objs, kind, name) => objs.find((o) => o.kind === kind && o.metadata.name.startsWith(name));
const selects = (selector, labels) => Object.entries(selector).every(([k, v]) => labels[k] === v);

test('the validator rejects what it should (control)', async () => {
  const Deployment = await modelFor('apps/v1', 'Deployment');
  assert.throws(() => new Deployment({ metadata: { name: 'x' }, spec: { replicas: 'two', selector: {}, template: { spec: { containers: [{ name: 'c' }] } } } }).validate());
  const Rollout = await modelFor('argoproj.io/v1alpha1', 'Rollout');
  assert.throws(() => new Rollout({ metadata: { name: 'x' }, spec: { strategy: { canary: { steps: [{ setWeight: 'ten' }] } } } }).validate());
  const ServiceMonitor = await modelFor('monitoring.coreos.com/v1', 'ServiceMonitor');
  assert.throws(() => new ServiceMonitor({ metadata: { name: 'x' }, spec: { selector: {}, endpoints: 'http' } }).validate());
  const PrometheusRule = await modelFor('monitoring.coreos.com/v1', 'PrometheusRule');
  assert.throws(() => new PrometheusRule({ metadata: { name: 'x' }, spec: { groups: [{ name: 'g', rules: [{ record: 'r' }] }] } }).validate());
  assert.throws(() => new PrometheusRule({ metadata: { name: 'x' }, spec: { groups: [{ rules: [] }] } }).validate());
});

for (const overlay of OVERLAYS) {
  test(`${overlay}: kubectl kustomize renders; every object passes its schema`, async () => {
    const objs = render(overlay);
    const kinds = new Set(objs.map((o) => o.kind));
    for (const k of ['Rollout', 'AnalysisTemplate', 'Deployment', 'Job', 'PersistentVolumeClaim', 'Service', 'ConfigMap', 'PodDisruptionBudget', 'ServiceMonitor', 'StatefulSet', 'PrometheusRule'])
      assert.ok(kinds.has(k), `${overlay}: no ${k}`);
    for (const o of objs) {
      const Model = await modelFor(o.apiVersion, o.kind);
      assert.ok(Model, `${overlay}: no schema for ${o.apiVersion} ${o.kind}`);
      assert.doesNotThrow(() => new Model(o).validate(), `${overlay}: ${o.kind}/${o.metadata.name}`);
      if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, `tollgate${overlay === 'prod' ? '' : '-' + overlay}`, `${o.kind}/${o.metadata.name} namespace`);
    }
  });

  test(`${overlay}: references resolve, selectors match, QoS Guaranteed, non-root, probes`, () => {
    const objs = render(overlay);
    const names = (kind) => new Set(objs.filter((o) => o.kind === kind).map((o) => o.metadata.name));
    const configMaps = names('ConfigMap'), secrets = names('Secret'), pvcs = names('PersistentVolumeClaim');
    const secretOk = (n) => secrets.has(n) || (secrets.size === 0 && EXTERNAL_SECRETS.includes(n));
    const workloads = objs.filter((o) => WORKLOADS.includes(o.kind));
    for (const w of workloads) {
      const id = `${overlay}: ${w.kind}/${w.metadata.name}`;
      const spec = podSpec(w);
      assert.equal(spec.securityContext?.runAsNonRoot, true, `${id}: runAsNonRoot`);
      for (const v of spec.volumes || []) {
        if (v.configMap) assert.ok(configMaps.has(v.configMap.name), `${id}: ConfigMap ${v.configMap.name}`);
        if (v.secret) assert.ok(secretOk(v.secret.secretName), `${id}: Secret ${v.secret.secretName}`);
        if (v.persistentVolumeClaim) assert.ok(pvcs.has(v.persistentVolumeClaim.claimName), `${id}: PVC`);
      }
      for (const c of allContainers(w)) {
        const cid = `${id} container ${c.name}`;
        // Guaranteed QoS: every container (init ones too) has requests = limits for both.
        for (const r of ['cpu', 'memory']) {
          assert.ok(c.resources?.limits?.[r], `${cid}: no ${r} limit`);
          assert.equal(String(c.resources.requests?.[r]), String(c.resources.limits[r]), `${cid}: ${r} request != limit`);
        }
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${cid}: allowPrivilegeEscalation`);
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${cid}: readOnlyRootFilesystem`);
        assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], `${cid}: capabilities`);
        for (const e of c.envFrom || []) if (e.configMapRef) assert.ok(configMaps.has(e.configMapRef.name), `${cid}: envFrom ${e.configMapRef.name}`);
        for (const e of c.env || []) {
          if (e.valueFrom?.secretKeyRef) assert.ok(secretOk(e.valueFrom.secretKeyRef.name), `${cid}: secret ${e.valueFrom.secretKeyRef.name}`);
          if (e.valueFrom?.configMapKeyRef) assert.ok(configMaps.has(e.valueFrom.configMapKeyRef.name), `${cid}: configmap ref`);
        }
        if (w.kind !== 'Job' && !(spec.initContainers || []).includes(c)) {
          assert.ok(c.livenessProbe && c.readinessProbe, `${cid}: probes`);
          for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe].filter(Boolean))
            assert.match(p.httpGet.path, /^\/(health|ready)$/, `${cid}: probe path`);
        }
      }
      if (w.kind !== 'Job') {
        const labels = w.spec.template.metadata.labels;
        assert.ok(selects(w.spec.selector.matchLabels, labels), `${id}: selector does not match its pods`);
      }
    }
    // Every Service, PDB and ServiceMonitor selects some workload's pods / some Service.
    const podLabels = workloads.filter((w) => w.kind !== 'Job').map((w) => w.spec.template.metadata.labels);
    for (const s of objs.filter((o) => o.kind === 'Service'))
      assert.ok(podLabels.some((l) => selects(s.spec.selector, l)), `${overlay}: Service ${s.metadata.name} selects nothing`);
    for (const p of objs.filter((o) => o.kind === 'PodDisruptionBudget'))
      assert.ok(podLabels.some((l) => selects(p.spec.selector.matchLabels, l)), `${overlay}: PDB ${p.metadata.name} selects nothing`);
    for (const m of objs.filter((o) => o.kind === 'ServiceMonitor')) {
      const svcs = objs.filter((o) => o.kind === 'Service' && selects(m.spec.selector.matchLabels, o.metadata.labels) &&
        (m.spec.selector.matchExpressions || []).every((e) => e.operator !== 'DoesNotExist' || !(e.key in o.metadata.labels)));
      assert.equal(svcs.length, 1, `${overlay}: ServiceMonitor ${m.metadata.name} should select exactly one Service`);
      for (const ep of m.spec.endpoints) assert.ok(svcs[0].spec.ports.some((p) => p.name === ep.port), `${overlay}: ${m.metadata.name} port ${ep.port}`);
    }
  });

  test(`${overlay}: engine reads the verified model read-only; the canary is gated on p99 and errors`, () => {
    const objs = render(overlay);
    const ro = find(objs, 'Rollout', 'tollgate-engine');
    const spec = ro.spec.template.spec;
    const vol = spec.volumes.find((v) => v.persistentVolumeClaim);
    assert.equal(vol.persistentVolumeClaim.readOnly, true);
    for (const c of allContainers(ro)) for (const m of c.volumeMounts.filter((m) => m.name === vol.name)) assert.equal(m.readOnly, true, c.name);
    const serve = spec.containers[0];
    assert.equal(serve.args[0], 'serve');
    assert.ok(serve.args.includes('--model=/models/$(MODEL_FILE)'));
    assert.ok(spec.initContainers[0].args[0].includes('sha256ok'), 'engine waits for the verified model');
    // The Job verifies the checksum before publishing under the final name.
    const job = find(objs, 'Job', 'tollgate-model-fetch');
    const script = job.spec.template.spec.containers[0].args[0];
    assert.match(script, /aws s3 cp/);
    assert.ok(script.indexOf('sha256sum') < script.indexOf('mv "${dst}.part" "${dst}"'), 'checksum before publish');
    const model = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('tollgate-model-'));
    assert.match(model.data.MODEL_SHA256, /^[0-9a-f]{64}$/);
    assert.match(model.data.MODEL_S3_URI, /^s3:\/\//);
    // Canary: steps, the two Services, variant labels, the analysis.
    const c = ro.spec.strategy.canary;
    assert.deepEqual(c.steps.filter((s) => s.setWeight).map((s) => s.setWeight), [10, 25, 50]);
    assert.ok(find(objs, 'Service', c.stableService) && find(objs, 'Service', c.canaryService));
    assert.equal(c.canaryMetadata.labels.variant, 'canary');
    const at = find(objs, 'AnalysisTemplate', c.analysis.templates[0].templateName);
    assert.ok(at, 'AnalysisTemplate exists');
    const args = Object.fromEntries(at.spec.args.map((a) => [a.name, a.value]));
    assert.equal(args['p99-limit-seconds'], '0.5');
    for (const a of c.analysis.args) assert.ok(a.name in args, `Rollout passes unknown arg ${a.name}`);
    const q = (n) => at.spec.metrics.find((m) => m.name === n);
    assert.match(q('gateway-canary-p99').provider.prometheus.query, /histogram_quantile\(0\.99, sum by \(le\) \(rate\(\s*tollgate_request_duration_seconds_bucket\{[^\n]*variant="canary"/);
    assert.match(q('gateway-canary-p99').failureCondition, /result\[0\] > \{\{args\.p99-limit-seconds\}\}/);
    assert.match(q('gateway-canary-error-rate').provider.prometheus.query, /code=~"5\.\."/);
    assert.match(q('engine-canary-p99').provider.prometheus.query, /vllm:e2e_request_latency_seconds_bucket\{[^\n]*variant="canary"/);
    // The engine's ServiceMonitor copies the pod label `variant` that the query filters on.
    assert.deepEqual(find(objs, 'ServiceMonitor', 'tollgate-engine').spec.podTargetLabels, ['variant']);
  });
}

for (const overlay of OVERLAYS) {
  test(`${overlay}: the gateway config the cluster runs passes tollgate gateway --check`, { skip: !BIN && 'TOLLGATE_BIN not set' }, () => {
    const objs = render(overlay);
    const dev = render('dev');
    const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('tollgate-gateway-config'));
    // An overlay without generated secrets (prod) gets them out of band: use dev's as the stand-in.
    const secretOf = (name) => objs.find((o) => o.kind === 'Secret' && o.metadata.name.startsWith(name)) ||
      dev.find((o) => o.kind === 'Secret' && o.metadata.name.startsWith(name));
    const sec = secretOf('tollgate-gateway-keys');
    const text = (o, k) => Buffer.from(o.data[k], 'base64').toString();
    const dir = mkdtempSync(join(tmpdir(), 'deploy-e2e-'));
    try {
      // What the init container does: the ConfigMap's file, then the Secret's services section.
      const file = join(dir, 'gateway.yaml');
      writeFileSync(file, cm.data['gateway.yaml'] + text(sec, 'services.yaml'));
      const r = run(BIN, ['gateway', '-c', file, '--check'], { env: { ...process.env, TOLLGATE_ADMIN_KEY: text(sec, 'admin-key') } });
      assert.equal(r.code, 0, r.out + r.err);
      assert.match(cm.data['gateway.yaml'], /normalize_order:/);
      // The orders service's key (its own Secret) hashes to one the gateway lists.
      const h = run(BIN, ['keygen', '--hash', text(secretOf('tollgate-orders-key'), 'key')]);
      assert.ok(text(sec, 'services.yaml').includes(h.out.match(/sha256:[0-9a-f]{64}/)[0]));
      // The gateway's init container runs exactly that check.
      const gw = find(objs, 'Deployment', 'tollgate-gateway');
      assert.match(gw.spec.template.spec.initContainers[0].args[0], /tollgate gateway -c \/run\/tollgate\/gateway.yaml --check/);
      // Worker threads = the CPU limit (threads: 0 would count the node's cores, not the limit).
      const threads = Number(cm.data['gateway.yaml'].match(/^threads: (\d+)/m)[1]);
      assert.equal(String(threads), String(gw.spec.template.spec.containers[0].resources.limits.cpu), 'gateway threads vs CPU limit');
      // The order service calls the gateway's Service with a deadline above the task's.
      const orders = find(objs, 'StatefulSet', 'tollgate-orders').spec.template.spec.containers[0].args;
      assert.ok(orders.includes('--gateway=http://tollgate-gateway:8080'));
      const ordersDeadline = Number(orders.find((a) => a.startsWith('--deadline-ms=')).split('=')[1]);
      const taskDeadline = Number(cm.data['gateway.yaml'].match(/normalize_order:[\s\S]*?deadline_ms: (\d+)/)[1]);
      assert.ok(taskDeadline < ordersDeadline, `task ${taskDeadline} ms vs orders ${ordersDeadline} ms`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

// Start a tollgate subcommand; resolve with the child and the match of `re` on its stdout.
function start(args, re) {
  const p = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${args[0]} did not start: ${err}`)); }, 10000);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(re);
      if (m) { clearTimeout(timer); resolve({ p, m }); }
    });
    p.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${args[0]} exited ${code}: ${err}`)); });
  });
}

test('the canary analysis queries are valid PromQL over series tollgate exports', { skip: !BIN && 'TOLLGATE_BIN not set' }, async () => {
  const at = find(render('prod'), 'AnalysisTemplate', 'tollgate-canary-slo');
  const args = { namespace: 'tollgate', ...Object.fromEntries(at.spec.args.filter((a) => a.value).map((a) => [a.name, a.value])) };
  const subst = (q) => q.replace(/\{\{args\.([a-z0-9-]+)\}\}/g, (_, n) => { assert.ok(n in args, `unknown arg ${n}`); return args[n]; });
  const dir = mkdtempSync(join(tmpdir(), 'deploy-promql-'));
  const procs = [];
  try {
    // 1. promtool parses every query (as recording rules; the analysis runs them as instant queries).
    const rules = { groups: [{ name: 'argo-analysis', rules: at.spec.metrics.map((m, i) => ({ record: `argo:check_${i}`, expr: subst(m.provider.prometheus.query) })) }] };
    const file = join(dir, 'rules.yml');
    writeFileSync(file, JSON.stringify(rules));
    const r = run('promtool', ['check', 'rules', file]);
    assert.equal(r.error, undefined, 'promtool not found: run scripts/setup.sh');
    assert.equal(r.code, 0, r.out + r.err);
    for (const m of at.spec.metrics) assert.match(subst(m.failureCondition), /^result\[0\] > [0-9.]+$/);

    // 2. The series and labels the queries select exist: a gateway routing the analysed
    // model's stable and canary variants to `tollgate sim` (which exports vLLM's names, as
    // `tollgate serve` does), after a few requests.
    const sim = await start(['sim', '--port', '0', '--threads', '1'], /listening on [\d.]+:(\d+)/);
    procs.push(sim.p);
    writeFileSync(join(dir, 'gw.yaml'), `listen: 127.0.0.1:0
threads: 1
backends:
  s: {addresses: ["127.0.0.1:${sim.m[1]}"]}
routes:
  ${args.model}:
    variants: {stable: {backend: s, weight: 1}, canary: {backend: s, weight: 1}}
metrics: {public: true}
`);
    const gw = await start(['gateway', '-c', join(dir, 'gw.yaml')], /listening on ([\d.]+):(\d+)/);
    procs.push(gw.p);
    const base = `http://${gw.m[1]}:${gw.m[2]}`;
    const seen = new Set();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: args.model, max_tokens: 2, messages: [{ role: 'user', content: 'lgr pep' }] }) });
      assert.equal(res.status, 200);
      seen.add(res.headers.get('x-tollgate-variant'));
      await res.text();
    }
    assert.ok(seen.has('canary'), 'no request went to the canary variant');
    const gwText = await (await fetch(`${base}/metrics`)).text();
    const simText = await (await fetch(`http://127.0.0.1:${sim.m[1]}/metrics`)).text();
    // Each selector of the queries (less the labels Prometheus adds at scrape time:
    // namespace, and the pod label `variant` on engine series) matches an exported sample.
    const scrapeLabels = { namespace: 1 };
    for (const m of at.spec.metrics) {
      const q = subst(m.provider.prometheus.query);
      for (const [, name, sel] of q.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)) {
        const engine = name.startsWith('vllm:');
        const text = engine ? simText : gwText;
        const want = [...sel.matchAll(/([a-z_]+)(=~|=)"([^"]*)"/g)].filter(([, l]) => !(l in scrapeLabels) && !(engine && l === 'variant'));
        const hit = text.split('\n').some((line) => line.startsWith(name + '{') && want.every(([, l, op, v]) => {
          const got = line.match(new RegExp(`[{,]${l}="([^"]*)"`));
          // `=` must match the value; for `=~` (code=~"5..") the label must exist: an error
          // series need not have been produced by this healthy run.
          return got && (op === '=~' || got[1] === v);
        }));
        assert.ok(hit, `${m.name}: no exported sample matches ${name}{${sel}}`);
      }
    }
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

const RULES_FILE = join(ROOT, 'deploy/prometheus/tollgate-rules.yml');
const DASHBOARD_FILE = join(ROOT, 'deploy/grafana/tollgate.json');

for (const overlay of OVERLAYS) {
  test(`${overlay}: the PrometheusRule is tollgate-rules.yml; the dashboard ConfigMap is tollgate.json for the Grafana sidecar`, () => {
    const objs = render(overlay);
    const rules = objs.filter((o) => o.kind === 'PrometheusRule');
    assert.equal(rules.length, 1, `${overlay}: one PrometheusRule`);
    // One source of truth: the object's groups are the file promtool tests, rule for rule.
    const file = parseAllDocuments(readFileSync(RULES_FILE, 'utf8'))[0].toJS();
    assert.deepEqual(rules[0].spec, file, 'deploy/prometheus/prometheus-rule.yaml differs from tollgate-rules.yml: run deploy/prometheus/render-rule.sh');
    assert.ok(file.groups.flatMap((g) => g.rules).some((r) => r.alert), 'the rules include alerts');
    const cms = objs.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1');
    assert.equal(cms.length, 1, `${overlay}: one ConfigMap labelled grafana_dashboard: "1"`);
    assert.equal(cms[0].metadata.name, 'tollgate-grafana-dashboard', 'a fixed name (no hash suffix)');
    assert.equal(cms[0].data['tollgate.json'], readFileSync(DASHBOARD_FILE, 'utf8'));
    assert.equal(JSON.parse(cms[0].data['tollgate.json']).uid, 'tollgate-overview');
  });
}

// Every "expr" anywhere in a Grafana dashboard JSON.
function dashboardExprs(node, out = []) {
  if (Array.isArray(node)) for (const n of node) dashboardExprs(n, out);
  else if (node && typeof node === 'object') for (const [k, v] of Object.entries(node)) (k === 'expr' && typeof v === 'string' ? out.push(v) : dashboardExprs(v, out));
  return out;
}

test('the dashboard parses and queries only metrics that the gateway and tollgate serve export', { skip: !BIN && 'TOLLGATE_BIN not set', timeout: 60000 }, async () => {
  const dash = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8'));
  const exprs = dashboardExprs(dash);
  assert.ok(exprs.length >= 20, `${exprs.length} queries`);
  const dir = mkdtempSync(join(tmpdir(), 'deploy-dash-'));
  const procs = [];
  try {
    const serve = await start(['serve', '-m', join(ROOT, 'models/orders.gguf'), '--port', '0', '--log-level', 'warn'], /listening on [\d.]+:(\d+)/);
    procs.push(serve.p);
    writeFileSync(join(dir, 'gw.yaml'), `listen: 127.0.0.1:0\nthreads: 1\nbackends:\n  e: {addresses: ["127.0.0.1:${serve.m[1]}"]}\nroutes:\n  orders:\n    variants: {stable: {backend: e, weight: 1}}\nmetrics: {public: true}\n`);
    const gw = await start(['gateway', '-c', join(dir, 'gw.yaml')], /listening on ([\d.]+):(\d+)/);
    procs.push(gw.p);
    // The names each /metrics declares (# TYPE), with a histogram's _bucket/_sum/_count series.
    const exported = new Set();
    for (const url of [`http://${gw.m[1]}:${gw.m[2]}/metrics`, `http://127.0.0.1:${serve.m[1]}/metrics`]) {
      const text = await (await fetch(url)).text();
      for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
        exported.add(name);
        if (type === 'histogram') for (const sfx of ['_bucket', '_sum', '_count']) exported.add(name + sfx);
      }
    }
    assert.ok(exported.has('tollgate_requests_total') && exported.has('vllm:e2e_request_latency_seconds_bucket'), [...exported].join(' '));
    // Recording rules are series too.
    const file = parseAllDocuments(readFileSync(RULES_FILE, 'utf8'))[0].toJS();
    for (const r of file.groups.flatMap((g) => g.rules)) if (r.record) exported.add(r.record);
    for (const e of exprs) {
      const names = [...e.matchAll(/(?<![a-zA-Z0-9_:$])((?:tollgate|vllm)[_:][a-zA-Z0-9_:]*)/g)].map((m) => m[1]);
      assert.ok(names.length > 0, `a query without a tollgate or vllm metric: ${e}`);
      for (const n of names) assert.ok(exported.has(n), `the dashboard queries ${n}, which nothing exports: ${e}`);
    }
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('yamllint is clean on deploy/kustomize and the kustomizations of the rules and dashboard', () => {
  const r = run('yamllint', ['-f', 'parsable', '-c', join(ROOT, 'deploy/.yamllint'), join(ROOT, 'deploy/kustomize'),
    join(ROOT, 'deploy/prometheus/kustomization.yaml'), join(ROOT, 'deploy/prometheus/prometheus-rule.yaml'), join(ROOT, 'deploy/grafana/kustomization.yaml')]);
  assert.equal(r.error, undefined, 'yamllint not found: run scripts/setup.sh');
  assert.equal(r.code, 0, r.out + r.err);
});

test('Dockerfile: multi-stage, small runtime base, non-root numeric user', () => {
  const lines = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8').split('\n').filter((l) => !l.startsWith('#'));
  const froms = lines.filter((l) => /^FROM /.test(l));
  assert.ok(froms.length >= 2, 'multi-stage');
  assert.match(froms.at(-1), /^FROM debian:[a-z]+-slim AS runtime$/);
  const runtime = lines.slice(lines.indexOf(froms.at(-1)));
  assert.ok(!runtime.some((l) => /build-essential|-dev\b/.test(l)), 'no toolchain in the runtime stage');
  const user = runtime.filter((l) => /^USER /.test(l)).at(-1);
  assert.match(user, /^USER [1-9][0-9]*:[1-9][0-9]*$/);
  assert.ok(runtime.some((l) => /^COPY --from=build /.test(l)));
});
