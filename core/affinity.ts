/**
 * Which backend a client's affinity points at: the seeded hash of its key, and the backend its other flows
 * already use under `ip` affinity. Admission (core/relay_core.ts) asks these before the balancer.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import type { Cluster } from "./cluster.ts";
import type { Flow } from "./flow.ts";
import { unmappedIpText } from "./address.ts";
import { hashCombine, hashString } from "./hash.ts";
import type { ClusterConfig } from "./types.ts";

/**
 * The backend other live flows of this client IP already use in `cluster`, for `ip` affinity: only while
 * it is still one of the cluster's backends and usable, so a reconfiguration or a health change is obeyed.
 */
export function stickyBackend(ports: Map<number, Flow> | undefined, cluster: Cluster): Backend | null {
  if (ports === undefined) return null;
  for (const f of ports.values()) {
    const b = f.backend;
    if (b !== null && f.knobs.name === cluster.config.name && b.usable && cluster.backends.includes(b)) {
      return b;
    }
  }
  return null;
}

/**
 * The seeded hash of a client's affinity key. An IPv4-mapped IPv6 address hashes as its IPv4 form, so a
 * dual-stack listener and an IPv4 one agree.
 */
export function affinityHash(knobs: ClusterConfig, ip: string, port: number): number {
  const key = unmappedIpText(ip);
  const h = hashString(key, knobs.hashSeed);
  return knobs.affinity === "ip" ? h : hashCombine(h, port);
}
