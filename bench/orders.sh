# orders.sh — the `orders` section of bench/run.sh (sourced by it; uses its helpers): the
# shipped order model (models/orders.gguf) doing its job end to end. `tollgate up --port-base
# 0` starts the whole stack on free ports (engine, gateway, order service); then
#   1. `tollgate eval --task normalize_order` sends the 1,000 held-out orders one at a time
#      through the gateway's task (exact match, per noise kind, latency percentiles);
#   2. `tollgate bench` offers the task a 3-item order at ORDERS_RATE req/s (open loop,
#      Poisson) for ORDERS_SECONDS s: the latency the order service would see, with the
#      gateway's fallback counter read before and after;
#   3. with BENCH_TRAIN=1, `tollgate train` trains the model from scratch (ORDERS_STEPS steps)
#      under /usr/bin/time and `tollgate eval --model` scores the result in process.
#   ORDERS_RATE=20  ORDERS_SECONDS=30  ORDERS_STEPS=3000  ORDERS_WARMUP=200  BENCH_TRAIN=0

# fallbacks_total PORT: the gateway's tollgate_fallbacks_total summed over its labels.
fallbacks_total() {
  # the scrape key of examples/tollgate.yaml (metrics.keys), which tollgate up runs with
  curl -s -H "Authorization: Bearer change-me-metrics-key" "http://127.0.0.1:$1/metrics" | awk '/^tollgate_fallbacks_total[{ ]/ {s += $NF} END {print s + 0}'
}

section_orders() {
  local out="$WORK/orders.md" info rate=${ORDERS_RATE:-20} secs=${ORDERS_SECONDS:-30}
  local steps=${ORDERS_STEPS:-3000} warmup=${ORDERS_WARMUP:-200}
  info=$(machine)

  # The stack, as a user starts it, on free ports (the fixed ones may be in use).
  local uplog="$WORK/up.log" gw=
  "$TG" up --port-base 0 --db "$WORK/orders.db" >"$uplog" 2>&1 &
  local up_pid=$!
  SERVER_PIDS+=("$up_pid")
  for _ in $(seq 900); do
    grep -q 'Ctrl-C stops everything' "$uplog" && break
    kill -0 "$up_pid" 2>/dev/null || { log "tollgate up exited:"; cat "$uplog" >&2; return 1; }
    sleep 0.1
  done
  gw=$(grep -oE '^  gateway +http://127\.0\.0\.1:[0-9]+' "$uplog" | grep -oE '[0-9]+$' || true)
  [ -n "$gw" ] || { log "tollgate up did not come up"; cat "$uplog" >&2; return 1; }
  log "stack up, gateway on port $gw"

  # 1. Accuracy and sequential latency over the held-out set, through the gateway's task.
  "$TG" eval --url "http://127.0.0.1:$gw" --task normalize_order \
    --data "$ROOT/examples/orders/heldout.jsonl" --show 0 >"$WORK/eval.txt"
  cat "$WORK/eval.txt" >&2

  # 2. The task under a steady arrival rate.
  printf '{"input": "2 lg pep pzza, 1 marg sml, coke x2"}' >"$WORK/task.json"
  local fb0 fb1
  fb0=$(fallbacks_total "$gw")
  run_bench "$WORK/task.json.out" --url "http://127.0.0.1:$gw/v1/tasks/normalize_order" \
    --body-file "$WORK/task.json" --rate "$rate" --duration "$secs"
  fb1=$(fallbacks_total "$gw")
  curl -s -X POST -H 'content-type: application/json' --data-binary @"$WORK/task.json" \
    "http://127.0.0.1:$gw/v1/tasks/normalize_order" >"$WORK/task.answer"
  kill -INT "$up_pid" 2>/dev/null || true
  wait "$up_pid" 2>/dev/null || true

  # 3. Training from scratch (minutes of both cores: only when asked).
  if [ "${BENCH_TRAIN:-0}" = 1 ]; then
    log "training $steps steps (BENCH_TRAIN=1)"
    /usr/bin/time -f 'wall=%e user=%U sys=%S maxrss_kb=%M' -o "$WORK/train.time" \
      "$TG" train --menu "$ROOT/examples/orders/menu.yaml" --out "$WORK/trained.gguf" \
      --steps "$steps" --warmup "$warmup" >"$WORK/train.log" 2>&1
    "$TG" eval --model "$WORK/trained.gguf" --data "$ROOT/examples/orders/heldout.jsonl" \
      --show 0 >"$WORK/train-eval.txt"
    cat "$WORK/train.time" "$WORK/train-eval.txt" >&2
  fi

  node -e '
    const fs = require("fs");
    const [work, rate, secs, steps, warmup, fb0, fb1, info] = process.argv.slice(1);
    const ev = fs.readFileSync(`${work}/eval.txt`, "utf8");
    const r = JSON.parse(fs.readFileSync(`${work}/task.json.out`, "utf8"));
    const cmd = fs.readFileSync(`${work}/task.json.out.cmd`, "utf8").trim().replace(/--body-file \S+/, "--body-file task.json");
    const answer = JSON.parse(fs.readFileSync(`${work}/task.answer`, "utf8"));
    const exact = ev.match(/exact match: (\d+)\/(\d+) = ([\d.]+)%(.*)/);
    const lat = ev.match(/latency ms: p50 ([\d.]+) +p90 ([\d.]+) +p99 ([\d.]+)/);
    const kinds = [...ev.matchAll(/^ {2}(\S+) +(\d+)\/(\d+) +([\d.]+)%/gm)];
    const L = r.latency_ms.e2e, f = (v) => v.toFixed(1);
    const ok = r.requests.ok;
    const fallbacks = Number(fb1) - Number(fb0);
    const p99ok = L.p99 < 50 && fallbacks === 0 && r.requests.errors === 0;
    const o = [];
    o.push("## Order model (`models/orders.gguf`, issue 10)", "", info, "",
      "Targets: exact match ≥ 97 % on the held-out set, task p99 < 50 ms through the gateway",
      `at 20 requests/s, training from scratch < 30 min on 2 cores. The stack is \`tollgate up`,
      "--port-base 0` (engine, gateway with examples/tollgate.yaml, order service, on free",
      "ports); details and commands: `docs/model-card-orders.md`.", "",
      "| | result | target |", "|---|---|---|");
    o.push(`| exact match, ${Number(exact[2]).toLocaleString("en-US")} held-out orders, one at a time through the gateway task (\`tollgate eval --url http://127.0.0.1:PORT --task normalize_order --data examples/orders/heldout.jsonl\`) | **${exact[3]} %**${exact[4].trim() ? " " + exact[4].trim() : ""} | ≥ 97 % ${Number(exact[3]) >= 97 ? "✓" : "✗"} |`);
    o.push(`| per noise kind | ${kinds.map((k) => `${k[1]} ${k[4]} %`).join(", ")} | |`);
    o.push(`| the same run, latency per order | p50 ${lat[1]} ms, p90 ${lat[2]} ms, p99 ${lat[3]} ms | |`);
    o.push(`| the task at ${rate} req/s for ${secs} s, open loop, a 3-item order (\`${cmd}\`) | ${ok}/${r.requests.sent} answered, ${r.requests.errors} errors, ${fallbacks} fallbacks; p50 ${f(L.p50)} ms, p90 ${f(L.p90)} ms, **p99 ${f(L.p99)} ms** | p99 < 50 ms ${p99ok ? "✓" : "✗"} |`);
    if (fs.existsSync(`${work}/train.time`)) {
      const t = Object.fromEntries(fs.readFileSync(`${work}/train.time`, "utf8").trim().split(/\s+/).map((kv) => kv.split("=")));
      const te = fs.readFileSync(`${work}/train-eval.txt`, "utf8").match(/exact match: (\d+)\/(\d+) = ([\d.]+)%/);
      const wall = Number(t.wall), cpu = Number(t.user) + Number(t.sys);
      o.push(`| training from scratch, ${steps} steps (\`tollgate train --menu examples/orders/menu.yaml --out FILE --steps ${steps} --warmup ${warmup}\`) | **${Math.floor(wall / 60)} min ${Math.round(wall % 60)} s wall**, ${cpu.toFixed(0)} CPU-s, ${(Number(t.maxrss_kb) / 1024).toFixed(0)} MB peak RSS; the result: ${te[3]} % exact in process | < 30 min ${wall < 1800 ? "✓" : "✗"} |`);
    } else {
      o.push("| training from scratch | not run here (`BENCH_TRAIN=1 make bench` runs it, ~4 min of both cores) | < 30 min |");
    }
    o.push("", `Load average after the run: ${fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}.`);
    o.push("", `The order in the load run: \`${JSON.parse(fs.readFileSync(`${work}/task.json`, "utf8")).input}\` → \`${answer.output}\` (fallback ${answer.fallback}).`);
    console.log(o.join("\n"));
  ' "$WORK" "$rate" "$secs" "$steps" "$warmup" "$fb0" "$fb1" "$info" >"$out"
  write_section orders "$out"
}
