/**
 * Reading and writing a listener's protection tables: `[listeners.limits]`, `[listeners.filter]` and
 * `[listeners.amplification]`. Kept apart from core/config.ts so the config model can adopt these blocks as
 * declarations; every key, its default and bounds are declared once, here.
 *
 * Pure.
 *
 * @module
 */

import { type BytesAt, checkRegex, type FirstDatagramRule, parseHex } from "./first_datagram_filter.ts";
import type { AmplificationConfig, LimitsConfig, ProtectionConfig } from "./protection.ts";

/** How a problem is reported: the config checker's `error(path, message)`. */
export type ReportError = (path: string, message: string) => void;

/** Keys of `[listeners.limits]`. */
export const LIMITS_KEYS = [
  "new_flows_per_ip",
  "datagrams_per_ip",
  "bytes_per_ip",
  "new_flows_per_prefix",
  "datagrams_per_prefix",
  "bytes_per_prefix",
  "burst",
  "prefix_v4",
  "prefix_v6",
  "table_size",
  "ban_after",
  "ban_for",
] as const;
/** Keys of `[listeners.filter]` and of each `[[listeners.filter.match]]`. */
export const FILTER_KEYS = ["min_length", "max_length", "match", "regex", "all_datagrams"] as const;
const MATCH_KEYS = ["offset", "hex", "prefix", "mask"] as const;
/** Keys of `[listeners.amplification]`. */
export const AMPLIFICATION_KEYS = ["ratio", "datagrams"] as const;

/** Defaults of the limits table. */
export const LIMITS_DEFAULTS = {
  burstMs: 1000,
  prefixV4: 24,
  prefixV6: 64,
  tableSize: 65_536,
  banAfterMs: 0,
  banForMs: 600_000,
} as const;
const MAX_RATE = 1e12;
const MAX_TABLE = 1 << 24;
const MAX_MS = 24 * 3_600_000;

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function own(t: Table, k: string): unknown {
  return Object.prototype.hasOwnProperty.call(t, k) ? t[k] : undefined;
}

function unknownKeys(t: Table, path: string, known: readonly string[], error: ReportError): void {
  for (const k of Object.keys(t)) {
    if (!known.includes(k)) error(`${path}.${k}`, `unknown key \`${k}\` (known keys: ${known.join(", ")})`);
  }
}

function num(
  t: Table,
  key: string,
  path: string,
  fallback: number,
  min: number,
  max: number,
  error: ReportError,
  integer = true,
): number {
  const v = own(t, key);
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    error(`${path}.${key}`, `expected ${integer ? "an integer" : "a number"}, got ${JSON.stringify(v)}`);
    return fallback;
  }
  if (v < min || v > max) {
    error(`${path}.${key}`, `${v} is out of range (${min}..${max})`);
    return fallback;
  }
  return v;
}

/** config.ts's duration reader ("500ms", "1m30s" → ms, or why not), passed in so it is declared once. */
export type ParseDuration = (text: string) => number | string;

/** A duration string or integer milliseconds, within 0..24h. */
function duration(
  t: Table,
  key: string,
  path: string,
  fallback: number,
  error: ReportError,
  parse: ParseDuration,
): number {
  const v = own(t, key);
  if (v === undefined) return fallback;
  const ms = typeof v === "number" && Number.isInteger(v) ? v : typeof v === "string" ? parse(v) : NaN;
  if (typeof ms === "string") {
    error(`${path}.${key}`, ms);
    return fallback;
  }
  if (!(ms >= 0 && ms <= MAX_MS)) {
    error(
      `${path}.${key}`,
      `expected a duration ("10s") or integer milliseconds within 24h, got ${JSON.stringify(v)}`,
    );
    return fallback;
  }
  return ms;
}

function sub(value: unknown, path: string, error: ReportError): Table | null {
  if (value === undefined) return null;
  if (!isTable(value)) {
    error(path, `expected a table, got ${JSON.stringify(value)}`);
    return null;
  }
  return value;
}

/** Reads `[listeners.limits]`; null when absent. */
export function checkLimits(
  value: unknown,
  path: string,
  error: ReportError,
  parse: ParseDuration,
): LimitsConfig | null {
  const t = sub(value, path, error);
  if (t === null) return null;
  unknownKeys(t, path, LIMITS_KEYS, error);
  const rate = (k: string) => num(t, k, path, 0, 0, MAX_RATE, error, false);
  const d = LIMITS_DEFAULTS;
  return {
    perIp: {
      newFlows: rate("new_flows_per_ip"),
      datagrams: rate("datagrams_per_ip"),
      bytes: rate("bytes_per_ip"),
    },
    perPrefix: {
      newFlows: rate("new_flows_per_prefix"),
      datagrams: rate("datagrams_per_prefix"),
      bytes: rate("bytes_per_prefix"),
    },
    burstMs: duration(t, "burst", path, d.burstMs, error, parse),
    prefixV4: num(t, "prefix_v4", path, d.prefixV4, 0, 32, error),
    prefixV6: num(t, "prefix_v6", path, d.prefixV6, 0, 128, error),
    tableSize: num(t, "table_size", path, d.tableSize, 4, MAX_TABLE, error),
    banAfterMs: duration(t, "ban_after", path, d.banAfterMs, error, parse),
    banForMs: duration(t, "ban_for", path, d.banForMs, error, parse),
  };
}

function isLatin1(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return false;
  return true;
}

function checkMatch(value: unknown, path: string, error: ReportError): BytesAt | null {
  if (!isTable(value)) {
    error(path, `expected a table, got ${JSON.stringify(value)}`);
    return null;
  }
  unknownKeys(value, path, MATCH_KEYS, error);
  const offset = num(value, "offset", path, 0, 0, 65_535, error);
  const hex = own(value, "hex"), prefix = own(value, "prefix");
  let bytes: Uint8Array | null = null;
  if ((hex === undefined) === (prefix === undefined)) {
    error(path, 'give exactly one of `hex` ("ffff") or `prefix` (Latin-1 text)');
  } else if (hex !== undefined) {
    const b = typeof hex === "string" ? parseHex(hex) : "expected a hex string";
    if (typeof b === "string") error(`${path}.hex`, b);
    else bytes = b;
  } else if (typeof prefix !== "string" || prefix === "" || !isLatin1(prefix)) {
    error(`${path}.prefix`, "expected a non-empty Latin-1 string");
  } else bytes = Uint8Array.from(prefix, (ch) => ch.charCodeAt(0));
  let mask: Uint8Array | null = null;
  const rawMask = own(value, "mask");
  if (rawMask !== undefined) {
    const m = typeof rawMask === "string" ? parseHex(rawMask) : "expected a hex string";
    if (typeof m === "string") error(`${path}.mask`, m);
    else if (bytes !== null && m.length !== bytes.length) {
      error(`${path}.mask`, "must be as long as the bytes");
    } else mask = m;
  }
  return bytes === null ? null : { offset, bytes, mask };
}

/** Reads `[listeners.filter]`; null when absent. */
export function checkFilter(value: unknown, path: string, error: ReportError): FirstDatagramRule | null {
  const t = sub(value, path, error);
  if (t === null) return null;
  unknownKeys(t, path, FILTER_KEYS, error);
  const minLength = num(t, "min_length", path, 0, 0, 65_535, error);
  const maxLength = num(t, "max_length", path, 0, 0, 65_535, error);
  if (maxLength > 0 && maxLength < minLength) error(`${path}.max_length`, "is below min_length");
  const raw = own(t, "match");
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  const match: BytesAt[] = [];
  list.forEach((m, i) => {
    const r = checkMatch(m, `${path}.match[${i}]`, error);
    if (r !== null) match.push(r);
  });
  const regexRaw = own(t, "regex");
  let regex = "";
  if (regexRaw !== undefined) {
    const problem = typeof regexRaw === "string" ? checkRegex(regexRaw) : "expected a string";
    if (problem !== null) error(`${path}.regex`, problem);
    else regex = regexRaw as string;
  }
  const all = own(t, "all_datagrams");
  if (all !== undefined && typeof all !== "boolean") error(`${path}.all_datagrams`, "expected true or false");
  return { minLength, maxLength, match, regex, ...(all === true ? { allDatagrams: true } : {}) };
}

/** Reads `[listeners.amplification]`; null when absent. */
export function checkAmplification(
  value: unknown,
  path: string,
  error: ReportError,
): AmplificationConfig | null {
  const t = sub(value, path, error);
  if (t === null) return null;
  unknownKeys(t, path, AMPLIFICATION_KEYS, error);
  return {
    ratio: num(t, "ratio", path, 3, 0, 1_000_000, error, false),
    datagrams: num(t, "datagrams", path, 3, 1, 1_000_000, error),
  };
}

/** Reads all three tables of a listener table `listener` at `path`; undefined when none is given. */
export function checkProtection(
  listener: Table,
  path: string,
  error: ReportError,
  parse: ParseDuration,
): ProtectionConfig | undefined {
  const limits = checkLimits(own(listener, "limits"), `${path}.limits`, error, parse);
  const filter = checkFilter(own(listener, "filter"), `${path}.filter`, error);
  const amplification = checkAmplification(own(listener, "amplification"), `${path}.amplification`, error);
  const kernel = own(listener, "kernel_filter");
  if (kernel !== undefined && typeof kernel !== "boolean") {
    error(`${path}.kernel_filter`, "expected true or false");
  }
  const kernelFilter = typeof kernel === "boolean" ? { kernelFilter: kernel } : {};
  if (limits === null && filter === null && amplification === null && kernel === undefined) return undefined;
  return { limits, filter, amplification, ...kernelFilter };
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The TOML tables of a protection config (only the parts that are on), for configToToml. */
export function protectionToToml(p: ProtectionConfig | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (p === undefined) return out;
  const l = p.limits;
  if (l !== null) {
    out.limits = {
      new_flows_per_ip: l.perIp.newFlows,
      datagrams_per_ip: l.perIp.datagrams,
      bytes_per_ip: l.perIp.bytes,
      new_flows_per_prefix: l.perPrefix.newFlows,
      datagrams_per_prefix: l.perPrefix.datagrams,
      bytes_per_prefix: l.perPrefix.bytes,
      burst: l.burstMs,
      prefix_v4: l.prefixV4,
      prefix_v6: l.prefixV6,
      table_size: l.tableSize,
      ban_after: l.banAfterMs,
      ban_for: l.banForMs,
    };
  }
  const f = p.filter;
  if (f !== null) {
    out.filter = {
      min_length: f.minLength,
      max_length: f.maxLength,
      ...(f.allDatagrams === true ? { all_datagrams: true } : {}),
      ...(f.regex === "" ? {} : { regex: f.regex }),
      ...(f.match.length === 0 ? {} : {
        match: f.match.map((m) => ({
          offset: m.offset,
          hex: hex(m.bytes),
          ...(m.mask === null ? {} : { mask: hex(m.mask) }),
        })),
      }),
    };
  }
  if (p.amplification !== null) out.amplification = { ...p.amplification };
  if (p.kernelFilter !== undefined) out.kernel_filter = p.kernelFilter;
  return out;
}
