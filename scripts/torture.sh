#!/usr/bin/env bash
# torture.sh — Ferry's torture suite (issue 12): source floods with a legit 1 kHz flow alongside, memory per
# idle flow, new flows/s per data path, config fuzzing through check / PUT /config / SIGHUP, admin API
# abuse, and the fault cases (listener re-add, oversized replies, descriptor exhaustion, a hung Redis).
# Loopback only; prints one table and exits 1 if anything crashed or was lost. Heavy: run it under the lock.
#   bash scripts/torture.sh [--short]     (--short: under two minutes)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DENO=./node_modules/.bin/deno
[[ -x $DENO ]] || DENO=deno
exec "$DENO" run -A scripts/torture.ts "$@"
