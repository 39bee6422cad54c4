/**
 * A cluster at run time: its current knobs, its backends and its balancer. It decides which backends are
 * candidates for a new flow (usable ones, or all of them when failing open) and asks the balancer.
 *
 * @module
 */

import { Backend } from "./backend.ts";
import type { Balancer } from "./balancers/balancer.ts";
import { createBalancer } from "./balancers/index.ts";
import type { Rng } from "./rng.ts";
import type { BackendState, ClusterConfig } from "./types.ts";

/** The result of a backend choice: the backend and whether it came from failing open. */
export interface Choice {
  backend: Backend;
  failOpen: boolean;
}

/** Counters of a cluster that no single backend or listener owns. */
export interface ClusterCounters {
  /** New flows that went to a down or draining backend because none was usable. */
  failOpen: number;
}

/** One cluster. */
export class Cluster {
  config: ClusterConfig;
  /** Backends in config order. */
  backends: Backend[] = [];
  readonly counters: ClusterCounters = { failOpen: 0 };
  /** True from the first fail-open choice until a backend is usable again: one log line per episode. */
  failingOpen = false;
  #balancer: Balancer | null = null;
  #usable: Backend[] = [];
  /** Bumped on any change of the backend set, a weight or a state; balancers rebuild on a new value. */
  #version = 0;
  #usableVersion = -1;
  /** Backends named by an external resolver, not part of the configured set. */
  readonly external = new Map<string, Backend>();

  /** A cluster from its config; `shared` lends existing Backend objects by key so counters survive. */
  constructor(config: ClusterConfig, shared?: ReadonlyMap<string, Backend>) {
    this.config = config;
    this.reconfigure(config, shared);
  }

  /** Replaces knobs and backends. Backends whose address stays keep their object (state, counters, flows). */
  reconfigure(config: ClusterConfig, shared?: ReadonlyMap<string, Backend>): void {
    const old = new Map<string, Backend>();
    for (const b of this.backends) old.set(b.key, b);
    const next: Backend[] = [];
    // Whether the candidates changed (set, order, a weight or a state): only then do balancers rebuild, so a
    // whole-config reload that leaves a cluster's backends alone keeps its maglev table.
    let changed = config.backends.length !== this.backends.length;
    for (const bc of config.backends) {
      const probe = new Backend(bc.address, bc.weight, bc.state);
      const kept = old.get(probe.key) ?? shared?.get(probe.key);
      if (kept) {
        if (kept.weight !== bc.weight) changed = true;
        kept.weight = bc.weight;
        kept.adminState = bc.state;
        if (kept.refresh()) changed = true;
        next.push(kept);
      } else {
        changed = true;
        next.push(probe);
      }
      if (this.backends[next.length - 1] !== next[next.length - 1]) changed = true;
    }
    const prev = this.config;
    this.config = config;
    this.backends = next;
    if (
      this.#balancer === null || prev.balancer !== config.balancer || prev.hashSeed !== config.hashSeed ||
      prev.maglevTableSize !== config.maglevTableSize || prev.external?.fallback !== config.external?.fallback
    ) {
      changed = true;
      // An external cluster's own backends serve only as the fallback when its resolver has no answer.
      const kind = config.balancer === "external" ? (config.external?.fallback ?? "drop") : config.balancer;
      this.#balancer = kind === "drop" ? null : createBalancer(kind, {
        hashSeed: config.hashSeed,
        maglevTableSize: config.maglevTableSize,
      });
    }
    if (changed) this.#version++;
  }

  /**
   * The candidates' version: it moves when the backend set, an order, a weight or a usable state changes,
   * and a balancer rebuilds its tables (a maglev table) on the next pick after it moved.
   */
  get version(): number {
    return this.#version;
  }

  /** Finds a configured backend by its "ip:port" key. */
  backend(key: string): Backend | undefined {
    return this.backends.find((b) => b.key === key);
  }

  /** Sets a backend's admin state; returns false if no such backend. */
  setState(key: string, state: BackendState): boolean {
    const b = this.backend(key);
    if (b === undefined) return false;
    b.adminState = state;
    this.refreshed(b);
    return true;
  }

  /** A backend's health or admin state may have changed: recompute it, and the candidates if it did. */
  refreshed(b: Backend): void {
    if (b.refresh()) this.#version++;
  }

  /** The earliest end of a passive health window among the backends (Infinity if none). */
  nextExpiry(): number {
    let at = Infinity;
    for (const b of this.backends) {
      if (b.health.passiveUntil >= 0 && b.health.passiveUntil < at) at = b.health.passiveUntil;
    }
    return at;
  }

  /**
   * Chooses a backend for a new flow with affinity hash `keyHash`, or null when there is none to use
   * (no backends, or all unusable with fail_open = false). For an external cluster this is the fallback.
   * `now` is for balancers that read time-decayed figures (peak_ewma).
   */
  choose(keyHash: number, rng: Rng, now = 0): Choice | null {
    if (this.#balancer === null || this.backends.length === 0) return null;
    if (this.#usableVersion !== this.#version) {
      this.#usable = this.backends.filter((b) => b.usable);
      this.#usableVersion = this.#version;
    }
    if (this.#usable.length > 0) {
      this.failingOpen = false;
      // Versions of the usable list and of the full list must never collide: even and odd.
      const i = this.#balancer.pick(this.#usable, this.#version * 2, keyHash, rng, now);
      return { backend: this.#usable[i], failOpen: false };
    }
    if (!this.config.failOpen) return null;
    this.counters.failOpen++;
    const i = this.#balancer.pick(this.backends, this.#version * 2 + 1, keyHash, rng, now);
    return { backend: this.backends[i], failOpen: true };
  }
}
