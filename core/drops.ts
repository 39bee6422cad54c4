/**
 * Why a datagram (or a new TCP connection) was dropped, and the per-listener drop counters: a leaf module,
 * so the core's modules and the shells can name a drop without importing the listener.
 *
 * @module
 */

/** Why a datagram was dropped. Small integers, returned by `RelayCore.fromClient` instead of a flow. */
export const Drop = {
  /** Larger than the listener's max_datagram_size. */
  Truncated: 0,
  /** The listener has no cluster, the cluster no backends, or none usable with fail_open = false. */
  NoBackend: 1,
  /** Empty datagram, or a source the listener's policy refuses. */
  Invalid: 2,
  /** A new client while draining or at max_flows. */
  Shed: 3,
  /** Over a per-source or per-prefix limit (`[listeners.limits]`). */
  RateLimited: 4,
  /** A new flow whose first datagram does not match `[listeners.filter]`. */
  Filtered: 5,
  /** A new flow from a banned source. */
  Banned: 6,
} as const;
/** One of the Drop codes. */
export type Drop = typeof Drop[keyof typeof Drop];

/** Drop counters of a listener, by reason. */
export interface DropCounters {
  truncated: number;
  no_backend: number;
  invalid: number;
  shed: number;
  /** A datagram replaced in the one-slot buffer while its flow awaited a backend. */
  pending_replaced: number;
  /** A send that failed in the shell (either direction). */
  send_error: number;
  /** A backend reply for a flow that had already closed. */
  late: number;
  /** A new flow or connection refused because the process's descriptor budget was full. */
  fd_limit: number;
  /** Edge protection: over a source limit, refused by the first-datagram filter, banned source. */
  rate_limited: number;
  filtered: number;
  banned: number;
  /** A backend reply held back by the amplification guard. */
  amplified: number;
}
