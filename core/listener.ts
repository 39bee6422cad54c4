/**
 * A listener at run time: its config, its cluster, its flow table and its counters.
 *
 * The flow table is keyed by client IP string, then port: two lookups that build no string, so the
 * forwarding path finds a flow without allocating.
 *
 * @module
 */

import type { Cluster } from "./cluster.ts";
import type { Flow } from "./flow.ts";
import { type CountersFor, newListenerCounters, type Protocol } from "./counters.ts";
import { compileSourcePolicy } from "./source_policy.ts";
import type { ListenerConfig } from "./types.ts";
import { hashString } from "./hash.ts";
import { ListenerProtection } from "./protection.ts";
import type { SocketAddress } from "./address.ts";

/** The drop codes and counters, declared in the leaf core/drops.ts; re-exported for existing importers. */
export { Drop, type DropCounters } from "./drops.ts";
/** The listener counters, declared in the leaf core/counters.ts; re-exported for existing importers. */
export { type ListenerCounters, newListenerCounters } from "./counters.ts";

/**
 * One listener. `P` is its protocol when the code knows it: a UDP listener's counters are UDP ones, a TCP
 * listener's TCP ones (a listener never changes protocol: a config that changes it replaces the listener).
 */
export class Listener<P extends Protocol = Protocol> {
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
  /** Its counters, with only the fields its protocol declares (core/counters.ts). */
  readonly counters: CountersFor<P>;
  sources: ReturnType<typeof compileSourcePolicy>;
  /** Limits, filter and amplification guard; null when the config turns none on. */
  protection: ListenerProtection | null;

  /** A listener from its config and its cluster (null if the cluster is missing). */
  constructor(config: ListenerConfig, cluster: Cluster | null) {
    this.config = config;
    this.cluster = cluster;
    this.localAddress = config.address;
    this.counters = newListenerCounters(config.protocol) as CountersFor<P>;
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

/** A UDP listener: flows, datagrams. */
export type UdpListener = Listener<"udp">;
/** A TCP listener: connections. */
export type TcpListener = Listener<"tcp">;

/** Whether `l` is a UDP listener (its counters are then UDP ones). */
export function isUdpListener(l: Listener): l is UdpListener {
  return l.config.protocol === "udp";
}

/** Whether `l` is a TCP listener (its counters are then TCP ones). */
export function isTcpListener(l: Listener): l is TcpListener {
  return l.config.protocol === "tcp";
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
