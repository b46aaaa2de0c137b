#!/usr/bin/env bash
# run.sh — run every built fuzzer for FUZZ_SECONDS on its checked-in corpus
# (tests/fuzz/corpus/NAME/, seeds only: new finds go to a scratch dir). A target without
# seeds is an error: each must start from inputs that reach its parser's depth.
#   FUZZ_SECONDS=20        per target (20 targets: about 7 minutes)
#   FUZZ_BUILD=build/fuzz  where bin/fuzz_* are (make fuzz-build puts them in build/fuzz)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-20}
fb=${FUZZ_BUILD:-build/fuzz}
bins=("$fb"/bin/fuzz_*)
[ -x "${bins[0]}" ] || { echo "fuzz: no fuzzers in $fb/bin: run 'make fuzz-build' first" >&2; exit 1; }
for bin in "${bins[@]}"; do
  n=$(basename "$bin")
  seeds=tests/fuzz/corpus/${n#fuzz_}
  if [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
    echo "fuzz: $n has no seed corpus in $seeds" >&2; exit 1
  fi
  work=$fb/work/$n; mkdir -p "$work"
  echo "fuzz: $n for ${secs}s"
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
         -artifact_prefix=$fb/ -print_final_stats=0 "$work" "$seeds" 2>$fb/$n.log \
    || { tail -40 $fb/$n.log; echo "fuzz: $n FAILED (crash input in $fb/)"; exit 1; }
  grep -aE '^#[0-9]+[[:space:]]+DONE' $fb/$n.log | tail -1 || true
done
echo "fuzz: all ${#bins[@]} targets ran clean (${secs}s each)"
