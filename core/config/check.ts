/**
 * The validator's first pass: it walks a parsed document against the declaration (`schema.ts`) and
 * returns the document with every default filled in, or records why each bad key is bad. It reads the
 * JSON Schema subset the declaration uses (objects, records, arrays, strings with enum or pattern,
 * integers with bounds, booleans, unions of literals, durations) plus `x-check`, so a new key needs no new
 * validation code — only cross-field rules live elsewhere (`build.ts`).
 *
 * Never throws on any input and never stops early: an operator fixing a file wants every mistake at once,
 * each at its key path (`clusters.game.backends[1].weight`), with a "did you mean" where one is plausible.
 *
 * @module
 */

import { isPrime } from "../balancers/maglev.ts";
import { decodeEscaped, decodeHex } from "../health.ts";
import { parseHex } from "../first_datagram_filter.ts";
import { normalizeDnsName, parseDnsType } from "../dns_message.ts";
import { parseCidr, parseSocketAddress } from "../address.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import type { Check, Schema } from "./schema.ts";
import { MAX_TIMEOUT_MS } from "./schema.ts";
import { define, describe, isTable, join, own, quote, suggest } from "./words.ts";

/** One problem in a config: where (a dotted/indexed key path, "" for the whole document) and what. */
export interface ConfigError {
  readonly path: string;
  readonly message: string;
  /** The line of the key in the TOML text it came from, when known. */
  readonly line?: number;
}

/** Collects errors; every reader records a problem and returns undefined, so validation runs to the end. */
export class Problems {
  readonly errors: ConfigError[] = [];

  /** Records one problem at `path`. */
  add(path: string, message: string): void {
    this.errors.push({ path, message });
  }
}

type Json = Record<string, unknown>;
const S = (schema: Schema): Json => schema as unknown as Json;

/** What a name pattern means, for its error message. */
function patternMessage(schema: Json, value: string, what = "name"): string {
  const doc = typeof schema["x-pattern-doc"] === "string" ? schema["x-pattern-doc"] : undefined;
  if (doc !== undefined) return `${quote(value)} is not ${doc}`;
  return `${quote(value)} is not a valid ${what} (1-64 of a-z, 0-9, _ and -)`;
}

/** Runs an `x-check` on a value that already has the right JSON type; returns the problem, if any. */
function semantic(check: Check, value: unknown, schema: Json): string | undefined {
  switch (check) {
    case "address":
    case "address-port0": {
      const parsed = parseSocketAddress(value as string);
      if (typeof parsed === "string") return parsed;
      const min = check === "address" ? 1 : 0;
      if (parsed.port < min) return `port ${parsed.port} is out of range (${min}..65535)`;
      return undefined;
    }
    case "cidr": {
      const parsed = parseCidr(value as string);
      return typeof parsed === "string" ? parsed : undefined;
    }
    case "escaped": {
      const out = decodeEscaped(value as string);
      return typeof out === "string" ? out : undefined;
    }
    case "hex": {
      const out = decodeHex(value as string);
      return typeof out === "string" ? out : undefined;
    }
    case "regex":
      try {
        new RegExp(value as string);
        return undefined;
      } catch (e) {
        return `not a regular expression: ${(e as Error).message}`;
      }
    case "prime":
      // Maglev's permutation walk only visits every slot when the table size is prime.
      return isPrime(value as number) ? undefined : `${value} is not prime`;
    case "token": {
      const t = value as string;
      if (t === "") return undefined;
      // An HTTP client can only send a token of visible ASCII in a header; any other one locks the API.
      // `Authorization: Bearer <token>` carries visible ASCII only (RFC 6750's b64token has no spaces).
      if (!/^[\x21-\x7e]+$/.test(t)) {
        return "must be visible ASCII characters only (no spaces, control or non-ASCII characters): " +
          "no HTTP client could send it as a bearer token, and the admin API would be locked out";
      }
      return undefined;
    }
    case "bytes-hex": {
      const out = parseHex(value as string);
      return typeof out === "string" ? out : undefined;
    }
    case "latin1": {
      const t = value as string;
      if (t === "" || [...t].some((ch) => ch.charCodeAt(0) > 0xff)) {
        return "expected a non-empty Latin-1 string";
      }
      return undefined;
    }
    case "dns-name": {
      const n = normalizeDnsName(value as string);
      return typeof n === "string" ? n : undefined;
    }
    case "dns-type": {
      const t = parseDnsType(value as string | number);
      return typeof t === "string" ? t : undefined;
    }
    case "redis-url":
      if (value === "" || /^rediss?:\/\/[^\s/]+(\/\d+)?$/.test(value as string)) return undefined;
      return `${quote(value as string)} is not a redis://host:port[/db] URL`;
    case "duration": {
      const ms = typeof value === "number" ? value : parseDuration(value as string);
      if (typeof ms === "string") return ms;
      const min = typeof schema["x-min-ms"] === "number" ? schema["x-min-ms"] : 0;
      if (ms < 0 || ms > MAX_TIMEOUT_MS) return `${formatDuration(ms)} is out of range (0s..24h)`;
      if (ms < min) return min === 1 ? "must be more than 0" : `must be at least ${formatDuration(min)}`;
      return undefined;
    }
  }
}

/**
 * Checks `value` at `path` against `schema`; returns it with defaults filled in, or undefined when it (or
 * anything inside it) is bad. `what` names a record's keys in messages ("cluster name").
 */
export function checkValue(p: Problems, schema: Schema, value: unknown, path: string): unknown {
  const s = S(schema);
  const check = s["x-check"] as Check | undefined;
  if (check === "duration" || check === "dns-type") {
    // Text or an integer, read by the semantic check alone.
    if (typeof value === "string" || (typeof value === "number" && Number.isInteger(value))) {
      const problem = semantic(check, value, s);
      if (problem === undefined) return value;
      p.add(path, problem);
      return undefined;
    }
    p.add(
      path,
      check === "duration"
        ? `expected a duration ("30s") or integer milliseconds, got ${describe(value)}`
        : `expected a type name or number, got ${describe(value)}`,
    );
    return undefined;
  }
  if (Array.isArray(s.anyOf)) return checkLiterals(p, s.anyOf as Json[], value, path);
  if (Array.isArray(s.enum)) return checkEnum(p, s.enum as string[], value, path);
  switch (s.type) {
    case "object":
      return checkObject(p, s, value, path);
    case "array":
      return checkArray(p, s, value, path);
    case "string": {
      if (typeof value !== "string") {
        p.add(path, `expected a string, got ${describe(value)}`);
        return undefined;
      }
      if (typeof s.pattern === "string" && !new RegExp(s.pattern).test(value)) {
        p.add(path, patternMessage(s, value));
        return undefined;
      }
      return checked(p, check, value, s, path);
    }
    case "integer":
    case "number": {
      const integer = s.type === "integer";
      if (typeof value !== "number" || !(integer ? Number.isInteger(value) : Number.isFinite(value))) {
        p.add(path, `expected ${integer ? "an integer" : "a number"}, got ${describe(value)}`);
        return undefined;
      }
      const min = s.minimum as number, max = s.maximum as number;
      if (value < min || value > max) {
        p.add(path, `${value} is out of range (${min}..${max})`);
        return undefined;
      }
      return checked(p, check, value, s, path);
    }
    case "boolean":
      if (typeof value === "boolean") return value;
      p.add(path, `expected true or false, got ${describe(value)}`);
      return undefined;
  }
  p.add(path, "cannot be checked (an unknown schema)");
  return undefined;
}

function checked(p: Problems, check: Check | undefined, value: unknown, s: Json, path: string): unknown {
  if (check === undefined) return value;
  const problem = semantic(check, value, s);
  if (problem === undefined) return value;
  p.add(path, problem);
  return undefined;
}

function checkEnum(p: Problems, options: readonly string[], value: unknown, path: string): unknown {
  if (typeof value !== "string") {
    p.add(path, `expected a string, got ${describe(value)}`);
    return undefined;
  }
  if (options.includes(value)) return value;
  const hint = suggest(value, options);
  const list = options.map((o) => `"${o}"`).join(", ");
  p.add(
    path,
    `${quote(value)} is not one of ${list}` + (hint === undefined ? "" : `; did you mean "${hint}"?`),
  );
  return undefined;
}

/** A union of literal values (`proxy_protocol_version = 1 | 2`). */
function checkLiterals(p: Problems, options: readonly Json[], value: unknown, path: string): unknown {
  const consts = options.map((o) => o.const);
  if (consts.includes(value)) return value;
  p.add(path, `expected one of ${consts.join(", ")}, got ${describe(value)}`);
  return undefined;
}

function checkArray(p: Problems, s: Json, value: unknown, path: string): unknown {
  if (!Array.isArray(value)) {
    p.add(path, `expected an array, got ${describe(value)}`);
    return undefined;
  }
  const out: unknown[] = [];
  let ok = true;
  const seen = new Map<unknown, number>();
  for (let i = 0; i < value.length; i++) {
    const at = `${path}[${i}]`;
    const v = checkValue(p, s.items as Schema, value[i], at);
    if (v === undefined) {
      ok = false;
      continue;
    }
    if (s.uniqueItems === true && typeof v !== "object") {
      if (seen.has(v)) {
        p.add(at, `${JSON.stringify(v)} is listed twice`);
        ok = false;
        continue;
      }
      seen.set(v, i);
    }
    out.push(v);
  }
  return ok ? out : undefined;
}

function checkObject(p: Problems, s: Json, value: unknown, path: string): unknown {
  if (!isTable(value)) {
    p.add(
      path,
      path === ""
        ? `expected a table at the top level, got ${describe(value)}`
        : `expected a table, got ${describe(value)}`,
    );
    return undefined;
  }
  const out: Json = {};
  let ok = true;
  const patterns = isTable(s.patternProperties) ? Object.entries(s.patternProperties) : [];
  if (patterns.length > 0) {
    // A record ([clusters.NAME]): every key must match the name pattern; code-unit order, not locale order,
    // so the result never depends on the machine's locale.
    const [pattern, item] = patterns[0];
    const keys = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const key of keys) {
      const at = join(path, key);
      if (!new RegExp(pattern).test(key)) {
        p.add(at, `${quote(key)} is not a valid cluster name (1-64 of a-z, 0-9, _ and -)`);
        ok = false;
        continue;
      }
      const v = checkValue(p, item as Schema, own(value, key), at);
      if (v === undefined) ok = false;
      else define(out, key, v);
    }
    return ok ? out : undefined;
  }
  const props = (isTable(s.properties) ? s.properties : {}) as Record<string, Schema>;
  const required = Array.isArray(s.required) ? s.required as string[] : [];
  const known = Object.keys(props);
  if (!unknownKeys(p, value, known, path)) ok = false;
  for (const key of known) {
    const at = join(path, key);
    const given = own(value, key);
    const schema = S(props[key]);
    if (given === undefined) {
      if (required.includes(key)) {
        p.add(at, `missing required key \`${key}\``);
        ok = false;
      } else if (schema.default !== undefined) {
        out[key] = structuredClone(schema.default);
      } else if (schema.type === "object" && schema["x-presence"] !== true) {
        // An absent sub-table is its defaults.
        out[key] = checkValue(p, props[key], {}, at);
      }
      continue;
    }
    const v = checkValue(p, props[key], given, at);
    if (v === undefined) ok = false;
    else out[key] = v;
  }
  return ok ? out : undefined;
}

/** Reports each key of `table` not in `known`, with the nearest known key as a hint; false if any. */
export function unknownKeys(p: Problems, table: Json, known: readonly string[], path: string): boolean {
  let ok = true;
  for (const key of Object.keys(table)) {
    if (known.includes(key)) continue;
    const hint = suggest(key, known);
    p.add(
      join(path, key),
      hint === undefined
        ? `unknown key \`${key}\` (known keys: ${known.join(", ")})`
        : `unknown key \`${key}\`; did you mean \`${hint}\`?`,
    );
    ok = false;
  }
  return ok;
}
