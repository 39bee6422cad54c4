/**
 * TCP admission: a connection is admitted like a new flow (same clusters, balancers, caps, source policy,
 * bans and per-source limits) and pinned to a backend; its end is counted and may be a passive health
 * failure. RelayCore keeps the state and passes the narrow view this needs (TcpAdmissionHost).
 *
 * @module
 */

import { affinityHash } from "./affinity.ts";
import { type AdmissionOrderHost, refusal } from "./admission_order.ts";
import type { Choice, Cluster } from "./cluster.ts";
import { Connection } from "./connection.ts";
import type { CoreHealth } from "./core_health.ts";
import { Drop } from "./drops.ts";
import { FD_PER_CONNECTION } from "./fd_budget.ts";
import { isTcpListener, type Listener } from "./listener.ts";
import type { ConnectionEnd } from "./reasons.ts";
import { readIp } from "./ip_words.ts";
import type { Direction } from "./send_failure.ts";

/** Scratch words for the client's address (admission is synchronous: one at a time). */
const WORDS = new Uint32Array(4);

/** What TCP admission needs of its core (the shared checks' needs, and more). */
export interface TcpAdmissionHost extends AdmissionOrderHost {
  readonly health: CoreHealth;
  readonly connections: Set<Connection>;
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
  // A connection on a UDP listener is a shell's mistake: counted, never a connection on UDP counters.
  if (!isTcpListener(listener)) {
    drops.invalid++;
    return Drop.Invalid;
  }
  const cluster = listener.cluster;
  if (cluster === null || cluster.backends.length === 0) {
    drops.no_backend++;
    return Drop.NoBackend;
  }
  // Bans and limits, descriptors, shed, source policy: the order UDP shares (core/admission_order.ts).
  const refused = refusal(
    host,
    listener,
    readIp(ip, WORDS),
    WORDS,
    ip,
    port,
    NO_DATA,
    FD_PER_CONNECTION,
    now,
  );
  if (refused !== null) return refused;
  host.protection.top.flows.add(ip, 1);
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

/** Counts `n` bytes of `conn` moved `direction` (see RelayCore.connectionBytes). */
export function countConnectionBytes(conn: Connection, direction: Direction, n: number): void {
  if (direction === "to_backend") {
    conn.bytesUp += n;
    conn.listener.counters.bytesUp += n;
    conn.backend.counters.bytesTo += n;
  } else {
    conn.bytesDown += n;
    conn.listener.counters.bytesDown += n;
    conn.backend.counters.bytesFrom += n;
  }
}
