/**
 * The one order in which a new UDP flow and a new TCP connection are refused, shared by both admissions
 * (core/relay_core.ts `#admit`, core/tcp_admission.ts) so they cannot drift apart again:
 *
 * 1. bans, then the listener's per-source limits (and, UDP only, its first-datagram filter): first, so a
 *    flooding source is counted (and automatically banned) as what it is even while the listener is full
 *    or draining, instead of hiding among `shed`;
 * 2. the process's descriptor budget (`fd_limit`): with max_flows = 0 a listener's limit is that budget;
 * 3. draining or at max_flows (`shed`);
 * 4. the listener's source policy (`invalid`).
 *
 * What comes before (no cluster or no backend, datagram size) and after (the backend choice) is each
 * protocol's own. Pure; a refusal allocates nothing.
 *
 * @module
 */

import { admissionGuard, type ProtectionState } from "./admission_guard.ts";
import { Drop } from "./drops.ts";
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
 * Runs the shared refusals for a would-be flow or connection from `ip`:`port` on `listener` that needs
 * `cost` descriptors (`data`: its first datagram; empty for TCP). Returns the Drop code (counted on the
 * listener, and in the top-talker drops where the source is to blame), or null when it may go on: then it
 * is counted as a new flow of its source in the top talkers.
 */
export function refusal(
  host: AdmissionOrderHost,
  listener: Listener,
  ip: string,
  port: number,
  data: Uint8Array,
  cost: number,
  now: number,
): Drop | null {
  const drops = listener.counters.drops;
  const guarded = admissionGuard(host.protection, listener, ip, data, now);
  if (guarded !== null) return guarded;
  const draining = host.draining() || listener.draining;
  if (!draining && !host.descriptorsFor(cost)) {
    drops.fd_limit++;
    return Drop.FdLimit;
  }
  const limit = listener.config.maxFlows > 0 ? listener.config.maxFlows : host.autoMaxFlows;
  if (draining || listener.flows >= limit) {
    drops.shed++;
    host.protection.top.drops.add(ip, 1);
    return Drop.Shed;
  }
  if (listener.sources.check(ip, port) !== "ok") {
    drops.invalid++;
    return Drop.Invalid;
  }
  host.protection.top.flows.add(ip, 1);
  return null;
}
