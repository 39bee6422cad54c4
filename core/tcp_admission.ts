/**
 * TCP admission: a connection is admitted like a new flow (same clusters, balancers, caps, source policy,
 * bans and per-source limits) and pinned to a backend; its end is counted and may be a passive health
 * failure. RelayCore keeps the state and passes the narrow view this needs (TcpAdmissionHost).
 *
 * @module
 */

import { affinityHash } from "./affinity.ts";
import { admissionGuard, type ProtectionState } from "./admission_guard.ts";
import type { Choice, Cluster } from "./cluster.ts";
import { Connection } from "./connection.ts";
import type { CoreHealth } from "./core_health.ts";
import { Drop } from "./drops.ts";
import { FD_PER_CONNECTION } from "./fd_budget.ts";
import type { Listener } from "./listener.ts";
import type { ConnectionEnd } from "./reasons.ts";

/** What TCP admission needs of its core. */
export interface TcpAdmissionHost {
  readonly protection: ProtectionState;
  readonly health: CoreHealth;
  readonly connections: Set<Connection>;
  /** The flow limit of listeners whose max_flows is 0. */
  readonly autoMaxFlows: number;
  /** Whether the whole core is draining. */
  draining(): boolean;
  /** Whether the descriptor budget has room for `cost` more (reports a refusal episode once). */
  descriptorsFor(cost: number): boolean;
  /** A backend of `cluster` for `keyHash` (reports a fail-open episode once), or null. */
  choose(cluster: Cluster, keyHash: number, now: number): Choice | null;
  /** The next flow or connection id. */
  nextId(): number;
  /** Forgets a removed listener whose last flow or connection ended. */
  forgetListener(listener: Listener): void;
}

/** The "first datagram" of a TCP connection for the admission guard: none. */
const NO_DATA = new Uint8Array(0);

/** Admits a TCP client of `listener` (see RelayCore.openConnection). */
export function admitConnection(
  host: TcpAdmissionHost,
  listener: Listener,
  ip: string,
  port: number,
  now: number,
): Connection | Drop {
  const drops = listener.counters.drops;
  const cluster = listener.cluster;
  if (cluster === null || cluster.backends.length === 0) {
    drops.no_backend++;
    return Drop.NoBackend;
  }
  const limit = listener.config.maxFlows > 0 ? listener.config.maxFlows : host.autoMaxFlows;
  // The process-wide descriptor budget first: with max_flows = 0 a listener's limit is that budget.
  if (!host.draining() && !listener.draining && !host.descriptorsFor(FD_PER_CONNECTION)) {
    drops.fd_limit++;
    return Drop.Shed;
  }
  if (host.draining() || listener.draining || listener.flows >= limit) {
    drops.shed++;
    host.protection.top.drops.add(ip, 1); // as a UDP flow shed: top talkers rank both protocols alike
    return Drop.Shed;
  }
  if (listener.sources.check(ip, port) !== "ok") {
    drops.invalid++;
    return Drop.Invalid;
  }
  // Bans and the per-source limits (new connections count as new flows; no filter on TCP).
  const guarded = admissionGuard(host.protection, listener, ip, NO_DATA, now);
  if (guarded !== null) return guarded;
  host.protection.top.flows.add(ip, 1); // a new connection is a new flow in the top-talker ranking
  if (now >= host.health.expiry) host.health.tick(now);
  const choice = host.choose(cluster, affinityHash(cluster.config, ip, port), now);
  if (choice === null) {
    drops.no_backend++;
    return Drop.NoBackend;
  }
  const conn = new Connection(host.nextId(), listener, ip, port, choice.backend, cluster.config.name, now);
  listener.flows++;
  listener.counters.connectionsTotal++;
  choice.backend.flows++;
  choice.backend.counters.flowsTotal++;
  host.connections.add(conn);
  return conn;
}

/** Ends a TCP connection (see RelayCore.endConnection). */
export function endConnectionIn(
  host: TcpAdmissionHost,
  conn: Connection,
  end: ConnectionEnd,
  now: number,
): boolean {
  if (conn.end !== null) return false;
  conn.end = end;
  const l = conn.listener;
  l.flows--;
  l.counters.connectionsEnded[end]++;
  conn.backend.flows--;
  if (end === "refused") conn.backend.counters.refusals++;
  if (end === "refused" || end === "connect_timeout") {
    host.health.passiveFailure(
      conn.cluster,
      conn.backend,
      end === "refused" ? "connect refused" : "connect timeout",
      now,
    );
  }
  host.connections.delete(conn);
  if (l.removed && l.flows === 0) host.forgetListener(l);
  return true;
}
