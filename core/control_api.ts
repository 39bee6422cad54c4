/**
 * The narrow interface between the relay's shell and whoever drives it (the admin API, the Redis fleet,
 * signals). Types only, so both the shell and the admin app import it without importing one another: a
 * shell implements it (over one relay, or over several workers), the admin app reads snapshots and asks for
 * changes.
 *
 * Every change to listeners, clusters and backends is a new whole config: a {@link ChangeRequest} edits the
 * running config when its turn comes in the shell's one queue of changes, and the result is applied
 * atomically (on every worker), so the rules of a config file, a reload, `PUT /config`, a single `PATCH`
 * and a fleet message are one and the same.
 *
 * @module
 */

import type { ConfigError } from "./config.ts";
import type { BackendState, FerryConfig } from "./types.ts";
import type { ProtectionControl } from "./protection_api.ts";
import type { DropCounters } from "./drops.ts";
import type { Protocol } from "./counters.ts";
import type { BackendCounterSnapshot } from "./backend_counters.ts";
import type { TcpCounterSnapshot, UdpCounterSnapshot } from "./counter_snapshot.ts";

/** Process and runtime facts for `GET /status`. */
export interface StatusInfo {
  readonly version: string;
  readonly runtime: string;
  readonly runtimeVersion: string;
  readonly startedAt: string;
  readonly uptimeSeconds: number;
  readonly workers: number;
  /** Hex SHA-256 of the running config as TOML. */
  readonly configHash: string;
  /** The config file, or null when running the embedded default or quick mode. */
  readonly configPath: string | null;
  readonly draining: boolean;
  readonly listeners: readonly ListenerStatus[];
}

/** A listener as bound. */
export interface ListenerStatus {
  readonly name: string;
  readonly protocol: "udp" | "tcp";
  /** The address bound ("ip:port"), or null if not bound. */
  readonly address: string | null;
  readonly cluster: string;
  readonly draining: boolean;
  /** Live flows (UDP) or open connections (TCP). */
  readonly active: number;
  /** UDP: which data path serves it and, on the native path, what the kernel granted. */
  readonly datapath?: DatapathStatus | null;
}

/** How a UDP listener is served. */
export interface DatapathStatus {
  readonly datapath: "native" | "runtime";
  /** What the config asked for ("auto", "native" or "runtime"). */
  readonly requested: string;
  /** Why "auto" runs on the runtime path; null when it runs what it asked for. */
  readonly reason: string | null;
  /** Native path: SO_RCVBUF / SO_SNDBUF granted, in bytes. */
  readonly recvBuffer: number | null;
  readonly sendBuffer: number | null;
  /** Native path: whether replies leave from the address each datagram arrived on (IP_PKTINFO). */
  readonly pktinfo: boolean | null;
  /** Native path: datagrams per recvmmsg/sendmmsg, and whether UDP GSO is used. */
  readonly batch: number | null;
  readonly gso: boolean | null;
  /**
   * Native path: the kernel socket filter (instructions attached, rules left to user space, error, and the
   * socket's drops while a program was attached: see shell/datapath/native/kernel_filter.ts).
   */
  readonly kernelFilter?: {
    instructions: number;
    omitted: number;
    error: string | null;
    drops?: number | null;
  } | null;
}

/** Drop counters, by reason. */
export type DropSnapshot = Readonly<DropCounters>;

/** Who a listener in a snapshot is. */
export interface ListenerIdentity<P extends Protocol> {
  readonly name: string;
  readonly protocol: P;
  readonly cluster: string;
}

/**
 * A UDP listener's figures (summed over workers): the fields declared for UDP in core/counters.ts, no
 * TCP ones.
 */
export type UdpListenerMetrics = ListenerIdentity<"udp"> & UdpCounterSnapshot;
/** A TCP listener's figures (summed over workers): the fields declared for TCP, no UDP ones. */
export type TcpListenerMetrics = ListenerIdentity<"tcp"> & TcpCounterSnapshot;
/** One listener's figures, by its protocol. */
export type ListenerMetrics = UdpListenerMetrics | TcpListenerMetrics;

/**
 * One backend's state and counters (summed over workers); the counters are the fields
 * core/backend_counters.ts declares.
 */
export interface BackendMetrics extends BackendCounterSnapshot {
  /** "ip:port". */
  readonly address: string;
  readonly weight: number;
  /** The effective state: the configured one, or down when health checks say so. */
  readonly state: BackendState;
  /** The state the config gives it. */
  readonly configuredState: BackendState;
  /** What probes and passive detection say (the effective `state` also reflects the admin state). */
  readonly health: BackendHealthInfo;
  /** Latency, unanswered requests and sequence loss over its flows. */
  readonly quality: BackendQualityInfo;
}

/** Sequence-number counters of one direction (core/sequence.ts). */
export interface SequenceInfo {
  readonly expected: number;
  readonly received: number;
  readonly lost: number;
  readonly reordered: number;
  readonly duplicates: number;
  readonly lossPermille: number;
}

/** A backend's quality over its flows (core/backend_quality.ts). */
export interface BackendQualityInfo {
  /** Smoothed RTT in ms over its flows' samples, or null before one. */
  readonly latencyMs: number | null;
  readonly jitterMs: number;
  /** The peak_ewma balancer's cost, decayed to now, in ms. */
  readonly peakEwmaMs: number;
  readonly samples: number;
  /** Requests its flows judged answered / unanswered, totals since start. */
  readonly answered: number;
  readonly unanswered: number;
  /** Unanswered over judged requests in the recent window, per-mille. */
  readonly unansweredPermille: number;
  /** Client → backend and backend → client. */
  readonly sequenceUp: SequenceInfo;
  readonly sequenceDown: SequenceInfo;
}

/** A backend's health record. */
export interface BackendHealthInfo {
  readonly status: "up" | "down";
  /** Whether active probes run for it (its cluster's health.mode is not "off"). */
  readonly probed: boolean;
  /** ISO time of the last status change (or of startup). */
  readonly since: string;
  readonly lastError: string | null;
  readonly okStreak: number;
  readonly failStreak: number;
  /** ISO end of a passive down window, or null. */
  readonly passiveUntil: string | null;
  readonly transitions: number;
}

/** One cluster with its backends. */
export interface ClusterMetrics {
  readonly name: string;
  readonly balancer: string;
  readonly failOpen: number;
  readonly backends: readonly BackendMetrics[];
}

/** Process figures. */
export interface ProcessMetrics {
  readonly residentBytes: number;
  readonly heapUsedBytes: number;
  readonly uptimeSeconds: number;
  readonly startTimeSeconds: number;
  /** CPU time (user + system) of the process, in seconds. */
  readonly cpuSeconds?: number;
  /** Open file descriptors, and their limit (Linux: /proc/self). */
  readonly openFds?: number;
  readonly maxFds?: number;
  /** How late the main thread's event loop ran a timer lately, in seconds. */
  readonly eventLoopLagSeconds?: number;
}

/** One histogram series: counts per bucket (`bounds` are the upper bounds; the last count is +Inf). */
export interface HistogramSnapshot {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly bounds: readonly number[];
  /** Per bucket, not cumulative; one more than `bounds`. */
  readonly counts: readonly number[];
  readonly sum: number;
  readonly count: number;
}

/** How a routing lookup (`balancer = "redis"`) ended. */
export type RoutingResult = "ok" | "empty" | "invalid" | "error" | "cached";

/** The process's Redis figures (routing, disconnect channel, fleet), summed over its connections. */
export interface RedisMetrics {
  /** Connections to Redis (command connections; subscriptions ride along), and how many are ready. */
  readonly connections: number;
  readonly connectionsUp: number;
  /** Connections whose circuit breaker is open (Redis hung: commands fail at once, a probe is due). */
  readonly breakerOpen: number;
  /** Times a connection's breaker opened after consecutive timeouts. */
  readonly breakerTrips: number;
  /** Times a connection was (re)established. */
  readonly connects: number;
  readonly errors: number;
  readonly commands: number;
  /** Commands that failed or timed out. */
  readonly failures: number;
  /** The slowest connection's EWMA round trip in ms; NaN before the first. */
  readonly latencyMs: number;
  readonly routing: Readonly<Record<RoutingResult, number>>;
  /** Disconnect-channel messages: a client whose flows were closed, or not a client (ignored). */
  readonly disconnects: { readonly closed: number; readonly ignored: number };
  /** Fleet changes received: applied, or rejected (bad values in Redis; nothing changed). */
  readonly fleetChanges: { readonly applied: number; readonly rejected: number };
}

/** Everything `/metrics` shows. */
export interface MetricsSnapshot {
  readonly listeners: readonly ListenerMetrics[];
  readonly clusters: readonly ClusterMetrics[];
  readonly process: ProcessMetrics;
  /** Absent when no [redis] url is configured. */
  readonly redis?: RedisMetrics;
  /** Native path: failed syscalls by "call:ERRNO" (e.g. "send:ECONNREFUSED"). */
  readonly nativeErrors?: Readonly<Record<string, number>>;
  /** Flow histograms (duration, RTT, first reply), recorded as flows end. */
  readonly histograms?: readonly HistogramSnapshot[];
}

/** A UDP flow as the admin API lists it. */
export interface UdpFlowInfo {
  readonly id: string;
  readonly protocol: "udp";
  readonly listener: string;
  readonly cluster: string;
  /** "ip:port" of the client. */
  readonly client: string;
  /** "ip:port" of the backend, or null while awaiting one. */
  readonly backend: string | null;
  readonly state: string;
  readonly ageSeconds: number;
  readonly idleSeconds: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly datagramsIn: number;
  readonly datagramsOut: number;
  /** Bytes/s, EWMA. */
  readonly bandwidth: number;
  /** Smoothed round trip in ms, or null before the first sample. */
  readonly latencyMs: number | null;
  readonly jitterMs: number;
  /** Ferry's own drops, per-mille: the same figure as `dropPermille`, under the name it always had. */
  readonly lossPermille: number;
  /** Datagrams of the flow Ferry itself could not deliver, per-mille of those it handled. */
  readonly dropPermille: number;
  /** Client datagrams that got no reply (end to end, Ferry's drops included), per-mille of those judged. */
  readonly unansweredPermille: number;
  /** Sequence-number counters per direction when the cluster reads them, else null. */
  readonly sequence: { readonly up: SequenceInfo; readonly down: SequenceInfo } | null;
  /** Lower is better. */
  readonly priority: number;
}

/** A TCP connection as the admin API lists it, among the flows (`protocol` tells them apart). */
export interface TcpConnectionInfo {
  readonly id: string;
  readonly protocol: "tcp";
  readonly listener: string;
  readonly cluster: string;
  /** "ip:port" of the client. */
  readonly client: string;
  /** "ip:port" of the backend it is pinned to. */
  readonly backend: string;
  /** "connecting" (to its backend), "established", or "closing" (one side sent its FIN). */
  readonly state: string;
  readonly ageSeconds: number;
  /** Since a byte last moved either way (since it opened, while connecting). */
  readonly idleSeconds: number;
  /** Bytes client → backend and backend → client (payload; no PROXY header). */
  readonly bytesUp: number;
  readonly bytesDown: number;
}

/** A flow or a connection as `GET /flows` lists it: UDP flows and TCP connections alike. */
export type FlowInfo = UdpFlowInfo | TcpConnectionInfo;

/** Which flows to list or act on. */
export interface FlowFilter {
  /** Only UDP flows or only TCP connections. */
  readonly protocol?: "udp" | "tcp";
  readonly listener?: string;
  readonly cluster?: string;
  /** "ip:port" */
  readonly backend?: string;
  /** "ip" or "ip:port" */
  readonly client?: string;
}

/**
 * Why a change failed, nothing changed either way: the relay refused it (a bind failure, say; or an invalid
 * file on reload), it was computed on a config that has changed since (`ifMatch`), or the config file could
 * not be written (`persist`).
 */
export type ApplyFailure = "refused" | "stale" | "not_saved";

/** The outcome of a config change. */
export type ApplyResult =
  | { readonly ok: true; readonly configHash: string; readonly persisted: boolean }
  | { readonly ok: false; readonly errors: readonly ConfigError[]; readonly failure?: ApplyFailure };

/** Who asked for a change; logged with it. */
export type ChangeSource = "api" | "reload" | "fleet" | "drain";

/** An applied change, as its requester sees it. */
export interface Applied {
  /** The config after the change. */
  readonly config: FerryConfig;
  readonly configHash: string;
  /** True when written to the config file. */
  readonly persisted: boolean;
}

/** A change of the running config, computed on the config it applies to when its turn comes. */
export interface ChangeRequest {
  readonly source: ChangeSource;
  /** The next config from the running one; throws (e.g. an EditError) to refuse, changing nothing. */
  readonly edit: (config: FerryConfig) => FerryConfig;
  /** Also write the change to the config file. */
  readonly persist: boolean;
  /** The config hash the requester saw (HTTP If-Match); when the running one differs, the change is stale. */
  readonly ifMatch?: string;
  /**
   * Runs once the change is applied, still in turn (so fleet updates reach Redis in the order they were
   * made); if it throws, the change stays applied and the error is the requester's.
   */
  readonly after?: (applied: Applied) => Promise<void>;
}

/** The outcome of a {@link ChangeRequest}: applied, or a failure that changed nothing. */
export type ChangeResult =
  | ({ readonly ok: true } & Applied)
  | { readonly ok: false; readonly errors: readonly ConfigError[]; readonly failure: ApplyFailure };

/**
 * A value, or a promise of it: a control over worker threads can only answer asynchronously, while the
 * single-relay control answers at once (and should not pay for a promise per call).
 */
export type Awaitable<T> = T | Promise<T>;

/** What the admin API may do. Reads and changes may answer later (workers); callers always await. */
export interface Control {
  status(): Awaitable<StatusInfo>;
  /** The running config: the shell's own record of what it applied, so it is always at hand. */
  config(): FerryConfig;
  /** Hex SHA-256 of the running config as TOML (the API's ETag). */
  configHash(): string;
  /**
   * Queues a change: when its turn comes, `edit` runs on the running config and the result is applied on
   * every worker, atomically (validation is the edit's job); with `persist`, the change is also written to
   * the config file first (keeping a backup), so a file that cannot be written changes nothing. An error
   * `edit` throws rejects the returned promise; every other failure is a result.
   */
  change(request: ChangeRequest): Promise<ChangeResult>;
  /** Re-reads the config file (the SIGHUP rules), in turn with other changes: an invalid file changes nothing. */
  reload(): Promise<ApplyResult>;
  /** Stops admitting new flows and connections, everywhere or on one listener (in turn with changes). */
  drain(listener?: string): Awaitable<void>;
  /**
   * Undoes the drain of one listener, or of every listener (in turn with changes; a reload does it too).
   * A process-wide drain (`drain()`, where shutdown starts) is not undone.
   */
  undrain(listener?: string): Awaitable<void>;
  metrics(): Awaitable<MetricsSnapshot>;
  /** Flows matching `filter`, in admission order (oldest first). */
  flows(filter: FlowFilter): Awaitable<FlowInfo[]>;
  /** Closes the flows and TCP connections of a client ("ip" or "ip:port"), optionally on one listener. */
  disconnect(client: string, listener?: string): Awaitable<number>;
  /** Closes every flow and TCP connection pinned to backend "ip:port" of `cluster`; returns how many. */
  closeBackendFlows(cluster: string, backend: string): Awaitable<number>;
  /** True when listeners are bound, a config is loaded and nothing is draining. */
  ready(): Awaitable<boolean>;
  /** Bans and top talkers (absent: the routes answer 404). */
  readonly protection?: ProtectionControl;
}

/** A relay of the fleet, as its heartbeat in Redis says. */
export interface FleetInstance {
  /** `[fleet] instance`. */
  readonly instance: string;
  readonly version: string;
  readonly runtime: string;
  readonly runtimeVersion: string;
  readonly workers: number;
  readonly startedAt: string;
  readonly uptimeSeconds: number;
  /** Live UDP flows. */
  readonly flows: number;
  /** Open TCP connections. */
  readonly connections: number;
  /** Datagrams received from clients since start. */
  readonly datagrams: number;
  readonly configHash: string;
  readonly draining: boolean;
  /** When its last heartbeat was written (ISO 8601), and how long ago. */
  readonly lastSeen: string;
  readonly ageSeconds: number;
  /** True for the instance answering. */
  readonly self: boolean;
}

/** The fleet as the admin API uses it: present only when `[fleet] instance` is set. */
export interface FleetAccess {
  /** This instance's name. */
  readonly instance: string;
  /** True while Redis is reachable (a fleet change can be shared). */
  connected(): boolean;
  /**
   * Shares `cluster`'s backends as `config` has them with every instance (written to Redis, then announced).
   * Rejects when Redis cannot take it; the local relay is not touched here.
   */
  publish(cluster: string, config: FerryConfig): Promise<void>;
  /** The live instances (those whose heartbeat has not expired), by name. */
  instances(): Promise<FleetInstance[]>;
}
