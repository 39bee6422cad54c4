/**
 * The core's view of backend health: active probe results and passive failures applied to each backend's
 * record (core/health.ts), the earliest end of any passive window (the core wakes for it), and the
 * "health" events and flow closes a transition causes.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import type { Cluster } from "./cluster.ts";
import type { CoreEvent } from "./core_events.ts";
import type { HealthChange } from "./health.ts";
import type { CloseReason } from "./reasons.ts";

/** Where a core that does not own its health state sends a passive failure of backend `key`. */
export type PassiveReport = (cluster: string, key: string, error: string) => void;

/** Health verdicts for the clusters of one core. */
export class CoreHealth {
  /** The earliest end of any passive health window: admission checks it with one comparison. */
  expiry = Infinity;
  readonly #clusters: ReadonlyMap<string, Cluster>;
  readonly #push: (event: CoreEvent) => void;
  readonly #closeBackendFlows: (key: string, cluster: string, reason: CloseReason) => number;
  readonly #report: PassiveReport | undefined;

  /**
   * Verdicts over `clusters` (the core's live map), reporting with `push` and closing with
   * `closeBackendFlows`. With `report`, passive failures go there instead of being judged here: another
   * owner decides (core/health_ledger.ts) and its verdicts come back through `adopt`.
   */
  constructor(
    clusters: ReadonlyMap<string, Cluster>,
    push: (event: CoreEvent) => void,
    closeBackendFlows: (key: string, cluster: string, reason: CloseReason) => number,
    report?: PassiveReport,
  ) {
    this.#clusters = clusters;
    this.#push = push;
    this.#closeBackendFlows = closeBackendFlows;
    this.#report = report;
  }

  /**
   * The owner of the health state decided backend `key` of `cluster` is now `status` (a transition it
   * logged itself, so no "health" event here): balancing follows, and a cluster that closes a down
   * backend's flows closes this core's.
   */
  adopt(cluster: string, key: string, status: "up" | "down", now: number): void {
    const c = this.#clusters.get(cluster);
    const b = c?.backend(key);
    if (c === undefined || b === undefined || b.health.status === status) return;
    b.health.status = status;
    b.health.changedAt = now;
    b.health.transitions++;
    c.refreshed(b);
    if (status === "down" && c.config.health.closeFlowsOnDown) {
      this.#closeBackendFlows(key, cluster, "aborted");
    }
  }

  /** An active probe of backend `key` in `cluster` finished: `error` is null on success. */
  probeResult(cluster: string, key: string, error: string | null, now: number): void {
    const c = this.#clusters.get(cluster);
    const b = c?.backend(key);
    if (c === undefined || b === undefined) return;
    this.#changed(c, b, b.health.probe(error, now, c.config.health), now);
  }

  /** Ends passive health windows that are over. */
  tick(now: number): void {
    if (now < this.expiry) return;
    this.expiry = Infinity;
    for (const c of this.#clusters.values()) {
      for (const b of c.backends) this.#changed(c, b, b.health.expire(now, c.config.health), now);
      const next = c.nextExpiry();
      if (next < this.expiry) this.expiry = next;
    }
  }

  /** A passive failure of backend `b` (of cluster `clusterName`): may start a window and a transition. */
  passiveFailure(clusterName: string, b: Backend, error: string, now: number): void {
    const c = this.#clusters.get(clusterName);
    // Only a configured backend has a health record that balancing reads.
    if (c === undefined || !c.backends.includes(b)) return;
    if (this.#report !== undefined) {
      b.health.lastError = error;
      return this.#report(clusterName, b.key, error);
    }
    this.#changed(c, b, b.health.passive(error, now, c.config.health), now);
    if (b.health.passiveUntil >= 0 && b.health.passiveUntil < this.expiry) {
      this.expiry = b.health.passiveUntil;
    }
  }

  #changed(c: Cluster, b: Backend, change: HealthChange | null, _now: number): void {
    if (change === null) return;
    c.refreshed(b);
    this.#push({ kind: "health", cluster: c.config.name, backend: b, change });
    if (change.to === "down" && c.config.health.closeFlowsOnDown) {
      this.#closeBackendFlows(b.key, c.config.name, "aborted");
    }
  }
}
