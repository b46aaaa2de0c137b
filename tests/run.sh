#!/usr/bin/env bash
# run.sh — the test suite: every unit-test binary, then the end-to-end tests (node:test +
# the official OpenAI client). Ends with one line "tests: N passed, M failed".
# TOLLGATE_BUILD picks the build (build, build/asan); TESTS=pattern runs a subset
# (tests whose name contains the pattern; a|b|c for several).
set -uo pipefail
cd "$(dirname "$0")/.."
B=${TOLLGATE_BUILD:-build}
export TOLLGATE_BIN="$PWD/$B/tollgate"
export TOLLGATE_REF="${TOLLGATE_REF:-$PWD/../shared/ref}"
pat=${TESTS:-}
# selected NAME: no TESTS, or NAME contains one of its |-separated alternatives
selected() {
  [ -z "$pat" ] && return 0
  local alt
  IFS='|' read -ra alts <<<"$pat"
  for alt in "${alts[@]}"; do [[ "$1" == *"$alt"* ]] && return 0; done
  return 1
}
passed=0 failed=0 broken=()

for t in "$B"/tests/test_*; do
  [ -x "$t" ] || continue
  n=$(basename "$t")
  selected "$n" || continue
  out=$(timeout -k 5 600 "$t" 2>&1); rc=$?  # a hung test fails instead of stalling CI
  line=$(printf '%s\n' "$out" | grep -E '^[a-z0-9_]+: [0-9]+ passed, [0-9]+ failed$' | tail -1)
  if [ -z "$line" ]; then
    printf '%s\n' "$out" | tail -20
    echo "$n: crashed or printed no summary (exit $rc)"
    failed=$((failed + 1)); broken+=("$n"); continue
  fi
  p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")
  if [ "$rc" != 0 ] || [ "$f" != 0 ]; then printf '%s\n' "$out" | grep -v ' passed, ' | tail -40; broken+=("$n"); fi
  [ "$rc" != 0 ] && [ "$f" = 0 ] && f=1
  echo "$line"
  passed=$((passed + p)); failed=$((failed + f))
done

e2e=(tests/e2e/*.test.mjs)
if [ -e "${e2e[0]}" ]; then
  sel=()
  for f in "${e2e[@]}"; do selected "$f" && sel+=("$f"); done
  if ((${#sel[@]})); then
    # Bounded: one test may take 2 minutes, the whole e2e run 20 (a hang must fail, not stall CI).
    out=$(timeout -k 10 1200 node --test --test-reporter=tap --test-concurrency=1 \
            --test-timeout=120000 --test-force-exit "${sel[@]}" 2>&1); rc=$?
    [ "$rc" = 124 ] && echo "e2e: timed out after 20 minutes"
    p=$(grep -E '^# pass [0-9]+' <<<"$out" | awk '{print $3}'); f=$(grep -E '^# fail [0-9]+' <<<"$out" | awk '{print $3}')
    p=${p:-0}; f=${f:-0}
    if [ "$rc" != 0 ] || [ "$f" != 0 ]; then
      printf '%s\n' "$out" | grep -E -B2 -A30 '^not ok|^\s+not ok' | head -150
      [ "$f" = 0 ] && f=1; broken+=(e2e)
    fi
    echo "e2e: $p passed, $f failed"
    passed=$((passed + p)); failed=$((failed + f))
  fi
fi

((${#broken[@]})) && echo "failing: ${broken[*]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
