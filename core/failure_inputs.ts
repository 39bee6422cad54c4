/**
 * The failure inputs of a relay core: what the shell reports when a send, an upstream or a reply went
 * wrong. Each counts the loss where it belongs (listener, backend, flow quality) and, for a refusal towards
 * a backend, reports a passive health failure. RelayCore's `sendFailed`, `upstreamFailed`,
 * `listenerSendFailed` and `replyTruncated` delegate here in one line each.
 *
 * Pure: the time is a parameter; nothing here allocates.
 *
 * @module
 */

import type { CoreHealth } from "./core_health.ts";
import type { Flow } from "./flow.ts";
import type { FlowLifecycle } from "./flow_lifecycle.ts";
import { isUdpListener, type Listener } from "./listener.ts";
import type { Direction, SendFailure } from "./send_failure.ts";

/**
 * A send of `flow` failed in the shell, going `direction`, for `cause` (see RelayCore.sendFailed): counts
 * `send_error`; towards the backend also the backend's `sendErrors`, and a refusal its `refusals` and a
 * passive health failure in `health`.
 */
export function sendFailed(
  health: CoreHealth,
  flow: Flow,
  direction: Direction,
  cause: SendFailure,
  now: number,
): void {
  flow.listener.counters.drops.send_error++;
  flow.quality.onDrop();
  const b = flow.backend;
  if (b !== null && direction === "to_backend") {
    b.counters.sendErrors++;
    if (cause === "refused") {
      b.counters.refusals++;
      health.passiveFailure(flow.knobs.name, b, "refused (ICMP port unreachable)", now);
    }
  }
}

/**
 * The shell could not open `flow`'s upstream (see RelayCore.upstreamFailed): its datagram is lost (a failed
 * send towards the backend) and `life` aborts the flow.
 */
export function upstreamFailed(health: CoreHealth, life: FlowLifecycle, flow: Flow, now: number): void {
  sendFailed(health, flow, "to_backend", "error", now);
  life.close(flow, "aborted");
}

/**
 * A send from `listener`'s socket failed where the shell cannot tell the flow (see
 * RelayCore.listenerSendFailed): `refused` counts `clientUnreachable`, `error` counts `send_error`.
 */
export function listenerSendFailed(listener: Listener, cause: SendFailure): void {
  if (cause !== "refused") listener.counters.drops.send_error++;
  else if (isUdpListener(listener)) listener.counters.clientUnreachable++;
}

/** A backend reply of `flow` the shell could not take whole (see RelayCore.replyTruncated): dropped. */
export function replyTruncated(flow: Flow): void {
  flow.listener.counters.drops.truncated++;
  flow.quality.onDrop();
}
