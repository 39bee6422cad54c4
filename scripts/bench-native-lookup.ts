/**
 * Micro-benchmark of the native driver's receive path without its syscalls: from a datagram's sockaddr
 * bytes (as recvmmsg leaves them) to the core's answer, the way `NativeUdp` does it now (ClientLookup:
 * FlowIndex by sockaddr words, `RelayCore.screen` for unknown clients) and the way it did before (the
 * address as text through `IpText`, then `RelayCore.fromClient`).
 *
 *   deno run -A scripts/bench-native-lookup.ts [--quick]
 *   bun scripts/bench-native-lookup.ts [--quick] [--only TEXT]   (rows whose name holds TEXT)
 *   (cd OLD-CHECKOUT && deno run -A /path/to/scripts/bench-native-lookup.ts --before)  (the old path only)
 *
 * Rows: forwarding on established flows (1 Ki clients round-robin, 64 B payload) for IPv4, IPv6 and
 * IPv4-mapped clients; shedding unknown sources (64 Ki distinct sources round-robin) refused at max_flows,
 * by a ban, by a deny block, by the first-datagram filter and by a per-prefix limit. ns/op is the median
 * of the timed rounds; bytes/op is measured as scripts/bench-core.ts does (node:v8 total_allocated_bytes:
 * cumulative under V8; under JSC, which restarts it at each collection, in chunks after a forced GC).
 *
 * @module
 */

import process from "node:process";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { parseCidr } from "../core/address.ts";
import type { Listener } from "../core/listener.ts";
import type { LimitsConfig, ProtectionConfig } from "../core/protection.ts";
import { RelayCore } from "../core/relay_core.ts";
import type { ListenerConfig } from "../core/types.ts";
import type { ClientLookup as Lookup } from "../shell/datapath/native/client_lookup.ts";
import type { FlowIndex as Index } from "../shell/datapath/native/flow_index.ts";
import { SOCKADDR_MAX, writeSockaddr } from "../shell/datapath/native/layout.ts";
import { IpText } from "../shell/datapath/native/peers.ts";
import { addr, backend, cluster, config, listener } from "../tests/support/fixtures.ts";

// Imported at run time, so the script also runs in a checkout from before them (`--before`: the old path
// only, for a before figure measured on the old core).
const BEFORE_ONLY = process.argv.includes("--before");
const { ClientLookup } = BEFORE_ONLY
  ? { ClientLookup: null as unknown as typeof Lookup }
  : await import("../shell/datapath/native/client_lookup.ts");
const { FlowIndex } = BEFORE_ONLY
  ? { FlowIndex: null as unknown as typeof Index }
  : await import("../shell/datapath/native/flow_index.ts");
const QUICK = process.argv.includes("--quick");
const ROUNDS = 3;
const OPS = QUICK ? 50_000 : 500_000;
const ALLOC_OPS = QUICK ? 100_000 : 1_000_000;
const ALLOC_CHUNK = QUICK ? 20_000 : 100_000;
const PAYLOAD = new Uint8Array(64).fill(0x61);
const FILTERED = new Uint8Array(64).fill(0x62);

const rt = globalThis as unknown as { Bun?: { version: string; gc(force: boolean): void } };
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
const allocated = () => v8.getHeapStatistics().total_allocated_bytes;

/** Bytes allocated per op of `chunk(n)` (see the module doc). */
function bytesPerOp(chunk: (n: number) => void): number {
  for (let i = 0; i < 5; i++) chunk(ALLOC_CHUNK);
  fullGc?.();
  let bytes = 0, counted = 0;
  if (rt.Bun) {
    for (let done = 0; done < ALLOC_OPS; done += ALLOC_CHUNK) {
      fullGc!();
      const a0 = allocated();
      chunk(ALLOC_CHUNK);
      const a1 = allocated();
      if (a1 >= a0) [bytes, counted] = [bytes + a1 - a0, counted + ALLOC_CHUNK];
    }
  } else {
    const a0 = allocated();
    for (let done = 0; done < ALLOC_OPS; done += ALLOC_CHUNK) chunk(ALLOC_CHUNK);
    [bytes, counted] = [allocated() - a0, ALLOC_OPS];
  }
  return counted > 0 ? bytes / counted : NaN;
}

/** Median ns/op of `chunk(OPS)` over ROUNDS rounds after one warm-up. */
function nsPerOp(chunk: (n: number) => void): number {
  chunk(OPS);
  const t: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const s = performance.now();
    chunk(OPS);
    t.push(((performance.now() - s) * 1e6) / OPS);
  }
  return t.sort((a, b) => a - b)[t.length >> 1];
}

/** `n` client sockaddrs of `family` in one buffer, SOCKADDR_MAX apart. */
function sockaddrs(n: number, family: 4 | 6, mapped = false): Uint8Array {
  const u8 = new Uint8Array(n * SOCKADDR_MAX);
  for (let i = 0; i < n; i++) {
    const a = (i >> 8) & 255, b = i & 255;
    const ip = family === 4 ? `10.1.${a}.${b}` : mapped ? `::ffff:10.1.${a}.${b}` : `2001:db8::${a}:${b}`;
    writeSockaddr(u8, i * SOCKADDR_MAX, { ip, port: 1000 + (i % 7), family });
  }
  return u8;
}

const NO_RATES = { newFlows: 0, datagrams: 0, bytes: 0 };

function core(l: Partial<ListenerConfig>, family: 4 | 6) {
  const c = new RelayCore(
    config([cluster({ backends: [backend("127.0.0.1:9")], frontTimeout: 0, backTimeout: 0 })], [
      listener({ address: addr(family === 4 ? "127.0.0.1:5000" : "[::1]:5000"), maxFlows: 1 << 20, ...l }),
    ]),
    { seed: 1 },
  );
  const lst = c.listener("l") as Listener;
  return {
    c,
    lst,
    nl: { listener: lst, family, flows: BEFORE_ONLY ? null as unknown as Index : new FlowIndex(1) },
  };
}

/** The old receive path: the address as text (IPv4 cached), then fromClient. */
function before(c: RelayCore, lst: Listener, family: 4 | 6, u8: Uint8Array, n: number, data: Uint8Array) {
  const text = new IpText();
  let k = 0;
  return (ops: number) => {
    for (let i = 0; i < ops; i++) {
      const name = k * SOCKADDR_MAX;
      if (++k === n) k = 0;
      const port = (u8[name + 2] << 8) | u8[name + 3];
      const ip = family === 4 ? text.ipv4(u8, name + 4) : text.ipv6(u8, name + 8);
      c.fromClient(lst, ip, port, data, 1000);
    }
  };
}

/** The new receive path: ClientLookup over the sockaddr bytes. */
function after(c: RelayCore, nl: ReturnType<typeof core>["nl"], u8: Uint8Array, n: number, data: Uint8Array) {
  const lookup = new ClientLookup(c);
  let k = 0;
  return (ops: number) => {
    for (let i = 0; i < ops; i++) {
      const name = k * SOCKADDR_MAX;
      if (++k === n) k = 0;
      lookup.fromClient(nl, u8, name, (u8[name + 2] << 8) | u8[name + 3], data, 1000);
    }
  };
}

const ONLY = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : "";
const rows: string[] = [];
function row(what: string, path: string, chunk: (n: number) => void): void {
  if (!what.includes(ONLY)) return;
  const ns = nsPerOp(chunk);
  const b = bytesPerOp(chunk);
  rows.push(`| ${what} | ${path} | ${ns.toFixed(0)} | ${b.toFixed(1)} |`);
}

// The floor: an empty loop over the same sockaddrs (JIT code and feedback count as allocation too).
{
  const u8 = sockaddrs(1024, 6);
  let k = 0, sum = 0;
  row("calibration: empty loop", "", (ops) => {
    for (let i = 0; i < ops; i++) {
      sum += u8[k * SOCKADDR_MAX + 2];
      if (++k === 1024) k = 0;
    }
  });
  if (sum < 0) console.log(sum);
}

// ---- forwarding on established flows ---------------------------------------------------------------------

for (
  const [label, family, mapped] of [["IPv4", 4, false], ["IPv6", 6, false], ["IPv4-mapped", 6, true]] as const
) {
  const u8 = sockaddrs(1024, family, mapped);
  for (const path of ["before", "after"] as const) {
    const { c, lst, nl } = core({}, family);
    if (BEFORE_ONLY && path === "after") continue;
    // Admit every client once (the index fills through the same path).
    if (BEFORE_ONLY) before(c, lst, family, u8, 1024, PAYLOAD)(1024);
    else after(c, nl, u8, 1024, PAYLOAD)(1024);
    const chunk = path === "before"
      ? before(c, lst, family, u8, 1024, PAYLOAD)
      : after(c, nl, u8, 1024, PAYLOAD);
    row(`forward, ${label}`, path === "before" ? "text + fromClient" : "FlowIndex + forwardFlow", chunk);
  }
}

// ---- shedding unknown sources ----------------------------------------------------------------------------

const limits: LimitsConfig = {
  perIp: NO_RATES,
  perPrefix: { ...NO_RATES, newFlows: 1 },
  burstMs: 1000,
  prefixV4: 0,
  prefixV6: 0,
  tableSize: 1024,
  banAfterMs: 0,
  banForMs: 0,
};
const filter: ProtectionConfig = {
  limits: null,
  filter: {
    minLength: 0,
    maxLength: 0,
    match: [{ offset: 0, bytes: Uint8Array.of(0x61), mask: null }],
    regex: "",
  },
  amplification: null,
};
const deny4 = parseCidr("10.0.0.0/8"), deny6 = parseCidr("2001:db8::/32");
if (typeof deny4 === "string" || typeof deny6 === "string") throw new Error("cidr");
const cases: [string, Partial<ListenerConfig>, Uint8Array, boolean][] = [
  ["at max_flows", { maxFlows: 1 }, PAYLOAD, false],
  ["banned", {}, PAYLOAD, true],
  ["deny CIDR", { sources: { reject: ["port0"], deny: [deny4, deny6], allow: [] } }, PAYLOAD, false],
  ["filtered", { protection: filter }, FILTERED, false],
  ["rate_limited", { protection: { limits, filter: null, amplification: null } }, PAYLOAD, false],
];
for (const [label, l, data, ban] of cases) {
  for (const family of [4, 6] as const) {
    const u8 = sockaddrs(65_536, family);
    for (const path of ["before", "after"] as const) {
      if (BEFORE_ONLY && path === "after") continue;
      const { c, lst, nl } = core(l, family);
      if (ban) {
        for (const cidr of ["10.0.0.0/8", "2001:db8::/32"]) {
          c.protection.bans.add({ cidr, ttlMs: 0, reason: "bench", origin: "api" }, 0);
        }
      }
      // One flow from elsewhere holds the max_flows = 1 slot (and spends the limit's one token).
      c.fromClient(lst, family === 4 ? "192.0.2.1" : "2001:db9::1", 1, PAYLOAD, 1000);
      const chunk = path === "before"
        ? before(c, lst, family, u8, 65_536, data)
        : after(c, nl, u8, 65_536, data);
      row(`shed ${label}, IPv${family}`, path === "before" ? "text + fromClient" : "screen", chunk);
    }
  }
}

console.log(
  `runtime: ${
    rt.Bun
      ? `bun ${rt.Bun.version}`
      : `deno ${(globalThis as { Deno?: { version: { deno: string } } }).Deno?.version.deno}`
  }${QUICK ? " (quick)" : ""}`,
);
console.log("| datagram | path | ns/op | bytes/op |");
console.log("| --- | --- | ---: | ---: |");
for (const r of rows) console.log(r);
