/**
 * Smooth weighted round robin, exactly as nginx does it: picks interleave (5,1,1 gives a,a,b,a,c,a,a) instead of
 * bursting a heavy backend's whole share in a row, and every cycle of `sum(weights)` picks is exact.
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import type { Balancer, Candidate } from "./balancer.ts";

/** nginx's smooth weighted round robin; its per-backend credit restarts whenever the candidate set changes. */
export class RoundRobinBalancer implements Balancer {
  #version = NaN;
  #current = new Float64Array(0);
  #total = 0;

  /** Ignores the key and the rng: the rotation alone decides, so the sequence is fully predictable. */
  pick(candidates: readonly Candidate[], version: number, _keyHash?: number, _rng?: Rng): number {
    const n = candidates.length;
    // The length check guards against a caller reusing a version for a different list: we would index past
    // the credit array, so treat it as a new version rather than trust it.
    if (version !== this.#version || n !== this.#current.length) this.#reset(candidates, version);
    const current = this.#current;
    let best = 0;
    for (let i = 0; i < n; i++) {
      current[i] += candidates[i].weight;
      // Strictly greater keeps the first index on ties, as nginx does.
      if (current[i] > current[best]) best = i;
    }
    current[best] -= this.#total;
    return best;
  }

  #reset(candidates: readonly Candidate[], version: number): void {
    this.#version = version;
    // Credits earned under old weights mean nothing under new ones; starting from zero keeps cycles exact.
    this.#current = new Float64Array(candidates.length);
    let total = 0;
    for (const c of candidates) total += c.weight;
    this.#total = total;
  }
}
