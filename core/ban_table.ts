/**
 * Bans: CIDR blocks refused for a while (or for good), with a reason and a hit count.
 *
 * Pure (time is a parameter). A check costs one hash and one Map lookup per distinct prefix length in the
 * table (at most 33 for IPv4, 129 for IPv6, in practice a handful), on words `readIp` filled without
 * allocating, so it runs on every would-be new flow, flood traffic included. Expired bans are removed when
 * met, and by `expire`.
 *
 * @module
 */

import { type Cidr, formatIp, parseCidr, unmapIpv4 } from "./address.ts";
import { type IpFamily, maskWord, prefixHash, readIp } from "./ip_words.ts";

/** Where a ban came from. */
export type BanOrigin = "api" | "auto" | "fleet";

/** One ban. `hits` counts the new flows it refused on this instance. */
export interface Ban {
  /** The block in canonical form ("10.1.0.0/16", "2001:db8::/32"). */
  readonly cidr: string;
  readonly family: 4 | 6;
  readonly prefix: number;
  /** The block's address as words, masked to `prefix`. */
  readonly words: Uint32Array;
  readonly reason: string;
  readonly origin: BanOrigin;
  readonly createdAt: number;
  /** When it lapses (ms, same clock as `now`); Infinity = until removed. */
  readonly expiresAt: number;
  hits: number;
}

/** What `BanTable.add` takes. */
export interface BanRequest {
  readonly cidr: string | Cidr;
  /** Lifetime in ms; 0 or Infinity = until removed. */
  readonly ttlMs: number;
  readonly reason: string;
  readonly origin: BanOrigin;
}

const SEED = 0x6261_6e73;

/**
 * A block given as text or parsed, as the table keys it: `readIp` reads an IPv4-mapped source
 * (::ffff:a.b.c.d) as IPv4, so a block inside ::ffff:0:0/96 becomes the IPv4 block it covers
 * (::ffff:192.0.2.0/120 is 192.0.2.0/24) or it could never match. Shorter IPv6 blocks stay IPv6.
 */
function block(cidr: string | Cidr): Cidr | string {
  const c = typeof cidr === "string" ? parseCidr(cidr) : cidr;
  if (typeof c === "string" || c.ip.family !== 6 || c.prefix < 96) return c;
  const ip = unmapIpv4(c.ip);
  return ip.family === 4 ? { ip, prefix: c.prefix - 96 } : c;
}

/** Words of a parsed CIDR, masked to its prefix. */
function cidrWords(cidr: Cidr): Uint32Array {
  const out = new Uint32Array(4);
  const b = cidr.ip.bytes;
  const n = cidr.ip.family === 4 ? 1 : 4;
  for (let w = 0; w < n; w++) {
    const word = ((b[w * 4] << 24) | (b[w * 4 + 1] << 16) | (b[w * 4 + 2] << 8) | b[w * 4 + 3]) >>> 0;
    out[w] = maskWord(word, cidr.prefix - w * 32);
  }
  return out;
}

/** The canonical text of a block: its address masked to the prefix, then "/prefix". */
function canonical(cidr: Cidr, words: Uint32Array): string {
  const n = cidr.ip.family === 4 ? 4 : 16;
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (words[i >> 2] >>> (24 - 8 * (i & 3))) & 0xff;
  return `${formatIp({ family: cidr.ip.family, bytes })}/${cidr.prefix}`;
}

/** The canonical text of a CIDR block ("10.1.2.3/16" → "10.1.0.0/16"), or null when it is none. */
export function canonicalCidr(text: string): string | null {
  const cidr = block(text);
  return typeof cidr === "string" ? null : canonical(cidr, cidrWords(cidr));
}

function sameBlock(ban: Ban, family: 4 | 6, words: Uint32Array): boolean {
  if (ban.family !== family) return false;
  const n = family === 4 ? 1 : 4;
  for (let w = 0; w < n; w++) if (maskWord(words[w], ban.prefix - w * 32) !== ban.words[w]) return false;
  return true;
}

/** The set of bans of one relay. */
export class BanTable {
  /** Block hash → bans with that hash (almost always one). */
  readonly #byHash = new Map<number, Ban[]>();
  readonly #byCidr = new Map<string, Ban>();
  /** Distinct prefix lengths in use, per family, longest first, so the most specific ban is found first. */
  #lengths4: number[] = [];
  #lengths6: number[] = [];
  readonly #scratch = new Uint32Array(4);
  /** Bumped on every add or removal, so a kernel filter compiled from the table knows it is stale. */
  generation = 0;

  /** Number of bans (expired ones not yet met included). */
  get size(): number {
    return this.#byCidr.size;
  }

  /** Adds or replaces the ban on a block; returns it, or a reason the block is invalid. */
  add(request: BanRequest, now: number): Ban | string {
    const cidr = block(request.cidr);
    if (typeof cidr === "string") return cidr;
    const words = cidrWords(cidr);
    const text = canonical(cidr, words);
    const old = this.#byCidr.get(text);
    if (old !== undefined) this.#delete(old);
    const ttl = request.ttlMs;
    const ban: Ban = {
      cidr: text,
      family: cidr.ip.family,
      prefix: cidr.prefix,
      words,
      reason: request.reason,
      origin: request.origin,
      createdAt: now,
      expiresAt: ttl > 0 && Number.isFinite(ttl) ? now + ttl : Infinity,
      hits: old?.hits ?? 0,
    };
    this.#byCidr.set(text, ban);
    const h = prefixHash(ban.family, words, ban.prefix, SEED);
    const list = this.#byHash.get(h);
    if (list === undefined) this.#byHash.set(h, [ban]);
    else list.push(ban);
    this.#relength();
    return ban;
  }

  /** Removes the ban on a block (any spelling of it); true if there was one. */
  remove(cidrText: string): boolean {
    const cidr = block(cidrText);
    if (typeof cidr === "string") return false;
    const ban = this.#byCidr.get(canonical(cidr, cidrWords(cidr)));
    if (ban === undefined) return false;
    this.#delete(ban);
    this.#relength();
    return true;
  }

  #delete(ban: Ban): void {
    this.#byCidr.delete(ban.cidr);
    const h = prefixHash(ban.family, ban.words, ban.prefix, SEED);
    const list = this.#byHash.get(h);
    if (list !== undefined) {
      const i = list.indexOf(ban);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.#byHash.delete(h);
    }
    this.generation++;
  }

  #relength(): void {
    const four = new Set<number>();
    const six = new Set<number>();
    for (const b of this.#byCidr.values()) (b.family === 4 ? four : six).add(b.prefix);
    this.#lengths4 = [...four].sort((a, b) => b - a);
    this.#lengths6 = [...six].sort((a, b) => b - a);
    this.generation++;
  }

  /**
   * The live ban holding a parsed address, counting a hit on it, or null. Allocation-free unless it meets
   * an expired ban (which it removes).
   */
  matchWords(family: 4 | 6, words: Uint32Array, now: number): Ban | null {
    const lengths = family === 4 ? this.#lengths4 : this.#lengths6;
    for (let i = 0; i < lengths.length; i++) {
      const list = this.#byHash.get(prefixHash(family, words, lengths[i], SEED));
      if (list === undefined) continue;
      for (let j = 0; j < list.length; j++) {
        const ban = list[j];
        if (ban.prefix !== lengths[i] || !sameBlock(ban, family, words)) continue;
        if (ban.expiresAt <= now) {
          this.#delete(ban);
          this.#relength();
          return this.matchWords(family, words, now);
        }
        ban.hits++;
        return ban;
      }
    }
    return null;
  }

  /** The live ban holding textual IP `ip` (counting a hit), or null; unparsable text matches nothing. */
  match(ip: string, now: number): Ban | null {
    if (this.#byCidr.size === 0) return null;
    const family: IpFamily = readIp(ip, this.#scratch);
    return family === 0 ? null : this.matchWords(family, this.#scratch, now);
  }

  /** Removes every ban lapsed by `now`; returns how many. */
  expire(now: number): number {
    let n = 0;
    for (const ban of [...this.#byCidr.values()]) {
      if (ban.expiresAt <= now) {
        this.#delete(ban);
        n++;
      }
    }
    if (n > 0) this.#relength();
    return n;
  }

  /** The live bans, most recent first. */
  list(now: number): Ban[] {
    this.expire(now);
    return [...this.#byCidr.values()].sort((a, b) => b.createdAt - a.createdAt);
  }

  /** The ban on exactly this block, if any. */
  get(cidrText: string): Ban | undefined {
    const cidr = block(cidrText);
    if (typeof cidr === "string") return undefined;
    return this.#byCidr.get(canonical(cidr, cidrWords(cidr)));
  }
}
