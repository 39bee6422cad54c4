/**
 * A backend's counters, declared once as data: {@link BACKEND_COUNTERS}. From it derive the core's
 * counter object and its type, the snapshot fields (core/control_api.ts `BackendMetrics`), their sum over
 * workers, the per-backend and per-cluster `/metrics` families (admin/metric_names.ts) and their README
 * rows. A leaf module. A backend has no protocol of its own (a cluster may serve UDP and TCP listeners):
 * its byte and flow counters count both, its datagram counters UDP only.
 *
 * @module
 */

/** The declaration of one backend figure. */
export interface BackendCounterDecl {
  /** Its per-backend family (labels cluster, backend). */
  readonly metric: string;
  /** Its per-cluster family, the sum over the cluster's current backends, if it has one. */
  readonly cluster?: { readonly metric: string; readonly help: string };
  readonly kind: "counter" | "gauge";
  readonly unit: "datagrams" | "bytes" | "flows" | "errors";
  /** "core": a number field of the backend's counters; "live": its live flow count, read at snapshot time. */
  readonly source: "core" | "live";
  readonly help: string;
}

/**
 * Every backend figure, in the order `/metrics` lists them. The four the forwarding path increments come
 * first, so they are the first fields of every counter object.
 */
export const BACKEND_COUNTERS = {
  datagramsTo: {
    metric: "ferry_backend_datagrams_out_total",
    cluster: {
      metric: "ferry_cluster_datagrams_out_total",
      help: "Datagrams sent to the cluster's backends (sum over its current backends).",
    },
    kind: "counter",
    unit: "datagrams",
    source: "core",
    help: "Datagrams sent to the backend.",
  },
  bytesTo: {
    metric: "ferry_backend_bytes_out_total",
    cluster: {
      metric: "ferry_cluster_bytes_out_total",
      help: "Bytes sent to the cluster's backends (sum over its current backends).",
    },
    kind: "counter",
    unit: "bytes",
    source: "core",
    help: "Bytes sent to the backend.",
  },
  datagramsFrom: {
    metric: "ferry_backend_datagrams_in_total",
    cluster: {
      metric: "ferry_cluster_datagrams_in_total",
      help: "Datagrams received from the cluster's backends (sum over its current backends).",
    },
    kind: "counter",
    unit: "datagrams",
    source: "core",
    help: "Datagrams received from the backend.",
  },
  bytesFrom: {
    metric: "ferry_backend_bytes_in_total",
    cluster: {
      metric: "ferry_cluster_bytes_in_total",
      help: "Bytes received from the cluster's backends (sum over its current backends).",
    },
    kind: "counter",
    unit: "bytes",
    source: "core",
    help: "Bytes received from the backend.",
  },
  activeFlows: {
    metric: "ferry_backend_active_flows",
    cluster: { metric: "ferry_cluster_active_flows", help: "Live flows on the cluster's backends." },
    kind: "gauge",
    unit: "flows",
    source: "live",
    help: "Live flows pinned to the backend.",
  },
  flowsTotal: {
    metric: "ferry_backend_flows_total",
    cluster: {
      metric: "ferry_cluster_flows_total",
      help: "Flows assigned to the cluster's backends (sum over its current backends).",
    },
    kind: "counter",
    unit: "flows",
    source: "core",
    help: "Flows assigned to the backend.",
  },
  sendErrors: {
    metric: "ferry_backend_send_errors_total",
    kind: "counter",
    unit: "errors",
    source: "core",
    help: "Sends to the backend that failed.",
  },
  refusals: {
    metric: "ferry_backend_refusals_total",
    kind: "counter",
    unit: "errors",
    source: "core",
    help: "Refusals from the backend (ICMP port unreachable, or a refused TCP connect).",
  },
} as const satisfies Record<string, BackendCounterDecl>;

type Decls = typeof BACKEND_COUNTERS;

/** The name of one declared backend figure. */
export type BackendCounterField = keyof Decls;

/** The fields whose source is one of `S`. */
type FieldsFrom<S extends BackendCounterDecl["source"]> = {
  [K in BackendCounterField]: Decls[K]["source"] extends S ? K : never;
}[BackendCounterField];

/** Per-backend counters: plain numbers, incremented on the forwarding path. */
export type BackendCounters = { [K in FieldsFrom<"core">]: number };

/** A backend's figures in a snapshot: its counters and its live flows. */
export type BackendCounterSnapshot = { readonly [K in BackendCounterField]: number };

/** A per-backend family name, or a per-cluster one. */
export type BackendMetricName =
  | Decls[BackendCounterField]["metric"]
  | {
    [K in BackendCounterField]: Decls[K] extends { cluster: { metric: infer M } } ? M : never;
  }[BackendCounterField];

/** One declared figure: its field and declaration. */
export type DeclaredBackendCounter = readonly [
  BackendCounterField,
  BackendCounterDecl & {
    readonly metric: BackendMetricName;
    readonly cluster?: { readonly metric: BackendMetricName };
  },
];

/** Every declared backend figure, in declaration order. */
export const BACKEND_FIELDS = Object.entries(
  BACKEND_COUNTERS,
) as unknown as readonly DeclaredBackendCounter[];

/** Fresh zeroed backend counters, built from the declaration (the hot four first, as declared). */
export function newBackendCounters(): BackendCounters {
  const out: Record<string, number> = {};
  for (const [field, d] of BACKEND_FIELDS) if (d.source === "core") out[field] = 0;
  return out as BackendCounters;
}

/** A backend's figures: its counters copied and its live flow count. */
export function snapshotBackendCounters(counters: BackendCounters, live: number): BackendCounterSnapshot {
  const c = counters as unknown as Record<string, number>;
  const out: Record<string, number> = {};
  for (const [field, d] of BACKEND_FIELDS) out[field] = d.source === "live" ? live : c[field];
  return out as BackendCounterSnapshot;
}

/** Two workers' figures of one backend added, field by field (a missing one counts as zero). */
export function sumBackendCounters(
  a: BackendCounterSnapshot,
  b: BackendCounterSnapshot,
): BackendCounterSnapshot {
  const x = a as Partial<Record<string, number>>;
  const y = b as Partial<Record<string, number>>;
  const out: Record<string, number> = {};
  for (const [field] of BACKEND_FIELDS) out[field] = (x[field] ?? 0) + (y[field] ?? 0);
  return out as BackendCounterSnapshot;
}
