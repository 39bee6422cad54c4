/**
 * Micro-benchmark of edge protection in the core (no sockets): what a refused datagram costs by reason,
 * what established flows pay with limits on, and the limiter's memory at 1M distinct sources.
 *
 *   deno run -A --v8-flags=--expose-gc scripts/bench-protection.ts [--quick] [--memory]
 *   bun scripts/bench-protection.ts [--quick] [--memory]
 *
 * Rows: ns per `fromClient` call (median of 5 rounds), for
 * - shed by a ban, by the new-flows limit, by the first-datagram filter, and at max_flows: each datagram
 *   from a new source (distinct IPv4 strings made up front, so the string's cost is not the core's);
 * - established flows with protection off and with per-IP + per-/24 datagram and byte limits (every
 *   datagram charged).
 * Memory (`--memory`: only this): the per-IP and per-prefix tables' fixed size, and heap + external memory
 * when the limiter is made and after 1M distinct sources (half IPv4, half IPv6 in as many /64s) went through
 * it (strings made and dropped in chunks; GC forced before each reading: Deno needs --expose-gc for that).
 *
 * @module
 */

import process from "node:process";
import { RelayCore } from "../core/relay_core.ts";
import type { Listener } from "../core/listener.ts";
import type { LimitsConfig, ProtectionConfig } from "../core/protection.ts";
import { ListenerProtection } from "../core/protection.ts";
import { cluster, config, listener } from "../tests/support/fixtures.ts";

const QUICK = process.argv.includes("--quick");
/** Only the limiter's memory (no timed rows). */
const MEMORY_ONLY = process.argv.includes("--memory");
const OPS = QUICK ? 50_000 : 1_000_000;
const ROUNDS = QUICK ? 2 : 5;
const SOURCES = QUICK ? 100_000 : 1_000_000;
const PAYLOAD = new Uint8Array(64).fill(0x61);
const NO = { newFlows: 0, datagrams: 0, bytes: 0 };

function limits(over: Partial<LimitsConfig>): LimitsConfig {
  return {
    perIp: NO,
    perPrefix: NO,
    burstMs: 1000,
    prefixV4: 24,
    prefixV6: 64,
    tableSize: 65_536,
    banAfterMs: 0,
    banForMs: 60_000,
    ...over,
  };
}

function gc(): void {
  const g = globalThis as { Bun?: { gc(force: boolean): void }; gc?: () => void };
  if (g.Bun !== undefined) g.Bun.gc(true);
  else g.gc?.();
}

const ips = MEMORY_ONLY
  ? []
  : Array.from({ length: OPS }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);

function core(protection: ProtectionConfig | undefined, maxFlows = 0): { c: RelayCore; l: Listener } {
  const c = new RelayCore(
    config([cluster()], [listener({ maxFlows, ...(protection ? { protection } : {}) })]),
    {
      seed: 1,
      autoMaxFlows: 1_000_000,
    },
  );
  return { c, l: c.listener("l")! };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

function time(setup: () => (i: number, now: number) => void): number {
  const out: number[] = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    const f = setup();
    const start = performance.now();
    for (let i = 0; i < OPS; i++) f(i, start);
    const ns = ((performance.now() - start) * 1e6) / OPS;
    if (r > 0) out.push(ns);
  }
  return median(out);
}

const rows: [string, number][] = [];
if (!MEMORY_ONLY) timeRows();

function timeRows(): void {
  rows.push([
    "shed: banned (10.0.0.0/8)",
    time(() => {
      const { c, l } = core(undefined);
      c.protection.bans.add({ cidr: "10.0.0.0/8", ttlMs: 0, reason: "", origin: "api" }, 0);
      return (i, now) => c.fromClient(l, ips[i], 1, PAYLOAD, now);
    }),
  ]);
  rows.push([
    "shed: rate_limited (per /24, 1 new flow/s)",
    time(() => {
      const { c, l } = core({
        limits: limits({ perPrefix: { ...NO, newFlows: 1 } }),
        filter: null,
        amplification: null,
      });
      return (i, now) => c.fromClient(l, ips[i], 1, PAYLOAD, now);
    }),
  ]);
  rows.push([
    "shed: filtered (4-byte magic)",
    time(() => {
      const { c, l } = core({
        limits: null,
        filter: {
          minLength: 0,
          maxLength: 0,
          match: [{ offset: 0, bytes: Uint8Array.of(1, 2, 3, 4), mask: null }],
          regex: "",
        },
        amplification: null,
      });
      return (i, now) => c.fromClient(l, ips[i], 1, PAYLOAD, now);
    }),
  ]);
  rows.push([
    "shed: at max_flows (1 flow)",
    time(() => {
      const { c, l } = core(undefined, 1);
      c.fromClient(l, "192.0.2.1", 1, PAYLOAD, 0);
      return (i, now) => c.fromClient(l, ips[i], 1, PAYLOAD, now);
    }),
  ]);
  const established = (protection: ProtectionConfig | undefined) => () => {
    const { c, l } = core(protection);
    const clients = ips.slice(0, 64);
    for (const ip of clients) c.fromClient(l, ip, 1, PAYLOAD, 0);
    return (i: number, now: number) => c.fromClient(l, clients[i & 63], 1, PAYLOAD, now);
  };
  rows.push(["established: protection off", time(established(undefined))]);
  rows.push([
    "established: per-IP + per-/24 datagram and byte limits",
    time(established({
      limits: limits({
        perIp: { newFlows: 0, datagrams: 1e9, bytes: 1e12 },
        perPrefix: { newFlows: 0, datagrams: 1e9, bytes: 1e12 },
      }),
      filter: null,
      amplification: null,
    })),
  ]);
}

/**
 * Bytes in use after a forced GC: heapUsed + external on Deno (typed arrays' bytes are external there),
 * heapUsed on Bun (which counts them in both).
 */
function used(): number {
  gc();
  const m = process.memoryUsage();
  return "Bun" in globalThis ? m.heapUsed : m.heapUsed + m.external;
}

/**
 * The limiter's memory: heap + external before it exists, once it exists (its fixed tables), and after
 * SOURCES distinct sources went through it (half IPv4, half IPv6, each IPv6 one in its own /64, so both
 * tables see them all as new); strings are made and dropped in chunks, outside the readings.
 */
function limiterMemory(): {
  tables: number;
  fixed: number;
  grown: number;
  entries: string;
  evictions: number;
} {
  const start = used();
  const p = new ListenerProtection({
    limits: limits({ perIp: { ...NO, newFlows: 10 }, perPrefix: { ...NO, newFlows: 100 } }),
    filter: null,
    amplification: null,
  }, 1);
  const empty = used();
  for (let base = 0; base < SOURCES; base += 65_536) {
    const chunk = Array.from({ length: Math.min(65_536, SOURCES - base) }, (_, i) => {
      const n = base + i;
      return (n & 1) === 0
        ? `${11 + (n >> 24)}.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`
        : `2001:db8:${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}::1`;
    });
    for (const ip of chunk) p.admit(ip, PAYLOAD, base);
  }
  const full = used();
  const ip = p.perIp!, prefix = p.perPrefix!;
  return {
    tables: ip.memoryBytes + prefix.memoryBytes,
    fixed: empty - start,
    grown: full - empty,
    entries: `${ip.size + prefix.size} of ${ip.capacity + prefix.capacity}`,
    evictions: ip.evictions + prefix.evictions,
  };
}

const runtime = "Bun" in globalThis
  ? `bun ${(globalThis as { Bun?: { version: string } }).Bun!.version}`
  : `deno ${Deno.version.deno}`;
const m = limiterMemory();
console.log(`edge protection in the core (${runtime}${QUICK ? ", --quick: not a measurement" : ""})\n`);
if (!MEMORY_ONLY) {
  console.log("| case | ns per datagram |\n| --- | ---: |");
  for (const [name, ns] of rows) console.log(`| ${name} | ${ns.toFixed(0)} |`);
}
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
console.log(
  `\nlimiter at ${SOURCES.toLocaleString("en")} distinct sources (half IPv4, half IPv6): tables ${
    mib(m.tables)
  } ` +
    `(in use once made: ${mib(m.fixed)}), growth over the sources ${mib(m.grown)}, ` +
    `entries ${m.entries}, evictions ${m.evictions.toLocaleString("en")}` +
    (!("Bun" in globalThis) && !("gc" in globalThis)
      ? " (no forced GC, so noise: add --v8-flags=--expose-gc)"
      : ""),
);
