/**
 * A UDP flow: one client ip:port on one listener, pinned to one backend for its life.
 *
 * Lifecycle: AwaitingBackend (an external resolver is choosing; the newest client datagram waits in a
 * one-slot buffer) → Established (forwarding both ways) → Closing (its `requests` cap was reached: it no
 * longer takes client datagrams, and the next one from that client opens a new flow, but replies still come
 * back until every forwarded datagram had its `responses` replies, or the idle deadline) → Closed (the shell
 * releases its socket).
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import type { UdpListener } from "./listener.ts";
import { Quality } from "./quality.ts";
import type { ClusterConfig } from "./types.ts";
import type { CloseReason } from "./reasons.ts";

/** Where a flow is in its life. Small integers, so the hot path compares numbers (no enum: Node strips types). */
export const FlowState = {
  AwaitingBackend: 0,
  Established: 1,
  Closing: 2,
  Closed: 3,
} as const;
/** One of the FlowState values. */
export type FlowState = typeof FlowState[keyof typeof FlowState];

/** The close reasons, declared in the leaf core/reasons.ts; re-exported for existing importers. */
export { CLOSE_REASONS, type CloseReason } from "./reasons.ts";

/** Human names of the states, for the admin API. */
export const FLOW_STATE_NAMES = ["awaiting_backend", "established", "closing", "closed"] as const;

/** One flow. Fields are public for the shell's hot path; only the core mutates them, except `handle`. */
export class Flow {
  /** Unique per core, increasing. */
  readonly id: number;
  /** The listener it arrived on. */
  readonly listener: UdpListener;
  readonly clientIp: string;
  readonly clientPort: number;
  /** The cluster knobs captured at admission; a later reconfiguration does not change them. */
  readonly knobs: ClusterConfig;
  state: FlowState = FlowState.Established as FlowState;
  /** The pinned backend; null only while AwaitingBackend. */
  backend: Backend | null = null;
  /** Client datagrams accepted (for the `requests` cap) and replies accepted (shown, not a cap). */
  requests = 0;
  responses = 0;
  /**
   * Replies still expected under the `responses` rule: `responses` per forwarded client datagram, less the
   * replies accepted. The flow closes when a reply brings it to 0 (unused when `responses` is 0).
   */
  outstanding = 0;
  lastClientAt: number;
  lastBackendAt: number;
  /** When the flow entered Closing, or -1. */
  closingAt = -1;
  /**
   * How much of the flow's own counters (`quality.datagramsIn`, `bytesIn`) the top-talker summaries have
   * been charged: the core charges the rest when the flow closes or the summaries are read, so the
   * forwarding path counts a datagram once, in the flow.
   */
  topDatagrams = 0;
  topBytes = 0;
  readonly quality: Quality;
  /** The PROXY v2 header for this flow, built once at establishment; null when the cluster sends none. */
  proxyHeader: Uint8Array | null = null;
  /** Set by the core on each accepted client datagram: the shell prepends `proxyHeader` when true. */
  headerDue = false;
  /** The newest client datagram held while AwaitingBackend (a copy: the receive buffer is reused). */
  pending: Uint8Array | null = null;
  /** Generation token for the deadline heap: bumped on reschedule and close. */
  timerGen = 0;
  /** Why it closed, once Closed. */
  closeReason: CloseReason | null = null;
  /** The shell's per-flow resource (an upstream socket). The core never reads it. */
  handle: unknown = null;

  /** A flow admitted at `now`. */
  constructor(
    id: number,
    listener: UdpListener,
    clientIp: string,
    clientPort: number,
    knobs: ClusterConfig,
    now: number,
  ) {
    this.id = id;
    this.listener = listener;
    this.clientIp = clientIp;
    this.clientPort = clientPort;
    this.knobs = knobs;
    this.lastClientAt = now;
    this.lastBackendAt = now;
    this.quality = new Quality(now, knobs.sequence ?? null);
  }

  /** When the flow is due to close if nothing else happens. */
  deadline(): number {
    const k = this.knobs;
    if (this.state === FlowState.Closing) {
      // Detached from its client: only replies keep it alive, from the later of the last reply and detach.
      const base = Math.max(this.lastBackendAt, this.closingAt);
      return base + (k.backTimeout > 0 ? k.backTimeout : k.frontTimeout);
    }
    const front = k.frontTimeout > 0 ? this.lastClientAt + k.frontTimeout : Infinity;
    const back = k.backTimeout > 0 ? this.lastBackendAt + k.backTimeout : Infinity;
    return front < back ? front : back;
  }
}
