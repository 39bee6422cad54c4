/**
 * A core's listeners and clusters by name: reconfiguration (a whole config, or one listener or cluster set
 * or removed) and reading. RelayCore extends it with flows, connections and events; flows are untouched
 * here (they keep the knobs and backend they were admitted with).
 *
 * @module
 */

import type { Cluster } from "./cluster.ts";
import type { Listener } from "./listener.ts";
import {
  applyConfigTo,
  type CoreTables,
  removeClusterFrom,
  setClusterIn,
  setListenerIn,
} from "./reconfigure.ts";
import type { BackendState, ClusterConfig, FerryConfig, ListenerConfig } from "./types.ts";

/** The named tables of a core and the calls that change them. */
export abstract class NamedTables {
  /** Listeners by name (a removed one leaves once its last flow or connection ends). */
  protected readonly listenerMap: Map<string, Listener> = new Map();
  /** Clusters by name. */
  protected readonly clusterMap: Map<string, Cluster> = new Map();
  /** The two maps, for reconfiguration (core/reconfigure.ts). */
  readonly #tables: CoreTables = { listeners: this.listenerMap, clusters: this.clusterMap };

  /** Forgets a removed listener with nothing left on it (and tells the shell, `listener_done`). */
  protected abstract forgetListener(l: Listener): void;

  /**
   * Applies a whole validated config. Clusters and listeners are matched by name: kept ones are
   * reconfigured (flows keep the knobs they were admitted under), new ones added, missing clusters dropped
   * (their flows keep running on their pinned backends) and missing listeners drained, then forgotten
   * once their last flow closes (a `listener_done` event).
   */
  applyConfig(config: FerryConfig): void {
    applyConfigTo(this.#tables, config, (lc) => this.setListener(lc), (name) => this.removeListener(name));
  }

  /**
   * Adds a listener or replaces one's config (limits and policy apply to new flows). A removed listener
   * still draining on the same protocol and address is taken back whole (its socket and its flows), so
   * undoing a removal never has to bind an address the relay still holds.
   */
  setListener(config: ListenerConfig): Listener {
    return setListenerIn(this.#tables, config);
  }

  /**
   * Puts a listener object back under its name, live (a shell rolling back a failed reconfiguration:
   * the object keeps its socket, flows and counters). `draining` is what it was before.
   */
  restoreListener(l: Listener, draining: boolean): void {
    l.removed = false;
    l.draining = draining;
    this.listenerMap.set(l.config.name, l);
  }

  /** Removes a listener: it drains, and is forgotten once its last flow closes. */
  removeListener(name: string): boolean {
    const l = this.listenerMap.get(name);
    if (l === undefined || l.removed) return false;
    l.removed = true;
    l.draining = true;
    if (l.flows === 0) this.forgetListener(l);
    return true;
  }

  /** Adds a cluster or replaces one's knobs and backends; listeners naming it pick it up. */
  setCluster(config: ClusterConfig): Cluster {
    return setClusterIn(this.#tables, config);
  }

  /** Removes a cluster; its listeners drop new datagrams as NoBackend, pinned flows keep their backend. */
  removeCluster(name: string): boolean {
    return removeClusterFrom(this.#tables, name);
  }

  /** Sets a backend's state; only `up` backends take new flows. Returns false if there is no such backend. */
  setBackendState(cluster: string, key: string, state: BackendState): boolean {
    return this.clusterMap.get(cluster)?.setState(key, state) ?? false;
  }

  /** A listener by name (the shell keeps it for the forwarding path). */
  listener(name: string): Listener | undefined {
    return this.listenerMap.get(name);
  }

  /** Every listener. */
  listeners(): IterableIterator<Listener> {
    return this.listenerMap.values();
  }

  /** A cluster by name. */
  cluster(name: string): Cluster | undefined {
    return this.clusterMap.get(name);
  }

  /** Every cluster. */
  clusters(): IterableIterator<Cluster> {
    return this.clusterMap.values();
  }
}
