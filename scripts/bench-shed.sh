#!/usr/bin/env bash
# Shed rate of edge protection on the native path: how many datagrams/s Ferry refuses on one core, by a
# rule (a deny CIDR block, the first-datagram filter), by a limit (rate_limited) and at max_flows, with the
# rule checked in user space and in the kernel's socket filter. Run it under the shared lock:
#
#   flock -x /tmp/ferry-heavy.lock bash scripts/bench-shed.sh [--seconds 3] [--sources 65536]
#       [--runtimes bun,deno,binary] [--cases deny-user,deny-kernel,...] [--root DIR]
#
# Ferry is pinned to CPU 0; the flood (scripts/bench/flood.c: sendmmsg of 32-byte datagrams, each from its
# own 127.1.x.y source via IP_PKTINFO) runs on CPU 1 as fast as it goes; the echo backend on CPU 1 serves
# the few flows admitted. Figures per case, over the flood's SECONDS:
#   sent/s     what the generator got into the kernel
#   user/s     refused by Ferry in user space (ferry_listener_drops_total of the case's reason)
#   kernel/s   dropped at the listener socket (ferry_listener_rxq_overflows_total = sk_drops): the kernel
#              filter's refusals in the -kernel cases; in the others datagrams the receive queue had no
#              room for (Ferry fell behind)
#   cpu %      Ferry's CPU time over the window (utime + stime from /proc), 100 = one core
#   per core/s user/s ÷ (cpu % / 100): what one core of Ferry sheds when it is the bottleneck
# The loopback delivery (and the kernel filter, run in the sender's softirq) costs CPU 1, not Ferry's core.
# `--root` runs another checkout's main.ts (e.g. a `git archive` of an older commit, for a before figure).
# Every process is loopback-only and stops by itself.
set -euo pipefail
SECONDS_=3 SOURCES=65536 RUNTIMES=bun,deno,binary
CASES=deny-user,deny-kernel,filter-user,filter-kernel,rate_limited,max_flows
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN_ROOT=$ROOT
while (($#)); do
  case "$1" in
  --seconds) SECONDS_=$2; shift 2 ;;
  --sources) SOURCES=$2; shift 2 ;;
  --runtimes) RUNTIMES=$2; shift 2 ;;
  --cases) CASES=$2; shift 2 ;;
  --root) RUN_ROOT=$(cd "$2" && pwd); shift 2 ;;
  *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
OUT=$(mktemp -d /tmp/ferry-shed.XXXXXX)
cc -O2 -o "$OUT/flood" "$ROOT/scripts/bench/flood.c"
cc -O2 -o "$OUT/echo" "$ROOT/scripts/bench/echo.c"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ECHO_PORT=$((20000 + RANDOM % 10000))
taskset -c 1 "$OUT/echo" -u "$ECHO_PORT" -T 900 & pids+=($!)
TICK=$(getconf CLK_TCK)

# The listener lines of a case: the reason it drops as, then TOML.
case_config() {
  case "$1" in
  deny-user | deny-kernel)
    [[ $1 == deny-user ]] && echo 'kernel_filter = false'
    echo '[listeners.sources]'; echo 'deny = ["127.1.0.0/16"]' ;;
  filter-user | filter-kernel)
    [[ $1 == filter-user ]] && echo 'kernel_filter = false'
    echo '[listeners.filter]'
    [[ $1 == filter-kernel ]] && echo 'all_datagrams = true'
    echo '[[listeners.filter.match]]'; echo 'hex = "ffffffff"' ;;
  rate_limited)
    echo '[listeners.limits]'; echo 'new_flows_per_prefix = 1'; echo 'prefix_v4 = 8' ;;
  max_flows) ;;
  *) echo "unknown case $1" >&2; exit 2 ;;
  esac
}
reason_of() {
  case "$1" in
  deny-*) echo invalid ;; filter-*) echo filtered ;; rate_limited) echo rate_limited ;; max_flows) echo shed ;;
  esac
}
# The value of one sample line of /metrics (0 when absent).
metric() { { grep -E "^$2\{[^}]*listener=\"l\"[^}]*$3" "$1" || true; } | awk '{s += $NF} END {print s + 0}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "| relay | case | sent/s | user/s | kernel/s | cpu % | per core/s |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
IFS=, read -ra runtimes <<<"$RUNTIMES"
IFS=, read -ra cases <<<"$CASES"
for rt in "${runtimes[@]}"; do
  case "$rt" in
  bun) FERRY=("$RUN_ROOT/node_modules/.bin/bun" "$RUN_ROOT/main.ts") ;;
  deno) FERRY=("$RUN_ROOT/node_modules/.bin/deno" run -A "$RUN_ROOT/main.ts") ;;
  binary)
    if [[ ! -x $RUN_ROOT/dist/ferry ]]; then echo "| binary | (no dist/ferry: run deno task build) | | | | | |"; continue; fi
    FERRY=("$RUN_ROOT/dist/ferry") ;;
  *) echo "unknown runtime $rt" >&2; exit 2 ;;
  esac
  for c in "${cases[@]}"; do
    # Random ports: another process may hold one, so a relay that does not come up is tried again.
    up=0
    for attempt in 1 2 3; do
      PORT=$((30000 + RANDOM % 10000)) ADMIN=$((40000 + RANDOM % 10000))
      {
        echo "[admin]"; echo "listen = \"127.0.0.1:$ADMIN\""
        echo "[[listeners]]"; echo 'name = "l"'; echo "address = \"127.0.0.1:$PORT\""; echo 'cluster = "c"'
        echo "max_flows = $([[ $c == max_flows ]] && echo 1 || echo 100000)"; echo 'datapath = "native"'
        case_config "$c"
        echo "[clusters.c]"; echo "backends = [{ address = \"127.0.0.1:$ECHO_PORT\" }]"
      } >"$OUT/$rt-$c.toml"
      "${FERRY[@]}" check "$OUT/$rt-$c.toml" >/dev/null
      taskset -c 0 timeout $((SECONDS_ + 30)) "${FERRY[@]}" --config "$OUT/$rt-$c.toml" --log-level warning \
        >"$OUT/$rt-$c.log" 2>&1 & fpid=$!
      pids+=($fpid)
      for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$ADMIN/metrics" >/dev/null 2>&1 && { up=1; break; }
        kill -0 "$fpid" 2>/dev/null || break
        sleep 0.1
      done
      ((up)) && break
      kill "$fpid" 2>/dev/null || true
      wait "$fpid" 2>/dev/null || true
    done
    if ((!up)); then echo "| $rt | $c | (did not start: $OUT/$rt-$c.log) | | | | |"; continue; fi
    # The relay's pid: `timeout`'s child.
    rpid=$(pgrep -P "$fpid" -n 2>/dev/null || echo "$fpid")
    [[ -r /proc/$rpid/stat ]] || rpid=$fpid
    curl -sf "http://127.0.0.1:$ADMIN/metrics" >"$OUT/$rt-$c.m0"
    t0=$(cpu_ticks "$rpid")
    taskset -c 1 "$OUT/flood" flood -a "127.0.0.1:$PORT" -s "$SOURCES" -d "$SECONDS_" >"$OUT/$rt-$c.flood"
    sleep 0.3 # the queue drains
    t1=$(cpu_ticks "$rpid")
    curl -sf "http://127.0.0.1:$ADMIN/metrics" >"$OUT/$rt-$c.m1"
    kill "$fpid" 2>/dev/null || true
    wait "$fpid" 2>/dev/null || true
    reason=$(reason_of "$c")
    u0=$(metric "$OUT/$rt-$c.m0" ferry_listener_drops_total "reason=\"$reason\"")
    u1=$(metric "$OUT/$rt-$c.m1" ferry_listener_drops_total "reason=\"$reason\"")
    k0=$(metric "$OUT/$rt-$c.m0" ferry_listener_rxq_overflows_total "")
    k1=$(metric "$OUT/$rt-$c.m1" ferry_listener_rxq_overflows_total "")
    sent=$(sed -E 's/.*\(([0-9]+)\/s\).*/\1/' "$OUT/$rt-$c.flood")
    awk -v rt="$rt" -v c="$c" -v s="$SECONDS_" -v sent="$sent" -v u=$((u1 - u0)) -v k=$((k1 - k0)) \
      -v tk=$((t1 - t0)) -v hz="$TICK" 'BEGIN {
        cpu = 100 * tk / hz / (s + 0.3);
        per = cpu > 0 ? (u / s) / (cpu / 100) : 0;
        printf "| %s | %s | %d | %d | %d | %.0f | %d |\n", rt, c, sent, u / s, k / s, cpu, per }'
  done
done
echo
echo "command: bash scripts/bench-shed.sh --seconds $SECONDS_ --sources $SOURCES --runtimes $RUNTIMES"
echo "logs: $OUT"
