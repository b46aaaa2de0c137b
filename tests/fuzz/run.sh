#!/usr/bin/env bash
# run.sh — run every built fuzzer for FUZZ_SECONDS on its checked-in corpus
# (tests/fuzz/corpus/NAME/, seeds only: new finds go to a scratch dir).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-20}
for bin in build/fuzz/bin/fuzz_*; do
  n=$(basename "$bin")
  seeds=tests/fuzz/corpus/${n#fuzz_}
  work=build/fuzz/work/$n; mkdir -p "$work" "$seeds"
  echo "fuzz: $n for ${secs}s"
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
         -artifact_prefix=build/fuzz/ -print_final_stats=0 "$work" "$seeds" 2>build/fuzz/$n.log \
    || { tail -40 build/fuzz/$n.log; echo "fuzz: $n FAILED (crash input in build/fuzz/)"; exit 1; }
  grep -E '^#[0-9]+ +DONE' build/fuzz/$n.log | tail -1 || true
done
echo "fuzz: all targets ran clean"
