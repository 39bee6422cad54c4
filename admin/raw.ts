/**
 * The running config as a raw, config-file-shaped object (what parsing a TOML file yields), so edits are
 * made on the same keys an operator writes and validated by the same code as a config file; and the
 * RFC 7396 JSON merge patch that PATCH bodies apply to it.
 *
 * @module
 */

import { parse } from "smol-toml";
import { configToToml } from "../core/config.ts";
import type { FerryConfig } from "../core/types.ts";

/** A TOML table / JSON object. */
export type Table = Record<string, unknown>;

/** A config in file shape: every key explicit, durations as strings, addresses as "ip:port". */
export interface RawConfig {
  relay: Table;
  admin: Table;
  /** Kept so an edit never loses the Redis connection or the fleet (routing needs [redis] url). */
  redis: Table;
  fleet: Table;
  /** Session records ([records]), kept through edits like the fleet. */
  records: Table;
  listeners: Table[];
  clusters: Record<string, Table>;
}

/** True for a plain object (not an array, null or class instance). */
export function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    Object.prototype.toString.call(value) === "[object Object]";
}

/** A key's value only if the object itself has it (never from a prototype). */
export function own(table: Table, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

/** Sets an own key, even `__proto__`, without touching any prototype. */
export function define(table: Table, key: string, value: unknown): void {
  Object.defineProperty(table, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The config in file shape, exactly as `configToToml` writes it (a fresh object each call). */
export function toRaw(config: FerryConfig): RawConfig {
  const doc = parse(configToToml(config)) as Table;
  return {
    relay: isTable(doc.relay) ? doc.relay : {},
    admin: isTable(doc.admin) ? doc.admin : {},
    redis: isTable(doc.redis) ? doc.redis : {},
    fleet: isTable(doc.fleet) ? doc.fleet : {},
    records: isTable(doc.records) ? doc.records : {},
    listeners: Array.isArray(doc.listeners) ? doc.listeners as Table[] : [],
    clusters: isTable(doc.clusters) ? doc.clusters as Record<string, Table> : {},
  };
}

/**
 * Applies an RFC 7396 merge patch: objects merge key by key, `null` removes a key (so it takes its
 * default), anything else (arrays included) replaces. Returns a new value; neither input is changed.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isTable(patch)) return patch;
  const out: Table = {};
  if (isTable(target)) { for (const [k, v] of Object.entries(target)) define(out, k, v); }
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else define(out, k, mergePatch(own(out, k), v));
  }
  return out;
}
