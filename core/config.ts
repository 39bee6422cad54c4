/**
 * Configuration: TOML text → parsed object → validated {@link FerryConfig}, and back.
 *
 * Pure. Validation never stops at the first problem and never throws: an operator fixing a config file wants
 * every mistake in one pass, each named by the path of the offending key (`listeners[0].address`,
 * `clusters.game.backends[1].weight`), and a reload must not crash a running relay whatever the file holds.
 *
 * @module
 */

import { parse, stringify, TomlError } from "smol-toml";
import { isPrime } from "./balancers/maglev.ts";
import {
  DEFAULT_DNS_PROBE,
  type DnsProbeSettings,
  dnsTypeName,
  normalizeDnsName,
  parseDnsType,
} from "./dns_message.ts";
import {
  decodeEscaped,
  decodeHex,
  DEFAULT_HEALTH,
  encodeEscaped,
  type HealthExpect,
  type HealthSettings,
} from "./health.ts";
import {
  type Cidr,
  formatIp,
  formatSocketAddress,
  parseCidr,
  parseSocketAddress,
  type SocketAddress,
} from "./address.ts";
import {
  type AdminConfig,
  type Affinity,
  type BackendConfig,
  type BackendState,
  BALANCER_NAMES,
  type BalancerKind,
  type ClusterConfig,
  type Datapath,
  type ExternalRouting,
  type FerryConfig,
  type FleetSettings,
  type ListenerConfig,
  type LogLevel,
  type ProxyProtocolMode,
  type RedisSettings,
  type RelaySettings,
  type SourceClass,
  type SourcePolicy,
} from "./types.ts";

/** One problem in a config: where (a dotted/indexed key path, "" for the whole document) and what. */
export interface ConfigError {
  readonly path: string;
  readonly message: string;
}

/** The outcome of validation: a usable config, or every problem found (never an empty list). */
export type ConfigResult =
  | { readonly ok: true; readonly config: FerryConfig }
  | { readonly ok: false; readonly errors: ConfigError[] };

// ---------------------------------------------------------------------------------------------------------
// Limits and defaults. Kept here, not imported, so the config has one obvious source of truth for both.

/** Longest timeout a config may set: beyond a day an idle flow is a leak, not a session. */
export const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000;
/** Largest UDP payload over IPv4 (65535 - 8 UDP header - 20 IP header). */
const MAX_UDP_PAYLOAD = 65507;
const MAX_FLOWS = 10_000_000;
const MAX_WEIGHT = 1000;
const MAX_UINT32 = 0xffff_ffff;
const MIN_MAGLEV_SIZE = 3;
const MAX_MAGLEV_SIZE = 1_000_003;
/** Names end up in metrics labels, log fields and admin URLs, so they stay short and URL-safe. */
const NAME_PATTERN = /^[a-z0-9_-]+$/;
const MAX_NAME_LENGTH = 64;

const DEFAULT_ADMIN_LISTEN = "127.0.0.1:9901";
const DEFAULT_FRONT_TIMEOUT_MS = 60_000;
const DEFAULT_BACK_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_DATAGRAM_SIZE = 1500;
const DEFAULT_MAGLEV_SIZE = 65537;
// Mirrors DEFAULT_SOURCE_POLICY in source_policy.ts: sources that can never be a real client's return path.
const DEFAULT_REJECT: readonly SourceClass[] = ["port0", "unspecified", "multicast", "broadcast"];

const SOURCE_CLASSES: readonly SourceClass[] = ["port0", "unspecified", "multicast", "broadcast", "loopback"];
const PROTOCOLS = ["udp", "tcp"] as const;
const AFFINITIES: readonly Affinity[] = ["ip_port", "ip"];
const PROXY_MODES: readonly ProxyProtocolMode[] = ["off", "first", "every"];
const BACKEND_STATES: readonly BackendState[] = ["up", "down", "draining"];

// The keys each table accepts, in the order configToToml writes them.
const TOP_KEYS = ["relay", "admin", "redis", "fleet", "listeners", "clusters"] as const;
const RELAY_KEYS = ["grace_period", "workers", "log_level", "log_format", "datapath"] as const;
const DATAPATHS: readonly Datapath[] = ["auto", "native", "runtime"];
const ADMIN_KEYS = ["listen", "token"] as const;
const LISTENER_KEYS = [
  "name",
  "protocol",
  "address",
  "cluster",
  "max_flows",
  "max_datagram_size",
  "sources",
  "datapath",
  "recv_buffer",
  "send_buffer",
] as const;
const SOURCES_KEYS = ["reject", "deny", "allow"] as const;
const CLUSTER_KEYS = [
  "balancer",
  "affinity",
  "requests",
  "responses",
  "front_timeout",
  "back_timeout",
  "proxy_protocol",
  "hash_seed",
  "fail_open",
  "maglev_table_size",
  "connect_timeout",
  "idle_timeout",
  "proxy_protocol_version",
  "health",
  "redis_key",
  "redis_fallback",
  "redis_cache",
  "backends",
] as const;
const FILE_BALANCERS = [...BALANCER_NAMES, "redis"] as const;
const FALLBACKS = [...BALANCER_NAMES, "drop"] as const;
const REDIS_KEYS = ["url", "disconnect_channel", "timeout"] as const;
const FLEET_KEYS = ["instance", "prefix", "heartbeat"] as const;
/** The keys of a `dns` health probe's query. */
const DNS_PROBE_KEYS = ["dns_name", "dns_type", "dns_transport", "dns_accept_nxdomain"] as const;
const HEALTH_KEYS = [
  "mode",
  "interval",
  "timeout",
  "rise",
  "fall",
  "jitter",
  "send",
  "send_hex",
  "expect",
  "expect_prefix",
  "expect_regex",
  "port",
  "max_fails",
  "fail_timeout",
  "close_flows_on_down",
  ...DNS_PROBE_KEYS,
] as const;
const HEALTH_MODES = ["off", "udp", "tcp", "dns"] as const;
const BACKEND_KEYS = ["address", "weight", "state"] as const;

// ---------------------------------------------------------------------------------------------------------
// Durations

const DURATION_UNITS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
const DURATION_ORDER = ["h", "m", "s", "ms"];
const DURATION_PART = /(\d+)(ms|h|m|s)/y;

/**
 * Parses a duration such as "500ms", "30s", "5m", "1h" or "1m30s" into milliseconds, or returns why it is not
 * one. Units must descend and appear once each, so "30s1m" (almost certainly a typo) is refused rather than
 * silently summed. A bare "0" is accepted because "no timeout" should not need a unit. Range limits are the
 * caller's: this only reads the text.
 */
export function parseDuration(text: string): number | string {
  if (typeof text !== "string") return "a duration must be a string";
  if (text === "0") return 0;
  if (text === "") return `"" is not a duration (expected e.g. "500ms", "30s", "5m", "1h30m")`;
  let total = 0;
  let pos = 0;
  let lastUnit = -1;
  while (pos < text.length) {
    DURATION_PART.lastIndex = pos;
    const m = DURATION_PART.exec(text);
    if (m === null) {
      return `"${text}" is not a duration (expected e.g. "500ms", "30s", "5m", "1h30m")`;
    }
    const unitIndex = DURATION_ORDER.indexOf(m[2]);
    if (unitIndex <= lastUnit) {
      return `"${text}" is not a duration: units must go from largest to smallest, each once (h, m, s, ms)`;
    }
    lastUnit = unitIndex;
    // Digits beyond 15 cannot be summed exactly; such a duration is out of every range anyway.
    if (m[1].length > 15) return `"${text}" is far too long a duration`;
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    pos = DURATION_PART.lastIndex;
  }
  if (!Number.isSafeInteger(total)) return `"${text}" is far too long a duration`;
  return total;
}

/**
 * Formats milliseconds as the shortest exact duration string ("1m30s", "500ms", "0s") that
 * {@link parseDuration} reads back to the same number. Values that are not a non-negative safe integer are
 * written as "<n>ms" so that a bad value stays visible instead of being rounded into a plausible one.
 */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) return `${ms}ms`;
  if (ms === 0) return "0s";
  let rest = ms;
  let out = "";
  for (const unit of DURATION_ORDER) {
    const size = DURATION_UNITS[unit];
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Small helpers

/**
 * Edit distance between two short strings (keys, enum values), for "did you mean" hints. Adjacent swaps count
 * as one edit (optimal string alignment), since "gmae" for "game" is the commonest typo of all.
 */
function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = new Array<number>(b.length + 1);
    row[0] = i;
    rows.push(row);
  }
  for (let j = 0; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2][j - 2] + 1);
      }
      rows[i][j] = d;
    }
  }
  return rows[a.length][b.length];
}

/**
 * The known word closest to `word`, if close enough to be a plausible typo. Case and separators are
 * ignored first, so `maxFlows` and `max-flows` both find `max_flows`.
 */
function suggest(word: string, known: readonly string[]): string | undefined {
  // Very long inputs cannot be near any known key; skipping them keeps odd input cheap.
  if (word.length > 64) return undefined;
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  for (const k of known) if (norm(k) === norm(word)) return k;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k);
    // A 2-letter typo in a 3-letter word is a different word, so short words get a tighter limit.
    const limit = Math.min(2, Math.floor(Math.max(word.length, k.length) / 3));
    if (d <= limit && d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

/** A value's kind in TOML terms, for "expected X, got Y" messages. */
function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date";
  switch (typeof value) {
    case "string":
      return `the string ${quote(value)}`;
    case "number":
      return Number.isFinite(value) ? `the number ${value}` : `${value}`;
    case "boolean":
      return `${value}`;
    case "object":
      return "a table";
    default:
      return `a ${typeof value}`;
  }
}

/** Quotes a string for a message, cut short so a megabyte of garbage does not become a megabyte of log. */
function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? s.slice(0, 77) + "..." : s);
}

/** A table key as it appears in a path: bare when TOML allows, quoted otherwise. */
function pathKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : quote(key);
}

function join(path: string, key: string): string {
  return path === "" ? pathKey(key) : `${path}.${pathKey(key)}`;
}

type Table = Record<string, unknown>;

/** A plain table (not an array, date, null or class instance). */
function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    Object.prototype.toString.call(value) === "[object Object]";
}

/** Reads a key only if the table itself has it, so `constructor` or `__proto__` never come from a prototype. */
function own(table: Table, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// The validator. Each reader records a problem and returns a fallback, so validation always runs to the end.

class Checker {
  readonly errors: ConfigError[] = [];

  error(path: string, message: string): void {
    this.errors.push({ path, message });
  }

  /** Reports keys the table does not know, suggesting the nearest known key. */
  unknownKeys(table: Table, path: string, known: readonly string[]): void {
    for (const key of Object.keys(table)) {
      if (known.includes(key)) continue;
      const hint = suggest(key, known);
      this.error(
        join(path, key),
        hint === undefined
          ? `unknown key \`${key}\` (known keys: ${known.join(", ")})`
          : `unknown key \`${key}\`; did you mean \`${hint}\`?`,
      );
    }
  }

  /** A sub-table, or undefined when absent; a non-table is reported and treated as absent. */
  table(value: unknown, path: string): Table | undefined {
    if (value === undefined) return undefined;
    if (isTable(value)) return value;
    this.error(path, `expected a table, got ${describe(value)}`);
    return undefined;
  }

  string(value: unknown, path: string, fallback: string, required = false): string | undefined {
    if (value === undefined) {
      if (required) {
        this.error(path, `missing required key \`${path.slice(path.lastIndexOf(".") + 1)}\``);
        return undefined;
      }
      return fallback;
    }
    if (typeof value === "string") return value;
    this.error(path, `expected a string, got ${describe(value)}`);
    return undefined;
  }

  /** One of a fixed set of strings, with a did-you-mean hint for near misses. */
  choice<T extends string>(value: unknown, path: string, options: readonly T[], fallback: T): T | undefined {
    const s = this.string(value, path, fallback);
    if (s === undefined) return undefined;
    if ((options as readonly string[]).includes(s)) return s as T;
    const hint = suggest(s, options);
    const list = options.map((o) => `"${o}"`).join(", ");
    this.error(
      path,
      `${quote(s)} is not one of ${list}` + (hint === undefined ? "" : `; did you mean "${hint}"?`),
    );
    return undefined;
  }

  integer(value: unknown, path: string, fallback: number, min: number, max: number): number | undefined {
    if (value === undefined) return fallback;
    if (typeof value !== "number") {
      this.error(path, `expected an integer, got ${describe(value)}`);
      return undefined;
    }
    if (!Number.isInteger(value)) {
      this.error(path, `expected an integer, got ${describe(value)}`);
      return undefined;
    }
    if (value < min || value > max) {
      this.error(path, `${value} is out of range (${min}..${max})`);
      return undefined;
    }
    return value;
  }

  boolean(value: unknown, path: string, fallback: boolean): boolean | undefined {
    if (value === undefined) return fallback;
    if (typeof value === "boolean") return value;
    this.error(path, `expected true or false, got ${describe(value)}`);
    return undefined;
  }

  /** A duration string or integer milliseconds, within 0..MAX_TIMEOUT_MS. */
  duration(value: unknown, path: string, fallback: number): number | undefined {
    if (value === undefined) return fallback;
    let ms: number;
    if (typeof value === "number") {
      if (!Number.isInteger(value)) {
        this.error(path, `expected a duration ("30s") or integer milliseconds, got ${describe(value)}`);
        return undefined;
      }
      ms = value;
    } else if (typeof value === "string") {
      const parsed = parseDuration(value);
      if (typeof parsed === "string") {
        this.error(path, parsed);
        return undefined;
      }
      ms = parsed;
    } else {
      this.error(path, `expected a duration ("30s") or integer milliseconds, got ${describe(value)}`);
      return undefined;
    }
    if (ms < 0 || ms > MAX_TIMEOUT_MS) {
      this.error(path, `${formatDuration(ms)} is out of range (0s..24h)`);
      return undefined;
    }
    return ms;
  }

  /** An ip:port; `minPort` is 1 where port 0 would mean "any port" and make no sense. */
  address(
    value: unknown,
    path: string,
    fallback: string | undefined,
    minPort: number,
  ): SocketAddress | undefined {
    const text = this.string(value, path, fallback ?? "", fallback === undefined);
    if (text === undefined) return undefined;
    const parsed = parseSocketAddress(text);
    if (typeof parsed === "string") {
      this.error(path, parsed);
      return undefined;
    }
    if (parsed.port < minPort) {
      this.error(path, `port ${parsed.port} is out of range (${minPort}..65535)`);
      return undefined;
    }
    return parsed;
  }

  /** An array, each element read by `item`; undefined if any element is bad (all are still checked). */
  array<T>(
    value: unknown,
    path: string,
    fallback: readonly T[],
    item: (v: unknown, p: string) => T | undefined,
  ): T[] | undefined {
    if (value === undefined) return [...fallback];
    if (!Array.isArray(value)) {
      this.error(path, `expected an array, got ${describe(value)}`);
      return undefined;
    }
    const out: T[] = [];
    let ok = true;
    for (let i = 0; i < value.length; i++) {
      const v = item(value[i], `${path}[${i}]`);
      if (v === undefined) ok = false;
      else out.push(v);
    }
    return ok ? out : undefined;
  }

  name(value: unknown, path: string): string | undefined {
    const s = this.string(value, path, "", true);
    if (s === undefined) return undefined;
    if (!NAME_PATTERN.test(s) || s.length > MAX_NAME_LENGTH) {
      this.error(path, `${quote(s)} is not a valid name (1-${MAX_NAME_LENGTH} of a-z, 0-9, _ and -)`);
      return undefined;
    }
    return s;
  }
}

const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warning", "error"];
const LOG_FORMATS = ["auto", "text", "json"] as const;
const MAX_WORKERS = 64;

function checkRelay(c: Checker, value: unknown): RelaySettings | undefined {
  const t = c.table(value, "relay") ?? (value === undefined ? {} : undefined);
  if (t === undefined) return undefined;
  c.unknownKeys(t, "relay", RELAY_KEYS);
  const gracePeriod = c.duration(own(t, "grace_period"), "relay.grace_period", 30_000);
  const workers = c.integer(own(t, "workers"), "relay.workers", 1, 1, MAX_WORKERS);
  const logLevel = c.choice(own(t, "log_level"), "relay.log_level", LOG_LEVELS, "info");
  const logFormat = c.choice(own(t, "log_format"), "relay.log_format", LOG_FORMATS, "auto");
  const datapath = c.choice(own(t, "datapath"), "relay.datapath", DATAPATHS, "auto");
  if (
    gracePeriod === undefined || workers === undefined || logLevel === undefined || logFormat === undefined ||
    datapath === undefined
  ) return undefined;
  return { gracePeriod, workers, logLevel, logFormat, datapath };
}

function checkAdmin(c: Checker, value: unknown): AdminConfig | undefined {
  const t = c.table(value, "admin") ?? (value === undefined ? {} : undefined);
  if (t === undefined) return undefined;
  c.unknownKeys(t, "admin", ADMIN_KEYS);
  // Port 0 is allowed here only: the admin API on an ephemeral port is useful for tests, and the shell
  // reports the port it got.
  const listen = c.address(own(t, "listen"), "admin.listen", DEFAULT_ADMIN_LISTEN, 0);
  const token = c.string(own(t, "token"), "admin.token", "");
  if (listen === undefined || token === undefined) return undefined;
  return { listen, token };
}

function checkSources(c: Checker, value: unknown, path: string): SourcePolicy | undefined {
  const t = c.table(value, path) ?? (value === undefined ? {} : undefined);
  if (t === undefined) return undefined;
  c.unknownKeys(t, path, SOURCES_KEYS);
  const seen = new Set<string>();
  const reject = c.array(own(t, "reject"), `${path}.reject`, DEFAULT_REJECT, (v, p) => {
    const cls = c.choice(v, p, SOURCE_CLASSES, "port0");
    if (cls === undefined) return undefined;
    if (seen.has(cls)) {
      c.error(p, `"${cls}" is listed twice`);
      return undefined;
    }
    seen.add(cls);
    return cls;
  });
  const cidr = (v: unknown, p: string): Cidr | undefined => {
    const s = c.string(v, p, "", true);
    if (s === undefined) return undefined;
    const parsed = parseCidr(s);
    if (typeof parsed === "string") {
      c.error(p, parsed);
      return undefined;
    }
    return parsed;
  };
  const deny = c.array(own(t, "deny"), `${path}.deny`, [], cidr);
  const allow = c.array(own(t, "allow"), `${path}.allow`, [], cidr);
  if (reject === undefined || deny === undefined || allow === undefined) return undefined;
  return { reject, deny, allow };
}

function checkListener(
  c: Checker,
  value: unknown,
  path: string,
  clusterNames: ReadonlySet<string>,
): ListenerConfig | undefined {
  if (!isTable(value)) {
    c.error(path, `expected a table, got ${describe(value)}`);
    return undefined;
  }
  c.unknownKeys(value, path, LISTENER_KEYS);
  const name = c.name(own(value, "name"), `${path}.name`);
  const protocol = c.choice(own(value, "protocol"), `${path}.protocol`, PROTOCOLS, "udp");
  const address = c.address(own(value, "address"), `${path}.address`, undefined, 1);
  const cluster = c.string(own(value, "cluster"), `${path}.cluster`, "", true);
  if (cluster !== undefined && !clusterNames.has(cluster)) {
    const hint = suggest(cluster, [...clusterNames]);
    c.error(
      `${path}.cluster`,
      `no cluster named ${quote(cluster)} is defined` +
        (hint === undefined ? "" : `; did you mean "${hint}"?`),
    );
  }
  const maxFlows = c.integer(own(value, "max_flows"), `${path}.max_flows`, 0, 0, MAX_FLOWS);
  const rawSize = own(value, "max_datagram_size");
  let maxDatagramSize: number | undefined = DEFAULT_MAX_DATAGRAM_SIZE;
  if (protocol === "tcp" && rawSize !== undefined) {
    // TCP is a byte stream: a datagram limit there would be silently meaningless, so it is refused.
    c.error(`${path}.max_datagram_size`, "only applies to udp listeners");
    maxDatagramSize = undefined;
  } else {
    maxDatagramSize = c.integer(
      rawSize,
      `${path}.max_datagram_size`,
      DEFAULT_MAX_DATAGRAM_SIZE,
      1,
      MAX_UDP_PAYLOAD,
    );
  }
  const sources = checkSources(c, own(value, "sources"), `${path}.sources`);
  const datapath = c.choice(own(value, "datapath"), `${path}.datapath`, DATAPATHS, "auto");
  const buffer = (key: string): number | null | undefined => {
    const raw = own(value, key);
    if (raw === undefined) return null;
    if (protocol === "tcp") {
      c.error(`${path}.${key}`, "only applies to udp listeners");
      return undefined;
    }
    return c.integer(raw, `${path}.${key}`, 0, 0, 1 << 30);
  };
  const recvBuffer = buffer("recv_buffer");
  const sendBuffer = buffer("send_buffer");
  if (recvBuffer === undefined || sendBuffer === undefined) return undefined;
  if (
    name === undefined || protocol === undefined || address === undefined || cluster === undefined ||
    !clusterNames.has(cluster) || maxFlows === undefined || maxDatagramSize === undefined ||
    sources === undefined || datapath === undefined
  ) {
    return undefined;
  }
  return {
    name,
    protocol,
    address,
    cluster,
    maxFlows,
    maxDatagramSize,
    sources,
    datapath,
    recvBuffer,
    sendBuffer,
  };
}

function checkHealth(c: Checker, value: unknown, path: string): HealthSettings | undefined {
  const t = c.table(value, path) ?? (value === undefined ? {} : undefined);
  if (t === undefined) return undefined;
  c.unknownKeys(t, path, HEALTH_KEYS);
  const at = (key: string) => `${path}.${key}`;
  const d = DEFAULT_HEALTH;
  const mode = c.choice(own(t, "mode"), at("mode"), HEALTH_MODES, d.mode);
  const interval = c.duration(own(t, "interval"), at("interval"), d.interval);
  const timeout = c.duration(own(t, "timeout"), at("timeout"), d.timeout);
  const rise = c.integer(own(t, "rise"), at("rise"), d.rise, 1, 100);
  const fall = c.integer(own(t, "fall"), at("fall"), d.fall, 1, 100);
  const jitter = c.duration(own(t, "jitter"), at("jitter"), d.jitter);
  const port = c.integer(own(t, "port"), at("port"), 0, 0, 65535);
  const maxFails = c.integer(own(t, "max_fails"), at("max_fails"), d.maxFails, 0, 1000);
  const failTimeout = c.duration(own(t, "fail_timeout"), at("fail_timeout"), d.failTimeout);
  const closeFlowsOnDown = c.boolean(own(t, "close_flows_on_down"), at("close_flows_on_down"), false);
  const dns = checkDnsProbe(c, t, at, mode === "dns");
  let ok = dns !== undefined;
  const bytes = (key: string, decode: (s: string) => Uint8Array | string): Uint8Array | null | undefined => {
    const raw = own(t, key);
    if (raw === undefined) return null;
    const s = c.string(raw, at(key), "");
    if (s === undefined) return undefined;
    const out = decode(s);
    if (typeof out === "string") {
      c.error(at(key), out);
      return undefined;
    }
    return out;
  };
  const sendText = bytes("send", decodeEscaped);
  const sendHex = bytes("send_hex", decodeHex);
  if (sendText !== null && sendHex !== null && sendText !== undefined && sendHex !== undefined) {
    c.error(at("send_hex"), "give either send or send_hex, not both");
    ok = false;
  }
  const send = sendText ?? sendHex;
  if (mode === "udp" && send === null) {
    c.error(at("send"), "a udp health check needs a payload to send (send or send_hex)");
    ok = false;
  }
  const exact = bytes("expect", decodeEscaped);
  const prefix = bytes("expect_prefix", decodeEscaped);
  let expect: HealthExpect | null = null;
  const regexRaw = own(t, "expect_regex");
  if (regexRaw !== undefined) {
    const source = c.string(regexRaw, at("expect_regex"), "");
    if (source !== undefined) {
      try {
        new RegExp(source);
        expect = { kind: "regex", source };
      } catch (e) {
        c.error(at("expect_regex"), `not a regular expression: ${(e as Error).message}`);
        ok = false;
      }
    }
  }
  const given = [exact, prefix, regexRaw].filter((x) => x !== null && x !== undefined).length;
  if (given > 1) {
    c.error(path, "give at most one of expect, expect_prefix and expect_regex");
    ok = false;
  }
  if (exact) expect = { kind: "exact", bytes: exact };
  if (prefix) expect = { kind: "prefix", bytes: prefix };
  if (mode === "dns" && (send !== null || given > 0)) {
    c.error(path, `mode = "dns" builds its own query and checks the reply: no send or expect keys`);
    ok = false;
  }
  if (interval !== undefined && interval < 100) c.error(at("interval"), "must be at least 100ms");
  if (timeout === 0) c.error(at("timeout"), "must be more than 0");
  if (failTimeout === 0 && maxFails !== undefined && maxFails > 0) {
    c.error(at("fail_timeout"), "must be more than 0 while max_fails is above 0");
  }
  if (
    !ok || mode === undefined || interval === undefined || interval < 100 || timeout === undefined ||
    timeout === 0 || rise === undefined || fall === undefined || jitter === undefined || port === undefined ||
    maxFails === undefined || failTimeout === undefined || (failTimeout === 0 && maxFails > 0) ||
    closeFlowsOnDown === undefined || send === undefined || exact === undefined || prefix === undefined
  ) return undefined;
  return {
    mode,
    interval,
    timeout,
    rise,
    fall,
    jitter,
    send,
    expect,
    port,
    maxFails,
    failTimeout,
    closeFlowsOnDown,
    ...(dns === null || dns === undefined ? {} : { dns }),
  };
}

/**
 * The `dns_*` keys of a health table: the probe's query (mode "dns" only; elsewhere they are an error).
 * null when not a dns probe, undefined after an error.
 */
function checkDnsProbe(
  c: Checker,
  t: Record<string, unknown>,
  at: (key: string) => string,
  isDns: boolean,
): DnsProbeSettings | null | undefined {
  if (!isDns) {
    const stray = DNS_PROBE_KEYS.filter((k) => own(t, k) !== undefined);
    for (const k of stray) c.error(at(k), `only for mode = "dns"`);
    return stray.length > 0 ? undefined : null;
  }
  const d = DEFAULT_DNS_PROBE;
  let ok = true;
  let name = d.name;
  const rawName = own(t, "dns_name");
  if (rawName !== undefined) {
    const s = c.string(rawName, at("dns_name"), ".");
    const n = s === undefined ? "no string" : normalizeDnsName(s);
    if (typeof n === "string") {
      if (s !== undefined) c.error(at("dns_name"), n);
      ok = false;
    } else name = n.name;
  }
  let type = d.type;
  const rawType = own(t, "dns_type");
  if (rawType !== undefined) {
    const parsed = typeof rawType === "string" || typeof rawType === "number" ? parseDnsType(rawType) : null;
    if (typeof parsed !== "number") {
      c.error(at("dns_type"), parsed ?? `expected a type name or number, got ${describe(rawType)}`);
      ok = false;
    } else type = parsed;
  }
  const transport = c.choice(own(t, "dns_transport"), at("dns_transport"), PROTOCOLS, d.transport);
  const acceptNxdomain = c.boolean(
    own(t, "dns_accept_nxdomain"),
    at("dns_accept_nxdomain"),
    d.acceptNxdomain,
  );
  if (!ok || transport === undefined || acceptNxdomain === undefined) return undefined;
  return { name, type, transport, acceptNxdomain };
}

function checkBackend(c: Checker, value: unknown, path: string): BackendConfig | undefined {
  if (!isTable(value)) {
    c.error(path, `expected a table, got ${describe(value)}`);
    return undefined;
  }
  c.unknownKeys(value, path, BACKEND_KEYS);
  const address = c.address(own(value, "address"), `${path}.address`, undefined, 1);
  const weight = c.integer(own(value, "weight"), `${path}.weight`, 1, 1, MAX_WEIGHT);
  const state = c.choice(own(value, "state"), `${path}.state`, BACKEND_STATES, "up");
  if (address === undefined || weight === undefined || state === undefined) return undefined;
  return { address, weight, state };
}

function checkCluster(c: Checker, name: string, value: unknown, path: string): ClusterConfig | undefined {
  if (!isTable(value)) {
    c.error(path, `expected a table, got ${describe(value)}`);
    return undefined;
  }
  c.unknownKeys(value, path, CLUSTER_KEYS);
  const at = (key: string) => `${path}.${key}`;
  const fileBalancer = c.choice(own(value, "balancer"), at("balancer"), FILE_BALANCERS, "round_robin");
  // A file's "redis" is the core's "external": the shell resolves each new flow's backend.
  const balancer: BalancerKind | undefined = fileBalancer === "redis" ? "external" : fileBalancer;
  const external = checkExternal(c, value, path, name, fileBalancer === "redis");
  const affinity = c.choice(own(value, "affinity"), at("affinity"), AFFINITIES, "ip_port");
  const requests = c.integer(own(value, "requests"), at("requests"), 0, 0, MAX_UINT32);
  const responses = c.integer(own(value, "responses"), at("responses"), 0, 0, MAX_UINT32);
  const frontTimeout = c.duration(own(value, "front_timeout"), at("front_timeout"), DEFAULT_FRONT_TIMEOUT_MS);
  const backTimeout = c.duration(own(value, "back_timeout"), at("back_timeout"), DEFAULT_BACK_TIMEOUT_MS);
  if (frontTimeout === 0 && backTimeout === 0) {
    c.error(path, "front_timeout and back_timeout are both 0: a flow would never expire");
  }
  const proxyProtocol = c.choice(own(value, "proxy_protocol"), at("proxy_protocol"), PROXY_MODES, "off");
  const hashSeed = c.integer(own(value, "hash_seed"), at("hash_seed"), 0, 0, MAX_UINT32);
  const failOpen = c.boolean(own(value, "fail_open"), at("fail_open"), true);
  let maglevTableSize = c.integer(
    own(value, "maglev_table_size"),
    at("maglev_table_size"),
    DEFAULT_MAGLEV_SIZE,
    MIN_MAGLEV_SIZE,
    MAX_MAGLEV_SIZE,
  );
  if (maglevTableSize !== undefined && !isPrime(maglevTableSize)) {
    // Maglev's permutation walk only visits every slot when the table size is prime.
    c.error(at("maglev_table_size"), `${maglevTableSize} is not prime`);
    maglevTableSize = undefined;
  }
  const connectTimeout = c.duration(own(value, "connect_timeout"), at("connect_timeout"), 5_000);
  if (connectTimeout === 0) c.error(at("connect_timeout"), "must be more than 0");
  const idleTimeout = c.duration(own(value, "idle_timeout"), at("idle_timeout"), 600_000);
  const versionRaw = c.integer(own(value, "proxy_protocol_version"), at("proxy_protocol_version"), 2, 1, 2);
  const proxyProtocolVersion = versionRaw === 1 ? 1 as const : versionRaw === 2 ? 2 as const : undefined;
  const health = checkHealth(c, own(value, "health"), at("health"));
  const backends = c.array(own(value, "backends"), at("backends"), [], (v, p) => checkBackend(c, v, p));
  if (backends !== undefined) {
    const seen = new Map<string, number>();
    backends.forEach((b, i) => {
      const key = formatSocketAddress(b.address);
      const first = seen.get(key);
      if (first === undefined) seen.set(key, i);
      else c.error(`${at("backends")}[${i}].address`, `duplicate backend ${key} (also backends[${first}])`);
    });
    if (seen.size !== backends.length) return undefined;
    if (balancer === "maglev" && maglevTableSize !== undefined && backends.length > maglevTableSize) {
      c.error(
        at("maglev_table_size"),
        `${maglevTableSize} slots cannot hold ${backends.length} backends; use a larger prime`,
      );
      return undefined;
    }
  }
  if (
    balancer === undefined || affinity === undefined || requests === undefined || responses === undefined ||
    frontTimeout === undefined || backTimeout === undefined || (frontTimeout === 0 && backTimeout === 0) ||
    proxyProtocol === undefined || hashSeed === undefined || failOpen === undefined ||
    maglevTableSize === undefined || backends === undefined || connectTimeout === undefined ||
    connectTimeout === 0 || idleTimeout === undefined || proxyProtocolVersion === undefined ||
    health === undefined || external === undefined
  ) {
    return undefined;
  }
  return {
    name,
    balancer,
    affinity,
    requests,
    responses,
    frontTimeout,
    backTimeout,
    proxyProtocol,
    hashSeed,
    failOpen,
    maglevTableSize,
    connectTimeout,
    idleTimeout,
    proxyProtocolVersion,
    health,
    external,
    backends,
  };
}

/** The routing keys of a `balancer = "redis"` cluster (null for any other balancer). */
function checkExternal(
  c: Checker,
  value: Table,
  path: string,
  name: string,
  isRedis: boolean,
): ExternalRouting | null | undefined {
  const at = (key: string) => `${path}.${key}`;
  if (!isRedis) {
    for (const key of ["redis_key", "redis_fallback", "redis_cache"]) {
      if (own(value, key) !== undefined) c.error(at(key), 'only applies to balancer = "redis"');
    }
    return null;
  }
  const key = c.string(own(value, "redis_key"), at("redis_key"), `ferry:backend:${name}`);
  if (key === "") c.error(at("redis_key"), "must not be empty");
  const fallback = c.choice(own(value, "redis_fallback"), at("redis_fallback"), FALLBACKS, "drop");
  const cacheMs = c.duration(own(value, "redis_cache"), at("redis_cache"), 0);
  if (key === undefined || key === "" || fallback === undefined || cacheMs === undefined) return undefined;
  return { key, fallback, cacheMs };
}

function checkRedis(c: Checker, value: unknown): RedisSettings | undefined {
  const t = c.table(value, "redis") ?? (value === undefined ? {} : undefined);
  if (t === undefined) return undefined;
  c.unknownKeys(t, "redis", REDIS_KEYS);
  const url = c.string(own(t, "url"), "redis.url", "");
  if (url !== undefined && url !== "" && !/^rediss?:\/\/[^\s/]+(\/\d+)?$/.test(url)) {
    c.error("redis.url", `"${url}" is not a redis://host:port[/db] URL`);
  }
  const disconnectChannel = c.string(
    own(t, "disconnect_channel"),
    "redis.disconnect_channel",
    "ferry:disconnect",
  );
  const timeout = c.duration(own(t, "timeout"), "redis.timeout", 200);
  if (timeout === 0) c.error("redis.timeout", "must be more than 0");
  if (url === undefined || disconnectChannel === undefined || timeout === undefined || timeout === 0) {
    return undefined;
  }
  return { url, disconnectChannel, timeout };
}

function checkFleet(c: Checker, value: unknown): FleetSettings | undefined {
  const t = c.table(value, "fleet") ?? (value === undefined ? {} : undefined);
  if (t === undefined) return undefined;
  c.unknownKeys(t, "fleet", FLEET_KEYS);
  const instance = c.string(own(t, "instance"), "fleet.instance", "");
  if (instance !== undefined && instance !== "" && !/^[A-Za-z0-9_.-]{1,64}$/.test(instance)) {
    c.error("fleet.instance", `"${instance}" is not an instance name (1-64 of A-Z, a-z, 0-9, _ . -)`);
  }
  const prefix = c.string(own(t, "prefix"), "fleet.prefix", "ferry:fleet");
  const heartbeat = c.duration(own(t, "heartbeat"), "fleet.heartbeat", 5000);
  if (heartbeat !== undefined && heartbeat < 100) c.error("fleet.heartbeat", "must be at least 100ms");
  if (instance === undefined || prefix === undefined || heartbeat === undefined || heartbeat < 100) {
    return undefined;
  }
  return { instance, prefix, heartbeat };
}

function check(c: Checker, raw: unknown): FerryConfig | undefined {
  if (!isTable(raw)) {
    c.error("", `expected a table at the top level, got ${describe(raw)}`);
    return undefined;
  }
  c.unknownKeys(raw, "", TOP_KEYS);
  const relay = checkRelay(c, own(raw, "relay"));
  const admin = checkAdmin(c, own(raw, "admin"));
  const redis = checkRedis(c, own(raw, "redis"));
  const fleet = checkFleet(c, own(raw, "fleet"));

  // Clusters first: listeners are checked against the names defined here, even those whose contents are bad,
  // so a broken cluster is reported once (at the cluster), not again at every listener that uses it.
  const clusterNames = new Set<string>();
  const clusters: ClusterConfig[] = [];
  let clustersOk = true;
  const clusterTable = c.table(own(raw, "clusters"), "clusters");
  if (clusterTable === undefined && own(raw, "clusters") !== undefined) clustersOk = false;
  // Code-unit order, not locale order: the result must not depend on the machine's locale.
  const names = Object.keys(clusterTable ?? {}).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) {
    const path = join("clusters", name);
    if (!NAME_PATTERN.test(name) || name.length > MAX_NAME_LENGTH) {
      c.error(path, `${quote(name)} is not a valid cluster name (1-${MAX_NAME_LENGTH} of a-z, 0-9, _ and -)`);
      clustersOk = false;
      continue;
    }
    clusterNames.add(name);
    const cluster = checkCluster(c, name, own(clusterTable as Table, name), path);
    if (cluster === undefined) clustersOk = false;
    else clusters.push(cluster);
  }

  const listeners = c.array(
    own(raw, "listeners"),
    "listeners",
    [],
    (v, p) => checkListener(c, v, p, clusterNames),
  );
  // Uniqueness is checked over the raw entries so a duplicate is reported even when other keys are bad.
  const rawListeners = Array.isArray(own(raw, "listeners")) ? own(raw, "listeners") as unknown[] : [];
  const seenNames = new Map<string, number>();
  const binds = new Map<string, number>();
  rawListeners.forEach((l, i) => {
    if (!isTable(l)) return;
    const name = own(l, "name");
    if (typeof name === "string" && NAME_PATTERN.test(name)) {
      const first = seenNames.get(name);
      if (first === undefined) seenNames.set(name, i);
      else c.error(`listeners[${i}].name`, `duplicate listener name "${name}" (also listeners[${first}])`);
    }
    const address = own(l, "address");
    const protocol = own(l, "protocol") ?? "udp";
    if (typeof address === "string" && typeof protocol === "string") {
      const parsed = parseSocketAddress(address);
      if (typeof parsed === "string") return;
      const key = `${protocol} ${formatSocketAddress(parsed)}`;
      const first = binds.get(key);
      if (first === undefined) binds.set(key, i);
      else c.error(`listeners[${i}].address`, `${key} is already used by listeners[${first}]`);
    }
  });

  if (
    c.errors.length > 0 || relay === undefined || admin === undefined || listeners === undefined ||
    !clustersOk
  ) return undefined;
  if (redis !== undefined && redis.url === "") {
    for (const cl of clusters) {
      if (cl.balancer === "external") c.error(`clusters.${cl.name}.balancer`, '"redis" needs [redis] url');
    }
    if (fleet !== undefined && fleet.instance !== "") c.error("fleet.instance", "a fleet needs [redis] url");
  }
  if (c.errors.length > 0 || redis === undefined || fleet === undefined) return undefined;
  return { relay, admin, redis, fleet, listeners, clusters };
}

/**
 * Validates a parsed config document (as TOML parsing yields it) into a {@link FerryConfig}, filling
 * defaults. Reports every problem at once, each with the path of the key at fault, and never throws: even a
 * hostile object (throwing getters, proxies) ends as an error, because a bad reload must not take down a
 * running relay.
 */
export function validateConfig(raw: unknown): ConfigResult {
  const c = new Checker();
  let config: FerryConfig | undefined;
  try {
    config = check(c, raw);
  } catch (e) {
    c.error("", `could not read the config: ${e instanceof Error ? e.message : String(e)}`);
    config = undefined;
  }
  if (config !== undefined && c.errors.length === 0) return { ok: true, config };
  if (c.errors.length === 0) c.error("", "invalid config");
  // Clusters are checked before listeners (listeners refer to them); report in file order instead. The
  // sort is stable, so each section keeps its own order.
  const rank = (path: string) => {
    const top = path.split(/[.[]/, 1)[0];
    return ["relay", "admin", "redis", "fleet", "listeners", "clusters"].indexOf(top) + 1;
  };
  return { ok: false, errors: [...c.errors].sort((a, b) => rank(a.path) - rank(b.path)) };
}

/**
 * Parses TOML text and validates it. A syntax error becomes a single error at path "" naming the line and
 * column, since nothing past a syntax error can be trusted to mean what its author intended.
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
  return validateConfig(raw);
}

/** Health settings in file shape; payloads written back as escaped text. */
function healthToToml(h: HealthSettings): Record<string, unknown> {
  const out: Record<string, unknown> = {
    mode: h.mode,
    interval: formatDuration(h.interval),
    timeout: formatDuration(h.timeout),
    rise: h.rise,
    fall: h.fall,
    jitter: formatDuration(h.jitter),
  };
  if (h.send !== null) out.send = encodeEscaped(h.send);
  if (h.expect?.kind === "exact") out.expect = encodeEscaped(h.expect.bytes);
  if (h.expect?.kind === "prefix") out.expect_prefix = encodeEscaped(h.expect.bytes);
  if (h.expect?.kind === "regex") out.expect_regex = h.expect.source;
  out.port = h.port;
  out.max_fails = h.maxFails;
  out.fail_timeout = formatDuration(h.failTimeout);
  out.close_flows_on_down = h.closeFlowsOnDown;
  if (h.mode === "dns" && h.dns !== undefined) {
    out.dns_name = h.dns.name === "" ? "." : h.dns.name;
    out.dns_type = dnsTypeName(h.dns.type);
    out.dns_transport = h.dns.transport;
    out.dns_accept_nxdomain = h.dns.acceptNxdomain;
  }
  return out;
}

/** A CIDR block as text; the address is kept as written (not masked) so the round trip is exact. */
function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.ip)}/${cidr.prefix}`;
}

/**
 * Writes a validated config back as TOML, every key explicit (defaults included) so what is running can be
 * read at a glance and saved as a file. `parseConfigToml(configToToml(c))` yields a config equal to `c`.
 */
export function configToToml(config: FerryConfig): string {
  const doc = {
    relay: {
      grace_period: formatDuration(config.relay.gracePeriod),
      workers: config.relay.workers,
      log_level: config.relay.logLevel,
      log_format: config.relay.logFormat,
      datapath: config.relay.datapath,
    },
    admin: { listen: formatSocketAddress(config.admin.listen), token: config.admin.token },
    redis: {
      url: config.redis.url,
      disconnect_channel: config.redis.disconnectChannel,
      timeout: formatDuration(config.redis.timeout),
    },
    fleet: {
      instance: config.fleet.instance,
      prefix: config.fleet.prefix,
      heartbeat: formatDuration(config.fleet.heartbeat),
    },
    listeners: config.listeners.map((l) => {
      const out: Record<string, unknown> = {
        name: l.name,
        protocol: l.protocol,
        address: formatSocketAddress(l.address),
        cluster: l.cluster,
        max_flows: l.maxFlows,
      };
      // Written only for UDP, because the validator refuses it on a TCP listener.
      if (l.protocol === "udp") out.max_datagram_size = l.maxDatagramSize;
      out.sources = {
        reject: [...l.sources.reject],
        deny: l.sources.deny.map(formatCidr),
        allow: l.sources.allow.map(formatCidr),
      };
      out.datapath = l.datapath;
      if (l.recvBuffer !== null) out.recv_buffer = l.recvBuffer;
      if (l.sendBuffer !== null) out.send_buffer = l.sendBuffer;
      return out;
    }),
    clusters: Object.fromEntries(config.clusters.map((cl) => [cl.name, {
      balancer: cl.balancer === "external" ? "redis" : cl.balancer,
      ...(cl.external === null ? {} : {
        redis_key: cl.external.key,
        redis_fallback: cl.external.fallback,
        redis_cache: formatDuration(cl.external.cacheMs),
      }),
      affinity: cl.affinity,
      requests: cl.requests,
      responses: cl.responses,
      front_timeout: formatDuration(cl.frontTimeout),
      back_timeout: formatDuration(cl.backTimeout),
      proxy_protocol: cl.proxyProtocol,
      hash_seed: cl.hashSeed,
      fail_open: cl.failOpen,
      maglev_table_size: cl.maglevTableSize,
      connect_timeout: formatDuration(cl.connectTimeout),
      idle_timeout: formatDuration(cl.idleTimeout),
      proxy_protocol_version: cl.proxyProtocolVersion,
      health: healthToToml(cl.health),
      backends: cl.backends.map((b) => ({
        address: formatSocketAddress(b.address),
        weight: b.weight,
        state: b.state,
      })),
    }])),
  };
  return stringify(doc);
}
