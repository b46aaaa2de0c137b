#!/usr/bin/env bash
# setup.sh — install what tollgate needs on a fresh Debian machine; safe to run again.
# Debian packages only (plus the npm registry for the end-to-end test client).
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: gcc/make come with the machine; clang + its runtime for libFuzzer.
# Runtime: libyaml (config), SQLite (request log, orders).
# Tests and benchmarks: redis-server, prometheus (promtool), nginx, nodejs/npm.
PKGS=(build-essential clang libclang-rt-14-dev libyaml-dev libsqlite3-dev sqlite3
      redis-server prometheus nginx-light nodejs npm yamllint curl procps)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The machine may already have node/npm from elsewhere; do not fight it.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
# `kubectl kustomize` renders deploy/ in the tests; Debian's kubectl is kubernetes-client
# (its kustomize is old, and deploy/ is written to render with it and with current ones).
command -v kubectl >/dev/null || missing+=(kubernetes-client)
read -ra missing <<<"${missing[*]}"
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts services on install; the tests start their own on other ports.
for svc in redis-server nginx prometheus; do
  systemctl is-active --quiet "$svc" 2>/dev/null && systemctl stop "$svc" 2>/dev/null || true
done

# The e2e packages (the official OpenAI client, kubernetes-models schemas, yaml), pinned in
# tests/e2e/package-lock.json.
# Re-run when the lock changed since the last install (a copy of it is kept in node_modules).
if [ ! -d tests/e2e/node_modules/openai ] ||
   ! cmp -s tests/e2e/package-lock.json tests/e2e/node_modules/.tollgate-lock; then
  echo "setup: npm ci (tests/e2e)"
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.tollgate-lock)
fi
echo "setup: ok"
