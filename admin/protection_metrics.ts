/**
 * Edge protection's metric families: declared here once, spread into METRICS, filled by `collectProtection`.
 * No per-source label: who is hot is `GET /api/v1/top`, so cardinality stays bounded under any flood.
 *
 * @module
 */

import type { MetricDoc } from "./metric_names.ts";
import type { ProtectionMetrics } from "../core/protection_api.ts";

/** The protection families (banned drops are `ferry_listener_drops_total{reason="banned"}`). */
export const PROTECTION_METRICS = [
  { name: "ferry_bans", type: "gauge", labels: [], help: "Bans in force (API, automatic and fleet)." },
  {
    name: "ferry_auto_bans_total",
    type: "counter",
    labels: [],
    help: "Automatic bans placed because a source stayed over a limit for ban_after.",
  },
  {
    name: "ferry_limiter_evictions_total",
    type: "counter",
    labels: [],
    help: "Sources the per-source limiter tables forgot to make room (raise table_size if it climbs fast).",
  },
] as const satisfies readonly MetricDoc[];

/** Adds the protection samples through the collector's `add`. */
export function collectProtection(
  p: ProtectionMetrics,
  add: (
    name: (typeof PROTECTION_METRICS)[number]["name"],
    labels: Record<string, string>,
    value: number,
  ) => void,
): void {
  add("ferry_bans", {}, p.bans);
  add("ferry_auto_bans_total", {}, p.autoBans);
  add("ferry_limiter_evictions_total", {}, p.limiterEvictions);
}
