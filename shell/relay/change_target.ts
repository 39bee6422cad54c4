/**
 * One running relay as the change queue's target: snapshots of the core for reading, whole-config
 * application for changing. Reloads, persistence and the order of changes are the queue's
 * (shell/relay/changes.ts).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { formatSocketAddress, parseSocketAddress } from "../../core/address.ts";
import { type ConfigResult, configToRaw, configToToml } from "../../core/config.ts";
import { type Flow, FLOW_STATE_NAMES } from "../../core/flow.ts";
import type { ClusterConfig, FerryConfig } from "../../core/types.ts";
import type { BackendDelta } from "../../core/backend_delta.ts";
import type {
  ClusterMetrics,
  FlowFilter,
  FlowInfo,
  ListenerMetrics,
  MetricsSnapshot,
  ProcessMetrics,
  RedisMetrics,
  StatusInfo,
} from "../../core/control_api.ts";
import type { Relay } from "./relay.ts";
import type { ChangeTarget } from "./changes.ts";
import { backendQualityInfo, flowSequence } from "./quality_view.ts";
import { backendHealthInfo } from "./health_view.ts";
import type { ProtectionControl } from "../../core/protection_api.ts";
import { coreProtection } from "./protection_control.ts";

/** What the control needs beyond the relay. */
export interface RelayControlOptions {
  readonly version: string;
  readonly runtimeVersion: string;
  /** The config file, or null (embedded default, quick mode): then reload and persist are refused. */
  readonly configPath: string | null;
  /** Reads and validates the config file the way startup does (environment overrides included). */
  readonly load: () => Promise<ConfigResult>;
  /** Wall-clock time, for status and process metrics (the shell may read clocks; the core may not). */
  readonly now: () => number;
  /** Resident set size and heap in use, in bytes. */
  readonly memory: () => { rss: number; heapUsed: number };
  /** Called after every successful change, e.g. to log it. */
  readonly onApplied?: (hash: string, persisted: boolean, config: FerryConfig) => void;
  /** Called after a successful reload from the config file (the fleet then puts its state back). */
  readonly onReloaded?: () => void;
  /**
   * Around every reload from the config file, whoever asked (SIGHUP or `POST /reload`): `reloading` before
   * the file is read, `reloadDone` after, applied or not (systemd's RELOADING=1 … READY=1).
   */
  readonly reloading?: () => Promise<void> | void;
  readonly reloadDone?: (ok: boolean) => void;
  /** Redis figures to add to the metrics (routing, the main thread's connection, disconnects, fleet). */
  readonly redis?: () => RedisMetrics | undefined;
  /** CPU, descriptors and event-loop lag of the process (shell/process/process_stats.ts), for /metrics. */
  readonly processFacts?: () => Partial<ProcessMetrics>;
}

/** Each cluster's file-shaped text, once per cluster object (a change keeps the clusters it leaves alone). */
const clusterTexts = new WeakMap<ClusterConfig, string>();

/**
 * Hex SHA-256 of a config as written back to a file (TOML for everything but the clusters, each cluster's
 * file-shaped keys after it): two configs with the same meaning hash alike. A cluster's text is kept per
 * cluster object, so hashing after a change of one cluster renders that cluster only.
 */
export function configHash(config: FerryConfig): string {
  const hash = createHash("sha256").update(configToToml({ ...config, clusters: [] }));
  for (const c of config.clusters) {
    let text = clusterTexts.get(c);
    if (text === undefined) {
      text = JSON.stringify(configToRaw({ ...config, listeners: [], clusters: [c] }).clusters);
      clusterTexts.set(c, text);
    }
    hash.update(text);
  }
  return hash.digest("hex");
}

/** The relay behind the change queue (shell/relay/changes.ts), when one relay runs in this thread. */
export class RelayControl implements ChangeTarget {
  readonly #relay: Relay;
  readonly #opts: RelayControlOptions;
  readonly #startedAt: number;
  /** The running config's hash, worked out when status asks (a TOML rendering of the whole config). */
  #hash: string | null = null;
  /** Bans and top talkers of this relay's core. */
  readonly protection: ProtectionControl;

  /** Control of `relay`. */
  constructor(relay: Relay, options: RelayControlOptions) {
    this.#relay = relay;
    this.#opts = options;
    this.protection = coreProtection(() => relay.core, { clock: relay.platform.clock, wall: options.now });
    this.#startedAt = options.now();
  }

  status(): StatusInfo {
    const relay = this.#relay;
    const uptime = (this.#opts.now() - this.#startedAt) / 1000;
    return {
      version: this.#opts.version,
      runtime: relay.platform.runtime,
      runtimeVersion: this.#opts.runtimeVersion,
      startedAt: new Date(this.#startedAt).toISOString(),
      uptimeSeconds: Math.round(uptime * 1000) / 1000,
      workers: 1,
      configHash: this.#hash ??= configHash(relay.config),
      configPath: this.#opts.configPath,
      draining: relay.core.draining,
      listeners: [...relay.core.listeners()].map((l) => {
        const a = relay.address(l.config.name);
        const dp = relay.datapath(l.config.name);
        return {
          name: l.config.name,
          protocol: l.config.protocol,
          address: a ? formatSocketAddress(a) : null,
          cluster: l.config.cluster,
          draining: l.draining || relay.core.draining,
          active: l.flows,
          datapath: dp === undefined ? null : {
            datapath: dp.datapath,
            requested: dp.requested,
            reason: dp.reason,
            recvBuffer: dp.native?.recvBuffer ?? null,
            sendBuffer: dp.native?.sendBuffer ?? null,
            pktinfo: dp.native?.pktinfo ?? null,
            kernelFilter: dp.native?.kernelFilter ?? null,
            batch: dp.native?.batch ?? null,
            gso: dp.native?.gso ?? null,
          },
        };
      }),
    };
  }

  config(): FerryConfig {
    return this.#relay.config;
  }

  async apply(config: FerryConfig): Promise<void> {
    await this.#relay.apply(config);
    this.#hash = null;
  }

  applyBackends(deltas: readonly BackendDelta[]): Promise<void> {
    this.#relay.applyBackends(deltas);
    this.#hash = null;
    return Promise.resolve();
  }

  drain(listener?: string): void {
    this.#relay.drain(listener);
  }

  metrics(): MetricsSnapshot {
    const core = this.#relay.core;
    const listeners: ListenerMetrics[] = [...core.listeners()].map((l) => {
      const c = l.counters;
      const tcp = l.config.protocol === "tcp";
      return {
        name: l.config.name,
        protocol: l.config.protocol,
        cluster: l.config.cluster,
        datagramsIn: c.datagramsIn,
        bytesIn: c.bytesIn,
        datagramsOut: c.datagramsOut,
        bytesOut: c.bytesOut,
        activeFlows: tcp ? 0 : l.flows,
        flowsCreated: c.flowsCreated,
        flowsClosed: { ...c.flowsClosed },
        drops: { ...c.drops },
        connectionsActive: tcp ? l.flows : 0,
        connectionsTotal: c.connectionsTotal,
        connectionsEnded: { ...c.connectionsEnded },
        bytesUp: c.bytesUp,
        bytesDown: c.bytesDown,
        clientUnreachable: c.clientUnreachable,
        rxqOverflows: this.#relay.rxqOverflows(l.config.name) ?? 0,
        upstreamRxqOverflows: this.#relay.datapath(l.config.name)?.native?.upstreamRxqOverflows ?? 0,
      };
    });
    // Health times are on the relay's monotonic clock: shown as wall-clock ISO times.
    const mono = this.#relay.platform.clock();
    const wall = this.#opts.now();
    const configured = new Map(this.#relay.config.clusters.map((c) => [c.name, c]));
    const clusters: ClusterMetrics[] = [...core.clusters()].map((cl) => {
      const states = new Map(
        (configured.get(cl.config.name)?.backends ?? []).map((
          b,
        ) => [formatSocketAddress(b.address), b.state]),
      );
      return {
        name: cl.config.name,
        balancer: cl.config.balancer,
        failOpen: cl.counters.failOpen,
        backends: cl.backends.map((b) => ({
          address: b.key,
          weight: b.weight,
          state: b.state,
          configuredState: states.get(b.key) ?? b.state,
          activeFlows: b.flows,
          ...b.counters,
          quality: backendQualityInfo(b.quality, mono),
          health: backendHealthInfo(b.health, cl.config.health.mode !== "off", mono, wall),
        })),
      };
    });
    const mem = this.#opts.memory();
    const now = this.#opts.now();
    const redis = this.#opts.redis?.();
    return {
      listeners,
      clusters,
      nativeErrors: this.#relay.nativeCounters()?.errors ?? {},
      histograms: this.#relay.records.stats.snapshot(),
      process: {
        residentBytes: mem.rss,
        heapUsedBytes: mem.heapUsed,
        uptimeSeconds: (now - this.#startedAt) / 1000,
        startTimeSeconds: this.#startedAt / 1000,
        ...this.#opts.processFacts?.(),
      },
      ...(redis === undefined ? {} : { redis }),
    };
  }

  flows(filter: FlowFilter): FlowInfo[] {
    const core = this.#relay.core;
    const client = filter.client === undefined ? undefined : splitClient(filter.client);
    const out: FlowInfo[] = [];
    const now = this.#relay.platform.clock();
    for (const f of core.flows()) {
      if (filter.listener !== undefined && f.listener.config.name !== filter.listener) continue;
      if (filter.cluster !== undefined && f.knobs.name !== filter.cluster) continue;
      if (filter.backend !== undefined && f.backend?.key !== filter.backend) continue;
      if (client !== undefined && !sameClient(f, client.ip, client.port)) continue;
      out.push(flowInfo(f, now));
    }
    return out;
  }

  disconnect(client: string, listener?: string): number {
    const c = splitClient(client);
    return this.#relay.core.disconnect(c.ip, c.port, listener);
  }

  closeBackendFlows(cluster: string, backend: string): number {
    return this.#relay.core.closeBackendFlows(backend, cluster);
  }

  ready(): boolean {
    const relay = this.#relay;
    if (relay.core.draining) return false;
    for (const l of relay.core.listeners()) if (relay.address(l.config.name) === undefined) return false;
    return true;
  }
}

/** "ip" or "ip:port" (IPv6 as "[v6]:port" or bare "v6"). */
function splitClient(text: string): { ip: string; port?: number } {
  const parsed = parseSocketAddress(text);
  if (typeof parsed !== "string") return { ip: parsed.ip, port: parsed.port };
  return { ip: text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text };
}

function sameClient(f: Flow, ip: string, port: number | undefined): boolean {
  if (port !== undefined && f.clientPort !== port) return false;
  return f.clientIp === ip || f.clientIp === `::ffff:${ip}`;
}

function flowInfo(f: Flow, now: number): FlowInfo {
  const q = f.quality;
  const client = formatSocketAddress({
    ip: f.clientIp,
    port: f.clientPort,
    family: f.clientIp.includes(":") ? 6 : 4,
  });
  return {
    id: String(f.id),
    listener: f.listener.config.name,
    cluster: f.knobs.name,
    client,
    backend: f.backend?.key ?? null,
    state: FLOW_STATE_NAMES[f.state],
    ageSeconds: round3((now - q.createdAt) / 1000),
    idleSeconds: round3((now - q.lastSeen) / 1000),
    bytesIn: q.bytesIn,
    bytesOut: q.bytesOut,
    datagramsIn: q.datagramsIn,
    datagramsOut: q.datagramsOut,
    bandwidth: Math.round(q.bandwidth(now)),
    latencyMs: q.srtt === q.srtt ? round3(q.srtt) : null,
    jitterMs: round3(q.rttvar),
    lossPermille: q.dropPermille,
    dropPermille: q.dropPermille,
    unansweredPermille: q.unansweredPermille,
    sequence: flowSequence(q),
    priority: q.priority(now),
  };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
