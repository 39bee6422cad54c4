/**
 * Power of two choices: draw two backends by weight, keep the less loaded. Nearly as even as least-flows
 * but without herding every new flow onto the single emptiest backend when loads are stale or tied.
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import type { Balancer, Candidate } from "./balancer.ts";
import { cumulativeWeights, indexAt } from "./random.ts";

/** Two distinct weighted draws; the one with fewer flows per weight wins, the first drawn on a tie. */
export class PowerOfTwoBalancer implements Balancer {
  #version = NaN;
  #prefix: Float64Array = new Float64Array(0);

  /** Ignores the key: the rng draws the pair and live flow counts settle it. */
  pick(candidates: readonly Candidate[], version: number, _keyHash: number, rng: Rng, now = 0): number {
    const n = candidates.length;
    if (version !== this.#version || n !== this.#prefix.length) {
      this.#version = version;
      this.#prefix = cumulativeWeights(candidates);
    }
    if (n === 1) return 0;
    const prefix = this.#prefix;
    const total = prefix[n - 1];
    const a = indexAt(prefix, rng.nextFloat() * total);
    // Second draw by weight among the others: draw over the total minus a's span, then step over that span.
    // This keeps the pair distinct without rejection loops or a temporary array.
    const aWeight = candidates[a].weight;
    const aStart = prefix[a] - aWeight;
    let r = rng.nextFloat() * (total - aWeight);
    if (r >= aStart) r += aWeight;
    let b = indexAt(prefix, r);
    // Float rounding at a span edge could land back on a; the neighbour is the nearest honest answer.
    if (b === a) b = a + 1 < n ? a + 1 : a - 1;
    return this.better(candidates[b], candidates[a], now) ? b : a;
  }

  /** True when `x` should win over `y` (the first drawn): fewer flows per weight. */
  better(x: Candidate, y: Candidate, _now: number): boolean {
    return x.flows * y.weight < y.flows * x.weight;
  }
}
