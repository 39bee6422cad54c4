/**
 * Weighted rendezvous (highest random weight) hashing. Removing a backend moves only the keys it owned and
 * adding one moves only the keys it wins, with no table to build; the cost is O(candidates) per pick.
 *
 * @module
 */

import { hashCombine, hashString } from "../hash.ts";
import type { Rng } from "../rng.ts";
import type { Balancer, Candidate } from "./balancer.ts";

const TWO_32 = 4294967296;

/**
 * Each candidate scores `-weight / ln(u)` with `u` uniform in (0, 1) from hashing the flow key with the
 * backend key; the highest score wins. That score is exponential-race ordering, so a backend wins with
 * probability weight / total weight, and the choice depends only on the key, the backend keys, the weights
 * and the seed, never on list order.
 */
export class RendezvousBalancer implements Balancer {
  readonly #seed: number;
  #version = NaN;
  #keyHashes = new Uint32Array(0);

  /** `hashSeed` is the cluster's seed; instances built with the same seed choose alike. */
  constructor(hashSeed: number) {
    this.#seed = hashSeed;
  }

  /** Ignores the rng: the choice is a pure function of the key hash and the candidate set. */
  pick(candidates: readonly Candidate[], version: number, keyHash: number, _rng?: Rng): number {
    const n = candidates.length;
    if (version !== this.#version || n !== this.#keyHashes.length) {
      this.#version = version;
      // Hashing backend key strings is the costly part; it only changes with the candidate set.
      this.#keyHashes = new Uint32Array(n);
      for (let i = 0; i < n; i++) this.#keyHashes[i] = hashString(candidates[i].key, this.#seed);
    }
    const hashes = this.#keyHashes;
    let best = 0;
    let bestScore = -1;
    for (let i = 0; i < n; i++) {
      // +0.5 keeps u strictly inside (0, 1), so ln(u) is finite and negative and the score positive.
      const u = (hashCombine(keyHash, hashes[i]) + 0.5) / TWO_32;
      const score = -candidates[i].weight / Math.log(u);
      // An exact tie is near impossible, but breaking it by key keeps the answer independent of order.
      if (score > bestScore || (score === bestScore && candidates[i].key < candidates[best].key)) {
        best = i;
        bestScore = score;
      }
    }
    return best;
  }
}
