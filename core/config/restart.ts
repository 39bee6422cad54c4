/**
 * Which keys of a change wait for the next start: those the declaration marks `x-restart` (relay.workers,
 * [redis], [fleet]). A reload or API edit that changes one is still applied — the rest of it takes effect
 * at once — and the shell says, key by key, what waits.
 *
 * @module
 */

import type { FerryConfig } from "../types.ts";
import { configToRaw } from "./raw.ts";
import { ConfigSchema, type Schema } from "./schema.ts";
import { isTable } from "./words.ts";

type Json = Record<string, unknown>;

/** The section.key paths marked x-restart in the declaration's top-level sections. */
export function restartKeys(): string[] {
  const out: string[] = [];
  const sections = (ConfigSchema as unknown as { properties: Record<string, Json> }).properties;
  for (const [section, schema] of Object.entries(sections)) {
    const props = isTable(schema.properties) ? schema.properties as Record<string, Schema> : {};
    for (const [key, s] of Object.entries(props)) {
      if ((s as unknown as Json)["x-restart"] === true) out.push(`${section}.${key}`);
    }
  }
  return out;
}

/** The x-restart keys whose value differs between two configs, as "section.key". */
export function restartChanges(before: FerryConfig, after: FerryConfig): string[] {
  const a = configToRaw(before) as unknown as Record<string, Json>;
  const b = configToRaw(after) as unknown as Record<string, Json>;
  return restartKeys().filter((path) => {
    const [section, key] = path.split(".");
    return JSON.stringify(a[section]?.[key]) !== JSON.stringify(b[section]?.[key]);
  });
}
