/**
 * Configuration: TOML text → parsed object → validated {@link FerryConfig}, and back.
 *
 * Every key is declared once, in `config/schema.ts`; this module is the front door over what is derived
 * from it: the checker (`config/check.ts`), the cross-key rules and the build of the running config
 * (`config/build.ts`), the file shape and TOML writer (`config/raw.ts`).
 *
 * Pure. Validation never stops at the first problem and never throws: an operator fixing a config file wants
 * every mistake in one pass, each named by the path of the offending key (`listeners[0].address`,
 * `clusters.game.backends[1].weight`) and, for a file, its line; and a reload must not crash a running relay
 * whatever the file holds.
 *
 * @module
 */

import { parse, TomlError } from "smol-toml";
import type { FerryConfig } from "./types.ts";
import { type ConfigError, Problems } from "./config/check.ts";
import { buildConfig } from "./config/build.ts";
import { SECTIONS } from "./config/schema.ts";
import { describe, isTable } from "./config/words.ts";
import { keyLines, lineOf } from "./config/lines.ts";

export type { ConfigError } from "./config/check.ts";
export { formatDuration, parseDuration } from "./config/duration.ts";
export { MAX_TIMEOUT_MS } from "./config/schema.ts";
export { configToRaw, configToToml, type RawConfig } from "./config/raw.ts";

/** The outcome of validation: a usable config, or every problem found (never an empty list). */
export type ConfigResult =
  | { readonly ok: true; readonly config: FerryConfig }
  | { readonly ok: false; readonly errors: ConfigError[] };

/**
 * Validates a parsed config document (as TOML parsing yields it) into a {@link FerryConfig}, filling
 * defaults. Reports every problem at once, each with the path of the key at fault, and never throws: even a
 * hostile object (throwing getters, proxies) ends as an error, because a bad reload must not take down a
 * running relay.
 */
export function validateConfig(raw: unknown): ConfigResult {
  const p = new Problems();
  let config: FerryConfig | undefined;
  try {
    if (isTable(raw)) config = buildConfig(p, raw);
    else p.add("", `expected a table at the top level, got ${describe(raw)}`);
  } catch (e) {
    p.add("", `could not read the config: ${e instanceof Error ? e.message : String(e)}`);
    config = undefined;
  }
  if (config !== undefined && p.errors.length === 0) return { ok: true, config };
  if (p.errors.length === 0) p.add("", "invalid config");
  // Report in file order (sections as a file lists them); the sort is stable, so each keeps its order.
  const rank = (path: string) => (SECTIONS as readonly string[]).indexOf(path.split(/[.[]/, 1)[0]) + 1;
  return { ok: false, errors: [...p.errors].sort((a, b) => rank(a.path) - rank(b.path)) };
}

/**
 * Parses TOML text and validates it. A syntax error becomes a single error at path "" naming the line and
 * column, since nothing past a syntax error can be trusted to mean what its author intended; every other
 * error carries the line of its key where the text shows one.
 */
export function parseConfigToml(text: string): ConfigResult {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (e) {
    if (e instanceof TomlError) {
      const reason = e.message.replace(/^Invalid TOML document: /, "").split("\n")[0];
      return {
        ok: false,
        errors: [{ path: "", message: `TOML syntax error at line ${e.line}, column ${e.column}: ${reason}` }],
      };
    }
    return {
      ok: false,
      errors: [{ path: "", message: `TOML error: ${e instanceof Error ? e.message : String(e)}` }],
    };
  }
  const result = validateConfig(raw);
  return result.ok ? result : { ok: false, errors: withLines(result.errors, text) };
}

/** `errors` with the line of each one's key in the TOML `text` they came from, where it shows one. */
export function withLines(errors: readonly ConfigError[], text: string): ConfigError[] {
  const lines = keyLines(text);
  return errors.map((e) => {
    const line = e.path === "" ? undefined : lineOf(lines, e.path);
    return line === undefined ? e : { ...e, line };
  });
}
