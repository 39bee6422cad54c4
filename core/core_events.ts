/**
 * What the core asks of its shell: the events `RelayCore.poll` returns, and the listener each concerns
 * (core/README.md says what a shell must do for each kind).
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import type { Flow } from "./flow.ts";
import type { HealthChange } from "./health.ts";
import type { Listener } from "./listener.ts";

/** Something the shell must act on, returned by `poll`. */
export type CoreEvent =
  /**
   * The flow is Established: open its upstream (towards `flow.backend`) and keep it in `flow.handle`.
   * `held` is the datagram buffered while the flow awaited its backend (after `resolved`): send it once
   * open, prefixed by `flow.proxyHeader` when `withHeader`. Null for a flow admitted by `fromClient`, whose
   * datagram is the one the shell holds (act on this event before sending it).
   */
  | {
    readonly kind: "open";
    readonly flow: Flow;
    readonly held: Uint8Array | null;
    readonly withHeader: boolean;
  }
  /** An `external` cluster admitted this flow: resolve its backend, then call `resolved`. */
  | { readonly kind: "resolve"; readonly flow: Flow }
  /** The flow closed: release its handle (close its upstream socket). */
  | { readonly kind: "closed"; readonly flow: Flow }
  /** A removed listener has no flows left: its socket may close. */
  | { readonly kind: "listener_done"; readonly listener: Listener }
  /** A cluster with no usable backend started failing open (once per episode). */
  | { readonly kind: "fail_open"; readonly cluster: string }
  /** The descriptor budget refused a new flow or connection (once per episode). */
  | { readonly kind: "fd_limit"; readonly budget: number }
  /** A backend's health status changed (logged once per transition). */
  | {
    readonly kind: "health";
    readonly cluster: string;
    readonly backend: Backend;
    readonly change: HealthChange;
  };

/**
 * The listener an event concerns (its flow's, or the removed one), or null for cluster-wide events. A
 * shell that serves listeners on several data paths routes events by it.
 */
export function eventListener(e: CoreEvent): Listener | null {
  switch (e.kind) {
    case "open":
    case "resolve":
    case "closed":
      return e.flow.listener;
    case "listener_done":
      return e.listener;
    case "fail_open":
    case "fd_limit":
    case "health":
      return null;
  }
}
