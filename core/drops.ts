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
  /**
   * A new flow or connection refused because the process's descriptor budget is full: not Shed, since the
   * operator's fix differs (raise `LimitNOFILE` / `ulimit -n`, not max_flows) and the counter says so.
   */
  FdLimit: 7,
} as const;
/** One of the Drop codes. */
export type Drop = typeof Drop[keyof typeof Drop];

/**
 * Every drop reason a listener counts, in the order snapshots and metrics list them: the one list the
 * counters, the API's snapshot type, the metric's HELP and the test fakes derive from.
 * - truncated, no_backend, invalid, shed: see {@link Drop};
 * - pending_replaced: a datagram replaced in the one-slot buffer while its flow awaited a backend;
 * - send_error: a send that failed in the shell (either direction);
 * - late: a backend reply for a flow that had already closed;
 * - fd_limit: a new flow or connection refused because the process's descriptor budget was full;
 * - rate_limited, filtered, banned: edge protection (a source limit, the first-datagram filter, a ban);
 * - amplified: a backend reply held back by the amplification guard.
 */
export const DROP_REASONS = [
  "truncated",
  "no_backend",
  "invalid",
  "shed",
  "pending_replaced",
  "send_error",
  "late",
  "fd_limit",
  "rate_limited",
  "filtered",
  "banned",
  "amplified",
] as const;

/** One of {@link DROP_REASONS}. */
export type DropReason = typeof DROP_REASONS[number];

/**
 * The counter each Drop code is counted under (checked by the type: a new code without its counter does
 * not compile), so a shell or a test names a returned code's reason without a second list.
 */
export const DROP_COUNTED: { readonly [C in Drop]: DropReason } = {
  [Drop.Truncated]: "truncated",
  [Drop.NoBackend]: "no_backend",
  [Drop.Invalid]: "invalid",
  [Drop.Shed]: "shed",
  [Drop.RateLimited]: "rate_limited",
  [Drop.Filtered]: "filtered",
  [Drop.Banned]: "banned",
  [Drop.FdLimit]: "fd_limit",
};

/** Drop counters of a listener, by reason. */
export type DropCounters = Record<DropReason, number>;

/** Fresh drop counters, all zero. */
export function zeroDrops(): DropCounters {
  return Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as DropCounters;
}
