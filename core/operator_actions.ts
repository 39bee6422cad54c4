/**
 * Operator actions over a core's flows and TCP connections: close a client's, a backend's, or every flow
 * of a listener; drain a listener. Each takes the live flows (or connections) and the core's `close`, and works on a copy
 * (closing changes the set).
 *
 * @module
 */

import { sameIp } from "./address.ts";
import type { Connection } from "./connection.ts";
import type { Flow } from "./flow.ts";
import type { Listener } from "./listener.ts";
import type { CloseReason, ConnectionEnd } from "./reasons.ts";

/** How a core ends one TCP connection (idempotent: false if it had already ended). */
export type CloseConnection = (conn: Connection, end: ConnectionEnd) => boolean;

/** The end of a TCP connection an operator action closes for `reason` (the reasons both know, else aborted). */
export function connectionEndOf(reason: CloseReason): ConnectionEnd {
  return reason === "disconnected" || reason === "drain" || reason === "idle" ? reason : "aborted";
}

/** Closes the connections of client `ip` (every port, or only `port`), on one listener or all. */
export function closeClientConnections(
  conns: Iterable<Connection>,
  close: CloseConnection,
  ip: string,
  port: number | undefined,
  listenerName: string | undefined,
  end: ConnectionEnd,
): number {
  let n = 0;
  for (const conn of [...conns]) {
    if (!sameIp(conn.clientIp, ip)) continue;
    if (port !== undefined && conn.clientPort !== port) continue;
    if (listenerName !== undefined && conn.listener.config.name !== listenerName) continue;
    if (close(conn, end)) n++;
  }
  return n;
}

/** Closes every connection pinned to backend `key` of `cluster` (or of any cluster). Returns how many. */
export function closeBackendConnections(
  conns: Iterable<Connection>,
  close: CloseConnection,
  key: string,
  cluster: string | undefined,
  end: ConnectionEnd,
): number {
  let n = 0;
  for (const conn of [...conns]) {
    if (conn.backend.key !== key) continue;
    if (cluster !== undefined && conn.cluster !== cluster) continue;
    if (close(conn, end)) n++;
  }
  return n;
}

/** How a core closes one flow (idempotent: false if it was already closed). */
export type CloseFlow = (flow: Flow, reason: CloseReason) => boolean;

/** Closes the flows of client `ip` (every port, or only `port`), on one listener or all. Returns how many. */
export function closeClientFlows(
  flows: Iterable<Flow>,
  close: CloseFlow,
  ip: string,
  port: number | undefined,
  listenerName: string | undefined,
  reason: CloseReason,
): number {
  let n = 0;
  for (const flow of [...flows]) {
    if (!sameIp(flow.clientIp, ip)) continue;
    if (port !== undefined && flow.clientPort !== port) continue;
    if (listenerName !== undefined && flow.listener.config.name !== listenerName) continue;
    if (close(flow, reason)) n++;
  }
  return n;
}

/** Closes every flow pinned to backend `key` of `cluster` (or of any cluster). Returns how many closed. */
export function closeBackendFlows(
  flows: Iterable<Flow>,
  close: CloseFlow,
  key: string,
  cluster: string | undefined,
  reason: CloseReason,
): number {
  let n = 0;
  for (const flow of [...flows]) {
    if (flow.backend?.key !== key) continue;
    if (cluster !== undefined && flow.knobs.name !== cluster) continue;
    if (close(flow, reason)) n++;
  }
  return n;
}

/** Closes every flow (of one listener, if named) for `reason`. Returns how many closed. */
export function closeAllFlows(
  flows: Iterable<Flow>,
  close: CloseFlow,
  reason: CloseReason,
  listenerName: string | undefined,
): number {
  let n = 0;
  for (const flow of [...flows]) {
    if (listenerName !== undefined && flow.listener.config.name !== listenerName) continue;
    if (close(flow, reason)) n++;
  }
  return n;
}

/** What the operator actions work on: a core's live flows and TCP connections, and how it closes each. */
export interface OperatorTargets {
  readonly flows: Iterable<Flow>;
  readonly connections: Iterable<Connection>;
  readonly closeFlow: CloseFlow;
  readonly closeConnection: CloseConnection;
}

/** Closes the flows and connections of client `ip` (see RelayCore.disconnect). Returns how many closed. */
export function disconnectClient(
  t: OperatorTargets,
  ip: string,
  port: number | undefined,
  listenerName: string | undefined,
  reason: CloseReason,
): number {
  const end = connectionEndOf(reason);
  return closeClientFlows(t.flows, t.closeFlow, ip, port, listenerName, reason) +
    closeClientConnections(t.connections, t.closeConnection, ip, port, listenerName, end);
}

/** Closes the flows and connections pinned to backend `key` (see RelayCore.closeBackendFlows). */
export function closeBackend(
  t: OperatorTargets,
  key: string,
  cluster: string | undefined,
  reason: CloseReason,
): number {
  const end = connectionEndOf(reason);
  return closeBackendFlows(t.flows, t.closeFlow, key, cluster, reason) +
    closeBackendConnections(t.connections, t.closeConnection, key, cluster, end);
}

/** Marks listener `name` of `listeners` draining, if there is one (see RelayCore.drain). */
export function drainListener(listeners: ReadonlyMap<string, Listener>, name: string): void {
  const l = listeners.get(name);
  if (l !== undefined) l.draining = true;
}
