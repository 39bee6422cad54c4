/**
 * The config hash (the API's ETag): hex SHA-256 of the config as written back to a file (TOML for everything
 * but the clusters, each cluster's file-shaped keys after it): two configs with the same meaning hash alike.
 * Serialising a large config takes long (~400 ms for 1 MB), so two things are remembered: a hash computed off
 * the data path's thread, where the config was loaded (shell/process/config_load.ts), with its config
 * object; and each cluster's text with its cluster object, so hashing after a change of one cluster renders
 * that cluster only.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { configToRaw, configToToml } from "../../core/config.ts";
import type { ClusterConfig, FerryConfig } from "../../core/types.ts";

const known = new WeakMap<FerryConfig, string>();
const clusterTexts = new WeakMap<ClusterConfig, string>();

/** Hex SHA-256 of `config` (remembered per config object). */
export function configHash(config: FerryConfig): string {
  let digest = known.get(config);
  if (digest !== undefined) return digest;
  const hash = createHash("sha256").update(configToToml({ ...config, clusters: [] }));
  for (const c of config.clusters) {
    let text = clusterTexts.get(c);
    if (text === undefined) {
      text = JSON.stringify(configToRaw({ ...config, listeners: [], clusters: [c] }).clusters);
      clusterTexts.set(c, text);
    }
    hash.update(text);
  }
  digest = hash.digest("hex");
  known.set(config, digest);
  return digest;
}

/** Remembers `hash` as `config`'s, computed elsewhere (another thread) from an identical config. */
export function rememberConfigHash(config: FerryConfig, hash: string): void {
  known.set(config, hash);
}
