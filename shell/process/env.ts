/**
 * Environment overrides: FERRY_* variables (from the process or from a `.env` file beside the config file)
 * written onto the parsed, not yet validated, config document.
 *
 * Overrides go in before validation so a bad value is reported like a bad file value, at its key path
 * (`admin.listen: "x" is not an IP address`), and so `ferry check` sees exactly what `ferry` would run.
 * Pure: the caller supplies the variables.
 *
 * @module
 */

import { isTable, suggest as didYouMean } from "../../core/config/words.ts";

/** A variable that overrides one config key. */
export interface EnvVar {
  readonly name: string;
  /** The [table, key] it sets. */
  readonly path: readonly [string, string];
  /** Digits-only values become integers (milliseconds for durations), so "30" is not refused as text. */
  readonly numeric: boolean;
  readonly help: string;
}

/** Names the config file; not an override, so it is listed apart. */
export const CONFIG_ENV = "FERRY_CONFIG";

/** Every overriding variable, in the order `--help` lists them. */
export const ENV_VARS: readonly EnvVar[] = [
  { name: "FERRY_ADMIN_LISTEN", path: ["admin", "listen"], numeric: false, help: "admin API ip:port" },
  { name: "FERRY_ADMIN_TOKEN", path: ["admin", "token"], numeric: false, help: "admin API bearer token" },
  { name: "FERRY_LOG_LEVEL", path: ["relay", "log_level"], numeric: false, help: "debug|info|warning|error" },
  { name: "FERRY_LOG_FORMAT", path: ["relay", "log_format"], numeric: false, help: "text|json|auto" },
  {
    name: "FERRY_GRACE_PERIOD",
    path: ["relay", "grace_period"],
    numeric: true,
    help: 'shutdown grace period ("30s", or integer ms)',
  },
  { name: "FERRY_WORKERS", path: ["relay", "workers"], numeric: true, help: "relay workers (1..64)" },
  {
    name: "FERRY_DATAPATH",
    path: ["relay", "datapath"],
    numeric: false,
    help: "UDP data path: auto|native|runtime",
  },
];

/**
 * A warning per `FERRY_*` name in `names` that Ferry does not know (a typo would otherwise leave a setting
 * quietly unapplied), with the nearest known name: `FERRY_LOG_LEVLE (environment) is not a Ferry
 * variable; did you mean FERRY_LOG_LEVEL?`. `where` says where the names came from.
 */
export function unknownEnvWarnings(names: Iterable<string>, where: string): string[] {
  const known = [CONFIG_ENV, ...ENV_VARS.map((v) => v.name)];
  const out: string[] = [];
  for (const name of names) {
    if (!name.startsWith("FERRY_") || known.includes(name)) continue;
    const hint = didYouMean(name, known);
    const help = hint === undefined ? ` (known: ${known.join(", ")})` : `; did you mean ${hint}?`;
    out.push(`${name} (${where}) is not a Ferry variable${help}`);
  }
  return out;
}

/** One value to write onto the raw config, and where it came from (for the startup log). */
export interface Override {
  readonly path: readonly [string, string];
  readonly value: unknown;
  /** E.g. "FERRY_LOG_LEVEL (environment)", "FERRY_WORKERS (.env)", "--admin". */
  readonly source: string;
}

/** The outcome of reading a `.env` file: its variables, and a message per line it could not read. */
export interface DotEnv {
  readonly vars: Readonly<Record<string, string>>;
  readonly problems: readonly { readonly line: number; readonly message: string }[];
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Reads `.env` text: `KEY=VALUE` lines, blank lines and `#` comments, an optional `export ` prefix, values
 * optionally in single quotes (taken literally) or double quotes (`\n`, `\"`, `\\` escapes). An unquoted
 * value ends at ` #`. Bad lines are reported, not skipped silently, since a typo there would otherwise
 * leave a setting quietly unapplied.
 */
export function parseDotEnv(text: string): DotEnv {
  const vars: Record<string, string> = {};
  const problems: { line: number; message: string }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const body = line.startsWith("export ") ? line.slice(7).trimStart() : line;
    const eq = body.indexOf("=");
    const key = eq < 0 ? body : body.slice(0, eq).trim();
    if (eq < 0 || !KEY.test(key)) {
      problems.push({ line: i + 1, message: "expected KEY=VALUE" });
      return;
    }
    const value = unquote(body.slice(eq + 1).trim());
    if (value === undefined) {
      problems.push({ line: i + 1, message: `unterminated quote in the value of ${key}` });
    } else vars[key] = value;
  });
  return { vars, problems };
}

function unquote(v: string): string | undefined {
  const q = v[0];
  if (q === "'" || q === '"') {
    const end = v.indexOf(q, 1);
    if (q === "'") return end < 0 ? undefined : v.slice(1, end);
    // Find the closing quote that is not escaped.
    let out = "";
    for (let i = 1; i < v.length; i++) {
      const c = v[i];
      if (c === '"') return out;
      if (c === "\\" && i + 1 < v.length) {
        const n = v[++i];
        out += n === "n" ? "\n" : n === "t" ? "\t" : n;
      } else out += c;
    }
    return undefined;
  }
  const hash = v.search(/\s#/);
  return (hash < 0 ? v : v.slice(0, hash)).trimEnd();
}

/**
 * The overrides the environment asks for. `processEnv` wins over `dotEnv`; an empty value counts as unset,
 * so `FERRY_LOG_LEVEL=` in a unit file cannot turn into an invalid config.
 */
export function envOverrides(
  processEnv: (name: string) => string | undefined,
  dotEnv: Readonly<Record<string, string>> = {},
): Override[] {
  const out: Override[] = [];
  for (const v of ENV_VARS) {
    const fromProcess = processEnv(v.name);
    const fromFile = Object.prototype.hasOwnProperty.call(dotEnv, v.name) ? dotEnv[v.name] : undefined;
    const [text, where] = fromProcess ? [fromProcess, "environment"] : fromFile ? [fromFile, ".env"] : [];
    if (text === undefined) continue;
    const value = v.numeric && /^\d{1,15}$/.test(text) ? Number(text) : text;
    out.push({ path: v.path, value, source: `${v.name} (${where})` });
  }
  return out;
}

/**
 * `raw` with `overrides` applied in order (later ones win), copying only the tables it changes. A section
 * that exists but is not a table is left alone: validation reports it, and an override must not hide that.
 */
export function applyOverrides(raw: unknown, overrides: readonly Override[]): unknown {
  if (!isTable(raw) || overrides.length === 0) return raw;
  const out: Record<string, unknown> = { ...raw };
  for (const { path: [table, key], value } of overrides) {
    const current = Object.prototype.hasOwnProperty.call(out, table) ? out[table] : undefined;
    if (current !== undefined && !isTable(current)) continue;
    out[table] = { ...(current ?? {}), [key]: value };
  }
  return out;
}

/** Where the `.env` for a config file lives: in the same directory. */
export function dotEnvPath(configPath: string): string {
  const slash = Math.max(configPath.lastIndexOf("/"), configPath.lastIndexOf("\\"));
  return slash < 0 ? ".env" : `${configPath.slice(0, slash + 1)}.env`;
}
