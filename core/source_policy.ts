/**
 * Source admission: whether a listener accepts a new client address at all.
 *
 * Pure. It runs once when a new client is admitted (not per datagram). The policy is compiled up front into
 * masked words, and a check runs on an address already read into words (core/ip_words.ts), so refusing a
 * flood of unknown sources (a deny block, a refused class) builds no string and allocates nothing; the
 * textual check reads the text into scratch words first.
 *
 * @module
 */

import { type Cidr, parseIp, unmapCidr } from "./address.ts";
import { type IpFamily, maskWord, readIpBytes } from "./ip_words.ts";
import type { SourceClass, SourcePolicy } from "./types.ts";

/** Why a source was refused: a refused class, a deny block, outside every allow block, or unparsable text. */
export type SourceRejection = SourceClass | "denied" | "not_allowed" | "unparsable";

/** The outcome of a source check: "ok", or the reason it was refused (a metric label and a log field). */
export type SourceVerdict = "ok" | SourceRejection;

/** A policy ready to answer checks. */
export interface CompiledSourcePolicy {
  /** Checks a client's textual IP and port as the runtime reported them. */
  check(ip: string, port: number): SourceVerdict;
  /** Checks an address read into words (`readIp`/`readIpBytes`; family 0 = unparsable). Allocation-free. */
  checkWords(family: IpFamily, words: Uint32Array, port: number): SourceVerdict;
}

/**
 * The policy a listener gets when its config says nothing: refuse sources no real client can have (port 0,
 * unspecified, multicast, broadcast). Loopback stays allowed because sidecars and tests send from it.
 */
export const DEFAULT_SOURCE_POLICY: SourcePolicy = {
  reject: ["port0", "unspecified", "multicast", "broadcast"],
  deny: [],
  allow: [],
};

/** A block as masked words (IPv4-mapped blocks as IPv4: addresses are checked unmapped). */
interface Block {
  readonly family: 4 | 6;
  readonly prefix: number;
  readonly words: Uint32Array;
}

function toBlock(given: Cidr): Block {
  const c = unmapCidr(given);
  const b = c.ip.bytes;
  const words = new Uint32Array(4);
  const n = c.ip.family === 4 ? 1 : 4;
  for (let w = 0; w < n; w++) {
    const word = ((b[w * 4] << 24) | (b[w * 4 + 1] << 16) | (b[w * 4 + 2] << 8) | b[w * 4 + 3]) >>> 0;
    words[w] = maskWord(word, c.prefix - w * 32);
  }
  return { family: c.ip.family, prefix: c.prefix, words };
}

/** True when any block holds the address; a loop, since lists are short and this runs once per new client. */
function containedIn(blocks: readonly Block[], family: 4 | 6, words: Uint32Array): boolean {
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i];
    if (b.family !== family) continue;
    let inside = true;
    const n = family === 4 ? 1 : 4;
    for (let w = 0; w < n && inside; w++) inside = maskWord(words[w], b.prefix - w * 32) === b.words[w];
    if (inside) return true;
  }
  return false;
}

/** The class of an address in words (IPv4-mapped ones were read as IPv4), as `classifyIp` does for bytes. */
function classifyWords(family: 4 | 6, w: Uint32Array): SourceClass | "unicast" {
  if (family === 4) {
    const top = w[0] >>> 24;
    if (top === 0) return "unspecified"; // 0.0.0.0/8: "this network", never a valid source
    if (top >= 224 && top <= 239) return "multicast";
    if (w[0] === 0xffff_ffff) return "broadcast";
    if (top === 127) return "loopback";
    return "unicast";
  }
  if (w[0] >>> 24 === 0xff) return "multicast";
  if (w[0] === 0 && w[1] === 0 && w[2] === 0) {
    if (w[3] === 0) return "unspecified";
    if (w[3] === 1) return "loopback";
  }
  return "unicast";
}

/**
 * Compiles a policy. Order of checks: unparsable, port 0, refused class, deny blocks, allow blocks; so deny
 * beats allow, and the most specific cheap reason is reported first.
 */
export function compileSourcePolicy(policy: SourcePolicy): CompiledSourcePolicy {
  const reject = new Set<string>(policy.reject);
  const rejectPort0 = reject.has("port0");
  // Compiled copies, so a later change to the caller's arrays cannot alter a policy flows were admitted under.
  const deny = policy.deny.map(toBlock);
  const allow = policy.allow.map(toBlock);
  const scratch = new Uint32Array(4);
  const checkWords = (family: IpFamily, words: Uint32Array, port: number): SourceVerdict => {
    if (family === 0) return "unparsable";
    if (rejectPort0 && port === 0) return "port0";
    const kind = classifyWords(family, words);
    if (kind !== "unicast" && reject.has(kind)) return kind;
    if (containedIn(deny, family, words)) return "denied";
    if (allow.length > 0 && !containedIn(allow, family, words)) return "not_allowed";
    return "ok";
  };
  return {
    check(ipText: string, port: number): SourceVerdict {
      // Text as parseIp reads it (brackets allowed, a zone or leading zeros refused), then the words.
      const ip = parseIp(ipText);
      if (ip === null) return "unparsable";
      return checkWords(readIpBytes(ip.bytes, 0, ip.family === 4 ? 4 : 16, scratch), scratch, port);
    },
    checkWords,
  };
}
