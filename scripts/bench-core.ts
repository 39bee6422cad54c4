/**
 * Micro-benchmark of the sans-io UDP core (`RelayCore`): no sockets, no shell, only the core's own cost.
 *
 *   deno run -A scripts/bench-core.ts [--quick]
 *   bun scripts/bench-core.ts [--quick]
 *
 * Rows (each the median of several timed rounds after warm-up rounds; "spread" is (max − min) / median):
 * - `fromClient` / `fromBackend` on established flows: 64-byte payload from one reused Uint8Array, clients
 *   taken round-robin, one fractional-ms `now` per batch of 256 datagrams (a shell reading the clock once per
 *   receive batch), the clock advancing 1 µs per datagram. Client IP strings are created once, so their
 *   hashes are cached; a shell that gets a fresh string per datagram pays that hash outside the core.
 * - admit + close: a new client's first datagram (source check, balancer, Flow, table insert, heap entry),
 *   then `close` and `poll`. Each round starts from a fresh core (setup not timed) and churns 64 Ki clients.
 * - `onTimeout`: 64 Ki idle flows all due at once, expired in one call and their events polled.
 * - bytes/op: allocation per call, from `node:v8` `getHeapStatistics().total_allocated_bytes`. V8 (Deno)
 *   counts every allocation since start-up, so one reading before and one after 5M calls. JSC (Bun) restarts
 *   the count at each collection, so the calls run in chunks of 100k, each after a forced GC, and the chunk
 *   deltas are summed; "GC seen" counts chunks in which the count went back (a collection ran inside), which
 *   V8 cannot tell us ("n/a"). "retained" is heapUsed growth over the run between two forced GCs. Readings
 *   are coarse (allocation buffers, JIT code), hence the calibration rows: an empty loop reads the floor,
 *   one {a, b} object per op shows the method sees allocation. Then one row passes a new fractional `now`
 *   to every call (V8 boxes each such double as a 16-byte HeapNumber at the call: the caller's cost), and
 *   the last two put every byte counter past 2^31 first, as after 2 GiB of traffic.
 *
 * `--quick` shrinks every size and round count (well under 5 s): smoke test, not a measurement.
 *
 * @module
 */

import os from "node:os";
import process from "node:process";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { RelayCore } from "../core/relay_core.ts";
import type { Flow } from "../core/flow.ts";
import type { Listener, UdpListener } from "../core/listener.ts";
import { BALANCER_NAMES, type ClusterConfig } from "../core/types.ts";
import { cluster, config, listener } from "../tests/support/fixtures.ts";

const QUICK = process.argv.includes("--quick");
const WARMUP = QUICK ? 1 : 2;
const ROUNDS = QUICK ? 3 : 5;
const HOT_OPS = QUICK ? 50_000 : 2_000_000;
const CHURN = QUICK ? 2_048 : 65_536;
const BIG = QUICK ? 8_192 : 65_536;
const ALLOC_OPS = QUICK ? 100_000 : 5_000_000;
const ALLOC_CHUNK = QUICK ? 20_000 : 100_000;
/** Datagrams per clock reading (the clock advances 1 µs per datagram). */
const BATCH = 256;
const PAYLOAD = new Uint8Array(64).fill(0x61);

interface Runtimes {
  Deno?: { version: { deno: string; v8: string } };
  Bun?: { version: string; revision: string; gc(force: boolean): void };
}
const rt = globalThis as unknown as Runtimes;
const runtime = "Bun" in globalThis
  ? `bun ${rt.Bun!.version} (JavaScriptCore, ${rt.Bun!.revision.slice(0, 9)})`
  : "Deno" in globalThis
  ? `deno ${rt.Deno!.version.deno} (V8 ${rt.Deno!.version.v8})`
  : `unknown runtime ${process.version}`;

/** A full collection, if the runtime offers one: Bun.gc, or V8's gc() exposed after start-up (Deno). */
const fullGc: (() => void) | null = (() => {
  if (rt.Bun) return () => rt.Bun!.gc(true);
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as unknown;
    return typeof gc === "function" ? () => gc() : null;
  } catch {
    return null;
  }
})();

/** Anything that is not a flow (a Drop code) bumps this; it must stay 0 or the bench measured a drop path. */
let drops = 0;
let clock = 1_000;

/** `n` distinct clients, `perIp` ports per IP (198.18.0.0/15, the benchmarking range). */
function clients(n: number, perIp: number): { ips: string[]; ports: number[] } {
  const ips: string[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const j = Math.floor(i / perIp);
    ips.push(`198.${18 + (j >> 16)}.${(j >> 8) & 255}.${j & 255}`);
    ports.push(40_000 + (i % perIp));
  }
  return { ips, ports };
}

/** A core with one listener (no flow limit to speak of) and one cluster of 8 backends. */
function newCore(over: Partial<ClusterConfig>): { core: RelayCore; l: UdpListener } {
  const core = new RelayCore(config([cluster(over, 8)], [listener({ maxFlows: 1 << 24 })]), { seed: 1 });
  const l = core.listener("l") as UdpListener;
  // One admission first, so the balancer builds its tables (maglev: 65537 slots) outside the timed part.
  const f = core.fromClient(l, "203.0.113.1", 1, PAYLOAD, clock);
  if (typeof f !== "number") core.close(f, "disconnected");
  while (core.poll() !== undefined);
  return { core, l };
}

/** A core with `n` established flows (4 ports per client IP). */
function established(over: Partial<ClusterConfig>, n: number) {
  const { core, l } = newCore(over);
  const { ips, ports } = clients(n, 4);
  const flows: Flow[] = [];
  for (let i = 0; i < n; i++) {
    const r = core.fromClient(l, ips[i], ports[i], PAYLOAD, clock);
    if (typeof r === "number") throw new Error(`setup: client ${i} dropped (${r})`);
    flows.push(r);
  }
  while (core.poll() !== undefined);
  return { core, l, ips, ports, flows };
}

type Setup = ReturnType<typeof established>;

/**
 * `ops` client datagrams round-robin over the flows, one clock reading (`now`) per BATCH of them, as a shell
 * that reads the clock once per receive batch. `freshNow` instead passes a new fractional time per datagram.
 */
function clientLoop(s: Setup, ops: number, freshNow = false): void {
  const { core, l, ips, ports } = s;
  const mask = ips.length - 1;
  for (let i = 0; i < ops; i += BATCH) {
    const now = clock;
    const end = Math.min(i + BATCH, ops);
    if (freshNow) {
      for (let j = i; j < end; j++) {
        const k = j & mask;
        if (typeof core.fromClient(l, ips[k], ports[k], PAYLOAD, now + (j - i) * 0.001) === "number") drops++;
      }
    } else {
      for (let j = i; j < end; j++) {
        const k = j & mask;
        if (typeof core.fromClient(l, ips[k], ports[k], PAYLOAD, now) === "number") drops++;
      }
    }
    clock = now + BATCH * 0.001;
  }
}

/** `ops` backend replies round-robin over the flows, one `now` per BATCH. */
function backendLoop(s: Setup, ops: number): void {
  const { core, flows } = s;
  const mask = flows.length - 1;
  for (let i = 0; i < ops; i += BATCH) {
    const now = clock;
    const end = Math.min(i + BATCH, ops);
    for (let j = i; j < end; j++) if (!core.fromBackend(flows[j & mask], 64, now)) drops++;
    clock = now + BATCH * 0.001;
  }
}

/** Admits `ips.length` new clients, closing each one right away. */
function churnLoop(core: RelayCore, l: Listener, ips: string[], ports: number[]): void {
  const t0 = clock;
  for (let i = 0; i < ips.length; i++) {
    const r = core.fromClient(l, ips[i], ports[i], PAYLOAD, t0 + i * 0.001);
    if (typeof r === "number") drops++;
    else core.close(r, "disconnected");
    while (core.poll() !== undefined);
  }
  clock = t0 + ips.length * 0.001;
}

interface Row {
  name: string;
  nsPerOp: number;
  spread: number;
}
const rows: Row[] = [];

/** Times `round` (which returns the elapsed ms of its `ops` operations) and records the median. */
function bench(name: string, ops: number, round: () => number): void {
  for (let i = 0; i < WARMUP; i++) round();
  const ns: number[] = [];
  for (let i = 0; i < ROUNDS; i++) ns.push((round() * 1e6) / ops);
  ns.sort((a, b) => a - b);
  const med = ns[ns.length >> 1];
  rows.push({ name, nsPerOp: med, spread: (ns[ns.length - 1] - ns[0]) / med });
}

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

interface AllocRow {
  name: string;
  bytesPerOp: number;
  gcSeen: number;
  retained: number;
}
const allocRows: AllocRow[] = [];

const allocated = () => v8.getHeapStatistics().total_allocated_bytes;
const heapUsed = () => process.memoryUsage().heapUsed;

/**
 * Allocation per op of `chunk(n)` over ALLOC_OPS ops, read in chunks of ALLOC_CHUNK (see the module doc).
 * V8's counter is cumulative, so Deno's figure is first to last reading; JSC's restarts at each collection, so
 * under Bun each chunk starts after a forced GC and the chunk deltas are summed.
 */
function allocation(name: string, chunk: (n: number) => void): void {
  for (let i = 0; i < 5; i++) chunk(ALLOC_CHUNK); // warm: JIT code and feedback are heap allocations too
  fullGc?.();
  fullGc?.(); // a second pass: the first may leave garbage it only found late (weak maps, finalised code)
  const start = heapUsed();
  let bytes = 0;
  let counted = 0;
  let gcSeen = 0;
  if (rt.Bun) {
    for (let done = 0; done < ALLOC_OPS; done += ALLOC_CHUNK) {
      fullGc!();
      const a0 = allocated();
      chunk(ALLOC_CHUNK);
      const a1 = allocated();
      if (a1 < a0) gcSeen++;
      else [bytes, counted] = [bytes + a1 - a0, counted + ALLOC_CHUNK];
    }
  } else {
    const a0 = allocated();
    for (let done = 0; done < ALLOC_OPS; done += ALLOC_CHUNK) chunk(ALLOC_CHUNK);
    [bytes, counted] = [allocated() - a0, ALLOC_OPS];
    gcSeen = NaN;
  }
  fullGc?.();
  const retained = fullGc ? heapUsed() - start : NaN;
  allocRows.push({ name, bytesPerOp: counted > 0 ? bytes / counted : NaN, gcSeen, retained });
}

// ---- established flows -----------------------------------------------------------------------------------

const knobSets: [string, Partial<ClusterConfig>, number][] = [
  ["plain (round_robin), 1 Ki flows", {}, 1024],
  ["proxy_protocol every, 1 Ki flows", { proxyProtocol: "every" }, 1024],
  ["affinity ip (maglev), 1 Ki flows", { affinity: "ip", balancer: "maglev" }, 1024],
  [`plain (round_robin), ${BIG / 1024} Ki flows`, {}, BIG],
];
/** The 1 Ki-flow setups, kept for the allocation rows (a small heap keeps Bun's heap statistics quick). */
const small: [string, Setup][] = [];
for (const [label, over, n] of knobSets) {
  const s = established(over, n);
  bench(`fromClient  ${label}`, HOT_OPS, () => timed(() => clientLoop(s, HOT_OPS)));
  bench(`fromBackend ${label}`, HOT_OPS, () => timed(() => backendLoop(s, HOT_OPS)));
  if (n === 1024) small.push([label, s]);
}

// ---- admission -------------------------------------------------------------------------------------------

for (const balancer of BALANCER_NAMES) {
  const { ips, ports } = clients(CHURN, 4);
  bench(`admit+close ${balancer}${balancer === "maglev" ? " (table 65537)" : ""}`, CHURN, () => {
    const { core, l } = newCore({ balancer });
    return timed(() => churnLoop(core, l, ips, ports));
  });
}

// ---- timers ----------------------------------------------------------------------------------------------

bench(`onTimeout   ${CHURN} flows expiring at once`, CHURN, () => {
  const s = established({}, CHURN);
  const t = timed(() => {
    s.core.onTimeout(clock + 30_001);
    while (s.core.poll() !== undefined);
  });
  if (s.core.flowCount !== 0) throw new Error(`onTimeout left ${s.core.flowCount} flows`);
  return t;
});

// ---- allocation on the forwarding path -------------------------------------------------------------------

let sink = 0;
allocation("calibration: empty loop", (n) => {
  for (let i = 0; i < n; i++) sink = (sink + i) | 0;
});
const ring: { a: number; b: number }[] = new Array(1024).fill(null).map(() => ({ a: 0, b: 0 }));
allocation("calibration: one {a, b} object per op", (n) => {
  // Kept in a ring so the object escapes: an optimiser may not sink it away.
  for (let i = 0; i < n; i++) ring[i & 1023] = { a: i, b: sink };
});
for (const [label, s] of small) {
  allocation(`fromClient  ${label}`, (n) => clientLoop(s, n));
  allocation(`fromBackend ${label}`, (n) => backendLoop(s, n));
}
allocation("fromClient  plain, a new fractional `now` per call", (n) => clientLoop(small[0][1], n, true));
// Last, as it changes how V8 stores these fields for every flow: byte counters past 2^31 (after 2 GiB) are
// no longer small integers but doubles, updated in place.
const primed = small[0][1];
primed.l.counters.bytesIn = primed.l.counters.bytesOut = 2 ** 31;
for (const f of primed.flows) {
  f.quality.bytesIn = f.quality.bytesOut = 2 ** 31;
  f.backend!.counters.bytesTo = f.backend!.counters.bytesFrom = 2 ** 31;
}
allocation("fromClient  plain, byte counters past 2^31", (n) => clientLoop(primed, n));
allocation("fromBackend plain, byte counters past 2^31", (n) => backendLoop(primed, n));
if (drops !== 0) {
  throw new Error(`${drops} datagrams were dropped: the bench did not measure the forwarding path`);
}

// ---- report ----------------------------------------------------------------------------------------------

const w = Math.max(...rows.map((r) => r.name.length), ...allocRows.map((r) => r.name.length));
const num = (x: number, digits: number) =>
  x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
console.log(`ferry core bench — ${runtime}${QUICK ? " — QUICK (smoke test, not a measurement)" : ""}`);
console.log(`${"measurement".padEnd(w)}  ${"ops/s".padStart(12)}  ${"ns/op".padStart(9)}  spread`);
for (const r of rows) {
  const ops = num(1e9 / r.nsPerOp, 0).padStart(12);
  console.log(`${r.name.padEnd(w)}  ${ops}  ${num(r.nsPerOp, 1).padStart(9)}  ${num(r.spread * 100, 0)}%`);
}
const allocHead = `allocation, ${num(ALLOC_OPS, 0)} ops per row`;
console.log(`\n${allocHead.padEnd(w)}  ${"bytes/op".padStart(12)}  ${"GC seen".padStart(9)}  retained`);
for (const r of allocRows) {
  const bytes = Number.isNaN(r.bytesPerOp) ? "n/a" : num(r.bytesPerOp, 2);
  const gcs = Number.isNaN(r.gcSeen) ? "n/a" : String(r.gcSeen);
  const retained = Number.isNaN(r.retained) ? "n/a (no forced GC)" : `${num(r.retained / 1024, 0)} KiB`;
  console.log(`${r.name.padEnd(w)}  ${bytes.padStart(12)}  ${gcs.padStart(9)}  ${retained}`);
}
const cpus = os.cpus();
const load = os.loadavg().map((x) => x.toFixed(2)).join(" ");
const cpu = cpus[0]?.model ?? "?";
const machine = `${os.platform()} ${os.release()} ${os.arch()}, ${cpus.length} CPUs (${cpu})`;
console.log(`\nmachine: ${machine}, load avg ${load}`);
