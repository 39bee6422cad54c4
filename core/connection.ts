/**
 * A TCP connection as the core tracks it: admitted like a flow (same clusters, balancers, caps and source
 * policy), but its bytes move in the shell and its timeouts are socket timeouts, so the core keeps only
 * what admission, balancing and the admin API need.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import type { TcpListener } from "./listener.ts";
import type { ConnectionEnd } from "./reasons.ts";

/** Why a connection ended, declared in the leaf core/reasons.ts; re-exported for existing importers. */
export type { ConnectionEnd } from "./reasons.ts";

/** One proxied TCP connection. */
export class Connection {
  readonly id: number;
  readonly listener: TcpListener;
  readonly clientIp: string;
  readonly clientPort: number;
  readonly backend: Backend;
  /** The cluster it was admitted to. */
  readonly cluster: string;
  readonly openedAt: number;
  /** Bytes client → backend and backend → client; the shell adds to them. */
  bytesUp = 0;
  bytesDown = 0;
  /** Set once ended. */
  end: ConnectionEnd | null = null;
  /** The shell's resource (its sockets). */
  handle: unknown = null;

  /** A connection admitted at `now`. */
  constructor(
    id: number,
    listener: TcpListener,
    ip: string,
    port: number,
    backend: Backend,
    cluster: string,
    now: number,
  ) {
    this.id = id;
    this.listener = listener;
    this.clientIp = ip;
    this.clientPort = port;
    this.backend = backend;
    this.cluster = cluster;
    this.openedAt = now;
  }
}
