/**
 * `relay.workers = N` (N > 1): N worker threads, each running its own Relay (shell/workers/worker_main.ts) on the
 * same ports through SO_REUSEPORT, so the kernel spreads clients over N event loops. The pool is the
 * change queue's target over all of them (shell/relay/changes.ts): reads add the workers' snapshots up (shell/relay/aggregate.ts), and
 * every change goes to every worker and is awaited; a config that any worker cannot apply is rolled back
 * on the others, so workers never run different configs.
 *
 * Backend health is one state on the main thread (shell/workers/shared_health.ts): one prober, passive
 * failures reported by every worker, each transition logged once and adopted by every worker's core. A
 * change of backends only reaches the workers as its edits (`applyBackends`), anything else as a config.
 *
 * Limits such as max_flows hold per worker (each core admits on its own); the automatic limit, which
 * comes from the process's file descriptors, is split between the workers.
 *
 * @module
 */

import { workerShare } from "../../core/fd_budget.ts";
import { poolProtection } from "../relay/protection_control.ts";
import { chooseDatapath, requestedDatapath } from "../datapath/native/select.ts";
import type { ConfigError } from "../../core/config.ts";
import { formatSocketAddress } from "../../core/address.ts";
import type { FerryConfig } from "../../core/types.ts";
import type { FlowFilter, FlowInfo, MetricsSnapshot, StatusInfo } from "../../core/control_api.ts";
import { mergeFlows, mergeMetrics, mergeStatus } from "../relay/aggregate.ts";
import { mergeRedisMetrics } from "../redis/metrics.ts";
import { configHash, type RelayControlOptions } from "../relay/change_target.ts";
import type { ChangeTarget } from "../relay/changes.ts";
import type { Platform } from "../relay/relay.ts";
import { WorkerLink, type WorkerResult } from "./worker_link.ts";
import type { WorkerCalls, WorkerLogOutput, WorkerMethod, WorkerPassive } from "./worker_protocol.ts";
import { SharedHealth } from "./shared_health.ts";
import { type BackendDelta, withBackendDeltas } from "../../core/backend_delta.ts";
import { relayLogHooks } from "../relay/relay_log.ts";
import { log } from "../process/logging.ts";

/** Options of a pool. */
export interface PoolOptions {
  /** How many workers (2..64). */
  readonly workers: number;
  /** Seed of the random choices; each worker gets its own stream from it. */
  readonly seed: number;
  /** The whole process's flow limit for max_flows = 0; each worker gets its share. */
  readonly autoMaxFlows?: number;
  /** The whole process's descriptor budget for flows and connections; each worker gets its share. */
  readonly descriptorBudget?: number;
  /** What the control needs beyond the workers (as for the single relay's RelayControl). */
  readonly control: RelayControlOptions;
  /** How the main thread's logs look, for the workers' lines. */
  readonly log: WorkerLogOutput;
  /** A worker died after starting (an uncaught error): its share of every port is no longer served. */
  readonly onWorkerDeath?: (error: Error) => void;
}

/** Extra time a worker gets past the grace period to report its shutdown before it is ended anyway. */
const SHUTDOWN_SLACK_MS = 2_000;

/**
 * The listeners of `config` that `workers` workers cannot share here, as errors: UDP listeners served by
 * the runtime's sockets where those have no SO_REUSEPORT (a second bind would fail, or take the port from
 * the first). The native path sets SO_REUSEPORT itself, so a listener it serves can always be shared.
 */
export async function unsharedListeners(
  config: FerryConfig,
  platform: Platform,
  workers: number,
): Promise<ConfigError[]> {
  if (workers <= 1 || platform.udp.reusePort) return [];
  const errors: ConfigError[] = [];
  for (const [i, l] of config.listeners.entries()) {
    if (l.protocol !== "udp") continue;
    const choice = await chooseDatapath(requestedDatapath(l.datapath, config.relay.datapath)).catch(() =>
      null
    );
    if (choice?.datapath === "native") continue;
    errors.push({
      path: `listeners[${i}]`,
      message:
        `listener ${JSON.stringify(l.name)} (udp ${formatSocketAddress(l.address)}) cannot be shared ` +
        `by ${workers} workers: ${runtimeLabel(platform.runtime)}'s UDP sockets have no SO_REUSEPORT; ` +
        `set relay.workers = 1, use datapath = "native" (Linux), or run ferry on Bun`,
    });
  }
  return errors;
}

/** "Deno", "Bun": the runtime as people write it. */
function runtimeLabel(runtime: string): string {
  return runtime.charAt(0).toUpperCase() + runtime.slice(1);
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** One message for failures of several workers: said once when they all failed alike. */
function describeFailures(failures: readonly { index: number; error: unknown }[]): string {
  const messages = failures.map((f) => reason(f.error));
  if (messages.every((m) => m === messages[0])) return messages[0];
  return failures.map((f, i) => `worker ${f.index}: ${messages[i]}`).join("; ");
}

/** The workers of one process, and the Control over them. */
export class WorkerPool implements ChangeTarget {
  /** Bans and top talkers, asked of every worker and merged. */
  readonly protection = poolProtection((op) => this.#all("protection", op));
  readonly #links: readonly WorkerLink[];
  readonly #platform: Platform;
  readonly #opts: PoolOptions;
  readonly #startedAt: number;
  #config: FerryConfig;
  /** The running config's hash, worked out when status asks (a TOML rendering of the whole config). */
  #hash: string | null = null;
  #stopping = false;
  /** The one health state of every worker's backends. */
  readonly health: SharedHealth;

  private constructor(links: WorkerLink[], config: FerryConfig, platform: Platform, options: PoolOptions) {
    this.#links = links;
    this.#platform = platform;
    this.#opts = options;
    this.#config = config;
    this.#startedAt = options.control.now();
    const hooks = relayLogHooks(log);
    this.health = new SharedHealth(config, {
      platform,
      seed: options.seed,
      now: options.control.now,
      transition: (cluster, backend, change) => hooks.health?.(cluster, backend, change),
      // A worker that died misses them; the pool reports its death anyway.
      broadcast: (verdicts) => {
        for (const l of this.#links) l.call("adoptHealth", verdicts).catch(() => {});
      },
    });
  }

  /**
   * Starts the workers on `config` and resolves once every one has bound every listener. Throws (with
   * no worker left running) when the runtime cannot share a listener or any worker cannot bind.
   */
  static async start(config: FerryConfig, platform: Platform, options: PoolOptions): Promise<WorkerPool> {
    const refused = await unsharedListeners(config, platform, options.workers);
    if (refused.length > 0) throw new Error(refused.map((e) => e.message).join("; "));
    const n = options.workers;
    const auto = options.autoMaxFlows;
    const fds = options.descriptorBudget;
    let pool: WorkerPool | null = null;
    // Passive failures seen while the others still start are dropped: nothing judges them yet.
    const passive = (report: WorkerPassive) => pool?.health.passive(report);
    const started = await Promise.allSettled(
      Array.from({ length: n }, (_, index) =>
        WorkerLink.start({
          type: "init",
          index,
          config,
          // Distinct streams per worker; hash-based choices use each cluster's hash_seed and agree anyway.
          seed: (options.seed + Math.imul(index, 0x9e3779b9)) >>> 0,
          autoMaxFlows: auto === undefined ? undefined : Math.max(1, Math.floor(auto / n)),
          descriptorBudget: fds === undefined ? undefined : workerShare(fds, n),
          log: options.log,
        }, (error) => {
          if (pool !== null && !pool.#stopping) options.onWorkerDeath?.(error);
        }, passive)),
    );
    const links = started.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
    if (links.length < n) {
      for (const l of links) l.terminate();
      const failures = started.flatMap((r, index) =>
        r.status === "rejected" ? [{ index, error: r.reason }] : []
      );
      throw new Error(describeFailures(failures));
    }
    pool = new WorkerPool(links, config, platform, options);
    return pool;
  }

  /** How many workers run. */
  get size(): number {
    return this.#links.length;
  }

  /** Every worker's answer to `method`, in worker order. */
  #all<M extends WorkerMethod>(method: M, ...args: Parameters<WorkerCalls[M]>): Promise<WorkerResult<M>[]> {
    return Promise.all(this.#links.map((l) => l.call(method, ...args)));
  }

  async status(): Promise<StatusInfo> {
    const parts = await this.#all("status");
    const now = this.#opts.control.now();
    return mergeStatus(parts, {
      version: this.#opts.control.version,
      runtime: this.#platform.runtime,
      runtimeVersion: this.#opts.control.runtimeVersion,
      startedAt: new Date(this.#startedAt).toISOString(),
      uptimeSeconds: Math.round(now - this.#startedAt) / 1000,
      workers: this.size,
      configHash: this.#hash ??= configHash(this.#config),
      configPath: this.#opts.control.configPath,
    });
  }

  config(): FerryConfig {
    return this.#config;
  }

  refusals(config: FerryConfig): Promise<ConfigError[]> {
    return unsharedListeners(config, this.#platform, this.size);
  }

  /**
   * Applies `next` on every worker; if any refuses, the others go back to the running config. Called by
   * the change queue only, one change at a time: a rollback never interleaves with the next change.
   */
  async apply(next: FerryConfig): Promise<void> {
    await this.#everywhere(next, (l) => l.call("apply", next));
    this.health.apply(next);
  }

  /**
   * Applies a change of backends on every worker as its edits (a few hundred bytes each, not the whole
   * config), all or nothing as `apply` is; called by the change queue only.
   */
  async applyBackends(deltas: readonly BackendDelta[]): Promise<void> {
    const next = withBackendDeltas(this.#config, deltas);
    await this.#everywhere(next, (l) => l.call("applyBackends", deltas));
    this.health.applyBackends(next, new Set(deltas.map((d) => d.cluster)));
  }

  /** Makes every worker run `next` by `send`; if any refuses, the others go back to the running config. */
  async #everywhere(next: FerryConfig, send: (l: WorkerLink) => Promise<unknown>): Promise<void> {
    const prev = this.#config;
    const results = await Promise.allSettled(this.#links.map(send));
    const failures = results.flatMap((r, index) =>
      r.status === "rejected" ? [{ index, error: r.reason }] : []
    );
    if (failures.length === 0) {
      this.#config = next;
      this.#hash = null;
      return;
    }
    // A worker that refused restored its previous config itself (Relay.apply is all or nothing).
    const took = this.#links.filter((_, i) => results[i].status === "fulfilled");
    const undone = await Promise.allSettled(took.map((l) => l.call("apply", prev)));
    const stuck = undone.flatMap((r, i) =>
      r.status === "rejected" ? [{ index: took[i].index, error: r.reason }] : []
    );
    const message = describeFailures(failures);
    if (stuck.length === 0) throw new Error(message);
    throw new Error(
      `${message}; restoring the previous config failed too (${describeFailures(stuck)}): ` +
        `workers may now run different configs`,
    );
  }

  async drain(listener?: string): Promise<void> {
    await this.#all("drain", listener);
  }

  async undrain(listener?: string): Promise<void> {
    await this.#all("undrain", listener);
  }

  async metrics(): Promise<MetricsSnapshot> {
    const parts = await this.#all("metrics");
    const mem = this.#opts.control.memory();
    const now = this.#opts.control.now();
    const merged = mergeMetrics(parts, {
      // The resident set is the process's; each thread has a heap of its own.
      residentBytes: mem.rss,
      heapUsedBytes: parts.reduce((sum, p) => sum + p.process.heapUsedBytes, mem.heapUsed),
      uptimeSeconds: (now - this.#startedAt) / 1000,
      startTimeSeconds: this.#startedAt / 1000,
      ...this.#opts.control.processFacts?.(),
    });
    // Workers report their routing; the main thread its own connection, disconnects and fleet.
    const redis = mergeRedisMetrics([...parts.map((p) => p.redis), this.#opts.control.redis?.()]);
    const shown = this.health.overlay(merged);
    return redis === undefined ? shown : { ...shown, redis };
  }

  async flows(filter: FlowFilter): Promise<FlowInfo[]> {
    return mergeFlows(await this.#all("flows", filter));
  }

  async disconnect(client: string, listener?: string): Promise<number> {
    return (await this.#all("disconnect", client, listener)).reduce((a, b) => a + b, 0);
  }

  async closeBackendFlows(cluster: string, backend: string): Promise<number> {
    return (await this.#all("closeBackendFlows", cluster, backend)).reduce((a, b) => a + b, 0);
  }

  async ready(): Promise<boolean> {
    if (this.#stopping) return false;
    return (await this.#all("ready")).every((r) => r);
  }

  /**
   * Graceful shutdown of every worker (drain, up to `graceMs` for flows to end, close), then the threads
   * end. A worker that does not report back in time is ended anyway.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.#stopping = true;
    this.health.stop();
    await Promise.all(this.#links.map((l) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs + SHUTDOWN_SLACK_MS)));
      return Promise.race([l.call("shutdown", graceMs).catch(() => {}), late]).finally(() =>
        clearTimeout(timer)
      );
    }));
    this.stop();
  }

  /** Ends every worker thread now; their sockets close with them. */
  stop(): void {
    this.#stopping = true;
    this.health.stop();
    for (const l of this.#links) l.terminate();
  }
}
