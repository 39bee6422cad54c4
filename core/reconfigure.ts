/**
 * Reconfiguration of a core's tables: a whole config applied by name, and one listener or cluster set or
 * removed. Flows are untouched here: they keep the knobs and backend they were admitted with.
 *
 * @module
 */

import { Cluster } from "./cluster.ts";
import { Listener } from "./listener.ts";
import type { ClusterConfig, FerryConfig, ListenerConfig } from "./types.ts";

/** The named tables of one core (its live maps). */
export interface CoreTables {
  readonly listeners: Map<string, Listener>;
  readonly clusters: Map<string, Cluster>;
}

/**
 * Applies a whole validated config to `t`: clusters and listeners matched by name, kept ones
 * reconfigured, new ones added, missing clusters dropped, missing listeners passed to `removeListener`.
 */
export function applyConfigTo(
  t: CoreTables,
  config: FerryConfig,
  setListener: (config: ListenerConfig) => Listener,
  removeListener: (name: string) => boolean,
): void {
  const seen = new Set<string>();
  for (const cc of config.clusters) {
    seen.add(cc.name);
    const cluster = t.clusters.get(cc.name);
    if (cluster === undefined) t.clusters.set(cc.name, new Cluster(cc));
    else cluster.reconfigure(cc);
  }
  for (const name of [...t.clusters.keys()]) if (!seen.has(name)) t.clusters.delete(name);
  // Draining listeners left out of the config must not keep a dropped cluster alive either.
  for (const l of t.listeners.values()) l.cluster = t.clusters.get(l.config.cluster) ?? null;
  const live = new Set<string>();
  for (const lc of config.listeners) {
    live.add(lc.name);
    setListener(lc);
  }
  for (const l of [...t.listeners.values()]) {
    if (!live.has(l.config.name)) removeListener(l.config.name);
  }
}

/** Adds a listener or replaces one's config; a removed one on the same binding is taken back whole. */
export function setListenerIn(t: CoreTables, config: ListenerConfig): Listener {
  const cluster = t.clusters.get(config.cluster) ?? null;
  let l = t.listeners.get(config.name);
  if (l !== undefined && l.removed && sameBinding(l.config, config)) {
    l.removed = false;
    l.draining = false;
  }
  if (l === undefined || l.removed) {
    l = new Listener(config, cluster);
    t.listeners.set(config.name, l);
  } else l.reconfigure(config, cluster);
  return l;
}

/**
 * Undoes the drain of listener `name`, or of every listener: removed ones stay draining (they are on
 * their way out). False if there is no such live listener.
 */
export function undrainIn(t: CoreTables, name?: string): boolean {
  const ls = name === undefined ? [...t.listeners.values()] : [t.listeners.get(name)];
  let found = name === undefined;
  for (const l of ls) {
    if (l === undefined || l.removed) continue;
    l.draining = false;
    found = true;
  }
  return found;
}

/** Adds a cluster or replaces one's knobs and backends; listeners naming it pick it up. */
export function setClusterIn(t: CoreTables, config: ClusterConfig): Cluster {
  let c = t.clusters.get(config.name);
  if (c === undefined) {
    c = new Cluster(config);
    t.clusters.set(config.name, c);
  } else c.reconfigure(config);
  for (const l of t.listeners.values()) if (l.config.cluster === config.name) l.cluster = c;
  return c;
}

/** Removes a cluster; its listeners get none. */
export function removeClusterFrom(t: CoreTables, name: string): boolean {
  if (!t.clusters.delete(name)) return false;
  for (const l of t.listeners.values()) if (l.config.cluster === name) l.cluster = null;
  return true;
}

/** Same protocol and address: one socket can serve both. */
function sameBinding(a: ListenerConfig, b: ListenerConfig): boolean {
  return a.protocol === b.protocol && a.address.ip === b.address.ip && a.address.port === b.address.port;
}
