/**
 * The running config as a raw, config-file-shaped object (what parsing a TOML file yields), so edits are
 * made on the same keys an operator writes and validated by the same code as a config file; and the
 * RFC 7396 JSON merge patch that PATCH bodies apply to it.
 *
 * @module
 */

import { configToRaw } from "./config/raw.ts";
import { define, isTable, own } from "./config/words.ts";
import type { FerryConfig } from "./types.ts";

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

export { define, isTable, own } from "./config/words.ts";

/** The config in file shape, exactly as `configToToml` writes it (a fresh object each call). */
export function toRaw(config: FerryConfig): RawConfig {
  return configToRaw(config) as unknown as RawConfig;
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
