# gateway.sh — the `gateway` section of bench/run.sh (sourced by it; uses its helpers):
# what tollgate gateway costs. The same load straight at tollgate sim, through tollgate
# gateway, and through nginx as a plain reverse proxy, side by side in one run:
# saturation throughput, p50/p99 at fixed offered rates, the gateway's added latency,
# and its memory with 1,000 open connections.

# nginx as a plain keep-alive reverse proxy to 127.0.0.1:$2 on port $1, one worker.
gw_nginx_conf() {
  local port=$1 upstream=$2 d=$3
  cat <<NGINX
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  keepalive_requests 1000000;
  upstream sim { server 127.0.0.1:$upstream; keepalive 256; }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
}

# gw_added OUT.json BASE.json LABEL: one row of "target minus direct" latency.
gw_added() {
  node -e '
    const fs = require("fs");
    const [a, b, label] = process.argv.slice(1);
    const A = JSON.parse(fs.readFileSync(a, "utf8")).latency_ms.e2e;
    const B = JSON.parse(fs.readFileSync(b, "utf8")).latency_ms.e2e;
    const us = (x) => ((x) * 1000).toFixed(0);
    console.log(`| ${label} | ${us(A.p50 - B.p50)} | ${us(A.p99 - B.p99)} |`);
  ' "$1" "$2" "$3"
}

# gw_rss_with_conns PID PORT N: open N keep-alive connections to PORT (each sends one
# request for /v1/models and stays open), then print PID's resident memory in MB.
gw_rss_with_conns() {
  local pid=$1 port=$2 n=$3
  node -e '
    const net = require("net");
    const [pid, port, n] = process.argv.slice(1).map(Number);
    const fs = require("fs");
    const socks = [];
    let answered = 0;
    for (let i = 0; i < n; i++) {
      const s = net.connect(port, "127.0.0.1", () =>
        s.write("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"));
      s.once("data", () => { if (++answered === n) done(); });
      s.on("error", () => {});
      socks.push(s);
    }
    const timer = setTimeout(done, 10000);
    function done() {
      clearTimeout(timer);
      const st = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      const kb = Number(st.match(/VmRSS:\s+(\d+)/)[1]);
      console.log(`${(kb / 1024).toFixed(1)} ${answered}`);
      socks.forEach((s) => s.destroy());
    }
  ' "$pid" "$port" "$n"
}

# gw_overhead FILE: the gateway's tollgate_overhead_seconds histogram (cumulative buckets)
# as "le count" lines, from its /metrics.
gw_overhead() {
  curl -s "http://127.0.0.1:$1/metrics" |
    sed -nE 's/^tollgate_overhead_seconds_bucket\{le="([^"]+)"\} ([0-9]+)$/\1 \2/p'
}

# gw_overhead_q BEFORE AFTER Q: quantile Q of the requests observed between two snapshots
# of the histogram, in µs, interpolated linearly inside its bucket (as histogram_quantile).
gw_overhead_q() {
  node -e '
    const fs = require("fs");
    const [a, b, q] = process.argv.slice(1);
    const read = (f) => fs.readFileSync(f, "utf8").trim().split("\n").map((l) => l.split(" ")).map(([le, n]) => [le === "+Inf" ? Infinity : Number(le), Number(n)]);
    const A = read(a), B = read(b);
    const d = B.map(([le, n], i) => [le, n - (A[i] ? A[i][1] : 0)]);
    const total = d[d.length - 1][1], rank = Number(q) * total;
    let prevLe = 0, prevN = 0;
    for (const [le, n] of d) {
      if (n >= rank) {
        if (le === Infinity) { console.log(`> ${(prevLe * 1e6).toFixed(0)}`); process.exit(0); }
        const v = prevLe + (le - prevLe) * (n > prevN ? (rank - prevN) / (n - prevN) : 1);
        console.log((v * 1e6).toFixed(0));
        process.exit(0);
      }
      prevLe = le; prevN = n;
    }
    console.log("-");
  ' "$1" "$2" "$3"
}

# gw_pin_bench OUT.json CPU ARGS...: run_bench with the load generator pinned to CPU.
gw_pin_bench() {
  local out=$1 cpu=$2; shift 2
  echo "taskset -c $cpu tollgate bench $*" | sed -E 's#http://127\.0\.0\.1:[0-9]+#http://127.0.0.1:PORT#' >"$out.cmd"
  taskset -c "$cpu" "$TG" bench "$@" --quiet --json "$out" >"$out.txt"
  cat "$out.txt" >&2
}

# gw_pin PID CPU: move every thread of PID to CPU.
gw_pin() { taskset -a -pc "$2" "$1" >/dev/null; }

# CPU seconds (user + system) used so far by PID and its children threads, in ms.
gw_cpu_ms() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%d", ($14 + $15) * 1000 / hz}' "/proc/$1/stat"
}

section_gateway() {
  local out="$WORK/gateway.md" d="$WORK/gateway" info nginx
  mkdir -p "$d"
  info=$(machine)
  nginx=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)

  start_server gw-sim "$TG" sim --port 0 --threads 1 --ttft-ms 0 --itl-ms 0
  local sim_port=$SERVER_PORT sim_pid=$SERVER_PID
  cat >"$d/tollgate.yaml" <<YAML
listen: 127.0.0.1:0
threads: 1
metrics: {public: true}  # the bench reads the overhead histogram (loopback only)
backends:
  sim:
    addresses: [127.0.0.1:$sim_port]
    health_check: false
routes:
  tollgate-sim:
    variants:
      only: {backend: sim}
YAML
  start_server gateway "$TG" gateway -c "$d/tollgate.yaml"
  local gw_port=$SERVER_PORT gw_pid=$SERVER_PID
  local ng_port="" ng_pid=""
  if [ -n "$nginx" ]; then
    ng_port=$(free_port)
    gw_nginx_conf "$ng_port" "$sim_port" "$d" >"$d/nginx.conf"
    READY_PORT=$ng_port start_server gw-nginx "$nginx" -c "$d/nginx.conf" -p "$d"
    ng_pid=$SERVER_PID
  fi
  # nginx serves from its worker process, a child of the master we started.
  local ng_worker=""
  [ -n "$ng_pid" ] && ng_worker=$(pgrep -P "$ng_pid" | head -1)

  local targets="direct gateway" t port
  [ -n "$ng_port" ] && targets="$targets nginx"
  for t in $targets; do
    case $t in direct) port=$sim_port ;; gateway) port=$gw_port ;; nginx) port=$ng_port ;; esac
    local url="http://127.0.0.1:$port" cpid="" c0=0
    case $t in gateway) cpid=$gw_pid ;; nginx) cpid=$ng_worker ;; esac
    [ -n "$cpid" ] && c0=$(gw_cpu_ms "$cpid")
    run_bench "$d/$t-sat.json" --url "$url" --threads 1 --concurrency 64 --duration "$SECS"
    [ -n "$cpid" ] && { echo "$(( $(gw_cpu_ms "$cpid") - c0 ))" >"$d/$t-sat.cpu"; c0=$(gw_cpu_ms "$cpid"); }
    run_bench "$d/$t-sat-stream.json" --url "$url" --threads 1 --concurrency 64 --duration "$SECS" --stream
    [ -n "$cpid" ] && echo "$(( $(gw_cpu_ms "$cpid") - c0 ))" >"$d/$t-sat-stream.cpu"
    for r in 1000 5000; do
      if [ "$t" = gateway ]; then gw_overhead "$port" >"$d/oh-r$r.0"; fi
      run_bench "$d/$t-r$r.json" --url "$url" --threads 1 --rate "$r" --duration "$SECS"
      if [ "$t" = gateway ]; then gw_overhead "$port" >"$d/oh-r$r.1"; fi
      run_bench "$d/$t-r$r-stream.json" --url "$url" --threads 1 --rate "$r" --duration "$SECS" --stream
      if [ "$t" = gateway ]; then gw_overhead "$port" >"$d/oh-r$r-stream.1"; fi
    done
  done

  # The 1,000 req/s rows again with the proxy alone on CPU 0 and the simulator and the
  # load generator on CPU 1 (nginx's worker pinned the same way), so that the load
  # generator's bursts do not preempt the proxy; other work on the machine is not pinned.
  local pinned=""
  if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pinned=1
    gw_pin "$sim_pid" 1
    gw_pin "$gw_pid" 0
    [ -n "$ng_worker" ] && gw_pin "$ng_worker" 0
    for t in $targets; do
      case $t in direct) port=$sim_port ;; gateway) port=$gw_port ;; nginx) port=$ng_port ;; esac
      if [ "$t" = gateway ]; then gw_overhead "$port" >"$d/oh-pin.0"; fi
      gw_pin_bench "$d/$t-pin.json" 1 --url "http://127.0.0.1:$port" --threads 1 --rate 1000 --duration "$SECS"
      if [ "$t" = gateway ]; then gw_overhead "$port" >"$d/oh-pin.1"; fi
      gw_pin_bench "$d/$t-pin-stream.json" 1 --url "http://127.0.0.1:$port" --threads 1 --rate 1000 --duration "$SECS" --stream
    done
  fi

  local mem
  mem=$(gw_rss_with_conns "$gw_pid" "$gw_port" 1000)

  {
    echo "## Gateway overhead: direct vs tollgate gateway vs nginx"
    echo
    echo "$info"
    echo
    echo "One \`tollgate sim\` (1 thread, no latency, 16 tokens per answer) behind: nothing"
    echo "(direct), \`tollgate gateway\` (1 worker thread, one route, health checks off) and"
    echo "nginx (1 worker, keep-alive upstream, proxy_buffering off) as the reference for"
    echo "what a plain reverse proxy costs. One load-generator thread, ${SECS} s per row."
    echo "Saturation rows are closed loop with 64 connections; fixed-rate rows are open"
    echo "loop (Poisson arrivals, latency from each scheduled send time). Simulator, proxy"
    echo "and load generator share the 2 cores, so absolute numbers are floors."
    echo
    echo "$TABLE_HEAD"
    for t in $targets; do
      row "$t, saturation" "$d/$t-sat.json"
      row "$t, saturation, streaming" "$d/$t-sat-stream.json"
      for r in 1000 5000; do
        row "$t, $r req/s" "$d/$t-r$r.json"
        row "$t, $r req/s, streaming" "$d/$t-r$r-stream.json"
      done
    done
    if [ -n "$pinned" ]; then
      for t in $targets; do
        row "$t, 1000 req/s, pinned" "$d/$t-pin.json"
        row "$t, 1000 req/s, streaming, pinned" "$d/$t-pin-stream.json"
      done
    fi
    echo
    echo "Added latency (target minus direct, e2e, microseconds; *pinned*: proxy alone on"
    echo "CPU 0, simulator and load generator on CPU 1):"
    echo
    echo "| target, load | added p50 µs | added p99 µs |"
    echo "|---|---:|---:|"
    for t in gateway ${ng_port:+nginx}; do
      for r in 1000 5000; do
        gw_added "$d/$t-r$r.json" "$d/direct-r$r.json" "$t, $r req/s"
        gw_added "$d/$t-r$r-stream.json" "$d/direct-r$r-stream.json" "$t, $r req/s, streaming"
      done
      if [ -n "$pinned" ]; then
        gw_added "$d/$t-pin.json" "$d/direct-pin.json" "$t, 1000 req/s, pinned"
        gw_added "$d/$t-pin-stream.json" "$d/direct-pin-stream.json" "$t, 1000 req/s, streaming, pinned"
      fi
    done
    echo
    echo "An added p99 is the difference of two p99s measured one after the other: a process"
    echo "that other work on the machine keeps off a core for a few milliseconds moves it by"
    echo "that much, in either direction (negative values), so at a load average above 2 it"
    echo "says more about the machine than about the proxy. The gateway's own share is the"
    echo "histogram below, measured inside it."
    echo
    echo "The gateway's own time per request, from its \`tollgate_overhead_seconds\` histogram"
    echo "(end to end minus the time waiting on the upstream; docs/observability.md), over"
    echo "the requests of each row, interpolated inside the bucket as \`histogram_quantile\`"
    echo "does (buckets 10, 25, 50, 100, 250 µs, ...):"
    echo
    echo "| gateway, load | overhead p50 µs | overhead p99 µs |"
    echo "|---|---:|---:|"
    echo "| 1000 req/s | $(gw_overhead_q "$d/oh-r1000.0" "$d/oh-r1000.1" 0.5) | $(gw_overhead_q "$d/oh-r1000.0" "$d/oh-r1000.1" 0.99) |"
    echo "| 1000 req/s, streaming | $(gw_overhead_q "$d/oh-r1000.1" "$d/oh-r1000-stream.1" 0.5) | $(gw_overhead_q "$d/oh-r1000.1" "$d/oh-r1000-stream.1" 0.99) |"
    echo "| 5000 req/s | $(gw_overhead_q "$d/oh-r5000.0" "$d/oh-r5000.1" 0.5) | $(gw_overhead_q "$d/oh-r5000.0" "$d/oh-r5000.1" 0.99) |"
    [ -n "$pinned" ] && echo "| 1000 req/s, pinned | $(gw_overhead_q "$d/oh-pin.0" "$d/oh-pin.1" 0.5) | $(gw_overhead_q "$d/oh-pin.0" "$d/oh-pin.1" 0.99) |"
    echo
    echo "Proxy CPU time per request during the saturation rows (user + system of the"
    echo "proxy process only; less sensitive to other work on the machine than latency):"
    echo
    echo "| proxy | not streaming µs/request | streaming µs/request |"
    echo "|---|---:|---:|"
    for t in gateway ${ng_port:+nginx}; do
      local a b
      a=$(node -e 'const fs=require("fs");const [c,j]=process.argv.slice(1);const r=JSON.parse(fs.readFileSync(j,"utf8"));console.log((Number(fs.readFileSync(c,"utf8"))*1000/Math.max(1,r.requests.ok)).toFixed(1))' "$d/$t-sat.cpu" "$d/$t-sat.json" 2>/dev/null || echo -)
      b=$(node -e 'const fs=require("fs");const [c,j]=process.argv.slice(1);const r=JSON.parse(fs.readFileSync(j,"utf8"));console.log((Number(fs.readFileSync(c,"utf8"))*1000/Math.max(1,r.requests.ok)).toFixed(1))' "$d/$t-sat-stream.cpu" "$d/$t-sat-stream.json" 2>/dev/null || echo -)
      echo "| $t | $a | $b |"
    done
    echo
    echo "Gateway resident memory with 1,000 open keep-alive client connections (each"
    echo "served one request): ${mem%% *} MB (${mem##* } of 1000 answered)."
    echo
    echo "Targets (issue 3): throughput at least 80% of nginx's; added p99 under 100 µs at"
    echo "1,000 req/s; under 50 MB with 1,000 connections."
  } >"$out"

  [ -n "$ng_pid" ] && stop_server "$ng_pid"
  stop_server "$gw_pid"
  stop_server "$sim_pid"
  write_section gateway "$out"
}
