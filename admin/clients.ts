/**
 * `GET /clients`: flows and TCP connections grouped by client address ("ip:port", as a flow's client),
 * ranked worst first (the quality figures are the UDP flows'; a TCP connection adds its count and bytes),
 * since an operator asks "who is suffering or costing most?": by priority (the highest score, i.e. the worst
 * flow, first), by loss (the worst of Ferry's drops, unanswered requests and sequence loss, highest first),
 * by latency (highest first; clients without a sample last) or by bandwidth (highest first). Ties go by
 * client address.
 *
 * @module
 */

import type { FlowInfo, UdpFlowInfo } from "../core/control_api.ts";

/** What `GET /clients?by=` ranks on. */
export const CLIENT_RANKINGS = ["priority", "loss", "latency", "bandwidth"] as const;

/** One of {@link CLIENT_RANKINGS}. */
export type ClientRanking = (typeof CLIENT_RANKINGS)[number];

/** One client's flows (and TCP connections), aggregated. */
export interface ClientInfo {
  /** "ip:port". */
  readonly client: string;
  /** Its UDP flows; the quality figures below are over these. */
  readonly flows: number;
  /** Its open TCP connections. */
  readonly connections: number;
  /** Over its TCP connections: bytes client → backend and backend → client. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly listeners: string[];
  readonly backends: string[];
  /** Sum over its flows, bytes/s. */
  readonly bandwidth: number;
  /** The worst (highest) of its flows' latencies, or null before any sample. */
  readonly latencyMs: number | null;
  /** The worst (highest) of its flows' jitter. */
  readonly jitterMs: number;
  /** The worst (highest) of its flows' own-drop ratio (Ferry's drops). */
  readonly lossPermille: number;
  /** The worst (highest) of its flows' unanswered ratio. */
  readonly unansweredPermille: number;
  /** The worst of its flows' drops, unanswered and sequence loss: what `by=loss` ranks on. */
  readonly worstLossPermille: number;
  /** The worst (highest) of its flows' priority scores (lower is better). */
  readonly priority: number;
  /** Its oldest flow's or connection's age. */
  readonly ageSeconds: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly datagramsIn: number;
  readonly datagramsOut: number;
}

/** The worst loss figure a flow reports: drops, unanswered, sequence loss either way. */
export function worstLoss(f: UdpFlowInfo): number {
  const s = f.sequence;
  return Math.max(
    f.lossPermille,
    f.dropPermille ?? 0,
    f.unansweredPermille ?? 0,
    s ? s.up.lossPermille : 0,
    s ? s.down.lossPermille : 0,
  );
}

/** The names both kinds share, added to a client's. */
function mergeCommon(a: ClientInfo, f: FlowInfo): ClientInfo {
  return {
    ...a,
    listeners: a.listeners.includes(f.listener) ? a.listeners : [...a.listeners, f.listener],
    backends: f.backend === null || a.backends.includes(f.backend) ? a.backends : [...a.backends, f.backend],
    ageSeconds: Math.max(a.ageSeconds, f.ageSeconds),
  };
}

function merge(client: ClientInfo, f: FlowInfo): ClientInfo {
  const a = mergeCommon(client, f);
  if (f.protocol === "tcp") {
    return {
      ...a,
      connections: a.connections + 1,
      bytesUp: a.bytesUp + f.bytesUp,
      bytesDown: a.bytesDown + f.bytesDown,
    };
  }
  const latencies = [a.latencyMs, f.latencyMs].filter((x): x is number => x !== null);
  return {
    ...a,
    flows: a.flows + 1,
    bandwidth: a.bandwidth + f.bandwidth,
    latencyMs: latencies.length === 0 ? null : Math.max(...latencies),
    jitterMs: Math.max(a.jitterMs, f.jitterMs),
    lossPermille: Math.max(a.lossPermille, f.lossPermille),
    unansweredPermille: Math.max(a.unansweredPermille, f.unansweredPermille ?? 0),
    worstLossPermille: Math.max(a.worstLossPermille, worstLoss(f)),
    priority: Math.max(a.priority, f.priority),
    bytesIn: a.bytesIn + f.bytesIn,
    bytesOut: a.bytesOut + f.bytesOut,
    datagramsIn: a.datagramsIn + f.datagramsIn,
    datagramsOut: a.datagramsOut + f.datagramsOut,
  };
}

const EMPTY = {
  flows: 0,
  connections: 0,
  bytesUp: 0,
  bytesDown: 0,
  listeners: [],
  backends: [],
  bandwidth: 0,
  latencyMs: null,
  jitterMs: 0,
  lossPermille: 0,
  unansweredPermille: 0,
  worstLossPermille: 0,
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
  const key = (c: ClientInfo) =>
    by === "priority"
      ? c.priority
      : by === "loss"
      ? c.worstLossPermille
      : by === "latency"
      ? (c.latencyMs ?? -Infinity)
      : c.bandwidth;
  // A client with TCP connections only has no quality figures: it scores as nothing known wrong (0).
  const clients = [...byClient.values()].map((c) => c.flows === 0 ? { ...c, priority: 0 } : c);
  return clients
    .sort((a, b) => compare(key(b), key(a)) || (a.client < b.client ? -1 : a.client > b.client ? 1 : 0))
    .slice(0, top);
}

/** x − y as a sort key that survives two infinities (clients without a latency sample tie). */
function compare(x: number, y: number): number {
  return x === y ? 0 : x - y;
}
