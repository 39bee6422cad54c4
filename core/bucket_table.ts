/**
 * Token buckets for many sources in bounded memory: a fixed, 4-way set-associative table keyed by a 32-bit
 * source hash.
 *
 * Pure, O(1) per call and allocation-free: the table is a few typed arrays sized once. Each entry holds
 * three buckets (new flows, datagrams, bytes) refilled lazily from the time passed in. A key missing from
 * its set takes an empty way or evicts the way updated longest ago. Eviction forgets a source: it comes
 * back with full buckets, so under more simultaneously active sources than the table holds the limit is
 * enforced on the busiest (recently seen) ones and the rest fail open for one burst; the prefix table and
 * `max_flows` bound what such a spread can do. Two sources whose 32-bit hashes collide share a bucket
 * (about one pair in 4 billion): the error is only ever a stricter limit.
 *
 * Memory: 48 bytes per entry whatever the number of sources (65 536 entries = 3 MiB).
 *
 * @module
 */

/** A rate and its burst: `rate` units per second, at most `burst` banked. rate 0 = unlimited. */
export interface BucketRate {
  readonly rate: number;
  readonly burst: number;
}

/** The three limits one table enforces; a null one is not checked. */
export interface BucketLimits {
  readonly newFlows: BucketRate | null;
  readonly datagrams: BucketRate | null;
  readonly bytes: BucketRate | null;
}

/** The outcome of `take`: within every limit, or which one was exceeded. */
export const BucketVerdict = { Ok: 0, NewFlows: 1, Datagrams: 2, Bytes: 3 } as const;
/** One of the BucketVerdict codes. */
export type BucketVerdict = typeof BucketVerdict[keyof typeof BucketVerdict];

const WAYS = 4;
/** Bytes of one entry: key, 3 token counts, last refill, start of the current over-limit stretch. */
export const BUCKET_ENTRY_BYTES = 4 + 3 * 8 + 8 + 8 + 4;

/** Rounds up to a power of two, at least WAYS. */
function powerOfTwo(n: number): number {
  let p = WAYS;
  while (p < n) p *= 2;
  return p;
}

/** A fixed-size table of per-source token buckets. */
export class BucketTable {
  readonly capacity: number;
  readonly limits: BucketLimits;
  readonly #setMask: number;
  readonly #keys: Uint32Array;
  /** 1 + the slot's key is in use; typed so the empty check allocates nothing. */
  readonly #used: Uint32Array;
  readonly #tokens: Float64Array;
  readonly #last: Float64Array;
  readonly #overSince: Float64Array;
  /** After a refused `take`: how long (ms) this key has been over a limit without a datagram passing. */
  overForMs = 0;
  /** Sources forgotten to make room (a sign the table is too small for the traffic). */
  evictions = 0;

  /** A table of at least `capacity` entries (rounded up to a power of two) enforcing `limits`. */
  constructor(capacity: number, limits: BucketLimits) {
    this.capacity = powerOfTwo(capacity);
    this.limits = limits;
    this.#setMask = this.capacity / WAYS - 1;
    this.#keys = new Uint32Array(this.capacity);
    this.#used = new Uint32Array(this.capacity);
    this.#tokens = new Float64Array(this.capacity * 3);
    this.#last = new Float64Array(this.capacity);
    this.#overSince = new Float64Array(this.capacity);
  }

  /** Bytes the table holds, fixed at construction. */
  get memoryBytes(): number {
    return this.capacity * BUCKET_ENTRY_BYTES;
  }

  /**
   * Charges one datagram of `size` bytes from source `key` at `now` (ms) — and one new flow when `newFlow`
   * — if every bucket has room; otherwise charges nothing and returns the limit that refused it.
   */
  take(key: number, newFlow: boolean, size: number, now: number): BucketVerdict {
    const slot = this.#find(key >>> 0, now);
    const l = this.limits;
    const t = this.#tokens;
    const base = slot * 3;
    const elapsed = now - this.#last[slot];
    this.#last[slot] = now;
    // Every bucket refills for the time since `last`, which moves on every call: skipping the new-flows
    // bucket on an established flow's datagram would lose that time, and a chatty source could never open
    // another flow.
    const f = refill(t, base, l.newFlows, elapsed);
    const d = refill(t, base + 1, l.datagrams, elapsed);
    const b = refill(t, base + 2, l.bytes, elapsed);
    let verdict: BucketVerdict = BucketVerdict.Ok;
    if (newFlow && f < 1) verdict = BucketVerdict.NewFlows;
    else if (d < 1) verdict = BucketVerdict.Datagrams;
    else if (b < size) verdict = BucketVerdict.Bytes;
    if (verdict !== BucketVerdict.Ok) {
      if (this.#overSince[slot] < 0) this.#overSince[slot] = now;
      this.overForMs = now - this.#overSince[slot];
      return verdict;
    }
    this.#overSince[slot] = -1;
    if (newFlow && l.newFlows !== null) t[base] -= 1;
    if (l.datagrams !== null) t[base + 1] -= 1;
    if (l.bytes !== null) t[base + 2] -= size;
    return verdict;
  }

  /** The slot of `key`, claiming one (full buckets) when it is not in the table. */
  #find(key: number, now: number): number {
    const start = (key & this.#setMask) * WAYS;
    let victim = start;
    let oldest = Infinity;
    for (let i = start; i < start + WAYS; i++) {
      if (this.#used[i] === 0) {
        if (oldest !== -Infinity) {
          victim = i;
          oldest = -Infinity; // an empty way beats any eviction
        }
        continue;
      }
      if (this.#keys[i] === key) return i;
      if (this.#last[i] < oldest) {
        victim = i;
        oldest = this.#last[i];
      }
    }
    if (this.#used[victim] !== 0) this.evictions++;
    this.#used[victim] = 1;
    this.#keys[victim] = key;
    this.#last[victim] = now;
    this.#overSince[victim] = -1;
    const l = this.limits;
    const t = this.#tokens;
    t[victim * 3] = l.newFlows === null ? 0 : l.newFlows.burst;
    t[victim * 3 + 1] = l.datagrams === null ? 0 : l.datagrams.burst;
    t[victim * 3 + 2] = l.bytes === null ? 0 : l.bytes.burst;
    return victim;
  }

  /** Entries in use (a scan: for status and tests, not the data path). */
  get size(): number {
    let n = 0;
    for (let i = 0; i < this.capacity; i++) n += this.#used[i];
    return n;
  }
}

/** Refills one bucket for `elapsed` ms and returns its tokens; Infinity when the limit is off. */
function refill(t: Float64Array, i: number, limit: BucketRate | null, elapsed: number): number {
  if (limit === null) return Infinity;
  // A clock that steps back refills nothing rather than draining the bucket.
  const v = elapsed > 0 ? t[i] + elapsed * limit.rate / 1000 : t[i];
  t[i] = v > limit.burst ? limit.burst : v;
  return t[i];
}
