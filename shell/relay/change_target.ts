/**
 * One running relay as the change queue's target: snapshots of the core for reading, whole-config
 * application for changing. Reloads, persistence and the order of changes are the queue's
 * (shell/relay/changes.ts).
 *
 * @module
 */

import { formatSocketAddress, parseSocketAddress, sameIp } from "../../core/address.ts";
import type { ConfigResult } from "../../core/config.ts";
import type { Connection } from "../../core/connection.ts";
import { configHash } from "./config_hash.ts";
import { type Flow, FLOW_STATE_NAMES } from "../../core/flow.ts";
import type { TcpRelay } from "../datapath/tcp_relay.ts";
import { isUdpListener, type Listener, type TcpListener } from "../../core/listener.ts";
import { type ShellFiguresFor, snapshotCounters } from "../../core/counter_snapshot.ts";
import { snapshotBackendCounters } from "../../core/backend_counters.ts";
import type { FerryConfig } from "../../core/types.ts";
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
  TcpConnectionInfo,
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

/** Hex SHA-256 of a config as TOML: two configs with the same meaning hash alike (./config_hash.ts). */
export { configHash };

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
    const relay = this.#relay;
    const listeners = [...core.listeners()].map((l) =>
      listenerMetrics(l, {
        rxqOverflows: relay.rxqOverflows(l.config.name) ?? 0,
        upstreamRxqOverflows: relay.datapath(l.config.name)?.native?.upstreamRxqOverflows ?? 0,
      })
    );
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
          ...snapshotBackendCounters(b.counters, b.flows),
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
    const relay = this.#relay;
    const client = filter.client === undefined ? undefined : splitClient(filter.client);
    const now = relay.platform.clock();
    const udp: FlowInfo[] = [];
    if (filter.protocol !== "tcp") {
      for (const f of relay.core.flows()) {
        if (filter.listener !== undefined && f.listener.config.name !== filter.listener) continue;
        if (filter.cluster !== undefined && f.knobs.name !== filter.cluster) continue;
        if (filter.backend !== undefined && f.backend?.key !== filter.backend) continue;
        if (client !== undefined && !sameClient(f, client.ip, client.port)) continue;
        udp.push(flowInfo(f, now));
      }
    }
    if (filter.protocol === "udp") return udp;
    const tcp = connectionInfos(relay.core.connections(), relay.tcp, filter, client, now);
    return tcp.length === 0 ? udp : inAdmissionOrder(udp, tcp);
  }

  disconnect(client: string, listener?: string): number {
    const c = splitClient(client);
    return this.#relay.core.disconnect(c.ip, c.port, listener);
  }

  closeBackendFlows(cluster: string, backend: string): number {
    return this.#relay.core.closeBackendFlows(backend, cluster);
  }

  undrain(listener?: string): void {
    this.#relay.undrain(listener);
  }

  ready(): boolean {
    const relay = this.#relay;
    if (relay.core.draining) return false;
    for (const l of relay.core.listeners()) if (relay.address(l.config.name) === undefined) return false;
    return true;
  }
}

/**
 * A listener's figures as core/counters.ts declares them for its protocol: its counters copied, its live
 * flows or connections, and (UDP) what the shell read from its sockets. A TCP listener gets no UDP field
 * and the reverse.
 */
export function listenerMetrics(l: Listener, udpShell: ShellFiguresFor<"udp">): ListenerMetrics {
  const id = { name: l.config.name, cluster: l.config.cluster };
  if (isUdpListener(l)) {
    return { ...id, protocol: "udp", ...snapshotCounters("udp", l.counters, l.flows, udpShell) };
  }
  const tcp = l as TcpListener;
  return { ...id, protocol: "tcp", ...snapshotCounters("tcp", tcp.counters, l.flows, {}) };
}

/** "ip" or "ip:port" (IPv6 as "[v6]:port" or bare "v6"). */
function splitClient(text: string): { ip: string; port?: number } {
  const parsed = parseSocketAddress(text);
  if (typeof parsed !== "string") return { ip: parsed.ip, port: parsed.port };
  return { ip: text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text };
}

function sameClient(f: Flow | Connection, ip: string, port: number | undefined): boolean {
  if (port !== undefined && f.clientPort !== port) return false;
  return sameIp(f.clientIp, ip);
}

/** The listing of the open connections matching `filter` (core/control_api.ts TcpConnectionInfo). */
function connectionInfos(
  conns: Iterable<Connection>,
  tcp: TcpRelay,
  filter: FlowFilter,
  client: { ip: string; port?: number } | undefined,
  now: number,
): TcpConnectionInfo[] {
  const out: TcpConnectionInfo[] = [];
  for (const c of conns) {
    if (filter.listener !== undefined && c.listener.config.name !== filter.listener) continue;
    if (filter.cluster !== undefined && c.cluster !== filter.cluster) continue;
    if (filter.backend !== undefined && c.backend.key !== filter.backend) continue;
    if (client !== undefined && !sameClient(c, client.ip, client.port)) continue;
    const link = tcp.linkState(c);
    out.push({
      id: String(c.id),
      protocol: "tcp",
      listener: c.listener.config.name,
      cluster: c.cluster,
      client: formatSocketAddress({
        ip: c.clientIp,
        port: c.clientPort,
        family: c.clientIp.includes(":") ? 6 : 4,
      }),
      backend: c.backend.key,
      state: link?.state ?? "established",
      ageSeconds: round3((now - c.openedAt) / 1000),
      idleSeconds: round3((now - (link?.lastActivity ?? c.openedAt)) / 1000),
      bytesUp: c.bytesUp,
      bytesDown: c.bytesDown,
    });
  }
  return out;
}

/** Flows and connections, each list in admission order, merged by id (one sequence numbers both). */
function inAdmissionOrder(udp: readonly FlowInfo[], tcp: readonly FlowInfo[]): FlowInfo[] {
  const out: FlowInfo[] = [];
  let i = 0;
  let j = 0;
  while (i < udp.length || j < tcp.length) {
    const takeUdp = j >= tcp.length || (i < udp.length && Number(udp[i].id) < Number(tcp[j].id));
    out.push(takeUdp ? udp[i++] : tcp[j++]);
  }
  return out;
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
    protocol: "udp",
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
