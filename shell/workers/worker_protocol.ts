/**
 * The messages between the main thread and a relay worker thread (shell/workers/worker_main.ts). Everything
 * crossing is plain data (structured clone): configs, snapshots and counts, never sockets or functions.
 *
 * A worker gets one `WorkerInit`, answers it with one `WorkerStarted` (its listeners bound, or why not),
 * then answers each `WorkerRequest` with a `WorkerReply` of the same id, in any order. Unasked, it sends a
 * `WorkerPassive` for each passive failure it sees: the main thread owns backend health.
 *
 * A change of backends only reaches a worker as `applyBackends` with its edits (core/backend_delta.ts),
 * a few hundred bytes, not a copy of the whole config; anything else as `apply` with the whole config.
 *
 * @module
 */

import type { ProtectionOp } from "../relay/protection_control.ts";
import type { FlowFilter, FlowInfo, MetricsSnapshot, StatusInfo } from "../../core/control_api.ts";
import type { FerryConfig } from "../../core/types.ts";
import type { BackendDelta } from "../../core/backend_delta.ts";

/** How the main thread's log output looks, so a worker formats its lines alike. */
export interface WorkerLogOutput {
  /** stderr is a terminal (text lines, coloured unless `noColor`). */
  readonly terminal: boolean;
  readonly noColor: boolean;
}

/** The first message to a worker: run a relay on `config`. */
export interface WorkerInit {
  readonly type: "init";
  /** 0..N-1: names the worker in logs and prefixes its flow ids. */
  readonly index: number;
  readonly config: FerryConfig;
  readonly seed: number;
  readonly autoMaxFlows?: number;
  /** This worker's share of the process's descriptor budget for flows and connections. */
  readonly descriptorBudget?: number;
  readonly log: WorkerLogOutput;
}

/**
 * A health verdict of the main thread's one health state (shell/workers/shared_health.ts): every worker's
 * core adopts it (RelayCore.adoptHealth), so all balance alike.
 */
export interface HealthVerdict {
  readonly cluster: string;
  /** Canonical "ip:port". */
  readonly backend: string;
  readonly status: "up" | "down";
}

/** A passive failure a worker saw (a refused send, a failed connect), for the main thread to judge. */
export interface WorkerPassive {
  readonly type: "passive";
  readonly cluster: string;
  readonly backend: string;
  readonly error: string;
}

/** A worker's answer to `WorkerInit`. */
export type WorkerStarted =
  | { readonly type: "started"; readonly ok: true }
  | { readonly type: "started"; readonly ok: false; readonly error: string };

/** What a worker does on request; each returns plain data. */
export interface WorkerCalls {
  /** Applies a config whole, or throws leaving the previous one running (Relay.apply). */
  apply(config: FerryConfig): void;
  /** Applies a change of backends only; throws, changing nothing, when it names an unknown cluster. */
  applyBackends(deltas: readonly BackendDelta[]): void;
  /** Adopts the main thread's health verdicts. */
  adoptHealth(verdicts: readonly HealthVerdict[]): void;
  drain(listener?: string): void;
  /** Undoes a listener's drain, or every listener's (Relay.undrain). */
  undrain(listener?: string): void;
  /** Drains, waits up to `graceMs`, closes everything; the worker then has no sockets left. */
  shutdown(graceMs: number): void;
  status(): StatusInfo;
  metrics(): MetricsSnapshot;
  flows(filter: FlowFilter): FlowInfo[];
  disconnect(client: string, listener?: string): number;
  closeBackendFlows(cluster: string, backend: string): number;
  ready(): boolean;
  /** Bans and top talkers (shell/relay/protection_control.ts). */
  protection(op: ProtectionOp): unknown;
}

/** The name of a worker call. */
export type WorkerMethod = keyof WorkerCalls;

/** A call to a worker. */
export interface WorkerRequest<M extends WorkerMethod = WorkerMethod> {
  readonly type: "call";
  readonly id: number;
  readonly method: M;
  readonly args: Parameters<WorkerCalls[M]>;
}

/** A worker's answer to the request with the same id: its value, or the message of what it threw. */
export type WorkerReply =
  | { readonly type: "reply"; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly type: "reply"; readonly id: number; readonly ok: false; readonly error: string };
