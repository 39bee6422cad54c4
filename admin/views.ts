/**
 * What the API returns for listeners and clusters: the config-file keys (snake_case, exactly as a config
 * file or `GET /config?format=json` has them) joined with live state from the Control (camelCase keys).
 *
 * @module
 */

import { formatSocketAddress, parseSocketAddress } from "../core/address.ts";
import type { BackendMetrics, ClusterMetrics, ListenerStatus } from "../core/control_api.ts";
import { own, type Table } from "../core/config_raw.ts";

function canonical(text: unknown): string {
  if (typeof text !== "string") return "";
  const a = parseSocketAddress(text);
  return typeof a === "string" ? text : formatSocketAddress(a);
}

/** A listener: its config keys, plus `bound` (address bound or null), `active` and `draining`. */
export function listenerView(raw: Table, status: ListenerStatus | undefined): Table {
  return {
    ...raw,
    bound: status?.address ?? null,
    active: status?.active ?? 0,
    draining: status?.draining ?? false,
  };
}

/** A backend: its config keys (`state` is the configured one) plus live state and counters. */
export function backendView(raw: Table, m: BackendMetrics | undefined): Table {
  return {
    ...raw,
    effectiveState: m?.state ?? own(raw, "state"),
    activeFlows: m?.activeFlows ?? 0,
    flowsTotal: m?.flowsTotal ?? 0,
    datagramsTo: m?.datagramsTo ?? 0,
    bytesTo: m?.bytesTo ?? 0,
    datagramsFrom: m?.datagramsFrom ?? 0,
    bytesFrom: m?.bytesFrom ?? 0,
    sendErrors: m?.sendErrors ?? 0,
    refusals: m?.refusals ?? 0,
    quality: m?.quality ?? null,
    health: m?.health ?? null,
  };
}

/** A cluster: `name`, its config keys, `failOpenEvents`, and each backend with its live state. */
export function clusterView(name: string, raw: Table, m: ClusterMetrics | undefined): Table {
  const backends = own(raw, "backends");
  const list = Array.isArray(backends) ? backends as Table[] : [];
  return {
    name,
    ...raw,
    failOpenEvents: m?.failOpen ?? 0,
    backends: list.map((b) => {
      const key = canonical(own(b, "address"));
      return backendView(b, m?.backends.find((x) => canonical(x.address) === key));
    }),
  };
}
