/**
 * What the native driver reports of a bound listener: the socket options the kernel granted, its receive
 * queue's drops and its flows' upstream sockets' drops (SO_MEMINFO, SO_RXQ_OVFL), batch size, GSO and the
 * kernel filter's state.
 *
 * @module
 */

import type { KernelFilterStatus } from "./kernel_filter.ts";
import type { NativeFlow, NativeListener, NativeListenerStats } from "./native_records.ts";
import type { Scratch } from "./sockets.ts";

/** The stats of `nl`; `flows` are the driver's flows by descriptor (any listener's). */
export function listenerStats(
  nl: NativeListener,
  scratch: Scratch,
  flows: readonly (NativeFlow | undefined)[],
  kernelFilter: KernelFilterStatus | null,
): NativeListenerStats {
  const i = nl.info;
  const now = scratch.drops(i.fd);
  let up = now < 0 ? -1 : nl.upstreamDropsClosed;
  for (const nf of flows) {
    if (up < 0) break;
    if (nf === undefined || nf.nl !== nl) continue;
    const d = scratch.drops(nf.fd);
    if (d > 0) up += d;
  }
  return {
    local: i.local,
    recvBuffer: i.recvBuffer,
    sendBuffer: i.sendBuffer,
    rxqOverflows: now >= 0 ? Math.max(now, nl.rxqOverflows) : i.rxqOverflow ? nl.rxqOverflows : null,
    upstreamRxqOverflows: up < 0 ? null : up,
    pktinfo: i.pktinfo,
    reusePort: nl.reusePort,
    batch: nl.b.count,
    gso: nl.gso,
    kernelFilter,
  };
}
