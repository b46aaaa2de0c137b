#!/usr/bin/env bash
# soak.sh — `make soak`: minutes of mixed load through tollgate gateway -> sim (faults
# injected) and -> tollgate serve (the orders model), with thousands of idle connections
# held open, sampling RSS and open descriptors of every process; writes its figures to
# the <!-- bench:soak --> section of docs/benchmarks.md. Not part of CI.
#   SOAK_SECONDS=300   length of the load
#   SOAK_IDLE=9900     idle connections held on the gateway (its default cap is 10,000)
#   SOAK_RATE=150      open-loop req/s of each of the two sim load streams
#   TOLLGATE_BUILD=build
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TG="$ROOT/${TOLLGATE_BUILD:-build}/tollgate"
SECS=${SOAK_SECONDS:-300}
IDLE=${SOAK_IDLE:-9900}
RATE=${SOAK_RATE:-150}
DOC="$ROOT/docs/benchmarks.md"
ENGINE_MODEL="$ROOT/models/orders.gguf"
WORK=$(mktemp -d /tmp/tollgate-soak.XXXXXX)
PIDS=()
log() { echo "soak: $*" >&2; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# up NAME CMD...: start CMD, wait for "listening on HOST:PORT"; sets UP_PID, UP_PORT.
up() {
  local name=$1; shift
  "$@" >"$WORK/$name.log" 2>&1 &
  UP_PID=$!; PIDS+=("$UP_PID"); UP_PORT=
  for _ in $(seq 200); do
    UP_PORT=$(grep -oE 'listening on [^ ]*:[0-9]+' "$WORK/$name.log" | head -1 | grep -oE '[0-9]+$' || true)
    [ -n "$UP_PORT" ] && break
    kill -0 "$UP_PID" 2>/dev/null || { log "$name exited"; cat "$WORK/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$UP_PORT" ] || { log "$name did not come up"; exit 1; }
  log "$name up on $UP_PORT (pid $UP_PID)"
}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
up sim_faulty "$TG" sim --port 0 --threads 1 --ttft-ms 5 --itl-ms 2 --output-tokens 16 \
  --fail-rate 0.02 --reset-rate 0.01 --stall-rate 0.01 --seed 7
SIM1=$UP_PID; SIM1_PORT=$UP_PORT
up sim_clean "$TG" sim --port 0 --threads 1 --ttft-ms 5 --itl-ms 2 --output-tokens 16
SIM2=$UP_PID; SIM2_PORT=$UP_PORT
ENG=; ENG_PORT=
if [ -f "$ENGINE_MODEL" ]; then
  up engine "$TG" serve -m "$ENGINE_MODEL" --port 0 --threads 1 --log-level warn
  ENG=$UP_PID; ENG_PORT=$UP_PORT
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$ENG_PORT/health" >/dev/null && break; sleep 0.1
  done
fi

cat >"$WORK/gw.yaml" <<YAML
listen: 127.0.0.1:0
threads: 2
admin: {enabled: false}
backends:
  sims:
    addresses: [127.0.0.1:$SIM1_PORT, 127.0.0.1:$SIM2_PORT]
    health_check: {path: /health, interval_ms: 1000, timeout_ms: 500}
  engine:
    addresses: [127.0.0.1:${ENG_PORT:-1}]
    health_check: false
routes:
  m:
    variants: {v: {backend: sims}}
    deadlines: {connect_ms: 500, ttft_ms: 1000, total_ms: 2000}
    retry: {max_attempts: 2, budget_percent: 20, budget_burst: 50}
  orders:
    variants: {v: {backend: engine}}
    deadlines: {connect_ms: 500, ttft_ms: 2000, total_ms: 5000}
request_log:
  path: $WORK/requests.db
  sample_rate: 1
metrics: {public: true}  # scraped at the end without a key (loopback only)
YAML
up gateway "$TG" gateway -c "$WORK/gw.yaml"
GW=$UP_PID; GW_PORT=$UP_PORT
URL="http://127.0.0.1:$GW_PORT"

# Idle connections, held to the end of the load: each asks for /v1/models once and then
# sits on its keep-alive connection (a connection that never sends a head is closed by the
# 10 s header timeout, one idle after a request by the 60 s idle timeout); a closed one is
# opened again, so the count stays up and the gateway's accept/close path is exercised.
node -e '
  const net = require("net");
  const [port, n] = process.argv.slice(1).map(Number);
  let open = 0, reopened = 0, stopping = false;
  const one = () => {
    const s = net.connect(port, "127.0.0.1");
    s.on("connect", () => { open++; s.write("GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n"); });
    s.on("data", () => {});
    s.on("error", () => {});
    s.on("close", (had) => { open--; if (!stopping) { reopened++; setTimeout(one, 100); } });
  };
  (async () => {
    for (let i = 0; i < n; i++) { one(); if (i % 500 === 499) await new Promise((r) => setTimeout(r, 50)); }
  })();
  const report = () => console.error(`idle: ${open} open, ${reopened} reopened`);
  setTimeout(report, 3000);
  process.on("SIGTERM", () => { stopping = true; report(); process.exit(0); });
' "$GW_PORT" "$IDLE" 2>"$WORK/idle.log" &
IDLEPID=$!; PIDS+=("$IDLEPID")
sleep 4
log "$(cat "$WORK/idle.log")"

# Sampler: every 5 s, RSS (kB) and open descriptors of each process.
sample() {
  local t0=$SECONDS
  echo "t,proc,rss_kb,fds" >"$WORK/samples.csv"
  while :; do
    for pp in gateway:$GW sim_faulty:$SIM1 sim_clean:$SIM2 ${ENG:+engine:$ENG}; do
      local n=${pp%%:*} p=${pp##*:}
      [ -d /proc/$p ] || continue
      echo "$((SECONDS - t0)),$n,$(awk '/VmRSS/{print $2}' /proc/$p/status),$(ls /proc/$p/fd | wc -l)" >>"$WORK/samples.csv"
    done
    sleep 5
  done
}
sample & SAMPLER=$!; PIDS+=("$SAMPLER")

log "load for ${SECS}s: ${RATE} req/s plain + ${RATE} req/s streamed to sims${ENG:+, 2 closed-loop to the engine}"
"$TG" bench --url "$URL" --model m --rate "$RATE" --duration "$SECS" --quiet --json "$WORK/plain.json" >"$WORK/plain.txt" &
B1=$!
"$TG" bench --url "$URL" --model m --rate "$RATE" --duration "$SECS" --stream --quiet --json "$WORK/stream.json" >"$WORK/stream.txt" &
B2=$!
B3=
if [ -n "$ENG" ]; then
  "$TG" bench --url "$URL" --model orders --prompt "lgr pep pzza x2" --max-tokens 12 --concurrency 2 \
    --duration "$SECS" --quiet --json "$WORK/engine.json" >"$WORK/engine.txt" &
  B3=$!
fi
wait $B1 $B2 ${B3:+$B3}
sleep 6 # one more sample after the load, and the request-log writer catches up
kill "$IDLEPID" 2>/dev/null || true
wait "$IDLEPID" 2>/dev/null || true
IDLE_REPORT=$(tail -1 "$WORK/idle.log")
sleep 6
kill "$SAMPLER" 2>/dev/null || true

curl -s "$URL/metrics" >"$WORK/metrics.txt"
ROWS=$(sqlite3 "$WORK/requests.db" 'select count(*) from requests' 2>/dev/null || echo "?")
ALIVE=""
for pp in gateway:$GW sim_faulty:$SIM1 sim_clean:$SIM2 ${ENG:+engine:$ENG}; do
  kill -0 "${pp##*:}" 2>/dev/null && ALIVE+="${pp%%:*} up; " || ALIVE+="${pp%%:*} DEAD; "
done
cat "$WORK"/plain.txt "$WORK"/stream.txt >&2

node - "$WORK" "$SECS" "$IDLE" "$ROWS" "$ALIVE" "$IDLE_REPORT" "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" >"$WORK/section.md" <<'NODE'
const fs = require('fs');
const [work, secs, idle, rows, alive, idleReport, cpu] = process.argv.slice(2);
const read = (f) => { try { return JSON.parse(fs.readFileSync(`${work}/${f}`, 'utf8')); } catch { return null; } };
const metrics = fs.readFileSync(`${work}/metrics.txt`, 'utf8');
const m = (re) => metrics.split('\n').filter((l) => re.test(l)).reduce((s, l) => s + Number(l.split(' ').pop()), 0);
const f = (v) => (v == null ? '-' : v.toFixed(1));
const errs = (r) => {
  const e = Object.entries(r.errors).filter(([k, v]) => k !== 'http' && v).map(([k, v]) => `${k} ${v}`);
  for (const [k, v] of Object.entries(r.errors.http || {})) e.push(`http ${k}: ${v}`);
  return e.join(', ') || 'none';
};
const out = [];
out.push('## Soak: mixed load with injected faults (`make soak`)', '');
out.push(`Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${require('os').cpus().length} CPUs (${cpu}); everything on 127.0.0.1, sharing the cores.`, '');
out.push(`${secs} s of open-loop load through \`tollgate gateway\` (2 threads) to two \`tollgate sim\` upstreams in one pool, one of them injecting faults (2% 429/500/503, 1% resets mid-response, 1% stalls after the head; route: 2 attempts, 20% retry budget, total deadline 2 s), plus a closed loop of 2 to \`tollgate serve\` on models/orders.gguf when present; ${idle} idle keep-alive client connections held open on the gateway throughout (at the end: ${idleReport.replace(/^idle: /, '')}: each is closed by the gateway's 60 s keep-alive idle timeout and opened again at once); request log on (sample rate 1). Written by bench/soak.sh.`, '');
out.push('| stream | sent | ok | errors by kind | e2e p50 / p99 ms | TTFT p99 ms |', '|---|---:|---:|---|---:|---:|');
for (const [label, file] of [['plain chat to sims', 'plain.json'], ['streamed chat to sims', 'stream.json'], ['chat to the engine (orders model)', 'engine.json']]) {
  const r = read(file);
  if (!r) continue;
  out.push(`| ${label} | ${r.requests.sent} | ${r.requests.ok} | ${errs(r)} | ${f(r.latency_ms.e2e.p50)} / ${f(r.latency_ms.e2e.p99)} | ${r.stream ? f(r.latency_ms.ttft.p99) : '-'} |`);
}
out.push('');
// RSS and descriptors over time: first, middle, last and max sample per process.
const rowsCsv = fs.readFileSync(`${work}/samples.csv`, 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
const procs = [...new Set(rowsCsv.map((r) => r[1]))];
out.push('| process | RSS MiB at start / mid / end (max) | open descriptors at start / mid / end (max) |', '|---|---|---|');
for (const p of procs) {
  const s = rowsCsv.filter((r) => r[1] === p);
  const pick = (i) => [s[0], s[Math.floor(s.length / 2)], s[s.length - 1]].map((r) => r[i]);
  const mib = (kb) => (Number(kb) / 1024).toFixed(1);
  const rss = pick(2).map(mib).join(' / ') + ` (${mib(Math.max(...s.map((r) => Number(r[2]))))})`;
  const fd = pick(3).join(' / ') + ` (${Math.max(...s.map((r) => Number(r[3])))})`;
  out.push(`| ${p} | ${rss} | ${fd} |`);
}
out.push('', 'Over time (every 30 s of the 5 s samples; the last after the load stopped and the idle connections closed, showing what is released):', '');
for (const p of procs) {
  const s = rowsCsv.filter((r) => r[1] === p);
  const every = s.filter((r, i) => i % 6 === 0 || i === s.length - 1);
  out.push(`- ${p}: RSS MiB ${every.map((r) => (Number(r[2]) / 1024).toFixed(1)).join(', ')}; descriptors ${every.map((r) => r[3]).join(', ')}`);
}
out.push('');
const acc = m(/^tollgate_request_log_entries_total\{result="accepted"\}/), wr = m(/^tollgate_request_log_entries_total\{result="written"\}/);
const dr = m(/^tollgate_request_log_entries_total\{result="dropped"\}/), fl = m(/^tollgate_request_log_entries_total\{result="failed"\}/);
const served = m(/^tollgate_requests_total\{/);
out.push(`Gateway: ${served} requests counted in tollgate_requests_total; request log: ${acc} entries accepted, ${wr} written, ${dr} dropped, ${fl} failed, ${rows} rows in the database — **${acc - wr} accepted entries lost**. After the run: ${alive.trim()}`);
console.log(out.join('\n'));
NODE
cat "$WORK/section.md" >&2

node -e '
  const fs = require("fs");
  const [doc, bodyFile] = process.argv.slice(1);
  const body = fs.readFileSync(bodyFile, "utf8").trimEnd();
  const open = "<!-- bench:soak -->", close = "<!-- /bench:soak -->";
  let text = fs.readFileSync(doc, "utf8");
  const a = text.indexOf(open), b = text.indexOf(close), block = `${open}\n${body}\n${close}`;
  text = a >= 0 && b > a ? text.slice(0, a) + block + text.slice(b + close.length) : text.trimEnd() + "\n\n" + block + "\n";
  fs.writeFileSync(doc, text);
' "$DOC" "$WORK/section.md"
log "wrote section 'soak' of docs/benchmarks.md"
