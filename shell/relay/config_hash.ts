/**
 * The config hash (the API's ETag): hex SHA-256 of the config as TOML. Serialising a large config takes
 * long (~400 ms for 1 MB), so a hash computed off the data path's thread, where the config was loaded
 * (shell/process/config_load.ts), is remembered with the config object and not computed again here.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { configToToml } from "../../core/config.ts";
import type { FerryConfig } from "../../core/types.ts";

const known = new WeakMap<FerryConfig, string>();

/** Hex SHA-256 of `config` as TOML (remembered per config object). */
export function configHash(config: FerryConfig): string {
  let hash = known.get(config);
  if (hash === undefined) {
    hash = createHash("sha256").update(configToToml(config)).digest("hex");
    known.set(config, hash);
  }
  return hash;
}

/** Remembers `hash` as `config`'s, computed elsewhere (another thread) from an identical config. */
export function rememberConfigHash(config: FerryConfig, hash: string): void {
  known.set(config, hash);
}
