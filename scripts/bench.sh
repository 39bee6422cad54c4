#!/usr/bin/env bash
# bench.sh — the one entry point of Ferry's end-to-end relay benchmark: Ferry on Bun, on Deno and as a
# compiled binary, against nginx's stream module and a plain C relay, over loopback (UDP round trips at
# 64 B and 1200 B, TCP request/response and bulk). Runs scripts/bench/run.sh; see scripts/bench/README.md.
#   bash scripts/bench.sh [--quick] [--only udp|tcp] [--runtimes bun,deno,binary] [--help for the rest]
exec bash "$(dirname "${BASH_SOURCE[0]}")/bench/run.sh" "$@"
