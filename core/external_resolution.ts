/**
 * External resolution: the backend an external resolver's answer names. A configured backend at that
 * address is used as is; any other valid unicast address becomes (or reuses) an entry in the cluster's
 * `external` map, so flows resolved to the same address share one Backend and its counters. Also the backend a
resolved flow gets (the answer's, else its cluster's balancer's).
 *
 * @module
 */

import type { SocketAddress } from "./address.ts";
import { Backend } from "./backend.ts";
import { checkBackendAddress } from "./backend_address.ts";
import type { Cluster } from "./cluster.ts";
import type { Admission } from "./admission.ts";
import { affinityHash } from "./affinity.ts";
import type { Flow } from "./flow.ts";

/**
 * The backend for resolver answer `address` in `cluster` (the one the flow was admitted under), or null
 * when the answer is null or no valid unicast destination, or the cluster is gone; then the caller falls
 * back to the cluster's own balancer.
 */
export function externalBackend(cluster: Cluster | null, address: SocketAddress | null): Backend | null {
  if (address === null || checkBackendAddress(address) !== null || cluster === null) return null;
  const known = cluster.backends.find((b) => b.address.ip === address.ip && b.address.port === address.port);
  if (known !== undefined) return known;
  const probe = new Backend(address, 1, "up");
  const backend = cluster.external.get(probe.key) ?? probe;
  cluster.external.set(backend.key, backend);
  return backend;
}

/**
 * The backend of a flow in AwaitingBackend once the resolver answered `address` (see RelayCore.resolved):
 * the one the answer names in the flow's cluster of `clusters`, else one `admission`'s balancer chooses for
 * the flow's client if that cluster has backends, else null.
 */
export function resolvedBackend(
  clusters: ReadonlyMap<string, Cluster>,
  address: SocketAddress | null,
  admission: Admission,
  flow: Flow,
  now: number,
): Backend | null {
  // The cluster the flow was admitted under, not whatever the listener points at by now.
  const cluster = clusters.get(flow.knobs.name) ?? null;
  // A valid answer always names a backend while the cluster exists; otherwise the cluster's own balancer.
  return externalBackend(cluster, address) ??
    (cluster !== null && cluster.backends.length > 0
      ? admission.choose(cluster, affinityHash(flow.knobs, flow.clientIp, flow.clientPort), now)?.backend ??
        null
      : null);
}
