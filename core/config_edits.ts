/**
 * Config edits as pure functions: each takes the running config, edits its file-shaped form (see
 * `config_raw.ts`), and validates the result with the config file's own validator, so an error names the key
 * as a config file would (`listeners[1].max_flows`, `clusters.game.backends[0].weight`). Each returns the new
 * config or throws an {@link EditError} (invalid, not_found, conflict); nothing is applied here. The admin
 * API maps those kinds to HTTP statuses (400, 404, 409); the fleet and reloads log them.
 *
 * @module
 */

import { parse } from "smol-toml";
import { type ConfigError, parseConfigToml, validateConfig } from "./config.ts";
import { formatSocketAddress, parseSocketAddress } from "./address.ts";
import type { FerryConfig } from "./types.ts";
import { define, isTable, mergePatch, own, type RawConfig, type Table, toRaw } from "./config_raw.ts";

/** Why an edit was refused: the value is invalid, what it names does not exist, or it clashes. */
export type EditErrorKind = "invalid" | "not_found" | "conflict";

/** An edit refused; nothing was changed. `errors` lists the keys at fault (config-file paths). */
export class EditError extends Error {
  /** What kind of refusal (the admin API answers 400, 404 or 409). */
  readonly kind: EditErrorKind;
  /** The fields at fault, if any. */
  readonly errors: readonly ConfigError[];

  /** A refusal of `kind`, with a summary and the fields at fault. */
  constructor(kind: EditErrorKind, message: string, errors: readonly ConfigError[] = []) {
    super(message);
    this.name = "EditError";
    this.kind = kind;
    this.errors = errors;
  }
}

/** An invalid value of one field. */
export function badField(path: string, message: string): EditError {
  return new EditError("invalid", `invalid ${path === "" ? "request body" : path}: ${message}`, [
    { path, message },
  ]);
}

/** Invalid, listing every error, summarised by the first. */
function invalid(what: string, errors: readonly ConfigError[]): EditError {
  const first = errors[0];
  const where = first.path === "" ? "" : `${first.path}: `;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
  return new EditError("invalid", `${what}: ${where}${first.message}${more}; nothing was changed`, errors);
}

/** What `GET /config` shows instead of a token; sent back in a replacement, it keeps the running token. */
export const REDACTED = "<redacted>";

/** `config` with its secrets replaced by {@link REDACTED} (for showing it). */
export function redactConfig(config: FerryConfig): FerryConfig {
  if (config.admin.token === "") return config;
  return { ...config, admin: { ...config.admin, token: REDACTED } };
}

/** A raw config with a {@link REDACTED} token put back to `current`'s (a copy; `raw` is not changed). */
function unredact(raw: unknown, current: FerryConfig | undefined): unknown {
  if (current === undefined || !isTable(raw)) return raw;
  const admin = own(raw, "admin");
  if (!isTable(admin) || own(admin, "token") !== REDACTED) return raw;
  const out: Table = {};
  for (const [k, v] of Object.entries(raw)) define(out, k, v);
  const copy: Table = {};
  for (const [k, v] of Object.entries(admin)) define(copy, k, v);
  define(copy, "token", current.admin.token);
  define(out, "admin", copy);
  return out;
}

/**
 * Validates a raw config (file shape), or throws an invalid EditError with every error. With `current`, a
 * token sent back as {@link REDACTED} keeps `current`'s token.
 */
export function replaceConfig(raw: unknown, what = "config rejected", current?: FerryConfig): FerryConfig {
  const r = validateConfig(unredact(raw, current));
  if (!r.ok) throw invalid(what, r.errors);
  return r.config; // validation refuses what the shell would not start with (the admin binding too)
}

/** Parses and validates TOML text, or throws an invalid EditError with every error (`current`: as above). */
export function replaceConfigToml(text: string, current?: FerryConfig): FerryConfig {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch {
    const r = parseConfigToml(text); // its wording of syntax errors
    throw invalid("config rejected", r.ok ? [{ path: "", message: "not TOML" }] : r.errors);
  }
  return replaceConfig(raw, "config rejected", current);
}

function needTable(body: unknown, what: string): Table {
  if (!isTable(body)) throw badField("", `expected a JSON object (${what})`);
  return body;
}

function listenerIndex(raw: RawConfig, name: string): number {
  const i = raw.listeners.findIndex((l) => own(l, "name") === name);
  if (i === -1) throw new EditError("not_found", `no listener named ${JSON.stringify(name)}`);
  return i;
}

function clusterOf(raw: RawConfig, name: string): Table {
  const cl = Object.prototype.hasOwnProperty.call(raw.clusters, name) ? raw.clusters[name] : undefined;
  if (cl === undefined) throw new EditError("not_found", `no cluster named ${JSON.stringify(name)}`);
  return cl;
}

function backendsOf(cluster: Table): Table[] {
  const b = own(cluster, "backends");
  return Array.isArray(b) ? b as Table[] : [];
}

/** The canonical "ip:port" of text, or undefined when it is not one. */
function canonical(text: unknown): string | undefined {
  if (typeof text !== "string") return undefined;
  const a = parseSocketAddress(text);
  return typeof a === "string" ? undefined : formatSocketAddress(a);
}

function backendIndex(backends: Table[], cluster: string, address: string): number {
  const key = canonical(address);
  if (key === undefined) throw badField("address", `${JSON.stringify(address)} is not ip:port`);
  const j = backends.findIndex((b) => canonical(own(b, "address")) === key);
  if (j === -1) throw new EditError("not_found", `cluster ${JSON.stringify(cluster)} has no backend ${key}`);
  return j;
}

/** Adds a listener (a config-file `[[listeners]]` table as JSON). 409 if the name is taken. */
export function addListener(config: FerryConfig, body: unknown): FerryConfig {
  const listener = needTable(body, "a listener, as in the config file");
  const raw = toRaw(config);
  const path = `listeners[${raw.listeners.length}]`;
  const name = own(listener, "name");
  if (typeof name === "string" && raw.listeners.some((l) => own(l, "name") === name)) {
    const message = `a listener named ${JSON.stringify(name)} already exists`;
    throw new EditError("conflict", message, [{ path: `${path}.name`, message }]);
  }
  raw.listeners.push(listener);
  return replaceConfig(raw, "listener not added");
}

/**
 * Merge-patches a listener's keys (address, protocol, cluster, max_flows, max_datagram_size, sources).
 * Renaming is refused. Switching to tcp drops the udp-only max_datagram_size unless the patch sets it.
 */
export function patchListener(config: FerryConfig, name: string, patch: unknown): FerryConfig {
  const raw = toRaw(config);
  const i = listenerIndex(raw, name);
  const p = needTable(patch, "listener keys to change");
  const newName = own(p, "name");
  if (newName !== undefined && newName !== name) {
    const message = "a listener cannot be renamed; add one with the new name and delete this one";
    throw new EditError("invalid", message, [{ path: `listeners[${i}].name`, message }]);
  }
  const merged = mergePatch(raw.listeners[i], p) as Table;
  if (own(merged, "protocol") === "tcp" && own(p, "max_datagram_size") === undefined) {
    delete merged.max_datagram_size;
  }
  raw.listeners[i] = merged;
  return replaceConfig(raw, "listener not changed");
}

/** Removes a listener; its flows drain. */
export function removeListener(config: FerryConfig, name: string): FerryConfig {
  const raw = toRaw(config);
  raw.listeners.splice(listenerIndex(raw, name), 1);
  return replaceConfig(raw, "listener not removed");
}

/** Adds a cluster: `{ name, ...keys of [clusters.NAME] }`. 409 if the name is taken. */
export function addCluster(config: FerryConfig, body: unknown): FerryConfig {
  const { name, ...keys } = needTable(body, "a cluster: its name and its config-file keys");
  if (name === undefined) throw badField("name", "missing required key `name`");
  if (typeof name !== "string") throw badField("name", "expected a string");
  const raw = toRaw(config);
  if (Object.prototype.hasOwnProperty.call(raw.clusters, name)) {
    const message = `a cluster named ${JSON.stringify(name)} already exists`;
    throw new EditError("conflict", message, [{ path: "name", message }]);
  }
  define(raw.clusters, name, keys);
  return replaceConfig(raw, "cluster not added");
}

/** Merge-patches a cluster's keys (balancer and knobs; `backends` replaces the whole list). */
export function patchCluster(config: FerryConfig, name: string, patch: unknown): FerryConfig {
  const raw = toRaw(config);
  const cluster = clusterOf(raw, name);
  const { name: newName, ...keys } = needTable(patch, "cluster keys to change");
  if (newName !== undefined && newName !== name) {
    throw badField("name", "a cluster cannot be renamed (listeners refer to it by name)");
  }
  raw.clusters[name] = mergePatch(cluster, keys) as Table;
  return replaceConfig(raw, "cluster not changed");
}

/** Removes a cluster; 409 naming the listeners that still use it. */
export function removeCluster(config: FerryConfig, name: string): FerryConfig {
  const raw = toRaw(config);
  clusterOf(raw, name);
  const users: ConfigError[] = [];
  const names: string[] = [];
  raw.listeners.forEach((l, i) => {
    if (own(l, "cluster") !== name) return;
    names.push(String(own(l, "name")));
    users.push({
      path: `listeners[${i}].cluster`,
      message: `listener "${own(l, "name")}" uses cluster "${name}"`,
    });
  });
  if (users.length > 0) {
    throw new EditError("conflict", `cluster "${name}" is in use by listener(s) ${names.join(", ")}`, users);
  }
  delete raw.clusters[name];
  return replaceConfig(raw, "cluster not removed");
}

/**
 * Edits cluster `name`'s file-shaped table and validates that cluster alone, with the sections its rules
 * read ([redis] for balancer = "redis"), then puts the result in its place: every other cluster and
 * listener stays the very object it was. A cluster's rules read only its own keys, so the result is the one
 * validating the whole config would give (tests/backend_change.test.ts checks that), at the cost of one
 * cluster instead of every cluster: a backend change on a big config stays small.
 */
function editCluster(
  config: FerryConfig,
  name: string,
  what: string,
  edit: (cl: Table) => void,
): FerryConfig {
  const one = config.clusters.find((c) => c.name === name);
  if (one === undefined) throw new EditError("not_found", `no cluster named ${JSON.stringify(name)}`);
  const raw = toRaw({ ...config, listeners: [], clusters: [one] });
  edit(clusterOf(raw, name));
  const cluster = replaceConfig(raw, what).clusters[0];
  return { ...config, clusters: config.clusters.map((c) => c === one ? cluster : c) };
}

/** Adds a backend `{ address, weight?, state? }` to a cluster; 409 if it is already there. */
export function addBackend(config: FerryConfig, cluster: string, body: unknown): FerryConfig {
  return editCluster(config, cluster, "backend not added", (cl) => {
    const backend = needTable(body, "a backend: address, weight, state");
    const backends = backendsOf(cl);
    const key = canonical(own(backend, "address"));
    const path = `clusters.${cluster}.backends[${backends.length}].address`;
    if (key !== undefined && backends.some((b) => canonical(own(b, "address")) === key)) {
      const message = `cluster "${cluster}" already has backend ${key}`;
      throw new EditError("conflict", message, [{ path, message }]);
    }
    cl.backends = [...backends, backend];
  });
}

/** Merge-patches a backend's weight and state; its address cannot change. */
export function patchBackend(
  config: FerryConfig,
  cluster: string,
  address: string,
  patch: unknown,
): FerryConfig {
  return editCluster(config, cluster, "backend not changed", (cl) => {
    const backends = backendsOf(cl);
    const j = backendIndex(backends, cluster, address);
    const p = needTable(patch, "backend keys to change: weight, state");
    const newAddress = own(p, "address");
    if (newAddress !== undefined && canonical(newAddress) !== canonical(address)) {
      const message = "a backend's address cannot change; add the new backend and delete this one";
      throw new EditError("invalid", message, [{
        path: `clusters.${cluster}.backends[${j}].address`,
        message,
      }]);
    }
    backends[j] = mergePatch(backends[j], p) as Table;
  });
}

/** Removes a backend from a cluster; flows pinned to it end as the relay's rules say. */
export function removeBackend(config: FerryConfig, cluster: string, address: string): FerryConfig {
  return editCluster(config, cluster, "backend not removed", (cl) => {
    const backends = backendsOf(cl);
    backends.splice(backendIndex(backends, cluster, address), 1);
  });
}
