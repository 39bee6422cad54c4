/**
 * The options a shell passes to a relay core (core/relay_core.ts), and their defaults.
 *
 * @module
 */

import type { PassiveReport } from "./core_health.ts";

/** Options a shell passes in. */
export interface RelayCoreOptions {
  /** Seed of the core's random choices (random and power_of_two balancers). */
  readonly seed: number;
  /** The flow limit of listeners whose max_flows is 0, e.g. derived from the file descriptor limit. */
  readonly autoMaxFlows?: number;
  /**
   * Descriptors this core's flows (1 each) and TCP connections (2 each) may hold together, across its
   * listeners (core/fd_budget.ts); unset = unbounded.
   */
  readonly descriptorBudget?: number;
  /**
   * Set when another owner keeps the health state (the main thread of relay workers): passive failures go
   * here instead of being judged by this core, and the owner's verdicts come back through `adoptHealth`.
   */
  readonly reportPassive?: PassiveReport;
}

/** The default flow limit for max_flows = 0 when the shell gives none. */
export const DEFAULT_AUTO_MAX_FLOWS = 10_000;
