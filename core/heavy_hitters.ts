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
 * source, and a new source takes over the minimum's entry in place (its own small hash index, no Map).
 *
 * @module
 */

import { hashString } from "./hash.ts";
import { formatWords, type IpFamily, prefixHash, readIp } from "./ip_words.ts";

const KEY_SEED = 0x70_70;

/** One tracked source: its estimated count and the most that estimate may exceed the true count by. */
export interface HeavyHitter {
  readonly key: string;
  readonly count: number;
  readonly error: number;
}

/**
 * A tracked source; entries move in the heap, so `pos` is updated in place. An IP source is keyed by its
 * words (`family` 4 or 6: text and raw addresses of one IP share an entry, IPv4-mapped ones as IPv4) and
 * its text is built only when the summary is read; any other key (`family` 0) by its text.
 */
interface Entry {
  readonly id: number;
  key: string | null;
  family: IpFamily;
  readonly words: Uint32Array;
  hash: number;
  count: number;
  error: number;
  pos: number;
}

const EMPTY = -1;

/** A Space-Saving summary of `k` counters. */
export class SpaceSaving {
  readonly k: number;
  /**
   * key → entry id, open addressing with linear probing and backward-shift deletion. A Map would do, but a
   * flood of distinct sources deletes and inserts on every datagram, which a JS Map pays for in rehashing.
   */
  readonly #slots: Int32Array;
  readonly #mask: number;
  readonly #entries: Entry[] = [];
  /** Min-heap of entries by count. */
  readonly #heap: Entry[] = [];
  /** Total weight seen since the last reset. */
  total = 0;
  readonly #scratch = new Uint32Array(4);

  /** A summary tracking `k` (≥ 1) sources. */
  constructor(k: number) {
    this.k = Math.max(1, Math.floor(k));
    let cap = 8;
    while (cap < this.k * 4) cap *= 2;
    this.#slots = new Int32Array(cap).fill(EMPTY);
    this.#mask = cap - 1;
  }

  #find(key: string | null, family: IpFamily, words: Uint32Array, hash: number): Entry | undefined {
    const slots = this.#slots, mask = this.#mask;
    for (let i = hash & mask; slots[i] !== EMPTY; i = (i + 1) & mask) {
      const e = this.#entries[slots[i]];
      if (e.hash !== hash || e.family !== family) continue;
      if (family === 0 ? e.key === key : sameWords(family, e.words, words)) return e;
    }
    return undefined;
  }

  #insert(e: Entry): void {
    const slots = this.#slots, mask = this.#mask;
    let i = e.hash & mask;
    while (slots[i] !== EMPTY) i = (i + 1) & mask;
    slots[i] = e.id;
  }

  #remove(e: Entry): void {
    const slots = this.#slots, mask = this.#mask;
    let i = e.hash & mask;
    while (slots[i] !== e.id) i = (i + 1) & mask;
    // Backward shift: move later members of the probe run into the hole, so lookups need no tombstones.
    for (let j = (i + 1) & mask; slots[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.#entries[slots[j]].hash & mask;
      const between = i <= j ? i < home && home <= j : i < home || home <= j;
      if (between) continue;
      slots[i] = slots[j];
      i = j;
    }
    slots[i] = EMPTY;
  }

  /** Adds `weight` (> 0) to `key`'s count (an IP's text counts with its words: see `addWords`). */
  add(key: string, weight: number): void {
    const w = this.#scratch;
    const family = readIp(key, w);
    if (family !== 0) return this.addWords(family, w, weight);
    this.#add(key, 0, w, hashString(key, KEY_SEED) & 0x3fff_ffff, weight);
  }

  /**
   * Adds `weight` (> 0) to the count of the IP in `words` (`readIp`/`readIpBytes`). Allocation-free: the
   * native driver's shed path counts refused sources without building their text.
   */
  addWords(family: 4 | 6, words: Uint32Array, weight: number): void {
    this.#add(null, family, words, prefixHash(family, words, 128, KEY_SEED), weight);
  }

  #add(key: string | null, family: IpFamily, words: Uint32Array, hash: number, weight: number): void {
    this.total += weight;
    const found = this.#find(key, family, words, hash);
    if (found !== undefined) {
      found.count += weight;
      this.#down(found.pos);
      return;
    }
    const heap = this.#heap;
    let e: Entry;
    if (heap.length < this.k) {
      e = this.#entries[heap.length];
      if (e === undefined) {
        e = { id: heap.length, key, family, words: new Uint32Array(4), hash, count: 0, error: 0, pos: 0 };
        this.#entries.push(e);
      }
      e.count = weight, e.error = 0, e.pos = heap.length;
      heap.push(e);
    } else {
      // Replace the minimum in place: the newcomer inherits its count as possible overestimate.
      e = heap[0];
      this.#remove(e);
      e.error = e.count;
      e.count += weight;
    }
    e.key = key;
    e.family = family;
    e.hash = hash;
    if (family !== 0) e.words.set(words);
    this.#insert(e);
    if (e.error === 0 && e.count === weight) this.#up(e.pos);
    else this.#down(e.pos);
  }

  /** The largest error any reported count can have: the smallest tracked count (≤ total / k). */
  get maxError(): number {
    return this.#heap.length < this.k ? 0 : this.#heap[0].count;
  }

  /** The `n` largest counts, largest first. */
  top(n: number): HeavyHitter[] {
    const out: HeavyHitter[] = this.#heap.map((e) => ({ key: this.#key(e), count: e.count, error: e.error }));
    out.sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : 1));
    return out.slice(0, n);
  }

  /** An entry's text, built once (a summary read, not the data path). */
  #key(e: Entry): string {
    if (e.key === null) e.key = formatWords(e.family as 4 | 6, e.words);
    return e.key;
  }

  /** Forgets everything. */
  reset(): void {
    this.#slots.fill(EMPTY);
    this.#heap.length = 0;
    this.total = 0;
  }

  #up(i: number): void {
    const h = this.#heap;
    const e = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].count <= e.count) break;
      h[i] = h[p];
      h[i].pos = i;
      i = p;
    }
    h[i] = e;
    e.pos = i;
  }

  #down(i: number): void {
    const h = this.#heap;
    const n = h.length;
    const e = h[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const m = r < n && h[r].count < h[l].count ? r : l;
      if (e.count <= h[m].count) break;
      h[i] = h[m];
      h[i].pos = i;
      i = m;
    }
    h[i] = e;
    e.pos = i;
  }
}

function sameWords(family: 4 | 6, a: Uint32Array, b: Uint32Array): boolean {
  if (a[0] !== b[0]) return false;
  return family === 4 || (a[1] === b[1] && a[2] === b[2] && a[3] === b[3]);
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

  /** Resets every summary at `now`. */
  reset(now: number): void {
    for (const d of TOP_DIMENSIONS) this[d].reset();
    this.since = now;
  }
}
