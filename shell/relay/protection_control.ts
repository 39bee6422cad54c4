/**
 * Bans and top talkers for the admin API, over one relay core (`protectionCall`) and over a pool of workers
 * (`PoolProtection`, which asks every worker and merges: a ban is placed on all of them, hits and counts
 * are summed).
 *
 * Core times are the platform clock (monotonic ms); the API shows wall-clock times, converted here.
 *
 * @module
 */

import type {
  BanInfo,
  BanInput,
  ProtectionControl,
  ProtectionMetrics,
  TopEntry,
  TopRanking,
  TopSnapshot,
} from "../../core/protection_api.ts";
import type { Ban } from "../../core/ban_table.ts";
import { type SpaceSaving, TOP_DIMENSIONS } from "../../core/heavy_hitters.ts";
import type { RelayCore } from "../../core/relay_core.ts";

/** One protection request, as a worker receives it. */
export type ProtectionOp =
  | { readonly kind: "bans" }
  | { readonly kind: "add"; readonly ban: BanInput }
  | { readonly kind: "remove"; readonly cidr: string }
  | { readonly kind: "top"; readonly n: number; readonly reset: boolean }
  | { readonly kind: "metrics" }
  | { readonly kind: "takeAutoBans" };

/** The clocks a conversion needs: the core's (monotonic) and the wall clock, both in ms. */
export interface Clocks {
  readonly clock: () => number;
  readonly wall: () => number;
}

/** A core ban as the API shows it. */
export function banInfo(ban: Ban, clocks: Clocks): BanInfo {
  const now = clocks.clock();
  const wall = (t: number) => new Date(clocks.wall() - (now - t)).toISOString();
  const finite = Number.isFinite(ban.expiresAt);
  return {
    cidr: ban.cidr,
    reason: ban.reason,
    origin: ban.origin,
    createdAt: wall(ban.createdAt),
    expiresAt: finite ? wall(ban.expiresAt) : null,
    ttlSeconds: finite ? Math.max(0, Math.round((ban.expiresAt - now) / 1000)) : null,
    hits: ban.hits,
  };
}

function ranking(s: SpaceSaving, n: number): TopRanking {
  return {
    total: s.total,
    maxError: s.maxError,
    top: s.top(n).map((h) => ({ source: h.key, count: h.count, error: h.error })),
  };
}

/** Answers one protection request on `core`. */
export function protectionCall(core: RelayCore, clocks: Clocks, op: ProtectionOp): unknown {
  const p = core.protection;
  const now = clocks.clock();
  switch (op.kind) {
    case "bans":
      return p.bans.list(now).map((b) => banInfo(b, clocks));
    case "add": {
      const ban = p.bans.add({ ...op.ban, origin: op.ban.origin ?? "api" }, now);
      if (typeof ban === "string") throw new Error(ban);
      return banInfo(ban, clocks);
    }
    case "remove":
      return p.bans.remove(op.cidr);
    case "top": {
      const t = core.topTalkers();
      const snapshot: TopSnapshot = {
        since: new Date(clocks.wall() - (now - t.since)).toISOString(),
        capacity: t.datagrams.k,
        datagrams: ranking(t.datagrams, op.n),
        bytes: ranking(t.bytes, op.n),
        flows: ranking(t.flows, op.n),
        drops: ranking(t.drops, op.n),
      };
      if (op.reset) t.reset(now);
      return snapshot;
    }
    case "takeAutoBans":
      return p.autoBans.splice(0).map((b) => banInfo(b, clocks));
    case "metrics": {
      let evictions = 0;
      for (const l of core.listeners()) {
        evictions += (l.protection?.perIp?.evictions ?? 0) + (l.protection?.perPrefix?.evictions ?? 0);
      }
      p.bans.expire(now);
      const m: ProtectionMetrics = {
        bans: p.bans.size,
        autoBans: p.autoBanCount,
        limiterEvictions: evictions,
      };
      return m;
    }
  }
}

/** Protection control of one relay core. */
export function coreProtection(core: () => RelayCore, clocks: Clocks): ProtectionControl {
  const call = <T>(op: ProtectionOp) => protectionCall(core(), clocks, op) as T;
  return {
    bans: () => call<BanInfo[]>({ kind: "bans" }),
    addBan: (ban) => call<BanInfo>({ kind: "add", ban }),
    removeBan: (cidr) => call<boolean>({ kind: "remove", cidr }),
    top: (n, reset) => call<TopSnapshot>({ kind: "top", n, reset }),
    metrics: () => call<ProtectionMetrics>({ kind: "metrics" }),
    takeAutoBans: () => call<BanInfo[]>({ kind: "takeAutoBans" }),
  };
}

function mergeRanking(parts: readonly TopRanking[], n: number): TopRanking {
  const by = new Map<string, { count: number; error: number }>();
  for (const p of parts) {
    for (const e of p.top) {
      const m = by.get(e.source) ?? { count: 0, error: 0 };
      m.count += e.count;
      m.error += e.error;
      by.set(e.source, m);
    }
  }
  // A source a worker did not list may still have up to that worker's maxError there: the bounds add up.
  const maxError = parts.reduce((s, p) => s + p.maxError, 0);
  const top: TopEntry[] = [...by].map(([source, m]) => ({ source, count: m.count, error: m.error }))
    .sort((a, b) => b.count - a.count || (a.source < b.source ? -1 : 1)).slice(0, n);
  return { total: parts.reduce((s, p) => s + p.total, 0), maxError, top };
}

/** Merges the workers' bans: one entry per block, hits summed. */
export function mergeBans(parts: readonly BanInfo[][]): BanInfo[] {
  const by = new Map<string, BanInfo>();
  for (const list of parts) {
    for (const b of list) {
      const seen = by.get(b.cidr);
      by.set(b.cidr, seen === undefined ? b : { ...seen, hits: seen.hits + b.hits });
    }
  }
  return [...by.values()];
}

/** Protection control over workers: `call` asks every worker and returns their answers. */
export function poolProtection(call: (op: ProtectionOp) => Promise<unknown[]>): ProtectionControl {
  return {
    bans: async () => mergeBans(await call({ kind: "bans" }) as BanInfo[][]),
    addBan: async (ban) => mergeBans([(await call({ kind: "add", ban })) as BanInfo[]])[0],
    removeBan: async (cidr) => ((await call({ kind: "remove", cidr })) as boolean[]).some((r) => r),
    top: async (n, reset) => {
      // Each worker's whole summary, so the merged top n is right even where workers rank differently.
      const parts = (await call({ kind: "top", n: 1_000_000, reset })) as TopSnapshot[];
      const first = parts[0];
      const out: Record<string, TopRanking> = {};
      for (const d of TOP_DIMENSIONS) out[d] = mergeRanking(parts.map((p) => p[d]), n);
      return {
        since: parts.map((p) => p.since).sort()[0] ?? first.since,
        capacity: first.capacity,
        datagrams: out.datagrams,
        bytes: out.bytes,
        flows: out.flows,
        drops: out.drops,
      };
    },
    takeAutoBans: async () => mergeBans((await call({ kind: "takeAutoBans" })) as BanInfo[][]),
    metrics: async () => {
      const parts = (await call({ kind: "metrics" })) as ProtectionMetrics[];
      return {
        bans: Math.max(0, ...parts.map((p) => p.bans)),
        autoBans: parts.reduce((s, p) => s + p.autoBans, 0),
        limiterEvictions: parts.reduce((s, p) => s + p.limiterEvictions, 0),
      };
    },
  };
}
