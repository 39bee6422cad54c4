/**
 * Why a UDP flow closed and why a TCP connection ended: leaf types with no imports, so the modules that
 * count them (core/counters.ts) and the ones that carry them (core/flow.ts, core/connection.ts) need not
 * import each other.
 *
 * @module
 */

/** Why a flow closed. */
export type CloseReason = "idle" | "requests" | "responses" | "drain" | "aborted" | "disconnected";

/** Every close reason, for counters and docs. */
export const CLOSE_REASONS: readonly CloseReason[] = [
  "idle",
  "requests",
  "responses",
  "drain",
  "aborted",
  "disconnected",
];

/**
 * Why a TCP connection ended. `disconnected`: an operator closed it (by client or backend); `aborted` also
 * covers a backend that went down under `close_flows_on_down`.
 */
export type ConnectionEnd =
  | "closed"
  | "idle"
  | "refused"
  | "connect_timeout"
  | "error"
  | "drain"
  | "aborted"
  | "disconnected";

/** Every end reason, for counters and docs. */
export const CONNECTION_ENDS: readonly ConnectionEnd[] = [
  "closed",
  "idle",
  "refused",
  "connect_timeout",
  "error",
  "drain",
  "aborted",
  "disconnected",
];
