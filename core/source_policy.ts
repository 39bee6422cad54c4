/**
 * Source admission: whether a listener accepts a new client address at all.
 *
 * Pure. It runs once when a new client is admitted (not per datagram), so it may parse the address text;
 * compiling the policy up front keeps that one check free of per-call set building.
 *
 * @module
 */

import { type Cidr, cidrContains, classifyIp, type IpAddress, parseIp } from "./address.ts";
import type { SourceClass, SourcePolicy } from "./types.ts";

/** Why a source was refused: a refused class, a deny block, outside every allow block, or unparsable text. */
export type SourceRejection = SourceClass | "denied" | "not_allowed" | "unparsable";

/** The outcome of a source check: "ok", or the reason it was refused (a metric label and a log field). */
export type SourceVerdict = "ok" | SourceRejection;

/** A policy ready to answer checks. */
export interface CompiledSourcePolicy {
  /** Checks a client's textual IP and port as the runtime reported them. */
  check(ip: string, port: number): SourceVerdict;
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

/** True when any block holds the address; a loop, since lists are short and this runs once per new client. */
function containedIn(blocks: readonly Cidr[], ip: IpAddress): boolean {
  for (const block of blocks) if (cidrContains(block, ip)) return true;
  return false;
}

/**
 * Compiles a policy. Order of checks: unparsable, port 0, refused class, deny blocks, allow blocks; so deny
 * beats allow, and the most specific cheap reason is reported first.
 */
export function compileSourcePolicy(policy: SourcePolicy): CompiledSourcePolicy {
  const reject = new Set<SourceClass>(policy.reject);
  const rejectPort0 = reject.has("port0");
  // Copies, so a later change to the caller's arrays cannot alter a policy flows were admitted under.
  const deny = [...policy.deny];
  const allow = [...policy.allow];
  return {
    check(ipText: string, port: number): SourceVerdict {
      const ip = parseIp(ipText);
      if (ip === null) return "unparsable";
      if (rejectPort0 && port === 0) return "port0";
      const kind = classifyIp(ip);
      if (kind !== "unicast" && reject.has(kind)) return kind;
      if (containedIn(deny, ip)) return "denied";
      if (allow.length > 0 && !containedIn(allow, ip)) return "not_allowed";
      return "ok";
    },
  };
}
