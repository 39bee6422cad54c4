/**
 * The one order in which a new UDP flow and a new TCP connection are refused, shared by both admissions
 * (core/relay_core.ts and core/admission.ts for UDP, core/tcp_admission.ts) so they cannot drift apart:
 *
 * 1. bans, then the listener's per-source limits (and, UDP only, its first-datagram filter): first, so a
 *    flooding source is counted (and automatically banned) as what it is even while the listener is full
 *    or draining, instead of hiding among `shed`;
 * 2. the process's descriptor budget (`fd_limit`): with max_flows = 0 a listener's limit is that budget;
 * 3. draining or at max_flows (`shed`);
 * 4. the listener's source policy (`invalid`).
 *
 * The checks read the client's address as words (core/ip_words.ts), so the native driver can refuse a
 * flood before any text of the address exists. What comes before (no cluster or no backend, datagram
 * size) and after (the backend choice) is each protocol's own. Pure; a refusal allocates nothing (an
 * automatic ban, when one is placed, is the exception).
 *
 * @module
 */

import { admissionGuard, type ProtectionState } from "./admission_guard.ts";
import { Drop } from "./drops.ts";
import type { IpFamily } from "./ip_words.ts";
import type { Listener } from "./listener.ts";

/** What the shared checks need of their core. */
export interface AdmissionOrderHost {
  readonly protection: ProtectionState;
  /** The flow limit of listeners whose max_flows is 0. */
  readonly autoMaxFlows: number;
  /** Whether the whole core is draining. */
  draining(): boolean;
  /** Whether the descriptor budget has room for `cost` more (reports a refusal episode once). */
  descriptorsFor(cost: number): boolean;
}

/**
 * Runs the shared refusals for a would-be flow or connection on `listener` that needs `cost` descriptors:
 * its client's address in `words` (`readIp`/`readIpBytes`; family 0 = text that is no IP, which only the
 * filter checks), its text `ip` when the shell has it (the source policy reads the text then, else the
 * words), its `port`, and `data` (its first datagram; empty for TCP). Returns the Drop code (counted on the
 * listener, and in the top-talker drops where the source is to blame), or null when it may go on.
 */
export function refusal(
  host: AdmissionOrderHost,
  listener: Listener,
  family: IpFamily,
  words: Uint32Array,
  ip: string | null,
  port: number,
  data: Uint8Array,
  cost: number,
  now: number,
): Drop | null {
  const drops = listener.counters.drops;
  const guarded = admissionGuard(host.protection, listener, family, words, data, now);
  if (guarded !== null) return guarded;
  const draining = host.draining() || listener.draining;
  if (!draining && !host.descriptorsFor(cost)) {
    drops.fd_limit++;
    return Drop.FdLimit;
  }
  const limit = listener.config.maxFlows > 0 ? listener.config.maxFlows : host.autoMaxFlows;
  if (draining || listener.flows >= limit) {
    drops.shed++;
    if (family !== 0) host.protection.top.drops.addWords(family, words, 1);
    else if (ip !== null) host.protection.top.drops.add(ip, 1);
    return Drop.Shed;
  }
  const verdict = ip !== null
    ? listener.sources.check(ip, port)
    : listener.sources.checkWords(family, words, port);
  if (verdict !== "ok") {
    drops.invalid++;
    return Drop.Invalid;
  }
  return null;
}
