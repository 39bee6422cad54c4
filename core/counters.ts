/**
 * The counter shape of one listener (UDP flows and TCP connections together, as today) and its zeroed
 * value: a leaf module (it imports only the leaf reasons and drops), so nothing needs core/listener.ts to
 * count.
 *
 * @module
 */

import type { CloseReason, ConnectionEnd } from "./reasons.ts";
import { type DropCounters, zeroDrops } from "./drops.ts";

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
    drops: zeroDrops(),
    connectionsTotal: 0,
    connectionsEnded: {
      closed: 0,
      idle: 0,
      refused: 0,
      connect_timeout: 0,
      error: 0,
      drain: 0,
      aborted: 0,
      disconnected: 0,
    },
    bytesUp: 0,
    bytesDown: 0,
    clientUnreachable: 0,
  };
}
