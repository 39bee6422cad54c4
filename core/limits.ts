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
