/**
 * `GET /clients`: flows grouped by client address ("ip:port", as a flow's client), ranked worst first,
 * since an operator asks "who is suffering or costing most?": by priority (the highest score, i.e. the worst
 * flow, first), by loss (highest first) or by bandwidth (highest first). Ties go by client address.
 *
 * @module
 */

import type { FlowInfo } from "../core/control_api.ts";

/** What `GET /clients?by=` ranks on. */
export const CLIENT_RANKINGS = ["priority", "loss", "bandwidth"] as const;

/** One of {@link CLIENT_RANKINGS}. */
export type ClientRanking = (typeof CLIENT_RANKINGS)[number];

/** One client's flows, aggregated. */
export interface ClientInfo {
  /** "ip:port". */
  readonly client: string;
  readonly flows: number;
  readonly listeners: string[];
  readonly backends: string[];
  /** Sum over its flows, bytes/s. */
  readonly bandwidth: number;
  /** The worst (highest) of its flows' latencies, or null before any sample. */
  readonly latencyMs: number | null;
  /** The worst (highest) of its flows' jitter. */
  readonly jitterMs: number;
  /** The worst (highest) of its flows' loss. */
  readonly lossPermille: number;
  /** The worst (highest) of its flows' priority scores (lower is better). */
  readonly priority: number;
  /** Its oldest flow's age. */
  readonly ageSeconds: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly datagramsIn: number;
  readonly datagramsOut: number;
}

function merge(a: ClientInfo, f: FlowInfo): ClientInfo {
  const latencies = [a.latencyMs, f.latencyMs].filter((x): x is number => x !== null);
  return {
    client: a.client,
    flows: a.flows + 1,
    listeners: a.listeners.includes(f.listener) ? a.listeners : [...a.listeners, f.listener],
    backends: f.backend === null || a.backends.includes(f.backend) ? a.backends : [...a.backends, f.backend],
    bandwidth: a.bandwidth + f.bandwidth,
    latencyMs: latencies.length === 0 ? null : Math.max(...latencies),
    jitterMs: Math.max(a.jitterMs, f.jitterMs),
    lossPermille: Math.max(a.lossPermille, f.lossPermille),
    priority: Math.max(a.priority, f.priority),
    ageSeconds: Math.max(a.ageSeconds, f.ageSeconds),
    bytesIn: a.bytesIn + f.bytesIn,
    bytesOut: a.bytesOut + f.bytesOut,
    datagramsIn: a.datagramsIn + f.datagramsIn,
    datagramsOut: a.datagramsOut + f.datagramsOut,
  };
}

const EMPTY = {
  flows: 0,
  listeners: [],
  backends: [],
  bandwidth: 0,
  latencyMs: null,
  jitterMs: 0,
  lossPermille: 0,
  priority: -Infinity,
  ageSeconds: 0,
  bytesIn: 0,
  bytesOut: 0,
  datagramsIn: 0,
  datagramsOut: 0,
};

/** Groups flows by client and returns the `top` worst by `by` (highest first). */
export function topClients(flows: readonly FlowInfo[], by: ClientRanking, top: number): ClientInfo[] {
  const byClient = new Map<string, ClientInfo>();
  for (const f of flows) {
    byClient.set(f.client, merge(byClient.get(f.client) ?? { client: f.client, ...EMPTY }, f));
  }
  const key = (
    c: ClientInfo,
  ) => (by === "priority" ? c.priority : by === "loss" ? c.lossPermille : c.bandwidth);
  return [...byClient.values()]
    .sort((a, b) => key(b) - key(a) || (a.client < b.client ? -1 : a.client > b.client ? 1 : 0))
    .slice(0, top);
}
