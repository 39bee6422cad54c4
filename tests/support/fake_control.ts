/**
 * An in-memory {@link Control} for admin API tests: it keeps a FerryConfig and applies configs to it, reports
 * status and metrics derived from it (with canned counters), lists and closes canned flows, and records
 * every call. Tests can make the next apply or reload fail. Reads answer through promises, as a pool of
 * workers does, so a route that forgets to await shows up here.
 *
 * @module
 */

import { type ConfigError, configToToml, parseConfigToml } from "../../core/config.ts";
import { formatSocketAddress } from "../../core/address.ts";
import type { FerryConfig } from "../../core/types.ts";
import { zeroDrops } from "../../core/drops.ts";
import { newListenerCounters } from "../../core/counters.ts";
import { snapshotCounters } from "../../core/counter_snapshot.ts";
import type { CloseReason } from "../../core/reasons.ts";
import type {
  ApplyResult,
  ChangeRequest,
  ChangeResult,
  Control,
  FlowFilter,
  FlowInfo,
  ListenerMetrics,
  MetricsSnapshot,
  StatusInfo,
  TcpConnectionInfo,
  UdpFlowInfo,
} from "../../core/control_api.ts";

/** A config with two clusters (one with an IPv6 backend) and three listeners. */
export const FAKE_CONFIG_TOML = `
[admin]
listen = "127.0.0.1:9901"
token = "s3cret"

[[listeners]]
name = "dns"
address = "127.0.0.1:5353"
cluster = "resolvers"

[[listeners]]
name = "game"
address = "127.0.0.1:7000"
cluster = "game"
max_flows = 100

[[listeners]]
name = "game-tcp"
protocol = "tcp"
address = "127.0.0.1:7000"
cluster = "game"

[clusters.resolvers]
responses = 1
[[clusters.resolvers.backends]]
address = "10.0.0.1:53"
[[clusters.resolvers.backends]]
address = "[::1]:53"
weight = 2

[clusters.game]
balancer = "maglev"
[[clusters.game.backends]]
address = "10.0.1.1:7001"
[[clusters.game.backends]]
address = "10.0.1.2:7001"
state = "draining"

[clusters.spare]
[[clusters.spare.backends]]
address = "10.0.2.1:9000"
`;

/** Parses TOML into a config or throws (tests only). */
export function configOf(toml: string): FerryConfig {
  const r = parseConfigToml(toml);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

/** A UDP flow with every figure defaulted. */
export function flow(over: Partial<UdpFlowInfo> & { id: string; client: string }): UdpFlowInfo {
  return {
    protocol: "udp",
    listener: "game",
    cluster: "game",
    backend: "10.0.1.1:7001",
    state: "active",
    ageSeconds: 10,
    idleSeconds: 1,
    bytesIn: 1000,
    bytesOut: 2000,
    datagramsIn: 10,
    datagramsOut: 20,
    bandwidth: 100,
    latencyMs: 20,
    jitterMs: 2,
    lossPermille: 0,
    dropPermille: 0,
    unansweredPermille: 0,
    sequence: null,
    priority: 1,
    ...over,
  };
}

/** A TCP connection with every figure defaulted. */
export function connection(
  over: Partial<TcpConnectionInfo> & { id: string; client: string },
): TcpConnectionInfo {
  return {
    protocol: "tcp",
    listener: "web",
    cluster: "game",
    backend: "10.0.1.1:7001",
    state: "established",
    ageSeconds: 30,
    idleSeconds: 2,
    bytesUp: 500,
    bytesDown: 7000,
    ...over,
  };
}

/** A call the admin app made. */
export interface Call {
  readonly method: string;
  readonly args: readonly unknown[];
}

/** A short deterministic hash of the config (FNV-1a of its TOML, as hex). */
function hashOf(config: FerryConfig): string {
  let h = 0x811c9dc5;
  for (const ch of configToToml(config)) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** The fake Control. */
export class FakeControl implements Control {
  current: FerryConfig;
  readonly calls: Call[] = [];
  flowList: FlowInfo[] = [];
  isReady = true;
  draining = false;
  /** Listeners drained one by one (drain(name)), until undone. */
  readonly drained = new Set<string>();
  /** When set, the next applyConfig fails with these errors (and changes nothing). */
  failNextApply: ConfigError[] | null = null;
  /** What reload() returns; a config here is applied. */
  reloadWith: FerryConfig | ConfigError[] = [];
  /** A close reason with characters that need escaping in Prometheus labels. */
  oddReason = 'we"ird\\reason\nx';

  /** A fake running `config` (default: {@link FAKE_CONFIG_TOML}). */
  constructor(config: FerryConfig = configOf(FAKE_CONFIG_TOML)) {
    this.current = config;
  }

  #record(method: string, ...args: unknown[]): void {
    this.calls.push({ method, args });
  }

  /** The calls to `method`. */
  callsTo(method: string): Call[] {
    return this.calls.filter((c) => c.method === method);
  }

  status(): Promise<StatusInfo> {
    return Promise.resolve(this.statusNow());
  }

  /** The status, synchronously. */
  statusNow(): StatusInfo {
    return {
      version: "0.1.0-test",
      runtime: "fake",
      runtimeVersion: "1.0",
      startedAt: "2025-01-01T00:00:00.000Z",
      uptimeSeconds: 42,
      workers: 1,
      configHash: hashOf(this.current),
      configPath: null,
      draining: this.draining,
      listeners: this.current.listeners.map((l) => ({
        name: l.name,
        protocol: l.protocol,
        address: formatSocketAddress(l.address),
        cluster: l.cluster,
        draining: this.draining || this.drained.has(l.name),
        active: this.flowList.filter((f) => f.listener === l.name).length,
      })),
    };
  }

  config(): FerryConfig {
    return this.current;
  }

  configHash(): string {
    return hashOf(this.current);
  }

  #tail: Promise<unknown> = Promise.resolve();

  /** One change at a time, as the shell's queue runs them; the config goes through {@link applyConfig}. */
  change(request: ChangeRequest): Promise<ChangeResult> {
    const run = async (): Promise<ChangeResult> => {
      this.#record("change", request.source, request.ifMatch);
      if (request.ifMatch !== undefined && request.ifMatch !== this.configHash()) {
        return { ok: false, failure: "stale", errors: [{ path: "", message: "the config changed" }] };
      }
      const config = request.edit(this.current);
      const r = await this.applyConfig(config, request.persist);
      if (!r.ok) return { ok: false, failure: r.failure ?? "refused", errors: r.errors };
      const applied = { config, configHash: r.configHash, persisted: r.persisted };
      await request.after?.(applied);
      return { ok: true, ...applied };
    };
    const result = this.#tail.then(run);
    this.#tail = result.catch(() => {});
    return result;
  }

  /** Applies a config as the shell's queue would, recording the call; the next failure set fails it. */
  applyConfig(config: FerryConfig, persist: boolean): Promise<ApplyResult> {
    this.#record("applyConfig", config, persist);
    if (this.failNextApply !== null) {
      const errors = this.failNextApply;
      this.failNextApply = null;
      return Promise.resolve({ ok: false, errors });
    }
    this.current = config;
    return Promise.resolve({ ok: true, configHash: hashOf(config), persisted: persist });
  }

  reload(): Promise<ApplyResult> {
    this.#record("reload");
    const r = this.reloadWith;
    if (Array.isArray(r)) return Promise.resolve({ ok: false, errors: r });
    this.current = r;
    return Promise.resolve({ ok: true, configHash: hashOf(r), persisted: false });
  }

  drain(listener?: string): Promise<void> {
    this.#record("drain", listener);
    if (listener === undefined) this.draining = true;
    else this.drained.add(listener);
    return Promise.resolve();
  }

  undrain(listener?: string): Promise<void> {
    this.#record("undrain", listener);
    if (listener === undefined) this.drained.clear();
    else this.drained.delete(listener);
    return Promise.resolve();
  }

  metrics(): Promise<MetricsSnapshot> {
    return Promise.resolve(this.metricsNow());
  }

  /**
   * Canned figures of listener `i`: built from the declaration (core/counters.ts), so every declared field
   * is there, then a few set to values the tests read. A flow close reason with odd characters tests escaping.
   */
  #listenerMetrics(name: string, protocol: "udp" | "tcp", cluster: string, i: number): ListenerMetrics {
    const drops = { ...zeroDrops(), truncated: 1 };
    if (protocol === "tcp") {
      const c = { ...newListenerCounters("tcp"), drops, connectionsTotal: 5, bytesUp: 500, bytesDown: 700 };
      c.connectionsEnded.closed = 3;
      return { name, protocol, cluster, ...snapshotCounters("tcp", c, 2, {}) };
    }
    const c = {
      ...newListenerCounters("udp"),
      datagramsIn: 100 + i,
      bytesIn: 10_000 + i,
      datagramsOut: 90 + i,
      bytesOut: 9_000 + i,
      flowsCreated: 7,
      flowsClosed: { idle: 3, responses: 2, [this.oddReason]: 1 } as Record<CloseReason, number>,
      drops,
    };
    const live = this.flowList.filter((f) => f.listener === name).length;
    return {
      name,
      protocol,
      cluster,
      ...snapshotCounters("udp", c, live, { rxqOverflows: 0, upstreamRxqOverflows: 0 }),
    };
  }

  /** The metrics, synchronously. */
  metricsNow(): MetricsSnapshot {
    return {
      listeners: this.current.listeners.map((l, i) =>
        this.#listenerMetrics(l.name, l.protocol, l.cluster, i)
      ),
      clusters: this.current.clusters.map((c) => ({
        name: c.name,
        balancer: c.balancer,
        failOpen: 4,
        backends: c.backends.map((b, j) => ({
          address: formatSocketAddress(b.address),
          weight: b.weight,
          state: b.state,
          configuredState: b.state,
          activeFlows: j,
          flowsTotal: 10 + j,
          datagramsTo: 50 + j,
          bytesTo: 5_000 + j,
          datagramsFrom: 40 + j,
          bytesFrom: 4_000 + j,
          sendErrors: 0,
          refusals: 1,
          quality: {
            latencyMs: 5 + j,
            jitterMs: 1,
            peakEwmaMs: 6 + j,
            samples: 3,
            answered: 30,
            unanswered: j,
            unansweredPermille: j * 10,
            sequenceUp: { expected: 0, received: 0, lost: 0, reordered: 0, duplicates: 0, lossPermille: 0 },
            sequenceDown: { expected: 0, received: 0, lost: 0, reordered: 0, duplicates: 0, lossPermille: 0 },
          },
          health: {
            status: b.state === "down" ? "down" as const : "up" as const,
            probed: false,
            since: "2026-01-01T00:00:00.000Z",
            lastError: null,
            okStreak: 0,
            failStreak: 0,
            passiveUntil: null,
            transitions: j,
          },
        })),
      })),
      process: {
        residentBytes: 50_000_000,
        heapUsedBytes: 10_000_000,
        uptimeSeconds: 42,
        startTimeSeconds: 1.7e9,
      },
    };
  }

  flows(filter: FlowFilter): Promise<FlowInfo[]> {
    this.#record("flows", filter);
    return Promise.resolve(this.flowList.filter((f) => matches(f, filter)));
  }

  disconnect(client: string, listener?: string): Promise<number> {
    this.#record("disconnect", client, listener);
    return Promise.resolve(
      this.#close((f) => matches(f, { client, ...(listener !== undefined ? { listener } : {}) })),
    );
  }

  closeBackendFlows(cluster: string, backend: string): Promise<number> {
    this.#record("closeBackendFlows", cluster, backend);
    return Promise.resolve(this.#close((f) => f.cluster === cluster && f.backend === backend));
  }

  ready(): Promise<boolean> {
    return Promise.resolve(this.isReady);
  }

  #close(which: (f: FlowInfo) => boolean): number {
    const before = this.flowList.length;
    this.flowList = this.flowList.filter((f) => !which(f));
    return before - this.flowList.length;
  }
}

/** The client's IP of "ip:port" / "[v6]:port". */
function clientIp(client: string): string {
  const m = /^\[(.*)\]:\d+$/.exec(client);
  return m !== null ? m[1] : client.slice(0, client.lastIndexOf(":"));
}

function matches(f: FlowInfo, filter: FlowFilter): boolean {
  if (filter.protocol !== undefined && f.protocol !== filter.protocol) return false;
  if (filter.listener !== undefined && f.listener !== filter.listener) return false;
  if (filter.cluster !== undefined && f.cluster !== filter.cluster) return false;
  if (filter.backend !== undefined && f.backend !== filter.backend) return false;
  if (filter.client !== undefined && f.client !== filter.client && clientIp(f.client) !== filter.client) {
    return false;
  }
  return true;
}
