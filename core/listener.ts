/**
 * A listener at run time: its config, its cluster, its flow table and its counters.
 *
 * The flow table is keyed by client IP string, then port: two lookups that build no string, so the
 * forwarding path finds a flow without allocating.
 *
 * @module
 */

import type { Cluster } from "./cluster.ts";
import type { CloseReason, Flow } from "./flow.ts";
import type { ConnectionEnd } from "./connection.ts";
import { compileSourcePolicy } from "./source_policy.ts";
import type { ListenerConfig } from "./types.ts";
import { hashString } from "./hash.ts";
import { ListenerProtection } from "./protection.ts";
import type { SocketAddress } from "./address.ts";

/** Why a datagram was dropped. Small integers, returned by `RelayCore.fromClient` instead of a flow. */
export const Drop = {
  /** Larger than the listener's max_datagram_size. */
  Truncated: 0,
  /** The listener has no cluster, the cluster no backends, or none usable with fail_open = false. */
  NoBackend: 1,
  /** Empty datagram, or a source the listener's policy refuses. */
  Invalid: 2,
  /** A new client while draining or at max_flows. */
  Shed: 3,
  /** Over a per-source or per-prefix limit (`[listeners.limits]`). */
  RateLimited: 4,
  /** A new flow whose first datagram does not match `[listeners.filter]`. */
  Filtered: 5,
  /** A new flow from a banned source. */
  Banned: 6,
} as const;
/** One of the Drop codes. */
export type Drop = typeof Drop[keyof typeof Drop];

/** Drop counters of a listener, by reason. */
export interface DropCounters {
  truncated: number;
  no_backend: number;
  invalid: number;
  shed: number;
  /** A datagram replaced in the one-slot buffer while its flow awaited a backend. */
  pending_replaced: number;
  /** A send that failed in the shell (either direction). */
  send_error: number;
  /** A backend reply for a flow that had already closed. */
  late: number;
  /** A new flow or connection refused because the process's descriptor budget was full. */
  fd_limit: number;
  /** Edge protection: over a source limit, refused by the first-datagram filter, banned source. */
  rate_limited: number;
  filtered: number;
  banned: number;
  /** A backend reply held back by the amplification guard. */
  amplified: number;
}

/** Counters of one listener. Datagram and byte figures are payload only (no PROXY header). */
export interface ListenerCounters {
  /** Client datagrams accepted and their bytes. */
  datagramsIn: number;
  bytesIn: number;
  /** Backend replies accepted for the client and their bytes. */
  datagramsOut: number;
  bytesOut: number;
  flowsCreated: number;
  flowsClosed: Record<CloseReason, number>;
  drops: DropCounters;
  /** TCP: connections admitted, ended by reason, and bytes each way. */
  connectionsTotal: number;
  connectionsEnded: Record<ConnectionEnd, number>;
  bytesUp: number;
  bytesDown: number;
  /**
   * Replies sent (and counted out) whose client had gone: the kernel answered them with ICMP port
   * unreachable (the runtime paths that see it, Bun's). Not a drop: the reply left.
   */
  clientUnreachable: number;
}

/** Fresh zeroed listener counters. */
export function newListenerCounters(): ListenerCounters {
  return {
    datagramsIn: 0,
    bytesIn: 0,
    datagramsOut: 0,
    bytesOut: 0,
    flowsCreated: 0,
    flowsClosed: { idle: 0, requests: 0, responses: 0, drain: 0, aborted: 0, disconnected: 0 },
    drops: {
      truncated: 0,
      no_backend: 0,
      invalid: 0,
      shed: 0,
      pending_replaced: 0,
      send_error: 0,
      late: 0,
      fd_limit: 0,
      rate_limited: 0,
      filtered: 0,
      banned: 0,
      amplified: 0,
    },
    connectionsTotal: 0,
    connectionsEnded: { closed: 0, idle: 0, refused: 0, connect_timeout: 0, error: 0, drain: 0, aborted: 0 },
    bytesUp: 0,
    bytesDown: 0,
    clientUnreachable: 0,
  };
}

/** One listener. */
export class Listener {
  config: ListenerConfig;
  cluster: Cluster | null;
  /** The address the PROXY header names as destination; the shell may set the bound address. */
  localAddress: SocketAddress;
  /** Client IP → client port → flow, for flows that still take client datagrams. */
  readonly table = new Map<string, Map<number, Flow>>();
  /** Live flows (not Closed), attached or Closing; for a TCP listener, open connections. */
  flows = 0;
  draining = false;
  /** Removed from the config: draining, and forgotten once its last flow closes. */
  removed = false;
  readonly counters: ListenerCounters = newListenerCounters();
  sources: ReturnType<typeof compileSourcePolicy>;
  /** Limits, filter and amplification guard; null when the config turns none on. */
  protection: ListenerProtection | null;

  /** A listener from its config and its cluster (null if the cluster is missing). */
  constructor(config: ListenerConfig, cluster: Cluster | null) {
    this.config = config;
    this.cluster = cluster;
    this.localAddress = config.address;
    this.sources = compileSourcePolicy(config.sources);
    this.protection = compileProtection(config, null);
  }

  /** Replaces the config: limits and source policy apply to new flows; existing ones are untouched. */
  reconfigure(config: ListenerConfig, cluster: Cluster | null): void {
    if (config.address.ip !== this.config.address.ip || config.address.port !== this.config.address.port) {
      this.localAddress = config.address;
    }
    this.config = config;
    this.cluster = cluster;
    this.sources = compileSourcePolicy(config.sources);
    this.protection = compileProtection(config, this.protection);
  }

  /** The attached flow of a client, if any. Allocation-free. */
  lookup(ip: string, port: number): Flow | undefined {
    const ports = this.table.get(ip);
    return ports === undefined ? undefined : ports.get(port);
  }
}

/**
 * A listener's protection, or null when all of it is off. An unchanged config (same object, as a reload
 * of kept settings passes) keeps the running buckets; a changed one starts afresh.
 */
function compileProtection(
  config: ListenerConfig,
  old: ListenerProtection | null,
): ListenerProtection | null {
  const p = config.protection;
  if (p === undefined || (p.limits === null && p.filter === null && p.amplification === null)) return null;
  if (old !== null && old.config === p) return old;
  return new ListenerProtection(p, hashString(config.name, 0x7072_6f74));
}
