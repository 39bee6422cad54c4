/**
 * A change that touches only backends, as a small list of edits: which backends of which cluster were
 * added, removed, or had their weight or state changed. The change queue finds one by comparing the running
 * config with the next (whatever asked: an API edit, a fleet message, a reload that only moved backends),
 * and delivers it instead of the whole config, so a worker gets a few hundred bytes rather than a copy of
 * every cluster, and a core rebuilds only the clusters named (core/reconfigure.ts). Anything else changed,
 * or a backend list reordered, and there is no delta: the whole config is applied as before.
 *
 * @module
 */

import { formatSocketAddress } from "./address.ts";
import type { BackendConfig, ClusterConfig, FerryConfig } from "./types.ts";

/** One edit of a cluster's backend list, in the order the list keeps (new backends go last). */
export type BackendEdit =
  /** A new backend, appended. */
  | { readonly kind: "add"; readonly backend: BackendConfig }
  /** A kept backend's new weight or state (its address, and so its place in the list, stays). */
  | { readonly kind: "update"; readonly backend: BackendConfig }
  /** A backend gone, by its canonical "ip:port". */
  | { readonly kind: "remove"; readonly address: string };

/** The edits of one cluster's backends. */
export interface BackendDelta {
  readonly cluster: string;
  readonly edits: readonly BackendEdit[];
}

/** The canonical "ip:port" of a backend: its key in a cluster. */
export function backendKey(b: BackendConfig): string {
  return formatSocketAddress(b.address);
}

function sameBackend(a: BackendConfig, b: BackendConfig): boolean {
  return a.weight === b.weight && a.state === b.state && a.address.ip === b.address.ip &&
    a.address.port === b.address.port && a.address.family === b.address.family;
}

function sameBackends(a: readonly BackendConfig[], b: readonly BackendConfig[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !sameBackend(a[i], b[i])) return false;
  return true;
}

/** Structural equality of validated config values (plain objects, arrays, byte arrays, primitives). */
function sameValue(a: unknown, b: unknown, skip?: string): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) {
    return typeof a === "number" && typeof b === "number" && Number.isNaN(a) && Number.isNaN(b);
  }
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (k === skip) continue;
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/** The edits that turn `prev`'s backend list into `next`'s, or null when no such edits can (a reorder). */
function editsOf(prev: readonly BackendConfig[], next: readonly BackendConfig[]): BackendEdit[] | null {
  const before = new Map(prev.map((b) => [backendKey(b), b]));
  const after = new Map(next.map((b) => [backendKey(b), b]));
  if (before.size !== prev.length || after.size !== next.length) return null;
  const edits: BackendEdit[] = [];
  for (const key of before.keys()) if (!after.has(key)) edits.push({ kind: "remove", address: key });
  for (const [key, b] of after) {
    const old = before.get(key);
    if (old === undefined) edits.push({ kind: "add", backend: b });
    else if (!sameBackend(old, b)) edits.push({ kind: "update", backend: b });
  }
  // Only a list the edits rebuild exactly (same order: balancers such as round_robin read it) is a delta.
  return sameBackends(applyBackendEdits(prev, edits), next) ? edits : null;
}

/**
 * The backend edits that take `prev` to `next`, cluster by cluster (only clusters that changed), or null
 * when anything besides backend lists differs. An empty list: the two configs mean the same.
 */
export function backendDelta(prev: FerryConfig, next: FerryConfig): BackendDelta[] | null {
  if (prev.clusters.length !== next.clusters.length) return null;
  const deltas: BackendDelta[] = [];
  for (let i = 0; i < prev.clusters.length; i++) {
    const a = prev.clusters[i], b = next.clusters[i];
    if (a === b) continue;
    if (!sameValue(a, b, "backends")) return null;
    if (sameBackends(a.backends, b.backends)) continue;
    const edits = editsOf(a.backends, b.backends);
    if (edits === null) return null;
    deltas.push({ cluster: a.name, edits });
  }
  return sameValue(prev, next, "clusters") ? deltas : null;
}

/** `backends` with `edits` applied: removals dropped, updates in place, additions appended. */
export function applyBackendEdits(
  backends: readonly BackendConfig[],
  edits: readonly BackendEdit[],
): BackendConfig[] {
  const removed = new Set<string>();
  const updated = new Map<string, BackendConfig>();
  const added: BackendConfig[] = [];
  for (const e of edits) {
    if (e.kind === "remove") removed.add(e.address);
    else if (e.kind === "update") updated.set(backendKey(e.backend), e.backend);
    else added.push(e.backend);
  }
  const out: BackendConfig[] = [];
  for (const b of backends) {
    const key = backendKey(b);
    if (!removed.has(key)) out.push(updated.get(key) ?? b);
  }
  return out.concat(added);
}

/**
 * `config` with `deltas` applied: the named clusters get new backend lists (every other key of theirs is
 * the same object, health settings included, so probes keep their schedule); every other cluster, listener
 * and section stays the very object it was. Throws when a delta names a cluster `config` does not have.
 */
export function withBackendDeltas(config: FerryConfig, deltas: readonly BackendDelta[]): FerryConfig {
  if (deltas.length === 0) return config;
  const byName = new Map(deltas.map((d) => [d.cluster, d]));
  let found = 0;
  const clusters = config.clusters.map((c): ClusterConfig => {
    const d = byName.get(c.name);
    if (d === undefined) return c;
    found++;
    return { ...c, backends: applyBackendEdits(c.backends, d.edits) };
  });
  if (found !== byName.size) {
    const missing = [...byName.keys()].filter((n) => !config.clusters.some((c) => c.name === n));
    throw new Error(`backend change for unknown cluster(s) ${missing.join(", ")}`);
  }
  return { ...config, clusters };
}
