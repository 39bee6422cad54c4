/**
 * The edge-protection steps of admission, called by the relay core before it allocates a flow: the ban
 * table, then the listener's source limits and first-datagram filter. Kept out of relay_core.ts so the core
 * only calls in; the counters and Drop codes are the listener's.
 *
 * Pure. A refusal allocates nothing (strings are built only when an automatic ban is placed).
 *
 * @module
 */

import type { Ban, BanTable } from "./ban_table.ts";
import type { TopTalkers } from "./heavy_hitters.ts";
import { Drop } from "./drops.ts";
import type { IpFamily } from "./ip_words.ts";
import type { Listener } from "./listener.ts";
import { type ListenerProtection, Verdict } from "./protection.ts";

/** Protection state a core holds for all its listeners. */
export interface ProtectionState {
  readonly bans: BanTable;
  readonly top: TopTalkers;
  /** Automatic bans placed since the shell last took them (to log and share with the fleet); bounded. */
  readonly autoBans: Ban[];
  /** Automatic bans placed since start. */
  autoBanCount: number;
}

/** Automatic bans kept for the shell at most; older ones are still enforced, just no longer announced. */
export const MAX_PENDING_AUTO_BANS = 1024;

/**
 * Places the ban a protection asked for, if any, unless a live ban on that block is in force already: a
 * source stays over its limit (an established flow keeps sending) after it is banned, and re-placing the
 * ban on every refused datagram would shorten an operator's longer ban, announce the same ban to the fleet
 * again and again, and make the kernel filter recompile.
 */
function placeAutoBan(state: ProtectionState, p: ListenerProtection, now: number): void {
  const request = p.pendingBan;
  if (request === null) return;
  p.pendingBan = null;
  const existing = state.bans.get(request.cidr);
  if (existing !== undefined && existing.expiresAt > now) return;
  const ban = state.bans.add({ ...request, origin: "auto" }, now);
  if (typeof ban === "string") return;
  state.autoBanCount++;
  if (state.autoBans.length >= MAX_PENDING_AUTO_BANS) state.autoBans.shift();
  state.autoBans.push(ban);
}

/**
 * Decides a would-be new flow from the address in `words` (`readIp`/`readIpBytes`; family 0 = text that is
 * no IP, which only the filter checks) whose first datagram is `data`: a Drop code (counted on the listener
 * and in the top-talker drops), or null to go on with admission. Allocation-free unless it places an
 * automatic ban.
 */
export function admissionGuard(
  state: ProtectionState,
  listener: Listener,
  family: IpFamily,
  words: Uint32Array,
  data: Uint8Array,
  now: number,
): Drop | null {
  const drops = listener.counters.drops;
  if (family !== 0 && state.bans.size > 0 && state.bans.matchWords(family, words, now) !== null) {
    drops.banned++;
    state.top.drops.addWords(family, words, 1);
    return Drop.Banned;
  }
  const p = listener.protection;
  if (p === null) return null;
  const v = p.admitWords(family, words, data, now);
  if (v === Verdict.Ok) return null;
  if (family !== 0) state.top.drops.addWords(family, words, 1);
  if (v === Verdict.Filtered) {
    drops.filtered++;
    return Drop.Filtered;
  }
  drops.rate_limited++;
  placeAutoBan(state, p, now);
  return Drop.RateLimited;
}

/**
 * Charges a datagram of an established flow to its source's buckets; true when it must be dropped as
 * `rate_limited` (counted here). Called only when the listener limits datagrams or bytes.
 */
export function overEstablishedLimit(
  state: ProtectionState,
  listener: Listener,
  p: ListenerProtection,
  ip: string,
  size: number,
  now: number,
): boolean {
  if (p.charge(ip, size, now) === Verdict.Ok) return false;
  listener.counters.drops.rate_limited++;
  state.top.drops.add(ip, 1);
  placeAutoBan(state, p, now);
  return true;
}
