/**
 * The contract every balancer keeps. A balancer only chooses: the cluster decides which backends are
 * candidates (usable ones, or all of them when failing open) and owns their counters.
 *
 * @module
 */

import type { Rng } from "../rng.ts";

/** What a balancer may read of a backend. */
export interface Candidate {
  /** Stable identity: the backend's canonical "ip:port". Hash balancers hash it with the cluster seed. */
  readonly key: string;
  /** Relative share, >= 1. */
  readonly weight: number;
  /** Live flows pinned to it now. */
  readonly flows: number;
  /** Its latency figures, for latency-aware balancers (absent on a bare candidate: no sample). */
  readonly quality?: { peakCost(now: number): number };
}

/** Chooses a backend for a new flow. */
export interface Balancer {
  /**
   * Picks one of `candidates` (never empty; same order every call for the same `version`).
   * `version` changes whenever the candidate list or any weight changes, so a balancer may cache tables
   * built for one version and must rebuild them when it changes, never per call otherwise.
   * `keyHash` is the seeded hash of the flow's affinity key; `rng` is the core's seeded generator; `now`
   * the core's time in ms, for time-decayed figures.
   */
  pick(candidates: readonly Candidate[], version: number, keyHash: number, rng: Rng, now?: number): number;
}
