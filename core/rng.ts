/**
 * A small seeded pseudo-random generator (SplitMix32). The core never reads a global random source: its owner injects
 * the seed, so a simulation replays exactly and a test can predict every "random" choice.
 *
 * @module
 */

/** A seeded source of pseudo-random numbers. */
export class Rng {
  #state: number;

  /** Starts the sequence at `seed` (any integer; only its low 32 bits count). */
  constructor(seed: number) {
    this.#state = seed | 0;
  }

  /** The next unsigned 32-bit value. */
  nextU32(): number {
    this.#state = (this.#state + 0x9e3779b9) | 0;
    let z = this.#state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** A float in [0, 1). */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** An integer in [0, n). */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }
}
