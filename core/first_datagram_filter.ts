/**
 * First-datagram filters: a new flow is admitted only if its first datagram has the listener's expected
 * shape — bytes at an offset (a game protocol's magic, a DNS header's flags), a length range, a regex over
 * the datagram read as Latin-1 — so junk floods are dropped as `filtered` before anything is allocated.
 *
 * Pure. Byte and length checks allocate nothing; the regex, if any, runs last on at most `REGEX_WINDOW`
 * bytes (one string built per new flow that passed the cheap checks, never per forwarded datagram).
 *
 * @module
 */

import { decodeHex } from "./health.ts";

/** One "these bytes at this offset" condition. */
export interface BytesAt {
  readonly offset: number;
  readonly bytes: Uint8Array;
  /** Bits of each byte that must match (same length as `bytes`); null = all of them. */
  readonly mask: Uint8Array | null;
}

/** A listener's first-datagram rule; every present condition must hold. */
export interface FirstDatagramRule {
  readonly minLength: number;
  /** Inclusive; 0 = no upper bound beyond max_datagram_size. */
  readonly maxLength: number;
  readonly match: readonly BytesAt[];
  /** Source of a regex tested against the datagram's first REGEX_WINDOW bytes as Latin-1; "" = none. */
  readonly regex: string;
  /**
   * The rule holds for every datagram of the protocol, not only a flow's first: the kernel filter may then
   * check it on all of them (user space still checks only first datagrams). Default false.
   */
  readonly allDatagrams?: boolean;
}

/** How much of a datagram the regex sees: bounds its cost per new flow. */
export const REGEX_WINDOW = 512;

/** A rule ready to test datagrams. */
export interface CompiledFilter {
  readonly rule: FirstDatagramRule;
  /** True when `data` may start a flow. */
  test(data: Uint8Array): boolean;
}

/**
 * Parses "0x1f 8b", "1f8b", or "ff:ff" style hex into bytes (the config's one hex reader, `decodeHex`),
 * refusing an empty one: a match needs bytes.
 */
export function parseHex(text: string): Uint8Array | string {
  const bytes = decodeHex(text);
  return typeof bytes !== "string" && bytes.length === 0 ? "empty hex string" : bytes;
}

/** Checks a regex source compiles; returns the reason when it does not. */
export function checkRegex(source: string): string | null {
  try {
    new RegExp(source);
    return null;
  } catch (e) {
    return `invalid regex: ${(e as Error).message}`;
  }
}

/** True when `data` holds `m.bytes` (under `m.mask`) at `m.offset`. */
export function bytesMatch(data: Uint8Array, m: BytesAt): boolean {
  const n = m.bytes.length;
  if (m.offset + n > data.length) return false;
  const mask = m.mask;
  for (let i = 0; i < n; i++) {
    const bits = mask === null ? 0xff : mask[i];
    if ((data[m.offset + i] & bits) !== (m.bytes[i] & bits)) return false;
  }
  return true;
}

/** Latin-1 text of the first REGEX_WINDOW bytes, a chunk at a time (no per-byte string concatenation). */
function latin1(data: Uint8Array): string {
  const end = data.length < REGEX_WINDOW ? data.length : REGEX_WINDOW;
  let s = "";
  for (let i = 0; i < end; i += 256) {
    s += String.fromCharCode.apply(null, data.subarray(i, Math.min(end, i + 256)) as unknown as number[]);
  }
  return s;
}

/** Compiles a rule (its regex must be valid: the config check ran `checkRegex`). */
export function compileFilter(rule: FirstDatagramRule): CompiledFilter {
  const regex = rule.regex === "" ? null : new RegExp(rule.regex);
  const { minLength, maxLength, match } = rule;
  return {
    rule,
    test(data: Uint8Array): boolean {
      const n = data.length;
      if (n < minLength || (maxLength > 0 && n > maxLength)) return false;
      for (let i = 0; i < match.length; i++) if (!bytesMatch(data, match[i])) return false;
      if (regex !== null) {
        regex.lastIndex = 0;
        return regex.test(latin1(data));
      }
      return true;
    },
  };
}
