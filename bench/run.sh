#!/usr/bin/env bash
# run.sh — the benchmarks behind `make bench`. Each section is a function that measures
# something on loopback and rewrites its own block of docs/benchmarks.md, between
# <!-- bench:NAME --> and <!-- /bench:NAME -->, leaving other sections alone.
#   BENCH_SECTIONS="ceilings ..."  which sections to run (default: all registered)
#   BENCH_SECONDS=10               length of each measurement
#   TOLLGATE_BUILD=build           which build's binary to use
# To add a section: write section_NAME (use start_server/stop_server, run_bench,
# row, write_section) and append NAME to ALL_SECTIONS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${TOLLGATE_BUILD:-build}
TG="$ROOT/$B/tollgate"
SECS=${BENCH_SECONDS:-10}
DOC="$ROOT/docs/benchmarks.md"
ALL_SECTIONS="ceilings gateway governance engine orders serve"
WORK=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
SERVER_PIDS=()

cleanup() {
  for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }

# ---- shared helpers -------------------------------------------------------------------

# A free TCP port on 127.0.0.1 (for servers that cannot take --port 0).
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# start_server NAME CMD...: run CMD in the background (output in $WORK/NAME.log) and wait
# until it prints "listening on HOST:PORT" (or, with READY_PORT set, until that port
# accepts). Sets SERVER_PID and SERVER_PORT.
start_server() {
  local name=$1; shift
  local logf="$WORK/$name.log"
  "$@" >"$logf" 2>&1 &
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
  SERVER_PORT=
  for _ in $(seq 100); do
    if [ -n "${READY_PORT:-}" ]; then
      if (exec 3<>"/dev/tcp/127.0.0.1/$READY_PORT") 2>/dev/null; then SERVER_PORT=$READY_PORT; break; fi
    else
      SERVER_PORT=$(grep -oE 'listening on [^ ]*:[0-9]+' "$logf" | head -1 | grep -oE '[0-9]+$' || true)
      [ -n "$SERVER_PORT" ] && break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { log "$name exited:"; cat "$logf" >&2; return 1; }
    sleep 0.1
  done
  [ -n "$SERVER_PORT" ] || { log "$name did not come up"; cat "$logf" >&2; return 1; }
  log "$name up on port $SERVER_PORT (pid $SERVER_PID)"
}

stop_server() {
  local pid=$1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# run_bench OUT.json ARGS...: tollgate bench with --json OUT.json --quiet; the command
# line (with the binary shortened to "tollgate") is saved in OUT.json.cmd.
run_bench() {
  local out=$1; shift
  echo "tollgate bench $*" | sed -E 's#http://127\.0\.0\.1:[0-9]+#http://127.0.0.1:PORT#' >"$out.cmd"
  "$TG" bench "$@" --quiet --json "$out" >"$out.txt"
  cat "$out.txt" >&2
}

# row LABEL OUT.json: one markdown table row from a bench result.
row() {
  node -e '
    const fs = require("fs");
    const [label, file] = process.argv.slice(1);
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    const cmd = fs.readFileSync(file + ".cmd", "utf8").trim();
    const f = (v) => v == null ? "-" : v.toFixed(3);
    const L = r.latency_ms;
    const ttft = r.stream ? f(L.ttft.p50) + " / " + f(L.ttft.p99) : "-";
    console.log(`| ${label} | ${r.rps.toFixed(0)} | ${r.requests.errors} | ${f(L.e2e.p50)} / ${f(L.e2e.p99)} | ${ttft} | ${r.tokens.per_s.toFixed(0)} | \`${cmd}\` |`);
  ' "$1" "$2"
}

machine() {
  local cpu
  cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs ($cpu), Linux $(uname -r);"
  echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shares the cores)."
}

# write_section NAME FILE: replace NAME's block in docs/benchmarks.md with FILE.
write_section() {
  local name=$1 body=$2
  [ -f "$DOC" ] || printf '# Benchmarks\n\nWritten by `make bench` (bench/run.sh); each section is rewritten by its own run.\n' >"$DOC"
  node -e '
    const fs = require("fs");
    const [doc, name, bodyFile] = process.argv.slice(1);
    const body = fs.readFileSync(bodyFile, "utf8").trimEnd();
    const open = `<!-- bench:${name} -->`, close = `<!-- /bench:${name} -->`;
    let text = fs.readFileSync(doc, "utf8");
    const block = `${open}\n${body}\n${close}`;
    const a = text.indexOf(open), b = text.indexOf(close);
    if (a >= 0 && b > a) text = text.slice(0, a) + block + text.slice(b + close.length);
    else text = text.trimEnd() + "\n\n" + block + "\n";
    fs.writeFileSync(doc, text);
  ' "$DOC" "$name" "$body"
  log "wrote section '$name' of docs/benchmarks.md"
}

TABLE_HEAD='| target | req/s | errors | e2e p50 / p99 ms | TTFT p50 / p99 ms | tokens/s | command |
|---|---:|---:|---:|---:|---:|---|'

# ---- section: ceilings ------------------------------------------------------------------
# How fast can the simulator answer and the load generator ask? Both are measured
# together against sim with zero latency; the load generator alone against nginx
# returning a fixed 200 (if nginx is installed).
section_ceilings() {
  local out="$WORK/ceilings.md" info
  info=$(machine)
  {
    echo "## Ceilings: simulator and load generator"
    echo
    echo "$info"
    echo
    echo "${SECS} s each, 2 load-generator threads, all on 127.0.0.1: closed loop with 64"
    echo "connections, and one open-loop row (Poisson arrivals at 10,000 req/s, latency from"
    echo "each scheduled send time). The simulator (\`tollgate sim --port 0 --ttft-ms 0"
    echo "--itl-ms 0\`, 2 threads) and the load generator share the machine's 2 cores, so"
    echo "each row is a floor for both."
    echo
    echo "$TABLE_HEAD"
  } >"$out"

  if "$TG" sim --help >/dev/null 2>&1; then
    start_server sim "$TG" sim --port 0 --ttft-ms 0 --itl-ms 0
    local url="http://127.0.0.1:$SERVER_PORT"
    run_bench "$WORK/sim.json" --url "$url" --concurrency 64 --duration "$SECS" --max-tokens 16
    row "sim, not streaming, 16 tokens" "$WORK/sim.json" >>"$out"
    run_bench "$WORK/sim-stream.json" --url "$url" --concurrency 64 --duration "$SECS" --max-tokens 16 --stream
    row "sim, streaming, 16 tokens" "$WORK/sim-stream.json" >>"$out"
    run_bench "$WORK/sim-open.json" --url "$url" --rate 10000 --duration "$SECS" --max-tokens 16 --connections 64
    row "sim, not streaming, open loop: 10,000 req/s offered, 64 connections" "$WORK/sim-open.json" >>"$out"
    run_bench "$WORK/sim-open256.json" --url "$url" --rate 10000 --duration "$SECS" --max-tokens 16
    row "sim, the same with the default 256 connections" "$WORK/sim-open256.json" >>"$out"
    stop_server "$SERVER_PID"
  else
    echo "| sim | not built yet | | | | | |" >>"$out"
  fi

  local nginx
  nginx=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
  if [ -n "$nginx" ]; then
    local port d="$WORK/nginx"
    port=$(free_port)
    mkdir -p "$d"
    cat >"$d/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    location / { default_type application/json; return 200 '{"usage":{"completion_tokens":1}}'; }
  }
}
NGINX
    READY_PORT=$port start_server nginx "$nginx" -c "$d/nginx.conf" -p "$d"
    run_bench "$WORK/nginx.json" --url "http://127.0.0.1:$port" --concurrency 64 --duration "$SECS"
    row "nginx (1 worker), fixed 200: the load generator's ceiling" "$WORK/nginx.json" >>"$out"
    stop_server "$SERVER_PID"
  else
    echo "| nginx | not installed (scripts/setup.sh installs nginx-light) | | | | | |" >>"$out"
  fi
  {
    echo
    echo "TTFT is the first SSE event carrying content (not streaming: the whole response)."
    echo "tokens/s counts output tokens from usage.completion_tokens. The two open-loop rows"
    echo "show why bench caps connections: on this VM each request costs more kernel time"
    echo "when hundreds of loopback connections are busy, so a Poisson burst that opens"
    echo "them can tip a server running near its limit into a standing queue, which the"
    echo "open loop (rightly) shows as latency."
  } >>"$out"
  write_section ceilings "$out"
}

# Sections kept in their own files.
. "$ROOT/bench/gateway.sh"
. "$ROOT/bench/governance.sh"
. "$ROOT/bench/engine.sh"
. "$ROOT/bench/orders.sh"
. "$ROOT/bench/serve.sh"

# ---- main ------------------------------------------------------------------------------
[ -x "$TG" ] || { log "no binary at $TG: run make first"; exit 1; }
for s in ${BENCH_SECTIONS:-$ALL_SECTIONS}; do
  log "section $s"
  "section_$s"
done
