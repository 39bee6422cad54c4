/**
 * Top talkers without per-IP metric labels: Space-Saving summaries (Metwally, Agrawal, El Abbadi 2005) of
 * sources by datagrams, bytes, new flows and drops.
 *
 * Pure, bounded memory: `k` counters per summary whatever the number of sources. Guarantees, for a stream of
 * total weight N (tested in tests/protection.test.ts):
 * - every reported count overestimates the true count by at most its `error`, and `error` ≤ N / k;
 * - so a reported count c means the true count lies in [c − error, c];
 * - every source whose true count exceeds N / k is in the summary.
 * Each update is a Map lookup and a sift in a k-entry min-heap: O(log k), allocation-free for a tracked
 * source (a new source replaces the minimum in place).
 *
 * @module
 */

/** One tracked source: its estimated count and the most that estimate may exceed the true count by. */
export interface HeavyHitter {
  readonly key: string;
  readonly count: number;
  readonly error: number;
}

/** A Space-Saving summary of `k` counters. */
export class SpaceSaving {
  readonly k: number;
  readonly #index = new Map<string, number>();
  /** Min-heap by count, in parallel arrays. */
  readonly #keys: string[] = [];
  readonly #counts: Float64Array;
  readonly #errors: Float64Array;
  /** Total weight seen since the last reset. */
  total = 0;

  /** A summary tracking `k` (≥ 1) sources. */
  constructor(k: number) {
    this.k = Math.max(1, Math.floor(k));
    this.#counts = new Float64Array(this.k);
    this.#errors = new Float64Array(this.k);
  }

  /** Adds `weight` (> 0) to `key`'s count. */
  add(key: string, weight: number): void {
    this.total += weight;
    const at = this.#index.get(key);
    if (at !== undefined) {
      this.#counts[at] += weight;
      this.#down(at);
      return;
    }
    const n = this.#keys.length;
    if (n < this.k) {
      this.#keys.push(key);
      this.#counts[n] = weight;
      this.#errors[n] = 0;
      this.#index.set(key, n);
      this.#up(n);
      return;
    }
    // Replace the minimum: the newcomer inherits its count as possible overestimate.
    const min = this.#counts[0];
    this.#index.delete(this.#keys[0]);
    this.#keys[0] = key;
    this.#index.set(key, 0);
    this.#counts[0] = min + weight;
    this.#errors[0] = min;
    this.#down(0);
  }

  /** The largest error any reported count can have: the smallest tracked count (≤ total / k). */
  get maxError(): number {
    return this.#keys.length < this.k ? 0 : this.#counts[0];
  }

  /** The `n` largest counts, largest first. */
  top(n: number): HeavyHitter[] {
    const out: HeavyHitter[] = [];
    for (let i = 0; i < this.#keys.length; i++) {
      out.push({ key: this.#keys[i], count: this.#counts[i], error: this.#errors[i] });
    }
    out.sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : 1));
    return out.slice(0, n);
  }

  /** Forgets everything. */
  reset(): void {
    this.#index.clear();
    this.#keys.length = 0;
    this.total = 0;
  }

  #swap(i: number, j: number): void {
    const c = this.#counts, e = this.#errors, k = this.#keys;
    const tc = c[i], te = e[i], tk = k[i];
    c[i] = c[j], e[i] = e[j], k[i] = k[j];
    c[j] = tc, e[j] = te, k[j] = tk;
    this.#index.set(k[i], i);
    this.#index.set(k[j], j);
  }

  #up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.#counts[p] <= this.#counts[i]) return;
      this.#swap(i, p);
      i = p;
    }
  }

  #down(i: number): void {
    const n = this.#keys.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      const m = r < n && this.#counts[r] < this.#counts[l] ? r : l;
      if (this.#counts[i] <= this.#counts[m]) return;
      this.#swap(i, m);
      i = m;
    }
  }
}

/** What the top-talker summaries rank by. */
export const TOP_DIMENSIONS = ["datagrams", "bytes", "flows", "drops"] as const;
/** One of TOP_DIMENSIONS. */
export type TopDimension = typeof TOP_DIMENSIONS[number];

/** The four summaries of one relay, reset together. */
export class TopTalkers {
  readonly datagrams: SpaceSaving;
  readonly bytes: SpaceSaving;
  readonly flows: SpaceSaving;
  readonly drops: SpaceSaving;
  /** When the summaries were last reset (ms). */
  since: number;

  /** Summaries of `k` sources each, counting from `now`. */
  constructor(k: number, now: number) {
    this.datagrams = new SpaceSaving(k);
    this.bytes = new SpaceSaving(k);
    this.flows = new SpaceSaving(k);
    this.drops = new SpaceSaving(k);
    this.since = now;
  }

  /** One client datagram of `size` bytes from `ip` (accepted or not). */
  datagram(ip: string, size: number): void {
    this.datagrams.add(ip, 1);
    this.bytes.add(ip, size);
  }

  /** Resets every summary at `now`. */
  reset(now: number): void {
    for (const d of TOP_DIMENSIONS) this[d].reset();
    this.since = now;
  }
}
