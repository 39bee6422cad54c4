/**
 * The checks every client datagram meets first, before the flow lookup and before the admission order
 * (core/admission_order.ts): a size within `max_datagram_size`, a cluster with backends (or an external
 * balancer), a non-empty payload; and, for a client with no flow only, a UDP listener (a TCP listener has
 * no flows, so an established flow's datagram never needs that check). Each failure is counted on the
 * listener and returned as its Drop code.
 *
 * On the forwarding path: pure, allocation-free, no string.
 *
 * @module
 */

import { Drop } from "./drops.ts";
import { isUdpListener, type Listener } from "./listener.ts";

/** The Drop code of a client datagram `data` on `listener` that fails a first check (counted), or null. */
export function earlyDrop(listener: Listener, data: Uint8Array): Drop | null {
  const size = data.byteLength;
  const drops = listener.counters.drops;
  if (size > listener.config.maxDatagramSize) {
    drops.truncated++;
    return Drop.Truncated;
  }
  const cluster = listener.cluster;
  if (cluster === null || (cluster.backends.length === 0 && cluster.config.balancer !== "external")) {
    drops.no_backend++;
    return Drop.NoBackend;
  }
  if (size === 0) {
    drops.invalid++;
    return Drop.Invalid;
  }
  return null;
}

/**
 * Invalid (counted) when `listener` is not a UDP listener: a datagram for a TCP listener is a shell's
 * mistake, and must never become a UDP flow on TCP counters. Checked before a flow is admitted.
 */
export function notUdp(listener: Listener): Drop | null {
  if (isUdpListener(listener)) return null;
  listener.counters.drops.invalid++;
  return Drop.Invalid;
}
