/**
 * The `ferry` command line: argument parsing, the help text, quick-mode configs and config loading
 * (file or built-in default or quick flags, then `.env`, environment and flag overrides, then validation).
 *
 * Runtime-neutral and side-effect free: file reads and environment lookups come in through {@link LoadIo},
 * so tests drive it with plain objects and `main.ts` only wires it to the platform.
 *
 * @module
 */

import { parse } from "smol-toml";
import {
  type ConfigError,
  type ConfigResult,
  parseConfigToml,
  validateConfig,
  withLines,
} from "../../core/config.ts";
import { DEFAULT_CONFIG_TOML } from "../../core/default_config.ts";
import type { FerryConfig, LogLevel } from "../../core/types.ts";
import {
  applyOverrides,
  CONFIG_ENV,
  dotEnvPath,
  ENV_VARS,
  envOverrides,
  type Override,
  parseDotEnv,
  unknownEnvWarnings,
} from "./env.ts";
import { configSizeError, MAX_CONFIG_BYTES } from "../../core/limits.ts";

/** Exit codes of the command. */
export const Exit = {
  Ok: 0,
  /** Invalid config, unreadable file, bind failure. */
  Failure: 1,
  /** Bad command line. */
  Usage: 2,
  /** A second SIGINT during the grace period: 128 + SIGINT, as shells report an interrupted program. */
  ForcedSigint: 130,
  /** A second SIGTERM during the grace period: 128 + SIGTERM. */
  ForcedSigterm: 143,
} as const;

/** A quick-mode relay: one listener "quick" forwarding to one cluster "quick". */
export interface QuickSpec {
  readonly protocol: "udp" | "tcp";
  readonly address: string;
  readonly to: readonly string[];
  readonly balancer?: string;
}

/** Options shared by `ferry` (run) and `ferry check`. */
export interface RunOptions {
  readonly config?: string;
  readonly quick?: QuickSpec;
  readonly admin?: string;
  readonly logLevel?: LogLevel;
  readonly logFormat?: "auto" | "text" | "json";
  readonly seed?: number;
}

/** What the command line asks for. */
export type Command =
  | { readonly kind: "help" }
  | { readonly kind: "version" }
  | { readonly kind: "print-default-config" }
  | { readonly kind: "schema" }
  | { readonly kind: "check"; readonly options: RunOptions }
  /** Print a systemd unit for the config (shell/process/systemd_unit.ts). */
  | { readonly kind: "service"; readonly options: RunOptions }
  /** The admin API client: the words after `ctl` (shell/process/ctl.ts parses them). */
  | { readonly kind: "ctl"; readonly args: readonly string[] }
  | { readonly kind: "run"; readonly options: RunOptions }
  | { readonly kind: "usage-error"; readonly message: string };

const VALUE_FLAGS = [
  "--config",
  "--udp",
  "--tcp",
  "--to",
  "--balancer",
  "--admin",
  "--log-level",
  "--log-format",
  "--seed",
] as const;
const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warning", "error"];
const LOG_FORMATS = ["auto", "text", "json"] as const;
const COMMANDS = ["run", "check", "service", "print-default-config", "schema", "help", "version"] as const;

/** Parses the arguments after the program name. Never throws; a bad command line is a `usage-error`. */
export function parseArgs(argv: readonly string[]): Command {
  // `ferry ctl ...` has its own words and flags (shell/process/ctl.ts).
  if (argv[0] === "ctl") return { kind: "ctl", args: argv.slice(1) };
  const values = new Map<string, string>();
  const to: string[] = [];
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") return { kind: "help" };
    if (arg === "-V" || arg === "--version") return { kind: "version" };
    if (!arg.startsWith("-") || arg === "-") {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const flag = arg === "-c" ? "--config" : eq > 0 ? arg.slice(0, eq) : arg;
    if (!(VALUE_FLAGS as readonly string[]).includes(flag)) return usage(`unknown option ${flag}`);
    let value: string;
    if (eq > 0 && flag === arg.slice(0, eq)) value = arg.slice(eq + 1);
    else if (i + 1 < argv.length) value = argv[++i];
    else return usage(`${flag} needs a value`);
    // --to may repeat (each adds backends); other flags: the last one wins, as in most CLIs.
    if (flag === "--to") to.push(...value.split(",").map((s) => s.trim()));
    else values.set(flag, value);
  }

  const command = positional[0] ?? "run";
  if (!(COMMANDS as readonly string[]).includes(command)) return usage(`unknown command "${command}"`);
  if (command === "help") return { kind: "help" };
  if (command === "version") return { kind: "version" };
  if (command === "print-default-config" || command === "schema") {
    return positional.length > 1 ? usage(`${command} takes no arguments`) : { kind: command };
  }
  // `ferry check FILE` reads naturally; it means `ferry check --config FILE`.
  if (command === "check" && positional.length === 2 && !values.has("--config")) {
    values.set("--config", positional[1]);
  } else if (positional.length > 1) return usage(`unexpected argument "${positional[1]}"`);

  const options = runOptions(values, to);
  return typeof options === "string"
    ? usage(options)
    : { kind: command as "run" | "check" | "service", options };
}

function usage(message: string): Command {
  return { kind: "usage-error", message };
}

function runOptions(values: Map<string, string>, to: string[]): RunOptions | string {
  const udp = values.get("--udp");
  const tcp = values.get("--tcp");
  const balancer = values.get("--balancer");
  let quick: QuickSpec | undefined;
  if (udp !== undefined && tcp !== undefined) return "--udp and --tcp cannot be combined; run two relays";
  const address = udp ?? tcp;
  if (address !== undefined) {
    if (to.length === 0) return `--${udp !== undefined ? "udp" : "tcp"} needs --to BACKEND[,BACKEND...]`;
    if (values.has("--config")) return "--config cannot be combined with --udp/--tcp (quick mode)";
    quick = { protocol: udp !== undefined ? "udp" : "tcp", address, to, balancer };
  } else if (to.length > 0 || balancer !== undefined) {
    return `${to.length > 0 ? "--to" : "--balancer"} needs --udp ADDRESS or --tcp ADDRESS`;
  }

  const logLevel = values.get("--log-level");
  if (logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    return `--log-level must be one of ${LOG_LEVELS.join(", ")}`;
  }
  const logFormat = values.get("--log-format");
  if (logFormat !== undefined && !(LOG_FORMATS as readonly string[]).includes(logFormat)) {
    return `--log-format must be one of ${LOG_FORMATS.join(", ")}`;
  }
  const seedText = values.get("--seed");
  const seed = seedText === undefined ? undefined : Number(seedText);
  if (seed !== undefined && (!/^\d+$/.test(seedText!) || seed > 0xffff_ffff)) {
    return "--seed must be an integer from 0 to 4294967295";
  }
  return {
    config: values.get("--config"),
    quick,
    admin: values.get("--admin"),
    logLevel: logLevel as LogLevel | undefined,
    logFormat: logFormat as RunOptions["logFormat"],
    seed,
  };
}

/** The `--help` text: every command, flag, environment variable and exit code. */
export function helpText(): string {
  const env = ENV_VARS.map((v) => `  ${v.name.padEnd(20)}${v.path.join(".")}: ${v.help}`).join("\n");
  return `ferry: a UDP/TCP edge relay

Usage:
  ferry [--config FILE] [options]              run (no file: the built-in default config)
  ferry --udp ADDR --to B1[,B2...] [options]   quick mode: relay UDP on ADDR to the backends
  ferry --tcp ADDR --to B1[,B2...] [options]   quick mode: relay TCP on ADDR to the backends
  ferry check [--config FILE | FILE]           validate the config (with overrides) and exit
  ferry service [--config FILE]                print a hardened systemd unit for the config
  ferry ctl COMMAND [--json] ...               admin API client (ferry ctl --help)
  ferry print-default-config                   print the built-in config, an annotated example
  ferry schema                                 print the config file's JSON Schema (for editors)
  ferry --version | --help

Options:
  -c, --config FILE        config file (TOML); overrides ${CONFIG_ENV}
  --udp ADDR, --tcp ADDR   quick mode listener, e.g. 0.0.0.0:7000 or [::]:7000
  --to LIST                quick mode backends, comma-separated ip:port (repeatable)
  --balancer NAME          quick mode balancer (default round_robin; e.g. maglev)
  --admin ADDR             admin API ip:port (quick mode has no admin API without it)
  --log-level LEVEL        debug, info, warning or error (default info)
  --log-format FORMAT      text, json or auto (default auto: text on a terminal, else JSON lines)
  --seed N                 seed of the relay's random choices (default: random)
  -V, --version            print the version
  -h, --help               print this help

Environment (a .env file beside the config file is read too; the process environment wins over it,
it wins over the config file, and command-line flags win over everything; empty values are ignored):
  ${CONFIG_ENV.padEnd(20)}config file path
${env}

Signals: SIGHUP reloads the config file (all or nothing; an invalid file changes nothing).
SIGINT/SIGTERM stop admitting, let flows run for relay.grace_period, then exit 0; a second one exits at
once (130 for SIGINT, 143 for SIGTERM).

Exit codes: 0 ok, 1 invalid config or startup failure (e.g. an address in use), 2 bad command line.
Logs go to stderr.
`;
}

/** A quick-mode config document (not yet validated, so mistakes are reported like a file's). */
export function quickConfig(quick: QuickSpec): Record<string, unknown> {
  const cluster: Record<string, unknown> = { backends: quick.to.map((address) => ({ address })) };
  if (quick.balancer !== undefined) cluster.balancer = quick.balancer;
  return {
    listeners: [{ name: "quick", protocol: quick.protocol, address: quick.address, cluster: "quick" }],
    clusters: { quick: cluster },
  };
}

/** The overrides the command line asks for; applied last, so they win over the environment. */
export function flagOverrides(options: RunOptions): Override[] {
  const out: Override[] = [];
  if (options.admin !== undefined) {
    out.push({ path: ["admin", "listen"], value: options.admin, source: "--admin" });
  }
  if (options.logLevel !== undefined) {
    out.push({ path: ["relay", "log_level"], value: options.logLevel, source: "--log-level" });
  }
  if (options.logFormat !== undefined) {
    out.push({ path: ["relay", "log_format"], value: options.logFormat, source: "--log-format" });
  }
  return out;
}

/** What loading needs from the outside world. */
export interface LoadIo {
  readTextFile(path: string): Promise<string>;
  env(name: string): string | undefined;
  /** The names of the process's environment variables (for warnings about unknown `FERRY_*` ones). */
  envNames?(): string[];
}

/** A validation result plus where the config came from. */
export type LoadResult = ConfigResult & {
  /** For logs: `file ferry.toml`, `quick mode`, `built-in default`. */
  readonly source: string;
  /** The config file, or null (quick mode, built-in default): then there is nothing to reload. */
  readonly file: string | null;
  /** Quick mode runs no admin API unless an address is given (--admin or FERRY_ADMIN_LISTEN). */
  readonly adminEnabled: boolean;
  /** The sources of the overrides applied, e.g. ["FERRY_LOG_LEVEL (environment)", "--admin"]. */
  readonly overrides: readonly string[];
  /** Things worth telling that do not stop the config, e.g. an unknown `FERRY_*` variable. */
  readonly warnings: readonly string[];
};

function isNotFound(e: unknown): boolean {
  const err = e as { code?: unknown; name?: unknown };
  return err?.code === "ENOENT" || err?.name === "NotFound";
}

function utf8Bytes(text: string): number {
  return new TextEncoder().encode(text).byteLength;
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Loads the config `options` select: `--config`, else quick flags, else FERRY_CONFIG, else the built-in
 * default; then `.env` (beside the file), environment and flag overrides; then validation. Never throws.
 */
export async function loadConfig(options: RunOptions, io: LoadIo): Promise<LoadResult> {
  const file = options.config ?? (options.quick ? undefined : io.env(CONFIG_ENV) || undefined) ?? null;
  const source = file !== null ? `file ${file}` : options.quick ? "quick mode" : "built-in default";
  const fail = (errors: ConfigError[]): LoadResult => ({
    ok: false,
    errors,
    source,
    file,
    adminEnabled: false,
    overrides: [],
    warnings: [],
  });

  let raw: unknown;
  let dotEnv: Record<string, string> = {};
  let text: string | undefined;
  if (options.quick) raw = quickConfig(options.quick);
  else {
    try {
      text = file === null ? DEFAULT_CONFIG_TOML : await io.readTextFile(file);
    } catch (e) {
      return fail([{ path: "", message: `cannot read ${file}: ${reason(e)}` }]);
    }
    // Parsing a huge file would stall the thread that forwards datagrams: refuse it first.
    const tooBig = configSizeError(text.length > MAX_CONFIG_BYTES / 3 ? utf8Bytes(text) : text.length);
    if (tooBig !== null) return fail([{ path: "", message: `${file}: ${tooBig}` }]);
    try {
      raw = parse(text);
    } catch {
      return fail((parseConfigToml(text) as { errors: ConfigError[] }).errors); // its syntax-error wording
    }
  }
  if (file !== null) {
    const envFile = dotEnvPath(file);
    try {
      const parsed = parseDotEnv(await io.readTextFile(envFile));
      if (parsed.problems.length > 0) {
        return fail(parsed.problems.map((p) => ({ path: `${envFile}:${p.line}`, message: p.message })));
      }
      dotEnv = { ...parsed.vars };
    } catch (e) {
      if (!isNotFound(e)) return fail([{ path: "", message: `cannot read ${envFile}: ${reason(e)}` }]);
    }
  }

  const overrides = [...envOverrides(io.env, dotEnv), ...flagOverrides(options)];
  const validated = validateConfig(applyOverrides(raw, overrides));
  const result = validated.ok || text === undefined
    ? validated
    : { ok: false as const, errors: withLines(validated.errors, text) };
  const adminEnabled = !options.quick || overrides.some((o) => o.path.join(".") === "admin.listen");
  const warnings = [
    ...unknownEnvWarnings(io.envNames?.() ?? [], "environment"),
    ...unknownEnvWarnings(Object.keys(dotEnv), ".env"),
  ];
  return { ...result, source, file, adminEnabled, overrides: overrides.map((o) => o.source), warnings };
}

/** One error as `path: message` (the message alone for whole-document errors). */
export function formatConfigError(e: ConfigError): string {
  const where = e.line === undefined ? e.path : `${e.path} (line ${e.line})`;
  return e.path === "" ? e.message : `${where}: ${e.message}`;
}

/** The one-line summary `ferry check` prints for a valid config. */
export function configSummary(config: FerryConfig): string {
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
  const backends = config.clusters.reduce((n, c) => n + c.backends.length, 0);
  return `${count(config.listeners.length, "listener")}, ${count(config.clusters.length, "cluster")}, ` +
    count(backends, "backend");
}
