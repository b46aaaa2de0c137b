#!/usr/bin/env bash
# long.sh — deep fuzzing runs (hours), outside CI: each target for LONG_SECONDS with
# LONG_JOBS parallel workers on a corpus kept across runs (build/fuzz/long/NAME), then a
# corpus merge that keeps only inputs adding coverage. `make fuzz-build` first.
#   bash tests/fuzz/long.sh [NAME...]   targets (fuzz_json json ...; default: all built)
#   LONG_SECONDS=3600                   per target
#   LONG_JOBS=1                         parallel libFuzzer workers per target (-fork)
#   LONG_BUILD=build/fuzz               where `make fuzz-build` put bin/fuzz_* (and where
#                                       long/ goes)
#   LONG_UPDATE_SEEDS=1                 also merge the new coverage into tests/fuzz/corpus/NAME
#                                       (review and commit what it adds; a crash first gets a
#                                       fix and a regression test)
# Crash inputs land in LONG_BUILD/long/ as crash-*, leak-*, timeout-*, oom-*.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${LONG_SECONDS:-3600}
jobs=${LONG_JOBS:-1}
fb=${LONG_BUILD:-build/fuzz}
targets=()
if (($#)); then
  for n in "$@"; do targets+=("$fb/bin/fuzz_${n#fuzz_}"); done
else
  targets=("$fb"/bin/fuzz_*)
fi
[ -x "${targets[0]}" ] || { echo "long: no fuzzers built: run 'make fuzz-build' first" >&2; exit 1; }
failed=()
for bin in "${targets[@]}"; do
  n=$(basename "$bin")
  seeds=tests/fuzz/corpus/${n#fuzz_}
  work=$fb/long/$n
  mkdir -p "$work" "$seeds"
  before=$(ls "$work" | wc -l)
  echo "long: $n for ${secs}s, ${jobs} job(s), corpus $work ($before inputs)"
  fork=()
  ((jobs > 1)) && fork=(-fork="$jobs" -ignore_crashes=0)
  if ! "$bin" "${fork[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
       -artifact_prefix=$fb/long/ -print_final_stats=1 "$work" "$seeds" \
       >"$fb/long/$n.log" 2>&1; then
    tail -40 "$fb/long/$n.log"
    echo "long: $n FAILED (input in $fb/long/)"
    failed+=("$n")
    continue
  fi
  grep -E '^#[0-9]+ +DONE|stat::number_of_executed_units' "$fb/long/$n.log" | tail -1 || true
  # Keep the working corpus small: only inputs that add coverage survive.
  min=$work.min
  rm -rf "$min" && mkdir -p "$min"
  "$bin" -merge=1 "$min" "$seeds" "$work" >"$fb/long/$n.merge.log" 2>&1
  rm -rf "$work" && mv "$min" "$work"
  echo "long: $n corpus $before -> $(ls "$work" | wc -l) inputs after merge"
  if [ "${LONG_UPDATE_SEEDS:-0}" = 1 ]; then
    k=$(ls "$seeds" | wc -l)
    "$bin" -merge=1 "$seeds" "$work" >>"$fb/long/$n.merge.log" 2>&1
    echo "long: $n seeds $k -> $(ls "$seeds" | wc -l) (review before committing)"
  fi
done
if ((${#failed[@]})); then echo "long: failing: ${failed[*]}"; exit 1; fi
echo "long: all targets ran clean"
