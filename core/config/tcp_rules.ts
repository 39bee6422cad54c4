/**
 * Rules a TCP listener's cluster must meet, checked when a config is built (a file, a reload, an API edit).
 *
 * A `balancer = "redis"` cluster resolves each new UDP flow's backend through the shell's resolver while
 * the flow holds its first datagram. A TCP connection is pinned to a backend when accepted and never asks
 * the resolver, so such a cluster serves TCP only from its static backends: without any, every connection
 * would be refused at runtime (counted `no_backend`, nothing said). Refusing the config says it at once.
 *
 * @module
 */

import type { Problems } from "./check.ts";
import type { ClusterConfig, ListenerConfig } from "../types.ts";

/** Reports a TCP listener whose cluster resolves through Redis and has no static backend to fall back on. */
export function checkTcpCluster(
  p: Problems,
  listener: ListenerConfig,
  clusters: readonly ClusterConfig[],
  path: string,
): void {
  if (listener.protocol !== "tcp") return;
  const cluster = clusters.find((c) => c.name === listener.cluster);
  if (cluster === undefined || cluster.balancer !== "external" || cluster.backends.length > 0) return;
  p.add(
    `${path}.cluster`,
    `listener ${JSON.stringify(listener.name)} is TCP, but cluster ${JSON.stringify(cluster.name)} ` +
      'has balancer = "redis" and no backends: Redis routing resolves UDP flows only, so every connection ' +
      "would be refused; give the cluster static backends (TCP connections use them) or make the listener UDP",
  );
}
