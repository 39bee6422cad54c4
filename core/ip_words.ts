/**
 * Allocation-free reading of a textual IP into four 32-bit words, and seeded hashes of its prefixes.
 *
 * Pure. Edge protection keys its limiters and ban lookups by source IP and by source prefix (/24, /64) for
 * every datagram that does not belong to an established flow, flood traffic included, so parsing here must
 * build no string, array or object: it writes into a caller's `Uint32Array(4)`. An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) reads as IPv4, so a dual-stack listener limits and bans a client like an IPv4
 * one.
 *
 * @module
 */

import { formatIp, isIpv4Mapped, isIpv4MappedWords } from "./address.ts";
import { fmix32, hashCombine } from "./hash.ts";

/** Address family of a parsed IP: 4, 6, or 0 when the text is no IP. */
export type IpFamily = 0 | 4 | 6;

const DOT = 46;
const COLON = 58;
const PERCENT = 37;

/** The value of a hex digit, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Reads dotted-quad text from `start` to `end` as one 32-bit word, or -1. */
function readIpv4(text: string, start: number, end: number): number {
  let word = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i <= end; i++) {
    const c = i === end ? DOT : text.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || parts === 4) return -1;
      word = (word << 8) | part;
      parts++;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1; // a leading zero reads as octal elsewhere: refused
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else return -1;
  }
  return parts === 4 ? word >>> 0 : -1;
}

// Parser state in module scratch rather than a closure, so a parse allocates nothing. Hextets after "::" are
// gathered in `tail` before they can be placed.
const tail = new Uint16Array(8);
let head = 0; // hextets before "::" (or all of them)
let tails = 0; // hextets after "::"
let gap = false;

function put(out: Uint32Array, hextet: number): boolean {
  if (gap) {
    if (tails >= 8) return false;
    tail[tails++] = hextet;
  } else {
    if (head >= 8) return false;
    setHextet(out, head++, hextet);
  }
  return true;
}

/**
 * Parses `text` into `out` (network order, word 0 first; IPv4 uses word 0 only) and returns its family, or 0
 * when it is no IP. A zone ("%eth0") is ignored: it names an interface, not a different source.
 */
export function readIp(text: string, out: Uint32Array): IpFamily {
  let end = text.length;
  let colon = false;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === COLON) colon = true;
    else if (c === PERCENT) {
      end = i;
      break;
    }
  }
  if (!colon) {
    const w = readIpv4(text, 0, end);
    if (w < 0) return 0;
    out[0] = w;
    return 4;
  }
  out[0] = 0, out[1] = 0, out[2] = 0, out[3] = 0;
  head = 0;
  tails = 0;
  gap = false;
  let i = 0;
  if (end >= 2 && text.charCodeAt(0) === COLON) {
    if (text.charCodeAt(1) !== COLON) return 0;
    gap = true;
    i = 2;
  }
  while (i < end) {
    // One hextet, or a trailing dotted quad.
    let value = 0;
    let digits = 0;
    let j = i;
    for (; j < end; j++) {
      const d = hexDigit(text.charCodeAt(j));
      if (d < 0) break;
      value = (value << 4) | d;
      digits++;
    }
    if (j < end && text.charCodeAt(j) === DOT) {
      const w = readIpv4(text, i, end);
      if (w < 0) return 0;
      if (!put(out, w >>> 16) || !put(out, w & 0xffff)) return 0;
      i = end;
      break;
    }
    if (digits === 0 || digits > 4) return 0;
    if (!put(out, value)) return 0;
    i = j;
    if (i === end) break;
    if (text.charCodeAt(i) !== COLON) return 0;
    i++;
    if (i < end && text.charCodeAt(i) === COLON) {
      if (gap) return 0;
      gap = true;
      i++;
    } else if (i === end) return 0; // a trailing single colon
  }
  const total = head + tails;
  if (gap ? total > 7 : total !== 8) return 0;
  for (let k = 0; k < tails; k++) setHextet(out, 8 - tails + k, tail[k]);
  // ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket.
  if (isIpv4MappedWords(out)) {
    out[0] = out[3];
    return 4;
  }
  return 6;
}

/**
 * Reads an address from raw bytes (a sockaddr's, network order) into `out` as `readIp` would its text: the 4
 * bytes of an IPv4 address (`size` 4), or 16 of an IPv6 one, which read as IPv4 when they are IPv4-mapped.
 * Allocation-free: the native driver's path from a datagram to its flow, or to a refusal, builds no string.
 */
export function readIpBytes(u8: Uint8Array, off: number, size: 4 | 16, out: Uint32Array): 4 | 6 {
  if (size === 16 && isIpv4Mapped(u8, off)) off += 12;
  else if (size === 16) {
    for (let w = 0; w < 4; w++) out[w] = word(u8, off + 4 * w);
    return 6;
  }
  out[0] = word(u8, off);
  return 4;
}

/** The text of an address in words, masked to its first `bits` bits (all by default). Control path: a string. */
export function formatWords(family: 4 | 6, words: Uint32Array, bits = 128): string {
  const n = family === 4 ? 4 : 16;
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const w = maskWord(words[i >> 2], bits - 32 * (i >> 2));
    bytes[i] = (w >>> (24 - 8 * (i & 3))) & 0xff;
  }
  return formatIp({ family, bytes });
}

function word(u8: Uint8Array, at: number): number {
  return ((u8[at] << 24) | (u8[at + 1] << 16) | (u8[at + 2] << 8) | u8[at + 3]) >>> 0;
}

function setHextet(out: Uint32Array, index: number, value: number): void {
  const w = index >> 1;
  out[w] = (index & 1) === 0
    ? ((value << 16) | (out[w] & 0xffff)) >>> 0
    : ((out[w] & 0xffff0000) | value) >>> 0;
}

/** `word` with only its first `bits` (0..32) bits kept. */
export function maskWord(word: number, bits: number): number {
  if (bits >= 32) return word >>> 0;
  if (bits <= 0) return 0;
  return (word & (0xffffffff << (32 - bits))) >>> 0;
}

/**
 * A seeded 30-bit hash of the first `bits` bits of a parsed address; family and length are part of the key,
 * so 10.0.0.0/8 and 10.0.0.0/16 (or an IPv4 and an IPv6 prefix) do not share a slot by construction. 30
 * bits, so the value is a small integer on every engine: a full 32-bit one is a boxed double under V8 once
 * it is passed, returned or used as a Map key, which made each refused datagram allocate (measured:
 * scripts/bench-native-lookup.ts).
 */
export function prefixHash(family: 4 | 6, words: Uint32Array, bits: number, seed: number): number {
  let h = hashCombine(seed, (family << 8) | bits);
  const n = family === 4 ? 1 : 4;
  for (let w = 0; w < n; w++) {
    const keep = bits - w * 32;
    if (keep <= 0) break;
    h = hashCombine(h, maskWord(words[w], keep));
  }
  return fmix32(h) & 0x3fff_ffff;
}
