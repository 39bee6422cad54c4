/**
 * The metric families of backend quality (admin/metric_names.ts spreads them into METRICS).
 *
 * @module
 */

import type { MetricDoc } from "./metric_doc.ts";

const B = ["cluster", "backend"];
const BD = ["cluster", "backend", "direction"];

/**
 * A backend's quality over its flows (no per-client labels). Sequence families have a `direction` label:
 * "up" = client → backend, "down" = backend → client; lost = expected − received.
 */
export const BACKEND_QUALITY_METRICS = [
  {
    name: "ferry_backend_rtt_seconds",
    type: "gauge",
    labels: B,
    help:
      "Smoothed round trip of the backend's flows (replies paired with their request); absent before one.",
  },
  {
    name: "ferry_backend_jitter_seconds",
    type: "gauge",
    labels: B,
    help: "Round-trip variation (RFC 6298).",
  },
  {
    name: "ferry_backend_peak_ewma_seconds",
    type: "gauge",
    labels: B,
    help: "Peak EWMA round trip, decayed to now: the latency the peak_ewma balancer weighs.",
  },
  {
    name: "ferry_backend_requests_answered_total",
    type: "counter",
    labels: B,
    help: "Client datagrams of the backend's flows that got a reply.",
  },
  {
    name: "ferry_backend_requests_unanswered_total",
    type: "counter",
    labels: B,
    help: "Client datagrams of the backend's flows that got no reply in time (end to end).",
  },
  {
    name: "ferry_backend_unanswered_ratio",
    type: "gauge",
    labels: B,
    help: "Unanswered over judged client datagrams, recent window (0..1).",
  },
  {
    name: "ferry_backend_sequence_expected_total",
    type: "counter",
    labels: BD,
    help: "Datagrams the sequence numbers say were sent (clusters with [sequence]).",
  },
  {
    name: "ferry_backend_sequence_received_total",
    type: "counter",
    labels: BD,
    help: "Datagrams seen with a sequence number, repeats excluded.",
  },
  {
    name: "ferry_backend_sequence_reordered_total",
    type: "counter",
    labels: BD,
    help: "Datagrams that arrived after a higher sequence number.",
  },
  {
    name: "ferry_backend_sequence_duplicates_total",
    type: "counter",
    labels: BD,
    help: "Datagrams whose sequence number was already seen.",
  },
] as const satisfies readonly MetricDoc[];
