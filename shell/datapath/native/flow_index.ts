/**
 * The native driver's index of one listener's attached flows, keyed by the client's address as the kernel
 * wrote it (sockaddr bytes read into words by `readIpBytes`, IPv4-mapped ones as IPv4) and port, so a
 * datagram of an established flow, IPv4 or IPv6, finds its flow without building the client's text.
 *
 * Open addressing with linear probing over typed arrays (a JS Map keyed by ip × 65536 + port would box a
 * double per lookup under V8), backward-shift deletion (no tombstones: lookups stay short under churn),
 * and a seeded hash, so sources cannot be chosen to pile into one probe run. Grows (doubling) at half load;
 * growth allocates, and happens only when a flow is added (admission). A lookup and a miss allocate nothing.
 *
 * It mirrors the core's flow table for the listener: an entry is added when the core returns a flow for a
 * client (`admitScreened`) and removed when the core closes it; a flow found here that the core has since
 * detached (its requests cap) is removed at lookup. Every attached flow of the listener is in it, so a miss
 * means an unknown client, which goes to the core's string-free pre-admission (`RelayCore.screen`).
 *
 * @module
 */

import type { Flow } from "../../../core/flow.ts";
import { hashCombine } from "../../../core/hash.ts";

const EMPTY = 0;
/** The smallest table (a power of two). */
const MIN_CAPACITY = 64;

/** A tag is never EMPTY: family × 65536 + port + 1. */
function tagOf(family: 4 | 6, port: number): number {
  return family * 65_536 + port + 1;
}

/** Attached flows of one listener by client address words and port. */
export class FlowIndex {
  #tags: Int32Array;
  #hashes: Uint32Array;
  #words: Uint32Array;
  #flows: (Flow | null)[];
  #mask: number;
  #size = 0;
  readonly #seed: number;

  /** An empty index; `seed` keys the hash (a random one by default). */
  constructor(seed = (Math.random() * 0x1_0000_0000) >>> 0, capacity = MIN_CAPACITY) {
    this.#seed = seed;
    let cap = MIN_CAPACITY;
    while (cap < capacity) cap *= 2;
    this.#tags = new Int32Array(cap);
    this.#hashes = new Uint32Array(cap);
    this.#words = new Uint32Array(cap * 4);
    this.#flows = new Array<Flow | null>(cap).fill(null);
    this.#mask = cap - 1;
  }

  /** Entries held. */
  get size(): number {
    return this.#size;
  }

  /** Slots (tests, diagnostics). */
  get capacity(): number {
    return this.#mask + 1;
  }

  #hash(family: 4 | 6, words: Uint32Array, tag: number): number {
    let h = hashCombine(this.#seed, words[0]);
    if (family === 6) h = hashCombine(hashCombine(hashCombine(h, words[1]), words[2]), words[3]);
    // 30 bits: a small integer on every engine (a 32-bit one would be a boxed double under V8).
    return hashCombine(h, tag) & 0x3fff_ffff;
  }

  /** The slot holding the key, or -1. */
  #find(family: 4 | 6, words: Uint32Array, port: number): number {
    const tag = tagOf(family, port);
    const h = this.#hash(family, words, tag);
    const tags = this.#tags, hashes = this.#hashes, w = this.#words, mask = this.#mask;
    for (let i = h & mask; tags[i] !== EMPTY; i = (i + 1) & mask) {
      if (tags[i] !== tag || hashes[i] !== h) continue;
      const at = i * 4;
      if (w[at] !== words[0]) continue;
      if (family === 6 && (w[at + 1] !== words[1] || w[at + 2] !== words[2] || w[at + 3] !== words[3])) {
        continue;
      }
      return i;
    }
    return -1;
  }

  /** The flow of a client, if indexed. Allocation-free. */
  get(family: 4 | 6, words: Uint32Array, port: number): Flow | undefined {
    const i = this.#find(family, words, port);
    return i < 0 ? undefined : (this.#flows[i] as Flow);
  }

  /** Indexes `flow` as the client's (replacing the one before, if any). */
  set(family: 4 | 6, words: Uint32Array, port: number, flow: Flow): void {
    const found = this.#find(family, words, port);
    if (found >= 0) {
      this.#flows[found] = flow;
      return;
    }
    if ((this.#size + 1) * 2 > this.#mask + 1) this.#grow();
    const tag = tagOf(family, port);
    this.#place(tag, this.#hash(family, words, tag), words, family === 6 ? 4 : 1, flow);
    this.#size++;
  }

  #place(tag: number, h: number, words: Uint32Array, n: number, flow: Flow, from = 0): void {
    const tags = this.#tags, mask = this.#mask;
    let i = h & mask;
    while (tags[i] !== EMPTY) i = (i + 1) & mask;
    tags[i] = tag;
    this.#hashes[i] = h;
    const at = i * 4;
    for (let k = 0; k < 4; k++) this.#words[at + k] = k < n ? words[from + k] : 0;
    this.#flows[i] = flow;
  }

  /** Removes the client's entry when it is `flow` (any flow when omitted); true if one was removed. */
  delete(family: 4 | 6, words: Uint32Array, port: number, flow?: Flow): boolean {
    const i = this.#find(family, words, port);
    if (i < 0 || (flow !== undefined && this.#flows[i] !== flow)) return false;
    this.#removeAt(i);
    return true;
  }

  #removeAt(hole: number): void {
    const tags = this.#tags, hashes = this.#hashes, w = this.#words, flows = this.#flows, mask = this.#mask;
    // Backward shift: move later members of the probe run into the hole, so lookups need no tombstones.
    for (let j = (hole + 1) & mask; tags[j] !== EMPTY; j = (j + 1) & mask) {
      const home = hashes[j] & mask;
      const between = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (between) continue;
      tags[hole] = tags[j];
      hashes[hole] = hashes[j];
      w.copyWithin(hole * 4, j * 4, j * 4 + 4);
      flows[hole] = flows[j];
      hole = j;
    }
    tags[hole] = EMPTY;
    flows[hole] = null;
    this.#size--;
  }

  #grow(): void {
    const tags = this.#tags, hashes = this.#hashes, w = this.#words, flows = this.#flows;
    const cap = (this.#mask + 1) * 2;
    this.#tags = new Int32Array(cap);
    this.#hashes = new Uint32Array(cap);
    this.#words = new Uint32Array(cap * 4);
    this.#flows = new Array<Flow | null>(cap).fill(null);
    this.#mask = cap - 1;
    for (let i = 0; i < tags.length; i++) {
      if (tags[i] !== EMPTY) this.#place(tags[i], hashes[i], w, 4, flows[i] as Flow, i * 4);
    }
  }

  /** Forgets every entry. */
  clear(): void {
    this.#tags.fill(EMPTY);
    this.#flows.fill(null);
    this.#size = 0;
  }
}
