/**
 * The config file's JSON Schema, for editors: `ferry schema > ferry.schema.json`, then point a TOML editor
 * with schema support at it (Taplo / Even Better TOML: a `#:schema ./ferry.schema.json` first line, or its
 * settings) to complete and check `ferry.toml` as you type. It is the declaration itself (`schema.ts`),
 * with the validator-only keywords removed.
 *
 * @module
 */

import { ConfigSchema, type Schema } from "./schema.ts";

/** A deep copy of a schema without the `x-` keywords only Ferry's validator reads. */
export function publicSchema(schema: Schema | unknown): unknown {
  if (Array.isArray(schema)) return schema.map(publicSchema);
  if (typeof schema !== "object" || schema === null) return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === "x-check" || key === "x-min-ms" || key === "x-pattern-doc" || key === "x-presence") continue;
    out[key] = publicSchema(value);
  }
  return out;
}

/** The JSON Schema (draft-07, which editors support best) of a Ferry config file of this version. */
export function configJsonSchema(version: string): Record<string, unknown> {
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    title: `Ferry ${version} configuration (ferry.toml)`,
    ...(publicSchema(ConfigSchema) as Record<string, unknown>),
  };
}
