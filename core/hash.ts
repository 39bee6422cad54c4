/**
 * Seeded 32-bit hashing (MurmurHash3 x86_32 over UTF-16 code units). Allocation-free, identical on every
 * runtime, so instances sharing a seed agree on every hash-based choice.
 *
 * @module
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixK(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

function mixH(h: number, k: number): number {
  h ^= mixK(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** The MurmurHash3 finaliser: spreads every input bit over the whole word. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hashes a string with a seed; two code units per 32-bit block. */
export function hashString(text: string, seed: number): number {
  let h = seed | 0;
  const n = text.length;
  let i = 0;
  for (; i + 1 < n; i += 2) h = mixH(h, text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16));
  if (i < n) h ^= mixK(text.charCodeAt(i));
  h ^= n * 2;
  return fmix32(h);
}

/** Combines a hash with another 32-bit value (a port, a backend's hash) into a new well-mixed hash. */
export function hashCombine(h: number, value: number): number {
  return fmix32(mixH(h | 0, value | 0) ^ 8);
}
