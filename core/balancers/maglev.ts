/**
 * Weighted Maglev consistent hashing (Eisenbud et al., NSDI 2016), populated with weights the way Envoy does.
 * A pick is one table read; the table is rebuilt only when the candidate set or a weight changes.
 *
 * @module
 */

import { hashString } from "../hash.ts";
import type { Rng } from "../rng.ts";
import type { Balancer, Candidate } from "./balancer.ts";

/** Maglev's default table size: prime, and large enough that 1000 backends still get ~65 slots each. */
export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;

/** Mixed into the seed for the skip hash so offset and skip are independent, as the paper requires. */
const SKIP_SEED_MIX = 0x9e3779b9;

/** Whether `n` is a prime integer. Exported so config validation applies the very rule the balancer does. */
export function isPrime(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * A lookup table of `tableSize` slots, each holding a candidate index. A prime size makes every backend's
 * probe sequence (offset + j * skip) visit every slot, which is what lets population always finish.
 */
export class MaglevBalancer implements Balancer {
  readonly #seed: number;
  readonly #size: number;
  readonly #table: Int32Array;
  #version = NaN;
  #count = -1;

  /** Throws a RangeError when `tableSize` is not prime: a composite size can leave probes cycling. */
  constructor(hashSeed: number, tableSize: number = DEFAULT_MAGLEV_TABLE_SIZE) {
    if (!isPrime(tableSize)) throw new RangeError(`maglev table size must be a prime, got ${tableSize}`);
    this.#seed = hashSeed;
    this.#size = tableSize;
    // One buffer for the balancer's life: rebuilds overwrite it rather than allocate a fresh one each time.
    this.#table = new Int32Array(tableSize);
  }

  /** Ignores the rng: the slot `keyHash mod size` decides. */
  pick(candidates: readonly Candidate[], version: number, keyHash: number, _rng?: Rng): number {
    if (version !== this.#version || candidates.length !== this.#count) this.#build(candidates, version);
    return this.#table[(keyHash >>> 0) % this.#size];
  }

  #build(candidates: readonly Candidate[], version: number): void {
    this.#version = version;
    const n = candidates.length;
    this.#count = n;
    const size = this.#size;
    const table = this.#table;
    // Fill in key order, not list order, so the same backends and weights give the same table however the
    // caller happens to order them; slots then store that candidate's current index.
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((x, y) => {
      const kx = candidates[x].key;
      const ky = candidates[y].key;
      return kx < ky ? -1 : kx > ky ? 1 : x - y;
    });
    const position = new Float64Array(n);
    const skip = new Float64Array(n);
    const weight = new Float64Array(n);
    const target = new Float64Array(n);
    let maxWeight = 0;
    for (let e = 0; e < n; e++) {
      const c = candidates[order[e]];
      position[e] = hashString(c.key, this.#seed) % size;
      skip[e] = (hashString(c.key, this.#seed ^ SKIP_SEED_MIX) % (size - 1)) + 1;
      weight[e] = c.weight;
      if (c.weight > maxWeight) maxWeight = c.weight;
    }
    table.fill(-1);
    // Envoy's weighted population: in round `iteration` a backend claims its next preferred free slot only
    // if weight * iteration has reached its target, and each claim raises the target by maxWeight. So a
    // backend at max weight claims every round, one at a third of it every third round: slots end up
    // proportional to weight while keeping Maglev's interleaved, low-disruption fill.
    let filled = 0;
    for (let iteration = 1; filled < size; iteration++) {
      for (let e = 0; e < n && filled < size; e++) {
        if (iteration * weight[e] < target[e]) continue;
        target[e] += maxWeight;
        // Walk the permutation to the first free slot. Prime size and 1 <= skip < size guarantee the walk
        // reaches every slot, and at least one is free here.
        let slot = position[e];
        while (table[slot] !== -1) {
          slot += skip[e];
          if (slot >= size) slot -= size;
        }
        table[slot] = order[e];
        slot += skip[e];
        position[e] = slot >= size ? slot - size : slot;
        filled++;
      }
    }
  }
}
