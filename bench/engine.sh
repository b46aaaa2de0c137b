# engine.sh — the `engine` section of bench/run.sh (sourced by it; uses its helpers): the
# inference engine's own speed on models of real shapes. `tollgate perf gen` writes random
# Q4_K_M models with the shapes of TinyLlama 1.1B and Mistral 7B under build/bench-models
# (kept between runs, never committed); `tollgate perf bw` measures this machine's read
# bandwidth in the same run (AVX-512 streaming reads on every thread); `tollgate perf run`
# times a prompt and 128 decoded tokens with 2 threads; `tollgate perf kernels` puts the
# kernel sets side by side on one thread's CPU time (little affected by other load), and
# `tollgate perf attn` the attention of one layer the same way.
#   ENGINE_THREADS=2  ENGINE_GEN=128  ENGINE_PROMPT_1B=512  ENGINE_PROMPT_7B=128
#   ENGINE_BW_EVERY=16  (perf run --bw-every: the bandwidth probed around every 16 decoded tokens)
#   ENGINE_SHAPES="tinyllama mistral7b"
#   ENGINE_KERNELS_1B="avx2 avx512"  ENGINE_KERNELS_7B="avx512"  (TOLLGATE_KERNELS per run)
#   ENGINE_WEIGHTS_1B="mmap"  ENGINE_WEIGHTS_7B="mmap anon"  (perf run --weights: read in place
#   through the file mapping, or copied into anonymous memory first)

# kv KEY LINE: the value of KEY=... in a `perf:` line.
kv() { grep -oE "(^| )$1=[^ ]+" <<<"$2" | head -1 | sed 's/.*=//'; }

section_engine() {
  local out="$WORK/engine.md" info dir="$ROOT/build/bench-models"
  local th=${ENGINE_THREADS:-2} gen=${ENGINE_GEN:-128} every=${ENGINE_BW_EVERY:-16}
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
    echo "Read bandwidth at the start of the run: **${bw} GB/s** with $th threads (\`tollgate perf bw --threads $th\`:"
    echo "512 MiB per thread read as four streams a quarter apart, 64-byte vector loads, best of 5 rounds of 4 passes). Decoding is"
    echo "bounded by it: every weight is read once per token, and the K/V cache of every earlier"
    echo "position, so the limit is bandwidth ÷ bytes read per token (weights + K/V at the mean"
    echo "context of the decoded tokens). This machine's bandwidth moves by a third within minutes,"
    echo "so each decode is also measured against the bandwidth around it: \`perf run --bw-every $every\`"
    echo "probes it (the same reads, 256 MiB per thread, best of 5) before the decode and after every"
    echo "$every tokens; \"bandwidth around\" is the probes' mean over the decode (time-weighted) and"
    echo "\"of the limit\" the decode's read rate over it. The probes' time is not counted as decode time."
    echo "\"Median token\" is the median decoded token's time and, in brackets, its read rate over the"
    echo "bandwidth around: the steady state, without the few tokens a stall (a thread off its CPU) stretches."
    echo
    echo "| shape | kernels | weights | threads | prompt tokens | prompt tok/s | decoded tokens | decode tok/s | weight bytes/token | K/V bytes/token | decode GB/s | bandwidth around, GB/s | of the limit | of the start probe | median token ms (of the limit) | peak RSS MiB | CPU used, prompt / decode | CPU ms per token, prompt / decode |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  } >"$out"
  local shape cmds=""
  for shape in ${ENGINE_SHAPES:-tinyllama mistral7b}; do
    local f="$dir/$shape-random-Q4_K_M.gguf" np kset
    [ "$shape" = tinyllama ] && np=${ENGINE_PROMPT_1B:-512} || np=${ENGINE_PROMPT_7B:-128}
    [ "$shape" = tinyllama ] && kset=${ENGINE_KERNELS_1B:-avx2 avx512} || kset=${ENGINE_KERNELS_7B:-avx512}
    if [ ! -s "$f" ]; then
      log "generating $f"
      "$TG" perf gen --shape "$shape" -o "$f.tmp" && mv "$f.tmp" "$f"
    fi
    local k wts wset
    [ "$shape" = tinyllama ] && wset=${ENGINE_WEIGHTS_1B:-mmap} || wset=${ENGINE_WEIGHTS_7B:-mmap anon}
    for k in $kset; do
      for wts in $wset; do
        local line
        line=$(TOLLGATE_KERNELS=$k "$TG" perf run -m "$f" --threads "$th" --prompt "$np" --gen "$gen" --weights "$wts" \
          --bw-every "$every")
        log "$line"
        local gtps bpt kvb frac frac0
        gtps=$(kv gen_tps "$line"); bpt=$(kv bytes_per_token "$line"); kvb=$(kv kv_bytes_per_token "$line")
        frac=$(awk -v f="$(kv gen_of_limit "$line")" 'BEGIN { printf "%.0f%%", 100 * f }')
        frac0=$(awk -v g="$gtps" -v b="$bpt" -v k="$kvb" -v bw="$bw" 'BEGIN { printf "%.0f%%", 100 * g * (b + k) / (bw * 1e9) }')
        local med
        med=$(awk -v m="$(kv gen_median_ms "$line")" -v b="$bpt" -v k="$kvb" -v bw="$(kv bw_around_gbps "$line")" \
          'BEGIN { f = (m > 0 && bw > 0) ? 100 * (b + k) / (m / 1000) / (bw * 1e9) : 0; printf "%.1f (%.0f%%)", m, f }')
        local cpu cpums
        cpu=$(awk -v pc="$(kv prompt_cpu_s "$line")" -v ps="$(kv prompt_s "$line")" -v gc="$(kv gen_cpu_s "$line")" \
          -v gs="$(kv gen_s "$line")" 'BEGIN { printf "%.2f / %.2f cores", pc / ps, gc / gs }')
        cpums=$(awk -v pc="$(kv prompt_cpu_s "$line")" -v np="$np" -v gc="$(kv gen_cpu_s "$line")" -v ng="$gen" \
          'BEGIN { printf "%.0f / %.0f", 1000 * pc / np, 1000 * gc / ng }')
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$shape" \
          "$(kv kernels "$line")" "$wts" "$(kv threads "$line")" "$np" "$(kv prompt_tps "$line")" "$gen" "$gtps" "$bpt" \
          "$kvb" "$(kv gen_read_gbps "$line")" "$(kv bw_around_gbps "$line")" "$frac" "$frac0" "$med" \
          "$(kv peak_rss_mib "$line")" "$cpu" "$cpums" >>"$out"
        cmds+="    TOLLGATE_KERNELS=$k tollgate perf run -m ${f#$ROOT/} --threads $th --prompt $np --gen $gen --weights $wts --bw-every $every"$'\n'
      done
    done
  done
  # the kernel sets side by side: one thread's CPU time per product
  local klines
  klines=$("$TG" perf kernels)
  {
    echo
    echo "Kernels side by side (\`tollgate perf kernels\`: one thread, a 2048 x 2048 matrix times 1"
    echo "activation row — decode — and 32 — a prompt batch; CPU time of the thread, so the"
    echo "figures depend little on other load; GMAC/s = multiply-adds per CPU-second):"
    echo
    echo "| type | activation rows | scalar GMAC/s | avx2 GMAC/s | avx512 GMAC/s | avx512 weight GB per CPU-s |"
    echo "|---|---:|---:|---:|---:|---:|"
    local ty T
    for ty in Q4_K Q5_K Q6_K Q8_0 Q4_0; do
      for T in 1 32; do
        local row="| $ty | $T |" kk l
        for kk in scalar avx2 avx512; do
          l=$(grep -E "kernels=$kk type=$ty .* T=$T " <<<"$klines" || true)
          row+=" $(kv gmac_per_s "$l") |"
        done
        l=$(grep -E "kernels=avx512 type=$ty .* T=$T " <<<"$klines" || true)
        echo "$row $(kv weight_gb_per_cpu_s "$l") |"
      done
    done
  } >>"$out"
  # attention of one TinyLlama layer, the kernel sets side by side (one thread's CPU time)
  local alines
  alines=$("$TG" perf attn --ctx 64,512,2048)
  {
    echo
    echo "Attention side by side (\`tollgate perf attn\`: one layer of the TinyLlama shape — 32 heads,"
    echo "4 KV heads, head_dim 64 —, every head of one token at the end of a context of N, one"
    echo "thread's CPU time per call, the cache warm; bit-identical sets, test_attention):"
    echo
    echo "| context | order | scalar µs | avx2 µs | avx512 µs | avx512 vs scalar |"
    echo "|---:|---|---:|---:|---:|---:|"
    local n o
    for n in 64 512 2048; do
      for o in single prompt; do
        local row="| $n | $o |" kk l
        for kk in scalar avx2 avx512; do
          l=$(grep -E "kernels=$kk .* ctx=$n .*order=$o " <<<"$alines" || true)
          row+=" $(kv us_per_call "$l") |"
        done
        echo "$row $(kv vs_scalar "$l")× |"
      done
    done
  } >>"$out"
  # continuous batching at the engine: one step with N sequences decoding together
  local tiny="$dir/tinyllama-random-Q4_K_M.gguf" blines=""
  if [ -s "$tiny" ]; then
    blines=$("$TG" perf batch -m "$tiny" --threads "$th" --seqs 1,2,4,8 --steps 12)
    log "$blines"
    {
      echo
      echo "Decode steps with several sequences together (\`tollgate perf batch\`, tinyllama shape,"
      echo "$th threads, positions 2-13: one weight pass serves every sequence of the step; the"
      echo "same steps \`tollgate serve\` runs, without HTTP):"
      echo
      echo "| sequences | step ms, best | step ms, mean | aggregate decode tok/s | vs 1 sequence |"
      echo "|---:|---:|---:|---:|---:|"
      local l
      while read -r l; do
        echo "| $(kv seqs "$l") | $(kv step_ms_best "$l") | $(kv step_ms_mean "$l") | $(kv agg_tps "$l") | $(kv vs_first "$l")× |"
      done <<<"$blines"
    } >>"$out"
    cmds+="    tollgate perf batch -m ${tiny#$ROOT/} --threads $th --seqs 1,2,4,8 --steps 12"$'\n'
  fi
  {
    echo
    echo "Commands (after \`tollgate perf gen --shape SHAPE -o FILE\`):"
    echo
    echo '```'
    echo "    tollgate perf bw --threads $th"
    printf '%s' "$cmds"
    echo "    tollgate perf kernels"
    echo "    tollgate perf attn --ctx 64,512,2048"
    echo '```'
    echo
    echo "The prompt runs through forward_prompt (64 tokens at a time through matmat: each"
    echo "weight block read once per batch), decoding through forward, both on the thread pool"
    echo "and the dispatched kernels, which are bit-identical to the scalar definitions"
    echo "(test_quant_simd, test_quant_tile). TOLLGATE_KERNELS=scalar|avx2|avx512 caps the kernel"
    echo "set for comparisons. On a machine shared with other work the figures say more about the"
    echo "load than about the engine: compare them with the load average above and with the"
    echo "CPU the run actually got (CPU used: CPU seconds ÷ wall seconds; 2.00 would be both"
    echo "cores to ourselves); the CPU milliseconds per token are the steadier measure."
    echo
    echo "Weights: \`mmap\` reads them in place through the file's mapping (the default of"
    echo "\`tollgate serve\`), \`anon\` copies them into the process's own memory first"
    echo "(\`serve --weights anon\`). On this VM reading the page cache through a mapping is slow and"
    echo "erratic (docs/engine.md, \"Decode and the page cache\"), which is what the two 7B rows show."
  } >>"$out"
  write_section engine "$out"
}
