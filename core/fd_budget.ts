/**
 * The process's file-descriptor budget, as pure arithmetic over the open-files limit (the shell reads
 * RLIMIT_NOFILE): a reserve for what every process holds (stdio, logs, the runtime's own, epoll, the
 * listener sockets, health probes, Redis), room for the admin API's connections, and the rest for flows
 * (one upstream socket each) and TCP connections (two descriptors each) across all listeners and workers.
 * A full budget refuses new flows and connections (counted as `fd_limit`, logged once per episode)
 * instead of letting `socket()` or `accept()` fail with EMFILE and take the admin API down with them.
 *
 * @module
 */

import { FD_PER_ADMIN_CONNECTION, MAX_ADMIN_CONNECTIONS, MAX_ADMIN_REFUSING } from "./limits.ts";

/** Descriptors kept for the process itself: stdio, logs, runtime internals, epoll, Redis, probes. */
export const FD_RESERVE = 128;
/**
 * Descriptors kept for the admin API: its capped connections (three descriptors each, see core/limits.ts),
 * up to 32 refused ones being answered 503, and its thread's own (the listening sockets, the runtime's
 * event loop): 64 × 3 + 32 + 32 = 256.
 */
export const FD_ADMIN = MAX_ADMIN_CONNECTIONS * FD_PER_ADMIN_CONNECTION + MAX_ADMIN_REFUSING + 32;
/** Descriptors a UDP flow holds (its upstream socket) and a TCP connection holds (both ends). */
export const FD_PER_FLOW = 1, FD_PER_CONNECTION = 2;
/** The smallest budget handed out, so a tiny limit still relays something. */
export const FD_MIN_RELAY = 64;

/** How a limit splits. */
export interface DescriptorBudget {
  /** The open-files limit it was made from. */
  readonly limit: number;
  /** Kept for the process (FD_RESERVE plus one per listener socket). */
  readonly reserve: number;
  /** Kept for admin API connections. */
  readonly admin: number;
  /** For flows and connections, the whole process (every worker's share added up). */
  readonly relay: number;
}

/** Splits an open-files `limit` for a process with `listeners` listener sockets per worker and `workers`. */
export function descriptorBudget(limit: number, listeners: number, workers = 1): DescriptorBudget {
  const reserve = FD_RESERVE + listeners * Math.max(1, workers);
  const admin = FD_ADMIN;
  return { limit, reserve, admin, relay: Math.max(FD_MIN_RELAY, Math.floor(limit - reserve - admin)) };
}

/** One worker's share of the relay budget (each worker's core enforces its own). */
export function workerShare(relay: number, workers: number): number {
  return Math.max(1, Math.floor(relay / Math.max(1, workers)));
}

/** Whether `inUse` descriptors leave room for `cost` more within `budget`. */
export function fits(inUse: number, cost: number, budget: number): boolean {
  return inUse + cost <= budget;
}

/** Below this share of the budget a refusal episode is over (the next refusal is logged again). */
export const FD_REARM = 0.9;
