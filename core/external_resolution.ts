/**
 * External resolution: the backend an external resolver's answer names. A configured backend at that
 * address is used as is; any other valid unicast address becomes (or reuses) an entry in the cluster's
 * `external` map, so flows resolved to the same address share one Backend and its counters.
 *
 * @module
 */

import type { SocketAddress } from "./address.ts";
import { Backend } from "./backend.ts";
import { checkBackendAddress } from "./backend_address.ts";
import type { Cluster } from "./cluster.ts";

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
