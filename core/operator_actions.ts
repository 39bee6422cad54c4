/**
 * Operator actions over a core's flows: close a client's flows, a backend's, or every flow of a listener.
 * Each takes the live flows and the core's `close`, and works on a copy (closing changes the set).
 *
 * @module
 */

import { sameIp } from "./address.ts";
import type { Flow } from "./flow.ts";
import type { CloseReason } from "./reasons.ts";

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
