#!/usr/bin/env bash
# The flood case of edge protection: a legitimate 1 kHz flow through Ferry (native path) while junk floods
# the same listener from many 127.x.y.z sources, with protection off, in user space only, and with the
# kernel filter. Run it under the shared lock, on an otherwise idle machine:
#
#   bash scripts/bench-flood.sh [--seconds 3] [--sources 200000] [--runtime bun|deno]
#
# Ferry is pinned to CPU 0; the echo backend, the flood and the legitimate flow share CPU 1 (scripts/bench/
# flood.c has the details of both generators). Modes (the listener's config):
#   off:    max_flows = 10000, nothing else (the flood is shed at max_flows)
#   user:   + a first-datagram filter (magic ff ff ff ff) with kernel_filter = false
#   kernel: the same filter with all_datagrams = true: compiled into the socket's BPF filter
# Every process is loopback-only and stops by itself.
set -euo pipefail
SECONDS_=3 SOURCES=200000 RUNTIME=bun
while (($#)); do
  case "$1" in
  --seconds) SECONDS_=$2; shift 2 ;;
  --sources) SOURCES=$2; shift 2 ;;
  --runtime) RUNTIME=$2; shift 2 ;;
  *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mktemp -d /tmp/ferry-flood.XXXXXX)
cc -O2 -o "$OUT/flood" "$ROOT/scripts/bench/flood.c"
cc -O2 -o "$OUT/echo" "$ROOT/scripts/bench/echo.c"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ECHO_PORT=$((20000 + RANDOM % 10000))
taskset -c 1 "$OUT/echo" -u "$ECHO_PORT" -T $((SECONDS_ * 3 * 4 + 60)) & pids+=($!)
case "$RUNTIME" in
bun) FERRY=("$ROOT/node_modules/.bin/bun" "$ROOT/main.ts") ;;
deno) FERRY=("$ROOT/node_modules/.bin/deno" run -A "$ROOT/main.ts") ;;
*) FERRY=("$RUNTIME") ;;
esac
echo "| mode | legit sent | lost | loss % | p50 µs | p99 µs | max µs | flood sent/s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for mode in off user kernel; do
  PORT=$((30000 + RANDOM % 10000))
  {
    echo "[admin]"; echo 'listen = "127.0.0.1:0"'
    echo "[[listeners]]"; echo 'name = "l"'; echo "address = \"127.0.0.1:$PORT\""; echo 'cluster = "c"'
    echo "max_flows = 10000"; echo 'datapath = "native"'
    if [[ $mode != off ]]; then
      echo "[listeners.filter]"
      [[ $mode == kernel ]] && echo "all_datagrams = true"
      echo "[[listeners.filter.match]]"; echo 'hex = "ffffffff"'
    fi
    echo "[clusters.c]"; echo "backends = [{ address = \"127.0.0.1:$ECHO_PORT\" }]"
  } >"$OUT/$mode.toml"
  if [[ $mode == user ]]; then sed -i 's/^name = "l"$/name = "l"\nkernel_filter = false/' "$OUT/$mode.toml"; fi
  "${FERRY[@]}" check "$OUT/$mode.toml" >/dev/null
  taskset -c 0 timeout $((SECONDS_ + 20)) "${FERRY[@]}" --config "$OUT/$mode.toml" --log-level warning \
    >"$OUT/$mode.log" 2>&1 & fpid=$!
  pids+=($fpid)
  sleep 3
  taskset -c 1 "$OUT/flood" ping -a "127.0.0.1:$PORT" -d $((SECONDS_ + 2)) >"$OUT/$mode.ping" & ppid=$!
  sleep 1
  taskset -c 1 "$OUT/flood" flood -a "127.0.0.1:$PORT" -s "$SOURCES" -d "$SECONDS_" >"$OUT/$mode.flood"
  wait "$ppid"
  kill "$fpid" 2>/dev/null || true
  wait "$fpid" 2>/dev/null || true
  read -r _ _ sent _ _ _ lost pct _ p50 _ _ p99 _ _ max _ <"$OUT/$mode.ping"
  rate=$(sed -E 's/.*\(([0-9]+)\/s\).*/\1/' "$OUT/$mode.flood")
  echo "| $mode | $sent | $lost | ${pct//[()%]/} | $p50 | $p99 | $max | $rate |"
done
echo
echo "command: bash scripts/bench-flood.sh --seconds $SECONDS_ --sources $SOURCES --runtime $RUNTIME"
echo "logs: $OUT"
