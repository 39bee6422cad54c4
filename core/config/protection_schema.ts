/**
 * A listener's edge-protection tables, declared like every other key: `[listeners.limits]` (per-source
 * token buckets), `[listeners.filter]` (the first-datagram rule, with `[[listeners.filter.match]]`),
 * `[listeners.amplification]` (the reply-size guard) and `kernel_filter`. Each table is off while absent
 * (`x-presence`), so writing one is what turns it on; the rules across keys and the build of
 * {@link ProtectionConfig} are here too.
 *
 * @module
 */

import Type, { type Static } from "typebox";
import { type BytesAt, type FirstDatagramRule, parseHex } from "../first_datagram_filter.ts";
import type { ProtectionConfig } from "../protection.ts";
import type { Problems } from "./check.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import type { Filled } from "./build.ts";

const MAX_MS = 24 * 3_600_000;
const durationValue = (def: string, doc: string) =>
  Type.Optional(Type.Union([
    Type.String({ pattern: "^\\s*(\\d+(h|m|s|ms))+\\s*$|^\\s*0\\s*$" }),
    Type.Integer({ minimum: 0, maximum: MAX_MS }),
  ], { default: def, description: doc, "x-check": "duration" }));
const rate = (doc: string) =>
  Type.Optional(Type.Number({ minimum: 0, maximum: 1e12, default: 0, description: doc }));
const int = (def: number, min: number, max: number, doc: string) =>
  Type.Optional(Type.Integer({ minimum: min, maximum: max, default: def, description: doc }));

/** `[listeners.limits]`: token buckets per source IP and per prefix, checked before a flow is allocated. */
export const LimitsSchema = Type.Object({
  new_flows_per_ip: rate("new flows per second per source IP; 0 = no limit"),
  datagrams_per_ip: rate("datagrams per second per source IP (established flows too); 0 = no limit"),
  bytes_per_ip: rate("bytes per second per source IP; 0 = no limit"),
  new_flows_per_prefix: rate("new flows per second per source prefix; 0 = no limit"),
  datagrams_per_prefix: rate("datagrams per second per source prefix; 0 = no limit"),
  bytes_per_prefix: rate("bytes per second per source prefix; 0 = no limit"),
  burst: durationValue("1s", "a bucket holds this much of its rate (at least one unit)"),
  prefix_v4: int(24, 0, 32, "IPv4 prefix length the per-prefix buckets group sources by"),
  prefix_v6: int(64, 0, 128, "IPv6 prefix length the per-prefix buckets group sources by"),
  table_size: int(65_536, 4, 1 << 24, "bucket table entries (fixed memory; rounded up to a power of two)"),
  ban_after: durationValue("0", "a source over a limit this long is banned; 0 = never"),
  ban_for: durationValue("10m", "how long an automatic ban lasts"),
}, {
  additionalProperties: false,
  "x-presence": true,
  description: "Per-source limits (absent = off): over a limit is a counted drop, never an allocation.",
});

/** One `[[listeners.filter.match]]`: bytes the first datagram must hold at an offset. */
export const MatchSchema = Type.Object({
  offset: int(0, 0, 65_535, "byte offset in the datagram"),
  hex: Type.Optional(Type.String({ description: 'the bytes as hex ("ffffffff")', "x-check": "bytes-hex" })),
  prefix: Type.Optional(Type.String({ description: "or as Latin-1 text", "x-check": "latin1" })),
  mask: Type.Optional(
    Type.String({ description: "bits that must match, hex, as long as the bytes", "x-check": "bytes-hex" }),
  ),
}, { additionalProperties: false, description: "Bytes at an offset: exactly one of hex and prefix." });

/** `[listeners.filter]`: a new flow is admitted only if its first datagram matches (UDP). */
export const FilterSchema = Type.Object({
  min_length: int(0, 0, 65_535, "shortest first datagram admitted"),
  max_length: int(0, 0, 65_535, "longest first datagram admitted; 0 = no bound"),
  match: Type.Optional(
    Type.Array(MatchSchema, { default: [], description: "byte rules; every one must hold" }),
  ),
  regex: Type.Optional(
    Type.String({
      default: "",
      description: 'over the first 512 bytes as Latin-1; "" = none',
      "x-check": "regex",
    }),
  ),
  all_datagrams: Type.Optional(Type.Boolean({
    default: false,
    description: "the rule holds for every datagram: the kernel filter may check them all",
  })),
}, {
  additionalProperties: false,
  "x-presence": true,
  description: "First-datagram filter (absent = off; UDP): others drop as filtered, nothing allocated.",
});

/** `[listeners.amplification]`: replies capped until a flow has sent enough (UDP). */
export const AmplificationSchema = Type.Object({
  ratio: Type.Optional(Type.Number({
    minimum: 0,
    maximum: 1e6,
    default: 3,
    description: "reply bytes may reach this × the bytes received",
  })),
  datagrams: int(3, 1, 1_000_000, "until the flow has sent this many datagrams"),
}, {
  additionalProperties: false,
  "x-presence": true,
  description: "Amplification guard (absent = off; UDP): the relay must not reflect an amplifying backend.",
});

/** The protection keys of a `[[listeners]]` entry. */
export const PROTECTION_KEYS = {
  limits: Type.Optional(LimitsSchema),
  filter: Type.Optional(FilterSchema),
  amplification: Type.Optional(AmplificationSchema),
  kernel_filter: Type.Optional(Type.Boolean({
    description: "native path: refuse denied, banned and filtered sources in the kernel (default true)",
  })),
};

type Raw = Filled<{
  limits?: Static<typeof LimitsSchema>;
  filter?: Static<typeof FilterSchema>;
  amplification?: Static<typeof AmplificationSchema>;
  kernel_filter?: boolean;
}>;

const ms = (d: string | number): number => (typeof d === "number" ? d : parseDuration(d) as number);
const latin1 = (text: string) => Uint8Array.from(text, (ch) => ch.charCodeAt(0));

/** The match rules, checking the rules across their keys (one of hex and prefix; mask length). */
function matches(p: Problems, list: Raw["filter"]["match"], path: string): BytesAt[] | undefined {
  const out: BytesAt[] = [];
  let ok = true;
  list.forEach((m, i) => {
    const at = `${path}.match[${i}]`;
    if ((m.hex === undefined) === (m.prefix === undefined)) {
      p.add(at, 'give exactly one of `hex` ("ffff") or `prefix` (Latin-1 text)');
      ok = false;
      return;
    }
    const bytes = m.hex !== undefined ? parseHex(m.hex) as Uint8Array : latin1(m.prefix as string);
    const mask = m.mask === undefined ? null : parseHex(m.mask) as Uint8Array;
    if (mask !== null && mask.length !== bytes.length) {
      p.add(`${at}.mask`, "must be as long as the bytes");
      ok = false;
      return;
    }
    out.push({ offset: m.offset, bytes, mask });
  });
  return ok ? out : undefined;
}

/** A listener's protection from its checked keys; undefined when none is given, null on an error. */
export function buildProtection(
  p: Problems,
  l: Raw,
  protocol: "udp" | "tcp",
  path: string,
): ProtectionConfig | undefined | null {
  let ok = true;
  for (const key of ["filter", "amplification"] as const) {
    if (protocol === "tcp" && l[key] !== undefined) {
      p.add(`${path}.${key}`, "only applies to udp listeners");
      ok = false;
    }
  }
  const f = l.filter;
  let filter: FirstDatagramRule | null = null;
  if (f !== undefined) {
    if (f.max_length > 0 && f.max_length < f.min_length) {
      p.add(`${path}.filter.max_length`, "is below min_length");
      ok = false;
    }
    const match = matches(p, f.match, `${path}.filter`);
    if (match === undefined) ok = false;
    else {
      filter = {
        minLength: f.min_length,
        maxLength: f.max_length,
        match,
        regex: f.regex,
        ...(f.all_datagrams ? { allDatagrams: true } : {}),
      };
    }
  }
  if (!ok) return null;
  const t = l.limits;
  const limits = t === undefined ? null : {
    perIp: { newFlows: t.new_flows_per_ip, datagrams: t.datagrams_per_ip, bytes: t.bytes_per_ip },
    perPrefix: {
      newFlows: t.new_flows_per_prefix,
      datagrams: t.datagrams_per_prefix,
      bytes: t.bytes_per_prefix,
    },
    burstMs: ms(t.burst),
    prefixV4: t.prefix_v4,
    prefixV6: t.prefix_v6,
    tableSize: t.table_size,
    banAfterMs: ms(t.ban_after),
    banForMs: ms(t.ban_for),
  };
  const amplification = l.amplification === undefined
    ? null
    : { ratio: l.amplification.ratio, datagrams: l.amplification.datagrams };
  if (limits === null && filter === null && amplification === null && l.kernel_filter === undefined) {
    return undefined;
  }
  return {
    limits,
    filter,
    amplification,
    ...(l.kernel_filter === undefined ? {} : { kernelFilter: l.kernel_filter }),
  };
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** The file-shaped tables of a protection config (only the parts that are on). */
export function protectionToRaw(pc: ProtectionConfig | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (pc === undefined) return out;
  const l = pc.limits;
  if (l !== null) {
    out.limits = {
      new_flows_per_ip: l.perIp.newFlows,
      datagrams_per_ip: l.perIp.datagrams,
      bytes_per_ip: l.perIp.bytes,
      new_flows_per_prefix: l.perPrefix.newFlows,
      datagrams_per_prefix: l.perPrefix.datagrams,
      bytes_per_prefix: l.perPrefix.bytes,
      burst: formatDuration(l.burstMs),
      prefix_v4: l.prefixV4,
      prefix_v6: l.prefixV6,
      table_size: l.tableSize,
      ban_after: formatDuration(l.banAfterMs),
      ban_for: formatDuration(l.banForMs),
    };
  }
  const f = pc.filter;
  if (f !== null) {
    out.filter = {
      min_length: f.minLength,
      max_length: f.maxLength,
      all_datagrams: f.allDatagrams === true,
      regex: f.regex,
      match: f.match.map((m) => ({
        offset: m.offset,
        hex: hex(m.bytes),
        ...(m.mask === null ? {} : { mask: hex(m.mask) }),
      })),
    };
  }
  if (pc.amplification !== null) out.amplification = { ...pc.amplification };
  if (pc.kernelFilter !== undefined) out.kernel_filter = pc.kernelFilter;
  return out;
}
