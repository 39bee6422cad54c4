/**
 * Limits on what the control plane takes in, so one request or reload cannot stall the thread that also
 * forwards datagrams (issue 12: a 4.5 MB invalid config stalled forwarding ~750 ms).
 *
 * @module
 */

/** The largest config accepted by SIGHUP, POST /reload, `ferry check` and PUT /config: 1 MiB. */
export const MAX_CONFIG_BYTES = 1 << 20;

/** The error for a config of `bytes`, or null when it is within MAX_CONFIG_BYTES. */
export function configSizeError(bytes: number): string | null {
  if (bytes <= MAX_CONFIG_BYTES) return null;
  return `the config is ${bytes} bytes, over the ${MAX_CONFIG_BYTES}-byte (1 MiB) limit; nothing was read`;
}

/**
 * Admin requests handled at once; more get 503 at once instead of queueing work on the thread that
 * forwards datagrams (2,000 concurrent requests stalled it 290–590 ms).
 */
export const MAX_ADMIN_IN_FLIGHT = 32;

/** Seconds an admin connection may sit idle (no request, or between keep-alive requests) before it closes. */
export const ADMIN_IDLE_TIMEOUT_S = 10;

/**
 * Admin connections open at once (the admin thread's TCP front). At the cap, the oldest connection still
 * without a complete request head after {@link ADMIN_EVICT_HEADLESS_AFTER_MS}, else the one idle the longest
 * for at least {@link ADMIN_EVICT_AFTER_MS}, is closed to make room; when none is, the new one is answered
 * 503 and closed. Each connection holds three descriptors
 * (the client's, and both ends of the front's link to the HTTP server), which the descriptor budget keeps.
 */
export const MAX_ADMIN_CONNECTIONS = 64;

/**
 * Connections past the cap being answered 503 at once, at most (each holds a descriptor until its answer
 * is out, within about a second); past it, a connection is closed unanswered.
 */
export const MAX_ADMIN_REFUSING = 32;

/** Descriptors one admin connection holds: the accepted socket and both ends of the front's local link. */
export const FD_PER_ADMIN_CONNECTION = 3;

/** Milliseconds a new admin connection has to send a complete request head before it is closed. */
export const ADMIN_HEADER_TIMEOUT_MS = 5_000;

/** How long a connection must have been idle before a new one may push it out at the cap. */
export const ADMIN_EVICT_AFTER_MS = 1_000;

/**
 * How long a connection may go without a complete request head before a new one may push it out at the
 * cap: a real client sends its head with (or right after) its handshake's last packet.
 */
export const ADMIN_EVICT_HEADLESS_AFTER_MS = 250;
