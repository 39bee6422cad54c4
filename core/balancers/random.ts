/**
 * Weighted random choice from the core's seeded rng. Also exports the cumulative-weight helpers that
 * power-of-two reuses, so both draw a backend the same way.
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import type { Balancer, Candidate } from "./balancer.ts";

/**
 * Cumulative weights: entry i is the sum of weights 0..i. Built once per version so a draw is a binary
 * search instead of a linear walk over the weights.
 */
export function cumulativeWeights(candidates: readonly Candidate[]): Float64Array {
  const prefix = new Float64Array(candidates.length);
  let sum = 0;
  for (let i = 0; i < candidates.length; i++) {
    sum += candidates[i].weight;
    prefix[i] = sum;
  }
  return prefix;
}

/** The index whose weight interval holds `r` (0 <= r < total): the first i with prefix[i] > r. */
export function indexAt(prefix: Float64Array, r: number): number {
  let lo = 0;
  let hi = prefix.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (prefix[mid] > r) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Each pick lands on a backend with probability weight / total weight, independent of earlier picks. */
export class RandomBalancer implements Balancer {
  #version = NaN;
  #prefix: Float64Array = new Float64Array(0);

  /** Ignores the key: only the rng decides, so a replay with the same seed repeats every choice. */
  pick(candidates: readonly Candidate[], version: number, _keyHash: number, rng: Rng): number {
    const n = candidates.length;
    // Same-length check: a caller reusing a version for another list must not get an out-of-range index.
    if (version !== this.#version || n !== this.#prefix.length) {
      this.#version = version;
      this.#prefix = cumulativeWeights(candidates);
    }
    // No draw for a lone candidate: the answer is fixed, and the rng sequence stays tied to real choices.
    if (n === 1) return 0;
    return indexAt(this.#prefix, rng.nextFloat() * this.#prefix[n - 1]);
  }
}
