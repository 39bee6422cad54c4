/**
 * The metric families of the process around the relay: the Redis control plane, the standard process
 * families and the flow histograms (admin/metric_names.ts spreads them into METRICS).
 *
 * @module
 */

import type { MetricDoc } from "./metric_doc.ts";

/** The Redis control plane's families (no samples without [redis] url). */
export const REDIS_METRICS = [
  {
    name: "ferry_redis_connected",
    type: "gauge",
    labels: [],
    help: "1 while every Redis connection of the process is ready and answering (no breaker open), else 0.",
  },
  {
    name: "ferry_redis_breaker_open",
    type: "gauge",
    labels: [],
    help:
      "Redis connections whose circuit breaker is open: Redis timed out repeatedly, lookups fall back at once while a probe waits.",
  },
  {
    name: "ferry_redis_breaker_trips_total",
    type: "counter",
    labels: [],
    help: "Times a Redis connection's circuit breaker opened after consecutive command timeouts.",
  },
  {
    name: "ferry_redis_connects_total",
    type: "counter",
    labels: [],
    help: "Redis connections established, first ones and reconnects.",
  },
  { name: "ferry_redis_errors_total", type: "counter", labels: [], help: "Redis connection errors." },
  { name: "ferry_redis_commands_total", type: "counter", labels: [], help: "Redis commands sent." },
  {
    name: "ferry_redis_command_failures_total",
    type: "counter",
    labels: [],
    help: "Redis commands that failed or timed out (or could not be sent while Redis was away).",
  },
  {
    name: "ferry_redis_latency_seconds",
    type: "gauge",
    labels: [],
    help: "Redis command round trip, moving average (the slowest connection's); NaN before the first.",
  },
  {
    name: "ferry_redis_routing_lookups_total",
    type: "counter",
    labels: ["result"],
    help:
      'Backend lookups of balancer = "redis" clusters: ok, empty (no key or empty), invalid (not a usable ip:port), error (Redis away or slow), cached.',
  },
  {
    name: "ferry_redis_disconnects_total",
    type: "counter",
    labels: ["result"],
    help:
      "Disconnect-channel messages: closed (the client's flows were closed), ignored (not ip or ip:port).",
  },
  {
    name: "ferry_fleet_changes_total",
    type: "counter",
    labels: ["result"],
    help: "Fleet backend changes received: applied, or rejected (invalid in Redis; nothing changed).",
  },
] as const satisfies readonly MetricDoc[];

/**
 * The standard process families (as Prometheus client libraries name them) and event-loop lag. Linux
 * only for the descriptor figures (read from /proc/self); absent elsewhere.
 */
export const PROCESS_METRICS = [
  {
    name: "process_cpu_seconds_total",
    type: "counter",
    labels: [],
    help: "Total user and system CPU time spent in seconds.",
  },
  { name: "process_open_fds", type: "gauge", labels: [], help: "Number of open file descriptors." },
  { name: "process_max_fds", type: "gauge", labels: [], help: "Maximum number of open file descriptors." },
  {
    name: "ferry_event_loop_lag_seconds",
    type: "gauge",
    labels: [],
    help: "How late the main thread's event loop ran a 500 ms timer: the largest in the last 5-10 s.",
  },
] as const satisfies readonly MetricDoc[];

/**
 * Distributions recorded when a flow or connection ends (never per datagram); buckets in
 * shell/records/flow_stats.ts.
 */
export const HISTOGRAMS = [
  {
    name: "ferry_flow_duration_seconds",
    type: "histogram",
    labels: ["listener", "protocol"],
    help: "Life of ended UDP flows and TCP connections, admission to close.",
  },
  {
    name: "ferry_flow_rtt_seconds",
    type: "histogram",
    labels: ["cluster"],
    help: "Smoothed round trip (client datagram to backend reply) of each ended UDP flow that had a reply.",
  },
  {
    name: "ferry_flow_first_reply_seconds",
    type: "histogram",
    labels: ["cluster"],
    help: "Time from a UDP flow's first client datagram (its admission) to the backend's first reply.",
  },
] as const satisfies readonly MetricDoc[];
