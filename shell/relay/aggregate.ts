/**
 * Adding up the snapshots of several relay workers into one, as the admin API shows it: counters summed
 * per listener, cluster and backend; states taken from the first worker that reports the thing (every
 * worker runs the same config); flows listed together with their ids prefixed by the worker's index.
 *
 * Pure functions over plain data, so they are tested without threads.
 *
 * @module
 */

import { mergeHistograms } from "../records/flow_stats.ts";
import type {
  BackendMetrics,
  ClusterMetrics,
  FlowInfo,
  ListenerMetrics,
  ListenerStatus,
  MetricsSnapshot,
  ProcessMetrics,
  StatusInfo,
} from "../../core/control_api.ts";
import { mergeBackendQuality } from "./quality_view.ts";
import { sumCounterSnapshots } from "../../core/counter_snapshot.ts";
import { sumBackendCounters } from "../../core/backend_counters.ts";

/** `a` and `b` added key by key (keys of either). */
export function sumRecords<T extends object>(a: T, b: T): T {
  const out: Record<string, number> = { ...(a as Record<string, number>) };
  for (const [k, v] of Object.entries(b as Record<string, number>)) out[k] = (out[k] ?? 0) + v;
  return out as T;
}

/**
 * Groups `items` of every part by `key`, in order of first appearance, merging alike ones with `merge`.
 * During a config change workers may briefly disagree on what exists; the union shows all of it.
 */
function unionBy<T>(parts: readonly (readonly T[])[], key: (t: T) => string, merge: (a: T, b: T) => T): T[] {
  const out = new Map<string, T>();
  for (const part of parts) {
    for (const item of part) {
      const k = key(item);
      const seen = out.get(k);
      out.set(k, seen === undefined ? item : merge(seen, item));
    }
  }
  return [...out.values()];
}

/**
 * One listener's figures from two workers: every field core/counters.ts declares for its protocol, summed
 * (derived, so a new counter cannot be left out). Workers run one config, so they agree on the protocol;
 * should one report another during a change, the first one's fields are kept, the other's count as zero.
 */
function sumListener(a: ListenerMetrics, b: ListenerMetrics): ListenerMetrics {
  if (a.protocol === "udp") {
    return { ...a, ...sumCounterSnapshots("udp", a, b.protocol === "udp" ? b : zeroLike(a)) };
  }
  return { ...a, ...sumCounterSnapshots("tcp", a, b.protocol === "tcp" ? b : zeroLike(a)) };
}

/** `m` with every figure zero (what a worker that does not know the listener contributes). */
function zeroLike<T extends ListenerMetrics>(m: T): T {
  const out: Record<string, unknown> = { ...m };
  for (const [k, v] of Object.entries(m)) {
    if (typeof v === "number") out[k] = 0;
    else if (typeof v === "object" && v !== null) out[k] = {};
  }
  return out as T;
}

/** One backend's figures from two workers: every declared counter summed (core/backend_counters.ts). */
function sumBackend(a: BackendMetrics, b: BackendMetrics): BackendMetrics {
  return {
    ...a,
    ...sumBackendCounters(a, b),
    quality: mergeBackendQuality(a.quality, b.quality),
    // Each worker probes on its own; a backend any worker sees down is shown down, with that record.
    health: a.health.status === "down" || b.health.status !== "down" ? a.health : b.health,
  };
}

function sumCluster(a: ClusterMetrics, b: ClusterMetrics): ClusterMetrics {
  return {
    ...a,
    failOpen: a.failOpen + b.failOpen,
    backends: unionBy([a.backends, b.backends], (x) => x.address, sumBackend),
  };
}

/** The workers' metrics as one snapshot; process figures are the caller's (the process is shared). */
export function mergeMetrics(parts: readonly MetricsSnapshot[], process: ProcessMetrics): MetricsSnapshot {
  return {
    listeners: unionBy(parts.map((p) => p.listeners), (l) => l.name, sumListener),
    clusters: unionBy(parts.map((p) => p.clusters), (c) => c.name, sumCluster),
    nativeErrors: parts.reduce<Record<string, number>>((acc, p) => sumRecords(acc, p.nativeErrors ?? {}), {}),
    histograms: mergeHistograms(parts.map((p) => p.histograms ?? [])),
    process,
  };
}

function mergeListenerStatus(a: ListenerStatus, b: ListenerStatus): ListenerStatus {
  return {
    ...a,
    address: a.address ?? b.address,
    draining: a.draining || b.draining,
    active: a.active + b.active,
  };
}

/** The status facts only the pool knows: identity, config, worker count, uptime. */
export type PoolFacts = Omit<StatusInfo, "draining" | "listeners">;

/** The workers' statuses as one: a listener drains if any worker drains it; its activity is summed. */
export function mergeStatus(parts: readonly StatusInfo[], facts: PoolFacts): StatusInfo {
  return {
    ...facts,
    draining: parts.some((p) => p.draining),
    listeners: unionBy(parts.map((p) => p.listeners), (l) => l.name, mergeListenerStatus),
  };
}

/**
 * The workers' flows as one list: ids become "worker:id" (each core numbers its own flows), and the list
 * is oldest first across workers, so it stays in admission order as a single relay lists it.
 */
export function mergeFlows(parts: readonly (readonly FlowInfo[])[]): FlowInfo[] {
  const all = parts.flatMap((flows, worker) => flows.map((f) => ({ ...f, id: `${worker}:${f.id}` })));
  // Array.prototype.sort is stable: flows of one worker keep their order when ages tie.
  return all.sort((a, b) => b.ageSeconds - a.ageSeconds);
}
