# serve.sh — the `serve` section of bench/run.sh (sourced by it; uses its helpers): continuous
# batching and the prefix cache measured through `tollgate serve` with `tollgate bench`.
# Aggregate decode tokens/s with 1, 4 and 8 concurrent streams (one server, --max-seqs 8,
# side by side in one run) on the TinyLlama-shaped random model (its file has no vocabulary:
# the server takes llama-tiny's, the same 32,000 tokens, with --tokenizer) and on
# models/orders.gguf; then the time to first token of a ~16-token input after a cached
# 200-token prefix against the same input after a prefix never seen (alternated).
#   SERVE_THREADS=2  SERVE_GEN=32  SERVE_WAVES=3  SERVE_TTFT_RUNS=8

section_serve() {
  local out="$WORK/serve.md" info th=${SERVE_THREADS:-2} gen=${SERVE_GEN:-32} waves=${SERVE_WAVES:-3}
  local runs=${SERVE_TTFT_RUNS:-8} dir="$ROOT/build/bench-models"
  local tiny="$dir/tinyllama-random-Q4_K_M.gguf" vocab="${TOLLGATE_REF:-$ROOT/../shared/ref}/models/llama-tiny-Q8_0.gguf"
  if [ ! -s "$tiny" ]; then
    log "generating $tiny"
    mkdir -p "$dir"
    "$TG" perf gen --shape tinyllama -o "$tiny.tmp" && mv "$tiny.tmp" "$tiny"
  fi
  info=$(machine)
  {
    echo "## Serve: continuous batching and the prefix cache"
    echo
    echo "$info"
    echo
    echo "\`tollgate serve --threads $th --max-seqs 8\`, streamed, greedy, max_tokens $gen: tinyllama (random"
    echo "weights, so it never stops early) on /v1/completions with a 5-token prompt, orders on"
    echo "/v1/chat/completions with a raw order (it answers with the receipt lines and stops); closed loop with C requests in flight, $waves×C requests per row, after one
warm-up request (which pages the weights in)."
    echo "Decode tokens/s is every output token over the run's wall time (aggregate of all streams)."
    echo
    echo "| model | streams | decode tok/s (aggregate) | vs 1 stream | TTFT p50 ms | e2e p50 ms | load avg | command |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
  } >"$out"
  local model
  for model in tinyllama orders; do
    local args body="$WORK/serve-$model-body.json" path
    if [ "$model" = tinyllama ]; then
      args=(-m "$tiny" --tokenizer "$vocab") path=/v1/completions
      printf '{"model":"m","prompt":"Once upon a time","max_tokens":%d,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}' "$gen" >"$body"
    else # the order model answers a raw order with receipt lines, then stops
      args=(-m "$ROOT/models/orders.gguf") path=/v1/chat/completions
      printf '{"model":"m","messages":[{"role":"user","content":"2 lg pep pzza, 1 sm marg, 3 coke, 2 tiramisu, 1 md hawaiian"}],"max_tokens":%d,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}' "$gen" >"$body"
    fi
    start_server "serve-$model" "$TG" serve --port 0 --threads "$th" --max-seqs 8 --ctx 1024 "${args[@]}"
    local port=$SERVER_PORT base="" c
    for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    # warm up: the first request pages the weights in from the file
    "$TG" bench --url "http://127.0.0.1:$port" --path "$path" --body-file "$body" --requests 1 --concurrency 1 --quiet --timeout 600 >/dev/null
    for c in 1 4 8; do
      local j="$WORK/serve-$model-$c.json" load
      load=$(cut -d' ' -f1 /proc/loadavg)
      run_bench "$j" --url "http://127.0.0.1:$port" --path "$path" --body-file "$body" \
        --concurrency "$c" --requests $((waves * c)) --timeout 600
      local line
      line=$(node -e '
        const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        console.log(r.tokens.per_s.toFixed(1), r.latency_ms.ttft.p50.toFixed(0), r.latency_ms.e2e.p50.toFixed(0), r.requests.errors);
      ' "$j")
      read -r tps ttft e2e errs <<<"$line"
      [ -z "$base" ] && base=$tps
      local cmd
      cmd=$(sed -E "s#$WORK/##; s#$ROOT/##" "$j.cmd")
      printf '| %s | %s | %s | %s× | %s | %s | %s | `%s` |\n' "$model" "$c" "$tps" \
        "$(awk -v a="$tps" -v b="$base" 'BEGIN { printf "%.2f", a / b }')" "$ttft" "$e2e" "$load" "$cmd" >>"$out"
      [ "$errs" = 0 ] || log "serve $model C=$c: $errs errors"
    done
    if [ "$model" = tinyllama ]; then
      serve_ttft "$port" "$runs" >>"$out.ttft"
    fi
    stop_server "$SERVER_PID"
  done
  cat "$out.ttft" >>"$out"
  {
    echo
    echo "One server per model; the rows of a model ran one after the other in the same run,"
    echo "on $(nproc) shared cores (load average at each row's start in its column). Each step of"
    echo "the engine is one forward pass over one token of every running sequence (matmat reads"
    echo "each weight block once for all of them), so the aggregate rate grows with the streams"
    echo "as long as reading the weights, not the per-row arithmetic, bounds a step."
  } >>"$out"
  write_section serve "$out"
}

# serve_ttft PORT RUNS: TTFT of a 16-token input after a 200-token prefix, cached (the prefix
# was sent before, the input differs each time) vs uncached (a prefix never seen: its first
# word differs), alternated, RUNS each; one markdown paragraph.
serve_ttft() {
  local port=$1 runs=$2 i
  # a prefix of 200 tokens (counted by the server's /tokenize), and the input's length
  local prefix ntok nsuf
  read -r ntok nsuf prefix < <(node -e '
    const url = process.argv[1];
    const count = async (t) => (await (await fetch(url + "/tokenize", { method: "POST", body: JSON.stringify({ content: t }) })).json()).tokens.length;
    const words = "the order desk takes pizza pasta salad drinks and desserts for delivery or pickup in the city".split(" ");
    (async () => {
      let s = "the", i = 0;
      while (await count(s) < 200) s += " " + words[(++i * 7) % words.length];
      const suffix = " Order 1: two margherita and one tiramisu, please.";
      console.log(await count(s), (await count(s + suffix)) - (await count(s)), s);
    })();' "http://127.0.0.1:$port")
  local mk='const [p, tag, out] = process.argv.slice(1);
    const suffix = ` Order ${tag}: two margherita and one tiramisu, please.`;
    require("fs").writeFileSync(out, JSON.stringify({ model: "m", prompt: p + suffix, max_tokens: 1, temperature: 0, stream: true, stream_options: { include_usage: true } }));'
  node -e "$mk" "$prefix" 0 "$WORK/ttft-warm.json"
  "$TG" bench --url "http://127.0.0.1:$port" --path /v1/completions --body-file "$WORK/ttft-warm.json" --requests 1 --concurrency 1 --quiet >/dev/null
  local cached=() uncached=()
  local load
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  for i in $(seq "$runs"); do
    node -e "$mk" "$prefix" "$i" "$WORK/ttft-c.json"
    node -e "$mk" "Note $((i * 7919)) $prefix" "$i" "$WORK/ttft-u.json"
    "$TG" bench --url "http://127.0.0.1:$port" --path /v1/completions --body-file "$WORK/ttft-c.json" --requests 1 --concurrency 1 --quiet --json "$WORK/ttft-c-$i.json" >/dev/null
    "$TG" bench --url "http://127.0.0.1:$port" --path /v1/completions --body-file "$WORK/ttft-u.json" --requests 1 --concurrency 1 --quiet --json "$WORK/ttft-u-$i.json" >/dev/null
  done
  node -e '
    const fs = require("fs");
    const [dir, runs, ntok, nsuf, load] = process.argv.slice(1);
    const get = (k) => Array.from({ length: +runs }, (_, i) => JSON.parse(fs.readFileSync(`${dir}/ttft-${k}-${i + 1}.json`, "utf8")).latency_ms.ttft.p50).sort((a, b) => a - b);
    const med = (a) => a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
    const c = get("c"), u = get("u");
    console.log("");
    console.log(`TTFT of a ${nsuf}-token input after a ${ntok}-token prefix on the TinyLlama-shaped model, ${runs} requests each, alternated (load average ${load}):`);
    console.log("");
    console.log("| prefix | TTFT median ms | min ms | max ms |");
    console.log("|---|---:|---:|---:|");
    console.log(`| cached (sent before; the input differs each time) | ${med(c).toFixed(0)} | ${c[0].toFixed(0)} | ${c[c.length - 1].toFixed(0)} |`);
    console.log(`| not cached (first word differs: only BOS is reused) | ${med(u).toFixed(0)} | ${u[0].toFixed(0)} | ${u[u.length - 1].toFixed(0)} |`);
    console.log("");
    console.log(`Cached / not cached: **${(100 * med(c) / med(u)).toFixed(1)} %** of the time to first token. Each request: \`tollgate bench --url http://127.0.0.1:PORT --path /v1/completions --body-file BODY --requests 1 --concurrency 1\` with max_tokens 1.`);
  ' "$WORK" "$runs" "$ntok" "$nsuf" "$load"
}
