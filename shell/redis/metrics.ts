/**
 * Redis figures as the metrics snapshot carries them: one connection's, and several added up (the main
 * thread's connection plus each worker's routing connection).
 *
 * @module
 */

import { sumRecords } from "../relay/aggregate.ts";
import type { RedisMetrics } from "../../core/control_api.ts";
import type { RedisConnection } from "./connection.ts";

/** Figures with every count at zero and no connection. */
export function emptyRedisMetrics(): RedisMetrics {
  return {
    connections: 0,
    connectionsUp: 0,
    breakerOpen: 0,
    breakerTrips: 0,
    connects: 0,
    errors: 0,
    commands: 0,
    failures: 0,
    latencyMs: NaN,
    routing: { ok: 0, empty: 0, invalid: 0, error: 0, cached: 0 },
    disconnects: { closed: 0, ignored: 0 },
    fleetChanges: { applied: 0, rejected: 0 },
  };
}

/** One connection's figures (no routing, disconnect or fleet counts). */
export function connectionMetrics(c: RedisConnection): RedisMetrics {
  const s = c.stats;
  return {
    ...emptyRedisMetrics(),
    connections: 1,
    // A connection whose breaker is open is up as a socket but not answering: not counted as up.
    connectionsUp: s.connected && c.breaker.state === "closed" ? 1 : 0,
    breakerOpen: c.breaker.state === "closed" ? 0 : 1,
    breakerTrips: c.breaker.trips,
    connects: s.connects,
    errors: s.errors,
    commands: s.commands,
    failures: s.failures,
    latencyMs: s.latencyMs,
  };
}

/** The larger latency; NaN (no sample yet) only when both are. */
function slower(a: number, b: number): number {
  if (a !== a) return b;
  if (b !== b) return a;
  return Math.max(a, b);
}

/** Figures added up: counts summed, latency the slowest; undefined when no part has any. */
export function mergeRedisMetrics(parts: readonly (RedisMetrics | undefined)[]): RedisMetrics | undefined {
  let out: RedisMetrics | undefined;
  for (const p of parts) {
    if (p === undefined) continue;
    out = out === undefined ? p : {
      connections: out.connections + p.connections,
      connectionsUp: out.connectionsUp + p.connectionsUp,
      breakerOpen: out.breakerOpen + p.breakerOpen,
      breakerTrips: out.breakerTrips + p.breakerTrips,
      connects: out.connects + p.connects,
      errors: out.errors + p.errors,
      commands: out.commands + p.commands,
      failures: out.failures + p.failures,
      latencyMs: slower(out.latencyMs, p.latencyMs),
      routing: sumRecords(out.routing, p.routing),
      disconnects: sumRecords(out.disconnects, p.disconnects),
      fleetChanges: sumRecords(out.fleetChanges, p.fleetChanges),
    };
  }
  return out;
}
