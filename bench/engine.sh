# engine.sh — the `engine` section of bench/run.sh (sourced by it; uses its helpers): the
# inference engine's own speed on models of real shapes. `tollgate perf gen` writes random
# Q4_K_M models with the shapes of TinyLlama 1.1B and Mistral 7B under build/bench-models
# (kept between runs, never committed); `tollgate perf bw` measures this machine's read
# bandwidth in the same run (AVX-512 streaming reads on every thread); `tollgate perf run`
# times a prompt and 128 decoded tokens with 2 threads.
#   ENGINE_THREADS=2  ENGINE_GEN=128  ENGINE_PROMPT_1B=512  ENGINE_PROMPT_7B=128
#   ENGINE_SHAPES="tinyllama mistral7b"

# kv KEY LINE: the value of KEY=... in a `perf:` line.
kv() { grep -oE "(^| )$1=[^ ]+" <<<"$2" | head -1 | sed 's/.*=//'; }

section_engine() {
  local out="$WORK/engine.md" info dir="$ROOT/build/bench-models"
  local th=${ENGINE_THREADS:-2} gen=${ENGINE_GEN:-128}
  mkdir -p "$dir"
  info=$(machine)
  local bwline bw
  bwline=$("$TG" perf bw --threads "$th")
  bw=$(kv read_bandwidth_gbps "$bwline")
  log "read bandwidth ${bw} GB/s ($th threads)"
  {
    echo "## Engine: prompt and decode speed on random Q4_K_M models"
    echo
    echo "$info"
    echo
    echo "Read bandwidth in the same run: **${bw} GB/s** with $th threads (\`tollgate perf bw --threads $th\`:"
    echo "512 MiB per thread, 64-byte vector loads, best of 5 rounds of 4 passes). Decoding is"
    echo "bounded by it: every weight is read once per token, so the limit is bandwidth ÷ bytes"
    echo "read per token."
    echo
    echo "| shape | kernels | threads | prompt tokens | prompt tok/s | decoded tokens | decode tok/s | bytes/token | decode GB/s | of the limit | peak RSS MiB | CPU used, prompt / decode |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  } >"$out"
  local shape cmds=""
  for shape in ${ENGINE_SHAPES:-tinyllama mistral7b}; do
    local f="$dir/$shape-random-Q4_K_M.gguf" np
    [ "$shape" = tinyllama ] && np=${ENGINE_PROMPT_1B:-512} || np=${ENGINE_PROMPT_7B:-128}
    if [ ! -s "$f" ]; then
      log "generating $f"
      "$TG" perf gen --shape "$shape" -o "$f.tmp" && mv "$f.tmp" "$f"
    fi
    local line
    line=$("$TG" perf run -m "$f" --threads "$th" --prompt "$np" --gen "$gen")
    log "$line"
    local gtps bpt frac
    gtps=$(kv gen_tps "$line"); bpt=$(kv bytes_per_token "$line")
    frac=$(awk -v g="$gtps" -v b="$bpt" -v bw="$bw" 'BEGIN { printf "%.0f%%", 100 * g * b / (bw * 1e9) }')
    local cpu
    cpu=$(awk -v pc="$(kv prompt_cpu_s "$line")" -v ps="$(kv prompt_s "$line")" -v gc="$(kv gen_cpu_s "$line")" \
      -v gs="$(kv gen_s "$line")" 'BEGIN { printf "%.2f / %.2f cores", pc / ps, gc / gs }')
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$shape" "$(kv kernels "$line")" \
      "$(kv threads "$line")" "$np" "$(kv prompt_tps "$line")" "$gen" "$gtps" "$bpt" \
      "$(kv gen_read_gbps "$line")" "$frac" "$(kv peak_rss_mib "$line")" "$cpu" >>"$out"
    cmds+="    tollgate perf run -m ${f#$ROOT/} --threads $th --prompt $np --gen $gen"$'\n'
  done
  {
    echo
    echo "Commands (after \`tollgate perf gen --shape SHAPE -o FILE\`):"
    echo
    echo '```'
    echo "    tollgate perf bw --threads $th"
    printf '%s' "$cmds"
    echo '```'
    echo
    echo "The prompt runs through forward_prompt (32 tokens at a time through matmat: each"
    echo "weight block read once per batch), decoding through forward, both on the thread pool"
    echo "and the dispatched kernels, which are bit-identical to the scalar definitions"
    echo "(test_quant_simd). TOLLGATE_KERNELS=scalar|avx2 caps the kernel set for"
    echo "comparisons. On a machine shared with other work the figures say more about the"
    echo "load than about the engine: compare them with the load average above and with the"
    echo "CPU the run actually got (last column: CPU seconds ÷ wall seconds; 2.00 would be both"
    echo "cores to ourselves)."
  } >>"$out"
  write_section engine "$out"
}
