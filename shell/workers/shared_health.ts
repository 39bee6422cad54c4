/**
 * Backend health of a worker pool, kept once on the main thread: one prober (shell/relay/health_probes.ts)
 * probes each backend once whatever the worker count, every worker reports its passive failures here, and
 * the one health state (core/health_ledger.ts) decides. Each transition is logged once, here, and sent to
 * every worker as a verdict its core adopts; the admin API shows this state, not the workers' copies.
 *
 * Why the main thread judges passive failures rather than each worker feeding the others' windows: one
 * owner means one sliding window per backend (max_fails counts failures seen by any worker, in the order
 * they reached it), one transition, one log line and nothing to reconcile; the cost is a message per
 * passive failure, which only happens when a backend is failing anyway.
 *
 * @module
 */

import { HealthLedger, type HealthTransition } from "../../core/health_ledger.ts";
import type { HealthChange } from "../../core/health.ts";
import type { BackendState, FerryConfig } from "../../core/types.ts";
import type { MetricsSnapshot } from "../../core/control_api.ts";
import { HealthProber } from "../relay/health_probes.ts";
import { backendHealthInfo } from "../relay/health_view.ts";
import type { Platform } from "../relay/relay.ts";
import type { HealthVerdict, WorkerPassive } from "./worker_protocol.ts";

/** What the shared health needs besides the config. */
export interface SharedHealthOptions {
  /** The main thread's sockets (for probes) and monotonic clock. */
  readonly platform: Platform;
  /** Seeds the DNS probes' query IDs. */
  readonly seed: number;
  /** Sends verdicts to every worker. */
  readonly broadcast: (verdicts: HealthVerdict[]) => void;
  /** Logs one transition (once for the whole process). */
  readonly transition: (cluster: string, backend: string, change: HealthChange) => void;
  /** Wall-clock time, to show health times. */
  readonly now: () => number;
}

/** The effective state: the configured one, or down when health says so (as core/backend.ts decides). */
function effectiveState(configured: BackendState, health: "up" | "down"): BackendState {
  return configured !== "up" ? configured : health;
}

/** The one health state of a pool's backends, with its prober and its passive-window timer. */
export class SharedHealth {
  readonly #ledger: HealthLedger;
  readonly #prober: HealthProber;
  readonly #opts: SharedHealthOptions;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;

  /** The health of `config`'s backends, all up; probing starts at once. */
  constructor(config: FerryConfig, options: SharedHealthOptions) {
    this.#opts = options;
    const clock = options.platform.clock;
    this.#ledger = new HealthLedger(config, clock());
    this.#prober = new HealthProber(
      {
        clusters: () => this.#ledger.clusters(),
        probeResult: (cluster, key, error, now) =>
          this.#emit([this.#ledger.probeResult(cluster, key, error, now)]),
      },
      options.platform.udp,
      options.platform.tcp,
      clock,
      options.seed,
    );
    this.#prober.sync();
  }

  /** Probing tasks running (one per probed backend, whatever the worker count). */
  get probes(): number {
    return this.#prober.size;
  }

  /** Follows a whole config the workers now run. */
  apply(config: FerryConfig): void {
    this.#ledger.sync(config, this.#opts.platform.clock());
    this.#prober.sync();
    this.#arm();
  }

  /** Follows a change of backends of the clusters named in `changed` (`config`: the one it led to). */
  applyBackends(config: FerryConfig, changed: ReadonlySet<string>): void {
    this.#ledger.sync(config, this.#opts.platform.clock(), changed);
    this.#prober.sync(changed);
    this.#arm();
  }

  /** A worker's passive failure. */
  passive(report: WorkerPassive): void {
    const now = this.#opts.platform.clock();
    this.#emit([this.#ledger.passiveFailure(report.cluster, report.backend, report.error, now)]);
    this.#arm();
  }

  /**
   * `snapshot` (the workers' figures added up) with every backend's health and effective state taken from
   * this one record, so every view of the pool agrees whatever a worker's copy says at that instant.
   */
  overlay(snapshot: MetricsSnapshot): MetricsSnapshot {
    const mono = this.#opts.platform.clock();
    const wall = this.#opts.now();
    const probed = new Map([...this.#ledger.clusters()].map((c) => [c.config.name, c.config.health.mode]));
    return {
      ...snapshot,
      clusters: snapshot.clusters.map((c) => ({
        ...c,
        backends: c.backends.map((b) => {
          const h = this.#ledger.record(c.name, b.address);
          if (h === undefined) return b;
          return {
            ...b,
            state: effectiveState(b.configuredState, h.status),
            health: backendHealthInfo(h, (probed.get(c.name) ?? "off") !== "off", mono, wall),
          };
        }),
      })),
    };
  }

  /** Stops probing and the timer. */
  stop(): void {
    this.#stopped = true;
    this.#prober.stop();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Logs each transition once and sends them to every worker. */
  #emit(transitions: readonly (HealthTransition | null)[]): void {
    const verdicts: HealthVerdict[] = [];
    for (const t of transitions) {
      if (t === null) continue;
      this.#opts.transition(t.cluster, t.backend, t.change);
      verdicts.push({ cluster: t.cluster, backend: t.backend, status: t.change.to });
    }
    if (verdicts.length > 0 && !this.#stopped) this.#opts.broadcast(verdicts);
  }

  /** Wakes at the end of the earliest passive window. */
  #arm(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const at = this.#ledger.expiry;
    if (this.#stopped || at === Infinity) return;
    const wait = Math.max(0, at - this.#opts.platform.clock());
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#emit(this.#ledger.tick(this.#opts.platform.clock()));
      this.#arm();
    }, wait + 1);
  }
}
