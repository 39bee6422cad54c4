/**
 * The config file, declared once. Every key of every section is here with its type, bounds, default, one
 * doc line and whether it can change while Ferry runs; everything else is derived from this declaration:
 * the validator (`check.ts`, which reads these schemas), the file-shaped TypeScript types (`Static`), the
 * defaults, the annotated reference and default config (`annotate.ts`), the JSON Schema that `ferry schema`
 * prints for editors, and the OpenAPI component schemas of the admin API.
 *
 * The schemas are TypeBox values, which are plain JSON Schema objects: the core can import them (no I/O, no
 * globals), a TOML editor can read them, and `Static<typeof X>` gives their type. Two extension keywords
 * carry what JSON Schema cannot say:
 * - `x-check`: a semantic check the validator runs after the type check (an address must parse, a size
 *   must be prime, an escaped payload must decode); editors ignore it and see the `pattern` instead.
 * - `x-restart`: a change of this key takes effect at the next start, not at a reload.
 *
 * @module
 */

import Type, { type Static, type TSchema } from "typebox";
import { BALANCER_NAMES } from "../types.ts";
import { PROTECTION_KEYS } from "./protection_schema.ts";

/** The longest timeout or duration any key accepts: one day, in ms. */
export const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000;

/** What a duration looks like to an editor ("1m30s", "500ms"); the validator reads it exactly. */
const DURATION_PATTERN = "^\\s*(\\d+(h|m|s|ms))+\\s*$|^\\s*0\\s*$";

/** Semantic checks the validator runs after the JSON type check (see `check.ts`). */
export type Check =
  | "duration"
  | "address"
  | "address-port0"
  | "cidr"
  | "escaped"
  | "hex"
  | "regex"
  | "prime"
  | "token"
  | "redis-url"
  | "bytes-hex"
  | "latin1"
  | "dns-name"
  | "dns-type";

interface KeyOptions {
  /** The one doc line: what the key does, in the words an operator reads in the reference. */
  readonly doc: string;
  /** True when a change takes effect only at the next start. */
  readonly restart?: boolean;
}

function meta(o: KeyOptions, check?: Check): Record<string, unknown> {
  return {
    description: o.doc,
    ...(o.restart ? { "x-restart": true } : {}),
    ...(check === undefined ? {} : { "x-check": check }),
  };
}

/** A duration: "500ms", "30s", "5m", "1h", "1m30s", or integer milliseconds; `min` in ms. */
function duration(def: string, o: KeyOptions & { readonly min?: number }) {
  return Type.Optional(
    Type.Union([
      Type.String({ pattern: DURATION_PATTERN }),
      Type.Integer({ minimum: 0, maximum: MAX_TIMEOUT_MS }),
    ], { default: def, ...meta(o, "duration"), ...(o.min ? { "x-min-ms": o.min } : {}) }),
  );
}

function integer(def: number, min: number, max: number, o: KeyOptions) {
  return Type.Optional(Type.Integer({ minimum: min, maximum: max, default: def, ...meta(o) }));
}

function boolean(def: boolean, o: KeyOptions) {
  return Type.Optional(Type.Boolean({ default: def, ...meta(o) }));
}

function text(def: string, o: KeyOptions, check?: Check, extra: Record<string, unknown> = {}) {
  return Type.Optional(Type.String({ default: def, ...meta(o, check), ...extra }));
}

/** One of a fixed set of strings (a JSON Schema `enum`, typed as the union of its members). */
function oneOf<const T extends readonly string[]>(options: T, extra: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ enum: [...options], ...extra });
}

function choice<const T extends readonly string[]>(options: T, def: T[number], o: KeyOptions) {
  return Type.Optional(oneOf(options, { default: def, ...meta(o) }));
}

/** An "ip:port"; IPv6 as "[::1]:53". Port 0 only where `port0` says so. */
function address(o: KeyOptions, def?: string, port0 = false) {
  const s = Type.String({
    ...(def === undefined ? {} : { default: def }),
    ...meta(o, port0 ? "address-port0" : "address"),
    examples: ["10.0.0.5:7000", "[::1]:53"],
  });
  return s;
}

const NAME = { pattern: "^[a-z0-9_-]{1,64}$" };

/** Balancers a config file may name; "redis" routes each new flow by a Redis key. */
export const FILE_BALANCERS = [...BALANCER_NAMES, "redis"] as const;
/** What a `redis` cluster falls back to. */
export const FALLBACKS = ["drop", ...BALANCER_NAMES] as const;
/** Source classes a listener can refuse. */
export const SOURCE_CLASSES = ["port0", "unspecified", "multicast", "broadcast", "loopback"] as const;
/** The data paths a UDP listener can run on. */
export const DATAPATHS = ["auto", "native", "runtime"] as const;
/** Log levels, most verbose first. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;

/** `[relay]`: process-wide settings. */
export const RelaySchema = Type.Object({
  grace_period: duration("30s", { doc: "shutdown: how long existing flows and connections may run" }),
  workers: integer(1, 1, 64, { doc: "relay workers sharing each port (SO_REUSEPORT)", restart: true }),
  log_level: choice(LOG_LEVELS, "info", { doc: "debug | info | warning | error" }),
  log_format: choice(["auto", "text", "json"] as const, "auto", {
    doc: "auto (text on a terminal, JSON lines otherwise) | text | json",
  }),
  datapath: choice(DATAPATHS, "auto", { doc: "UDP data path: auto | native | runtime" }),
}, { additionalProperties: false, description: "Process-wide settings." });

/** `[admin]`: the admin HTTP API. */
export const AdminSchema = Type.Object({
  listen: Type.Optional(address(
    { doc: "admin API ip:port; refused on a non-loopback address without a token" },
    "127.0.0.1:9901",
    true,
  )),
  token: text(
    "",
    { doc: 'bearer token for everything but /healthz and /readyz; "" = none (loopback only)' },
    "token",
  ),
}, { additionalProperties: false, description: "The admin HTTP API." });

/** `[redis]`: the connection of routing, the disconnect channel and the fleet. */
export const RedisSchema = Type.Object({
  url: text("", { doc: 'redis://host:port[/db]; "" = no Redis', restart: true }, "redis-url"),
  disconnect_channel: text("ferry:disconnect", {
    doc: 'messages ("ip:port" or "ip") close that client\'s flows; "" = none',
    restart: true,
  }),
  timeout: duration("200ms", { doc: "a routing lookup slower than this falls back", min: 1, restart: true }),
}, { additionalProperties: false, description: "The Redis connection (read at start)." });

/** `[fleet]`: relays sharing backend changes and heartbeats through Redis. */
export const FleetSchema = Type.Object({
  instance: text(
    "",
    { doc: 'this instance\'s name, unique per VM; "" = not in a fleet', restart: true },
    undefined,
    {
      pattern: "^$|^[A-Za-z0-9_.-]{1,64}$",
    },
  ),
  prefix: text("ferry:fleet", { doc: "prefix of the fleet's keys and channel", restart: true }),
  heartbeat: duration("5s", {
    doc: "heartbeat period; the key expires after three",
    min: 100,
    restart: true,
  }),
}, { additionalProperties: false, description: "The fleet (read at start)." });

/** `[records]`: one structured record per ended flow or connection (and interim ones for long flows). */
export const RecordsSchema = Type.Object({
  mode: choice(["off", "all", "sampled"] as const, "off", {
    doc: "off | all | sampled (one flow in `sample`)",
  }),
  sample: integer(100, 1, 1_000_000, { doc: 'mode = "sampled": one flow in this many, by flow id' }),
  interim: duration("0", {
    doc: "interim records of live flows this often (0 = only the final one; else >= 1s)",
  }),
  format: choice(["json", "text"] as const, "json", { doc: "json | text" }),
  file: text("", { doc: 'file to append to, rotated by size; "" = stderr' }),
  max_size: integer(100 * 1024 * 1024, 0, 2 ** 50, {
    doc: "rotate past this many bytes (0 = never; else >= 4096)",
  }),
  keep: integer(5, 0, 100, { doc: "rotated files kept (FILE.1 ... FILE.N)" }),
}, { additionalProperties: false, description: "Session records." });

/** `[listeners.sources]`: which clients a listener admits. */
export const SourcesSchema = Type.Object({
  reject: Type.Optional(Type.Array(oneOf(SOURCE_CLASSES), {
    default: ["port0", "unspecified", "multicast", "broadcast"],
    uniqueItems: true,
    ...meta({ doc: 'refused source classes (also "loopback")' }),
  })),
  deny: Type.Optional(Type.Array(Type.String(meta({ doc: "a CIDR block" }, "cidr")), {
    default: [],
    ...meta({ doc: "CIDR blocks refused" }),
  })),
  allow: Type.Optional(Type.Array(Type.String(meta({ doc: "a CIDR block" }, "cidr")), {
    default: [],
    ...meta({ doc: "if non-empty, only these CIDR blocks are admitted" }),
  })),
}, {
  additionalProperties: false,
  description: "Which clients are admitted; checked once per new flow, never per datagram.",
});

/** One `[[listeners]]` entry. */
export const ListenerSchema = Type.Object({
  name: Type.String({ ...NAME, description: "required, unique, [a-z0-9_-]+" }),
  protocol: choice(["udp", "tcp"] as const, "udp", { doc: "udp | tcp" }),
  address: address({ doc: 'required; IPv6 as "[::]:7000"' }),
  cluster: Type.String({ description: "required: a [clusters.NAME]" }),
  max_flows: integer(0, 0, 10_000_000, {
    doc: "live flows (UDP) or connections (TCP); 0 = automatic, from the open-files limit",
  }),
  max_datagram_size: integer(1500, 1, 65507, { doc: "UDP only: larger datagrams are dropped, both ways" }),
  datapath: choice(DATAPATHS, "auto", {
    doc: "UDP: auto (follows relay.datapath) | native | runtime",
  }),
  recv_buffer: Type.Optional(Type.Integer({
    minimum: 0,
    maximum: 1 << 30,
    examples: [4194304],
    ...meta({ doc: "UDP, native path: SO_RCVBUF to ask, bytes; unset = 4 MiB, 0 = kernel's" }),
  })),
  send_buffer: Type.Optional(Type.Integer({
    minimum: 0,
    maximum: 1 << 30,
    examples: [4194304],
    ...meta({ doc: "UDP, native path: SO_SNDBUF to ask, bytes; unset = 4 MiB, 0 = kernel's" }),
  })),
  sources: Type.Optional(SourcesSchema),
  ...PROTECTION_KEYS,
}, { additionalProperties: false, description: "A listening socket and where its traffic goes." });

/** One backend of a cluster. */
export const BackendSchema = Type.Object({
  address: address({ doc: "required: the backend's ip:port" }),
  weight: integer(1, 1, 1000, { doc: "relative share of new flows" }),
  state: choice(["up", "down", "draining"] as const, "up", {
    doc: "up | down (no traffic) | draining (no new flows)",
  }),
}, { additionalProperties: false, description: "A backend: address, weight, state." });

/** `[clusters.NAME.health]`: active probes and passive detection. */
export const HealthSchema = Type.Object({
  mode: choice(["off", "udp", "tcp", "dns"] as const, "off", { doc: "off | udp | tcp | dns" }),
  interval: duration("5s", { doc: "between probes of one backend, plus up to `jitter`", min: 100 }),
  timeout: duration("2s", { doc: "no reply (udp) or no connect (tcp) within this is a failure", min: 1 }),
  rise: integer(2, 1, 100, { doc: "successes in a row that bring a down backend up" }),
  fall: integer(3, 1, 100, { doc: "failures in a row that take an up backend down" }),
  jitter: duration("1s", { doc: "random extra delay, so many backends do not probe together" }),
  send: text("", {
    doc: 'probe payload (udp: required); text with \\xNN, \\n, \\r, \\t, \\0, \\\\ escapes; "" = none',
  }, "escaped"),
  send_hex: text("", { doc: 'or the payload as hex ("ffffffff54..."); "" = none' }, "hex", {
    pattern: "^\\s*(0[xX])?([0-9a-fA-F][\\s:_-]*[0-9a-fA-F][\\s:_-]*)*$",
  }),
  expect: text("", { doc: 'the reply must be exactly this (escaped text); "" = any reply' }, "escaped"),
  expect_prefix: text("", { doc: 'or start with this; "" = any reply' }, "escaped"),
  expect_regex: text("", { doc: 'or match this regex (over the reply as Latin-1); "" = any reply' }, "regex"),
  dns_name: Type.Optional(Type.String({
    examples: ["."],
    ...meta({ doc: 'mode = "dns": the name asked (default ".", the root)' }, "dns-name"),
  })),
  dns_type: Type.Optional(Type.Union([Type.String(), Type.Integer({ minimum: 1, maximum: 65535 })], {
    examples: ["NS"],
    ...meta(
      { doc: "... its type: A, AAAA, NS, SOA, MX, TXT, PTR, CNAME, SRV, ANY or 1..65535 (NS)" },
      "dns-type",
    ),
  })),
  dns_transport: Type.Optional(oneOf(["udp", "tcp"] as const, {
    examples: ["udp"],
    ...meta({ doc: "... over udp, or tcp with the two-byte length prefix (udp)" }),
  })),
  dns_accept_nxdomain: Type.Optional(Type.Boolean({
    examples: [false],
    ...meta({ doc: "... and whether NXDOMAIN counts as an answer (NOERROR always does)" }),
  })),
  port: integer(0, 0, 65535, { doc: "probe port; 0 = the backend's own" }),
  max_fails: integer(1, 0, 1000, {
    doc: "passive: this many failures within fail_timeout take a backend down; 0 = off",
  }),
  fail_timeout: duration("10s", {
    doc: "passive: the window, and how long a passively downed backend stays down",
  }),
  close_flows_on_down: boolean(false, { doc: "true: close a backend's flows when it goes down" }),
}, { additionalProperties: false, description: "Active probes and passive detection." });

/** `[clusters.NAME.sequence]`: where datagrams carry a sequence number, for sequence-aware loss. */
export const SequenceSchema = Type.Object({
  offset: integer(0, 0, 65_531, { doc: "byte offset of the number in the payload, as the client sent it" }),
  size: Type.Optional(Type.Union([Type.Literal(1), Type.Literal(2), Type.Literal(4)], {
    default: 2,
    ...meta({ doc: "its width in bytes, big-endian: 1, 2 or 4 (RTP: offset 2, size 2)" }),
  })),
}, {
  additionalProperties: false,
  // Absent = not read: the table's presence is the switch, so the checker does not fill it in.
  "x-presence": true,
  description: "Sequence numbers in both directions: loss, reordering, duplicates (absent = off).",
});

/** One `[clusters.NAME]` table. */
export const ClusterSchema = Type.Object({
  balancer: choice(FILE_BALANCERS, "round_robin", {
    doc: `${FILE_BALANCERS.join(" | ")}`,
  }),
  redis_key: Type.Optional(Type.String({
    examples: ["udp_gate:backend"],
    ...meta({ doc: 'balancer = "redis": key holding the backend (default "ferry:backend:<cluster>")' }),
  })),
  redis_fallback: Type.Optional(oneOf(FALLBACKS, {
    examples: ["maglev"],
    ...meta({ doc: 'balancer = "redis": no usable answer: balance over backends, or "drop" (default)' }),
  })),
  redis_cache: Type.Optional(Type.Union(
    [
      Type.String({ pattern: DURATION_PATTERN }),
      Type.Integer({ minimum: 0, maximum: MAX_TIMEOUT_MS }),
    ],
    meta(
      { doc: 'balancer = "redis": reuse an answer this long (default 0: one GET per new flow)' },
      "duration",
    ),
  )),
  affinity: choice(["ip_port", "ip"] as const, "ip_port", {
    doc: "ip_port | ip (every port of one client IP goes to the same backend)",
  }),
  requests: integer(0, 0, 0xffff_ffff, { doc: "close a flow after N client datagrams (0 = unlimited)" }),
  responses: integer(0, 0, 0xffff_ffff, {
    doc: "close a flow after N backend replies (0 = unlimited; DNS: 1)",
  }),
  reuse_upstream: boolean(true, {
    doc: "native UDP: a flow closed by `responses` lends its socket to a later one",
  }),
  front_timeout: duration("60s", { doc: "idle deadline reset by each client datagram (0 = none)" }),
  back_timeout: duration("60s", { doc: "idle deadline reset by each backend reply (0 = none; not both 0)" }),
  proxy_protocol: choice(["off", "first", "every"] as const, "off", {
    doc: "off | first | every (UDP: PROXY v2 on the first or every datagram)",
  }),
  hash_seed: integer(0, 0, 0xffff_ffff, {
    doc: "maglev and rendezvous: equal seeds, equal choices everywhere",
  }),
  fail_open: boolean(true, { doc: "all backends down: true = use them anyway (counted), false = drop" }),
  maglev_table_size: Type.Optional(Type.Integer({
    minimum: 3,
    maximum: 1_000_003,
    default: 65537,
    ...meta({ doc: "maglev lookup table size; a prime" }, "prime"),
  })),
  connect_timeout: duration("5s", { doc: "TCP: backend connect timeout", min: 1 }),
  idle_timeout: duration("10m", { doc: "TCP: idle both ways this long closes the connection (0 = never)" }),
  proxy_protocol_version: Type.Optional(Type.Union([Type.Literal(1), Type.Literal(2)], {
    default: 2,
    ...meta({ doc: 'TCP: 1 (text) or 2 (binary) when proxy_protocol is not "off"' }),
  })),
  health: Type.Optional(HealthSchema),
  sequence: Type.Optional(SequenceSchema),
  backends: Type.Optional(
    Type.Array(BackendSchema, { default: [], ...meta({ doc: "the cluster's backends" }) }),
  ),
}, { additionalProperties: false, description: "A group of backends and the knobs of its flows." });

/** The whole config file. */
export const ConfigSchema = Type.Object({
  relay: Type.Optional(RelaySchema),
  admin: Type.Optional(AdminSchema),
  redis: Type.Optional(RedisSchema),
  fleet: Type.Optional(FleetSchema),
  records: Type.Optional(RecordsSchema),
  listeners: Type.Optional(Type.Array(ListenerSchema, { default: [] })),
  clusters: Type.Optional(
    Type.Record(Type.String(NAME), ClusterSchema, { default: {}, additionalProperties: false }),
  ),
}, { additionalProperties: false, title: "Ferry configuration (ferry.toml)" });

/** A config file as parsed (every key optional where it has a default). */
export type RawConfigFile = Static<typeof ConfigSchema>;
/** A `[[listeners]]` entry as written in a file. */
export type RawListener = Static<typeof ListenerSchema>;
/** A `[clusters.NAME]` table as written in a file. */
export type RawCluster = Static<typeof ClusterSchema>;
/** A backend as written in a file. */
export type RawBackend = Static<typeof BackendSchema>;
/** A `[clusters.NAME.health]` table as written in a file. */
export type RawHealth = Static<typeof HealthSchema>;

/** The sections of the file, in the order a file and the reference list them. */
export const SECTIONS = ["relay", "admin", "redis", "fleet", "records", "listeners", "clusters"] as const;

/** Any schema of the declaration (re-exported so the walkers need not import TypeBox themselves). */
export type Schema = TSchema;
