/**
 * One health state for backends that several cores balance over (relay workers): the main thread keeps
 * it, its one prober feeds it probe results, every worker reports its passive failures to it, and each
 * transition it decides is logged once and sent to every worker as a verdict (RelayCore.adoptHealth). The
 * rules are core/health.ts's, the very ones a lone core applies; only the owner of the records moves.
 *
 * Pure: time is a parameter; no sockets, no timers (the shell wakes it at `expiry`).
 *
 * @module
 */

import { backendKey } from "./backend_delta.ts";
import type { SocketAddress } from "./address.ts";
import { BackendHealth, type HealthChange } from "./health.ts";
import type { ClusterConfig, FerryConfig } from "./types.ts";

/** One backend's record in the ledger. */
export interface LedgerBackend {
  /** Canonical "ip:port". */
  readonly key: string;
  readonly address: SocketAddress;
  readonly health: BackendHealth;
}

/** One cluster's records. */
export interface LedgerCluster {
  config: ClusterConfig;
  backends: LedgerBackend[];
}

/** A status change the ledger decided: to log once and to send to every core. */
export interface HealthTransition {
  readonly cluster: string;
  readonly backend: string;
  readonly change: HealthChange;
  /** Whether the cluster closes a backend's flows when it goes down (each core does it for its own). */
  readonly closeFlows: boolean;
}

/** The health records of every configured backend of every cluster. */
export class HealthLedger {
  /** The earliest end of a passive window (Infinity if none): call `tick` then. */
  expiry = Infinity;
  readonly #clusters = new Map<string, LedgerCluster>();

  /** Records for `config`'s backends, all up since `now`. */
  constructor(config: FerryConfig, now: number) {
    this.sync(config, now);
  }

  /**
   * Follows a config: records of kept backends (same cluster, same address) stay, new backends start up
   * at `now`, gone ones are dropped. `only` limits it to the clusters a change of backends named.
   */
  sync(config: FerryConfig, now: number, only?: ReadonlySet<string>): void {
    const seen = new Set<string>();
    for (const cc of config.clusters) {
      seen.add(cc.name);
      if (only !== undefined && !only.has(cc.name)) continue;
      const old = new Map((this.#clusters.get(cc.name)?.backends ?? []).map((b) => [b.key, b]));
      const backends = cc.backends.map((bc) => {
        const key = backendKey(bc);
        return old.get(key) ?? { key, address: bc.address, health: new BackendHealth(now) };
      });
      this.#clusters.set(cc.name, { config: cc, backends });
    }
    if (only === undefined) {
      for (const name of [...this.#clusters.keys()]) if (!seen.has(name)) this.#clusters.delete(name);
    }
    this.#recomputeExpiry();
  }

  /** Every cluster (the prober's view: names, health settings, backends). */
  clusters(): IterableIterator<LedgerCluster> {
    return this.#clusters.values();
  }

  /** A backend's record, if it is configured. */
  record(cluster: string, key: string): BackendHealth | undefined {
    return this.#find(cluster, key)?.health;
  }

  /** An active probe of `key` in `cluster` finished at `now` (`error` null on success). */
  probeResult(cluster: string, key: string, error: string | null, now: number): HealthTransition | null {
    const c = this.#clusters.get(cluster);
    const b = this.#find(cluster, key);
    if (c === undefined || b === undefined) return null;
    return this.#transition(c.config, b, b.health.probe(error, now, c.config.health));
  }

  /** A core saw a passive failure of `key` in `cluster` (a refused send, a failed connect) at `now`. */
  passiveFailure(cluster: string, key: string, error: string, now: number): HealthTransition | null {
    const c = this.#clusters.get(cluster);
    const b = this.#find(cluster, key);
    if (c === undefined || b === undefined) return null;
    const t = this.#transition(c.config, b, b.health.passive(error, now, c.config.health));
    if (b.health.passiveUntil >= 0 && b.health.passiveUntil < this.expiry) {
      this.expiry = b.health.passiveUntil;
    }
    return t;
  }

  /** Ends the passive windows that are over at `now`; returns the transitions that causes. */
  tick(now: number): HealthTransition[] {
    if (now < this.expiry) return [];
    const out: HealthTransition[] = [];
    for (const c of this.#clusters.values()) {
      for (const b of c.backends) {
        const t = this.#transition(c.config, b, b.health.expire(now, c.config.health));
        if (t !== null) out.push(t);
      }
    }
    this.#recomputeExpiry();
    return out;
  }

  #find(cluster: string, key: string): LedgerBackend | undefined {
    return this.#clusters.get(cluster)?.backends.find((b) => b.key === key);
  }

  #transition(c: ClusterConfig, b: LedgerBackend, change: HealthChange | null): HealthTransition | null {
    if (change === null) return null;
    return { cluster: c.name, backend: b.key, change, closeFlows: c.health.closeFlowsOnDown };
  }

  #recomputeExpiry(): void {
    let at = Infinity;
    for (const c of this.#clusters.values()) {
      for (const b of c.backends) {
        const until = b.health.passiveUntil;
        if (until >= 0 && until < at) at = until;
      }
    }
    this.expiry = at;
  }
}
