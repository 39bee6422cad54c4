/**
 * Every metric `/metrics` exposes, with its type, labels and HELP text: the single source for the
 * exposition and for the README's table. Traffic directions are the relay's: "in" is received by the relay,
 * "out" is sent by it (a listener's in = from clients; a cluster's or backend's in = from backends).
 *
 * @module
 */

import type { MetricDoc } from "./metric_doc.ts";
import { BACKEND_QUALITY_METRICS } from "./metric_names_quality.ts";
import { HISTOGRAMS, PROCESS_METRICS, REDIS_METRICS } from "./metric_names_runtime.ts";
import { PROTECTION_METRICS } from "./protection_metrics.ts";
import { type CounterDecl, LISTENER_COUNTERS, type ListenerMetricName } from "../core/counters.ts";
import { BACKEND_FIELDS, type BackendMetricName } from "../core/backend_counters.ts";

/** The declaration of one family, in admin/metric_doc.ts; re-exported for existing importers. */
export type { MetricDoc } from "./metric_doc.ts";

const ONLY_ON: Readonly<Record<CounterDecl["protocol"], string>> = {
  udp: " Only on UDP listeners.",
  tcp: " Only on TCP listeners.",
  both: "",
};

/** A listener figure's family: labelled by listener (and by its key's label), HELP saying where it exists. */
function listenerFamily(d: CounterDecl & { metric: ListenerMetricName }): MetricDoc<ListenerMetricName> {
  return {
    name: d.metric,
    type: d.kind,
    labels: d.by === undefined ? ["listener"] : ["listener", d.by.label],
    help: d.help + ONLY_ON[d.protocol],
  };
}

/** Every listener figure's family, in the order core/counters.ts declares them (the one declaration). */
export const LISTENER_COUNTER_METRICS: readonly MetricDoc<ListenerMetricName>[] = Object.values(
  LISTENER_COUNTERS,
)
  .map(listenerFamily);

const L = ["listener"];
const C = ["cluster"];
const B = ["cluster", "backend"];

/** Every backend counter's family, in the order core/backend_counters.ts declares them. */
export const BACKEND_COUNTER_METRICS: readonly MetricDoc<BackendMetricName>[] = BACKEND_FIELDS.map((
  [, d],
) => ({
  name: d.metric,
  type: d.kind,
  labels: ["cluster", "backend"],
  help: d.help,
}));

/** The per-cluster sums of the backend counters that have one. */
export const CLUSTER_COUNTER_METRICS: readonly MetricDoc<BackendMetricName>[] = BACKEND_FIELDS.flatMap((
  [, d],
) =>
  d.cluster === undefined
    ? []
    : [{ name: d.cluster.metric, type: d.kind, labels: ["cluster"], help: d.cluster.help }]
);

/** Every metric family, in exposition order. Counters end in `_total`. */
export const METRICS = [
  {
    name: "ferry_info",
    type: "gauge",
    labels: ["version", "runtime", "runtime_version"],
    help: "Always 1; the labels name the Ferry version and the runtime.",
  },
  {
    name: "ferry_config_info",
    type: "gauge",
    labels: ["hash"],
    help: "Always 1; hash is the SHA-256 of the running config as TOML.",
  },
  {
    name: "ferry_ready",
    type: "gauge",
    labels: [],
    help: "1 when listeners are bound, a config is loaded and nothing is draining (as /readyz), else 0.",
  },
  {
    name: "ferry_draining",
    type: "gauge",
    labels: [],
    help: "1 while the relay is draining (admitting no new flows or connections), else 0.",
  },
  { name: "ferry_workers", type: "gauge", labels: [], help: "Relay workers sharing each listening port." },
  { name: "ferry_uptime_seconds", type: "gauge", labels: [], help: "Seconds since the process started." },
  { name: "ferry_heap_used_bytes", type: "gauge", labels: [], help: "JavaScript heap in use, in bytes." },
  {
    name: "process_resident_memory_bytes",
    type: "gauge",
    labels: [],
    help: "Resident memory size in bytes.",
  },
  {
    name: "process_start_time_seconds",
    type: "gauge",
    labels: [],
    help: "Start time of the process since the Unix epoch in seconds.",
  },
  ...PROCESS_METRICS,
  {
    name: "ferry_listener_info",
    type: "gauge",
    labels: ["listener", "protocol", "cluster"],
    help: "Always 1; the labels give each listener's protocol and cluster.",
  },
  {
    name: "ferry_listener_draining",
    type: "gauge",
    labels: L,
    help: "1 while the listener admits no new flows or connections, else 0.",
  },
  ...LISTENER_COUNTER_METRICS,
  {
    name: "ferry_listener_datapath_info",
    type: "gauge",
    labels: ["listener", "datapath", "requested"],
    help:
      "Always 1 for a bound UDP listener; datapath is native or runtime, requested what the config asked.",
  },
  {
    name: "ferry_listener_socket_buffer_bytes",
    type: "gauge",
    labels: ["listener", "direction"],
    help: "Native path: SO_RCVBUF (direction=receive) and SO_SNDBUF (send) the kernel granted.",
  },
  {
    name: "ferry_native_syscall_errors_total",
    type: "counter",
    labels: ["call", "errno"],
    help: "Native path: failed syscalls by call and errno (EAGAIN is not an error and is not counted).",
  },
  ...CLUSTER_COUNTER_METRICS,
  {
    name: "ferry_cluster_fail_open_total",
    type: "counter",
    labels: C,
    help:
      "Fail-open events: new flows sent to a down or draining backend because none was up (fail_open = true).",
  },
  {
    name: "ferry_cluster_backends",
    type: "gauge",
    labels: ["cluster", "state"],
    help: "Backends of the cluster in each effective state (up, down, draining).",
  },
  {
    name: "ferry_backend_state",
    type: "gauge",
    labels: ["cluster", "backend", "state"],
    help:
      "1 for the backend's effective state (up, down or draining; health checks may mark it down), 0 for the others.",
  },
  { name: "ferry_backend_weight", type: "gauge", labels: B, help: "The backend's configured weight." },
  ...BACKEND_COUNTER_METRICS,
  {
    name: "ferry_backend_health_up",
    type: "gauge",
    labels: B,
    help: "1 while probes and passive detection consider the backend up, else 0.",
  },
  {
    name: "ferry_backend_health_transitions_total",
    type: "counter",
    labels: B,
    help: "Health status changes (up to down or down to up).",
  },
  ...HISTOGRAMS,
  ...BACKEND_QUALITY_METRICS,
  ...REDIS_METRICS,
  ...PROTECTION_METRICS,
] as const satisfies readonly MetricDoc[];

/** The name of a declared family: `/metrics` adds samples by these names only, checked when compiled. */
export type MetricName = (typeof METRICS)[number]["name"];
