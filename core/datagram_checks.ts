/**
 * The checks every client datagram meets first, before the flow lookup and before the admission order
 * (core/admission_order.ts): a UDP listener, a size within `max_datagram_size`, a cluster with backends (or
 * an external balancer), a non-empty payload. Each failure is counted on the listener and returned as its
 * Drop code.
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
  // A datagram for a TCP listener is a shell's mistake: counted, never a UDP flow on TCP counters.
  if (!isUdpListener(listener)) {
    drops.invalid++;
    return Drop.Invalid;
  }
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
