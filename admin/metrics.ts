/**
 * `/metrics`: the Control's snapshot as metric families (see `metric_names.ts`), rendered in the Prometheus
 * text exposition format 0.0.4 or as JSON. Every family is written with HELP and TYPE even when it has no
 * samples yet, each family once, its samples together.
 *
 * @module
 */

import type {
  BackendQualityInfo,
  HistogramSnapshot,
  ListenerMetrics,
  MetricsSnapshot,
  RedisMetrics,
  StatusInfo,
} from "../core/control_api.ts";
import { type MetricDoc, type MetricName, METRICS } from "./metric_names.ts";
import { countersFor } from "../core/counters.ts";
import { BACKEND_FIELDS } from "../core/backend_counters.ts";
import { collectProtection } from "./protection_metrics.ts";
import type { ProtectionMetrics } from "../core/protection_api.ts";

/** One sample: label values by label name, and the value. */
export interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  /** Histograms: "_bucket", "_sum" or "_count", appended to the family's name. */
  readonly suffix?: string;
}

/** A metric family with its samples. */
export interface Family extends MetricDoc {
  readonly samples: Sample[];
}

/** Adds one sample to a declared family (its name is checked by the compiler, not at request time). */
export type Add = (name: MetricName, labels: Record<string, string>, value: number) => void;

/** The content type of the Prometheus text format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const BACKEND_STATES = ["up", "down", "draining"] as const;

/** Builds every family from a metrics snapshot, the status and readiness. */
export function collectMetrics(
  m: MetricsSnapshot,
  status: StatusInfo,
  ready: boolean,
  protection?: ProtectionMetrics,
): Family[] {
  const families = new Map<string, Family>(METRICS.map((d) => [d.name, { ...d, samples: [] }]));
  // Every MetricName is a key of `families` (both come from METRICS), so the lookup cannot miss.
  const add: Add = (name, labels, value) => (families.get(name) as Family).samples.push({ labels, value });
  const flag = (b: boolean) => (b ? 1 : 0);

  add("ferry_info", {
    version: status.version,
    runtime: status.runtime,
    runtime_version: status.runtimeVersion,
  }, 1);
  add("ferry_config_info", { hash: status.configHash }, 1);
  add("ferry_ready", {}, flag(ready));
  add("ferry_draining", {}, flag(status.draining));
  add("ferry_workers", {}, status.workers);
  add("ferry_uptime_seconds", {}, m.process.uptimeSeconds);
  add("ferry_heap_used_bytes", {}, m.process.heapUsedBytes);
  add("process_resident_memory_bytes", {}, m.process.residentBytes);
  add("process_start_time_seconds", {}, m.process.startTimeSeconds);
  const p = m.process;
  if (p.cpuSeconds !== undefined) add("process_cpu_seconds_total", {}, p.cpuSeconds);
  if (p.openFds !== undefined) add("process_open_fds", {}, p.openFds);
  if (p.maxFds !== undefined) add("process_max_fds", {}, p.maxFds);
  if (p.eventLoopLagSeconds !== undefined) add("ferry_event_loop_lag_seconds", {}, p.eventLoopLagSeconds);
  for (const h of m.histograms ?? []) addHistogram(families, h);

  for (const l of m.listeners) {
    const ll = { listener: l.name };
    add("ferry_listener_info", { listener: l.name, protocol: l.protocol, cluster: l.cluster }, 1);
    const st = status.listeners.find((s) => s.name === l.name);
    add("ferry_listener_draining", ll, flag(st?.draining ?? status.draining));
    collectListenerCounters(l, add);
  }
  for (const s of status.listeners) {
    const dp = s.datapath;
    if (dp === undefined || dp === null) continue;
    add(
      "ferry_listener_datapath_info",
      { listener: s.name, datapath: dp.datapath, requested: dp.requested },
      1,
    );
    if (dp.recvBuffer !== null) {
      add("ferry_listener_socket_buffer_bytes", { listener: s.name, direction: "receive" }, dp.recvBuffer);
    }
    if (dp.sendBuffer !== null) {
      add("ferry_listener_socket_buffer_bytes", { listener: s.name, direction: "send" }, dp.sendBuffer);
    }
  }
  for (const [key, n] of Object.entries(m.nativeErrors ?? {})) {
    const [call, errno] = key.includes(":") ? key.split(":", 2) : [key, "unknown"];
    add("ferry_native_syscall_errors_total", { call, errno }, n);
  }

  for (const c of m.clusters) {
    const cl = { cluster: c.name };
    const sum = (f: (b: (typeof c.backends)[number]) => number) => c.backends.reduce((s, b) => s + f(b), 0);
    for (const [field, d] of BACKEND_FIELDS) {
      if (d.cluster !== undefined) add(d.cluster.metric, cl, sum((b) => b[field]));
    }
    add("ferry_cluster_fail_open_total", cl, c.failOpen);
    for (const state of BACKEND_STATES) {
      add("ferry_cluster_backends", { cluster: c.name, state }, sum((b) => flag(b.state === state)));
    }
    for (const b of c.backends) {
      const bl = { cluster: c.name, backend: b.address };
      for (const state of BACKEND_STATES) {
        add("ferry_backend_state", { ...bl, state }, flag(b.state === state));
      }
      add("ferry_backend_weight", bl, b.weight);
      for (const [field, d] of BACKEND_FIELDS) add(d.metric, bl, b[field]);
      add("ferry_backend_health_up", bl, flag(b.health.status === "up"));
      add("ferry_backend_health_transitions_total", bl, b.health.transitions);
    }
    for (const b of c.backends) {
      collectBackendQuality({ cluster: c.name, backend: b.address }, b.quality, add);
    }
  }
  if (m.redis !== undefined) collectRedis(m.redis, add);
  if (protection !== undefined) collectProtection(protection, add);
  return [...families.values()];
}

/**
 * A listener's counter families: exactly the figures core/counters.ts declares for its protocol (no TCP
 * family for a UDP listener, no UDP one for a TCP listener), a labelled figure as one sample per key.
 */
function collectListenerCounters(l: ListenerMetrics, add: Add): void {
  const figures = l as unknown as Readonly<Record<string, number | Readonly<Record<string, number>>>>;
  for (const [field, d] of countersFor(l.protocol)) {
    const v = figures[field];
    if (typeof v === "number") add(d.metric, { listener: l.name }, v);
    else if (d.by !== undefined && v !== undefined) {
      for (const [key, n] of Object.entries(v)) add(d.metric, { listener: l.name, [d.by.label]: key }, n);
    }
  }
}

/** A histogram series as cumulative `_bucket{le}` samples, then `_sum` and `_count`. */
function addHistogram(families: Map<string, Family>, h: HistogramSnapshot): void {
  const f = families.get(h.name);
  if (f === undefined) throw new Error(`metric ${h.name} is not declared in METRICS`);
  let cumulative = 0;
  h.bounds.forEach((le, i) => {
    cumulative += h.counts[i];
    f.samples.push({ labels: { ...h.labels, le: String(le) }, value: cumulative, suffix: "_bucket" });
  });
  f.samples.push({ labels: { ...h.labels, le: "+Inf" }, value: h.count, suffix: "_bucket" });
  f.samples.push({ labels: h.labels, value: h.sum, suffix: "_sum" });
  f.samples.push({ labels: h.labels, value: h.count, suffix: "_count" });
}

/** The Redis families, when Redis is configured. */
function collectRedis(
  r: RedisMetrics,
  add: Add,
): void {
  add("ferry_redis_connected", {}, r.connections > 0 && r.connectionsUp === r.connections ? 1 : 0);
  add("ferry_redis_breaker_open", {}, r.breakerOpen);
  add("ferry_redis_breaker_trips_total", {}, r.breakerTrips);
  add("ferry_redis_connects_total", {}, r.connects);
  add("ferry_redis_errors_total", {}, r.errors);
  add("ferry_redis_commands_total", {}, r.commands);
  add("ferry_redis_command_failures_total", {}, r.failures);
  add("ferry_redis_latency_seconds", {}, r.latencyMs / 1000);
  for (const [result, n] of Object.entries(r.routing)) {
    add("ferry_redis_routing_lookups_total", { result }, n);
  }
  for (const [result, n] of Object.entries(r.disconnects)) {
    add("ferry_redis_disconnects_total", { result }, n);
  }
  for (const [result, n] of Object.entries(r.fleetChanges)) add("ferry_fleet_changes_total", { result }, n);
}

/** Escapes a label value: backslash, double quote and newline. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/** Escapes HELP text: backslash and newline. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A sample value as Prometheus writes floats. */
function formatValue(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

/** Renders families in the Prometheus text format 0.0.4 (ends with a newline). */
export function renderPrometheus(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
      const name = f.name + (s.suffix ?? "");
      lines.push(`${name}${labels.length > 0 ? `{${labels.join(",")}}` : ""} ${formatValue(s.value)}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The same families as JSON (`/metrics?format=json`); a non-finite value becomes null. */
export function metricsJson(families: readonly Family[]): unknown {
  return {
    families: families.map((f) => ({
      name: f.name,
      type: f.type,
      help: f.help,
      labels: f.labels,
      samples: f.samples.map((s) => ({
        ...(s.suffix === undefined ? {} : { suffix: s.suffix }),
        labels: s.labels,
        value: Number.isFinite(s.value) ? s.value : null,
      })),
    })),
  };
}

/** A backend's quality families (after every backend's other families, so each family stays together). */
function collectBackendQuality(
  bl: Record<string, string>,
  q: BackendQualityInfo | undefined,
  add: Add,
): void {
  if (q === undefined) return;
  if (q.latencyMs !== null) add("ferry_backend_rtt_seconds", bl, q.latencyMs / 1000);
  add("ferry_backend_jitter_seconds", bl, q.jitterMs / 1000);
  add("ferry_backend_peak_ewma_seconds", bl, q.peakEwmaMs / 1000);
  add("ferry_backend_requests_answered_total", bl, q.answered);
  add("ferry_backend_requests_unanswered_total", bl, q.unanswered);
  add("ferry_backend_unanswered_ratio", bl, q.unansweredPermille / 1000);
  for (const [direction, s] of [["up", q.sequenceUp], ["down", q.sequenceDown]] as const) {
    const l = { ...bl, direction };
    add("ferry_backend_sequence_expected_total", l, s.expected);
    add("ferry_backend_sequence_received_total", l, s.received);
    add("ferry_backend_sequence_reordered_total", l, s.reordered);
    add("ferry_backend_sequence_duplicates_total", l, s.duplicates);
  }
}
