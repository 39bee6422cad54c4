/**
 * Least flows per weight. Good when flows differ in lifetime, since it steers by what is actually pinned
 * rather than by how many were handed out.
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import type { Balancer, Candidate } from "./balancer.ts";

/**
 * Picks the candidate with the fewest `flows / weight`, compared by cross-multiplication so no division
 * rounds two unequal loads into a tie. Ties rotate: the scan starts just after the last winner, so an idle
 * cluster spreads its first flows instead of piling them on index 0.
 */
export class LeastFlowsBalancer implements Balancer {
  #version = NaN;
  #start = 0;

  /** Ignores the key and rng: live flow counts and the rotation cursor decide. */
  pick(candidates: readonly Candidate[], version: number, _keyHash?: number, _rng?: Rng): number {
    const n = candidates.length;
    if (version !== this.#version) {
      this.#version = version;
      // The cursor is an index into the old list; restart at the head of the new one.
      this.#start = 0;
    }
    if (this.#start >= n) this.#start = 0;
    let best = this.#start;
    let bestFlows = candidates[best].flows;
    let bestWeight = candidates[best].weight;
    for (let j = 1; j < n; j++) {
      let i = this.#start + j;
      if (i >= n) i -= n;
      const c = candidates[i];
      // flows_i / w_i < flows_best / w_best, without division.
      if (c.flows * bestWeight < bestFlows * c.weight) {
        best = i;
        bestFlows = c.flows;
        bestWeight = c.weight;
      }
    }
    this.#start = best + 1 < n ? best + 1 : 0;
    return best;
  }
}
