/**
 * What a config change changed, key by key, in file shape: for the one log line every applied change gets
 * ("clusters.game.backends: +10.0.0.7:7000"), and for persisting exactly that change into the config file
 * (so whatever the file does not say, and whatever environment or flags override, stays out of it).
 *
 * Listeners are matched by name, clusters by name, backends by address, so a change reads as the operator
 * made it and lands on the right table of the file whatever order the file keeps them in.
 *
 * @module
 */

import { BackendSchema } from "./config/schema.ts";
import { formatSocketAddress, parseSocketAddress } from "./address.ts";
import { define, isTable, own, type RawConfig, type Table } from "./config_raw.ts";

/** The plain sections of a config file (a table of keys each). */
const SECTIONS = ["relay", "admin", "redis", "fleet"] as const;

/** Keys whose values never appear in a log line. */
const SECRET_KEYS: ReadonlySet<string> = new Set(["admin.token", "redis.url"]);

/**
 * One changed key (or a whole listener or cluster, when `key` is absent): `before` or `after` is undefined
 * when it was added or removed.
 */
export interface ConfigChange {
  readonly section: (typeof SECTIONS)[number] | "listeners" | "clusters";
  /** The listener's or cluster's name. */
  readonly name?: string;
  readonly key?: string;
  readonly before: unknown;
  readonly after: unknown;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function keysOf(...tables: Table[]): string[] {
  return [...new Set(tables.flatMap((t) => Object.keys(t)))];
}

function tableChanges(
  section: ConfigChange["section"],
  name: string | undefined,
  before: Table,
  after: Table,
): ConfigChange[] {
  return keysOf(before, after).flatMap((key) => {
    const b = own(before, key);
    const a = own(after, key);
    return same(a, b) ? [] : [{ section, ...(name === undefined ? {} : { name }), key, before: b, after: a }];
  });
}

function named(list: readonly Table[]): Map<string, Table> {
  return new Map(list.map((t) => [String(own(t, "name")), t]));
}

function entries(tables: Record<string, Table>): Map<string, Table> {
  return new Map(Object.entries(tables));
}

function collectionChanges(
  section: "listeners" | "clusters",
  before: Map<string, Table>,
  after: Map<string, Table>,
): ConfigChange[] {
  const out: ConfigChange[] = [];
  for (const [name, b] of before) {
    const a = after.get(name);
    if (a === undefined) out.push({ section, name, before: b, after: undefined });
    else out.push(...tableChanges(section, name, b, a));
  }
  for (const [name, a] of after) {
    if (!before.has(name)) out.push({ section, name, before: undefined, after: a });
  }
  return out;
}

/** Every change from `before` to `after`, both in file shape (see `toRaw`). */
export function configDiff(before: RawConfig, after: RawConfig): ConfigChange[] {
  return [
    ...SECTIONS.flatMap((s) => tableChanges(s, undefined, before[s], after[s])),
    ...collectionChanges("listeners", named(before.listeners), named(after.listeners)),
    ...collectionChanges("clusters", entries(before.clusters), entries(after.clusters)),
  ];
}

function pathOf(c: ConfigChange): string {
  return [c.section, c.name, c.key].filter((p) => p !== undefined).join(".");
}

function show(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v) ?? "(unset)";
}

function backendKey(b: unknown): string {
  return isTable(b) ? String(own(b, "address")) : JSON.stringify(b);
}

/** "+10.0.0.7:7000 -10.0.0.2:7000 10.0.0.1:7000 weight 1→2": a backend list's change, briefly. */
function backendsDiff(before: unknown, after: unknown): string {
  const b = new Map((Array.isArray(before) ? before : []).map((x) => [backendKey(x), x]));
  const a = new Map((Array.isArray(after) ? after : []).map((x) => [backendKey(x), x]));
  const parts: string[] = [];
  for (const [k, x] of a) {
    const old = b.get(k);
    if (old === undefined) parts.push(`+${k}`);
    else if (!same(old, x) && isTable(old) && isTable(x)) {
      const keys = keysOf(old, x).filter((key) => !same(own(old, key), own(x, key)));
      parts.push(`${k} ${keys.map((key) => `${key} ${show(own(old, key))}→${show(own(x, key))}`).join(" ")}`);
    }
  }
  for (const k of b.keys()) if (!a.has(k)) parts.push(`-${k}`);
  return parts.length > 0 ? parts.join(" ") : "reordered";
}

/** One short line per change, secrets hidden: `listeners.game.max_flows: 100→200`. */
export function describeChanges(changes: readonly ConfigChange[]): string[] {
  return changes.map((c) => {
    const path = pathOf(c);
    if (c.key === undefined) return `${path}: ${c.after === undefined ? "removed" : "added"}`;
    if (SECRET_KEYS.has(path)) {
      const set = (v: unknown) => v !== undefined && v !== "";
      return `${path}: ${!set(c.before) ? "set" : !set(c.after) ? "cleared" : "changed"}`;
    }
    if (c.section === "clusters" && c.key === "backends") {
      return `${path}: ${backendsDiff(c.before, c.after)}`;
    }
    return `${path}: ${show(c.before)}→${show(c.after)}`;
  });
}

function ownTable(parent: Table, key: string): Table {
  const t = own(parent, key);
  if (isTable(t)) return t;
  const fresh: Table = {};
  define(parent, key, fresh);
  return fresh;
}

function setKey(table: Table, key: string, value: unknown): void {
  if (value === undefined) delete table[key];
  else define(table, key, value);
}

/** "ip:port" as the validator writes it, so "[::1]:53" and "[0:0::1]:53" are one backend. */
function addressKey(b: unknown): string {
  const text = isTable(b) ? own(b, "address") : undefined;
  if (typeof text !== "string") return JSON.stringify(text);
  const a = parseSocketAddress(text);
  return typeof a === "string" ? text : formatSocketAddress(a);
}

/** A backend's keys the validator fills in when the file leaves them out: the declaration's defaults. */
const BACKEND_DEFAULTS: Table = Object.fromEntries(
  Object.entries(
    (BackendSchema as unknown as { properties: Record<string, { default?: unknown }> }).properties,
  )
    .filter(([, s]) => s.default !== undefined)
    .map(([k, s]) => [k, s.default]),
);

/**
 * The file's backend list with a change of the list written in: the file's own tables for the backends
 * that stay (with only their changed keys rewritten), new ones without the keys left at their default.
 */
function mergeBackends(fileList: unknown, c: ConfigChange): Table[] {
  const file = new Map((Array.isArray(fileList) ? fileList : []).map((b) => [addressKey(b), b]));
  const before = new Map((Array.isArray(c.before) ? c.before : []).map((b) => [addressKey(b), b]));
  return (Array.isArray(c.after) ? c.after as Table[] : []).map((b) => {
    const key = addressKey(b);
    const mine = file.get(key);
    const old = before.get(key);
    if (isTable(mine) && isTable(old)) {
      for (const k of keysOf(old, b)) if (!same(own(old, k), own(b, k))) setKey(mine, k, own(b, k));
      return mine;
    }
    const fresh: Table = {};
    for (const [k, v] of Object.entries(b)) {
      if (k === "address" || !same(own(BACKEND_DEFAULTS, k), v)) define(fresh, k, v);
    }
    return fresh;
  });
}

/**
 * `changes` written onto a parsed config file `doc` (changed in place and returned): only the keys that
 * changed are touched, so the file keeps everything else it says, and says nothing it did not.
 */
export function applyChanges(doc: Table, changes: readonly ConfigChange[]): Table {
  for (const c of changes) {
    if (c.section === "listeners") {
      const list = Array.isArray(own(doc, "listeners")) ? own(doc, "listeners") as Table[] : [];
      if (!Array.isArray(own(doc, "listeners"))) define(doc, "listeners", list);
      const i = list.findIndex((l) => isTable(l) && own(l, "name") === c.name);
      if (c.key !== undefined) {
        if (i >= 0) setKey(list[i], c.key, c.after);
      } else if (c.after === undefined) {
        if (i >= 0) list.splice(i, 1);
      } else if (i >= 0) list[i] = c.after as Table;
      else list.push(c.after as Table);
    } else if (c.section === "clusters") {
      const clusters = ownTable(doc, "clusters");
      const cluster = c.key === undefined ? undefined : ownTable(clusters, c.name as string);
      if (cluster === undefined) setKey(clusters, c.name as string, c.after);
      else if (c.key === "backends") define(cluster, "backends", mergeBackends(own(cluster, "backends"), c));
      else setKey(cluster, c.key as string, c.after);
    } else {
      setKey(ownTable(doc, c.section), c.key as string, c.after);
    }
  }
  return doc;
}
