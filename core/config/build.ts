/**
 * The validator's second pass: a document whose keys all passed `check.ts` (defaults filled in) becomes
 * the {@link FerryConfig} the core runs on, and the rules that span keys are checked here — the only
 * validation that is written by hand, because no schema keyword says "not both 0".
 *
 * @module
 */

import { formatSocketAddress, parseCidr, parseSocketAddress, type SocketAddress } from "../address.ts";
import { checkAdminBinding } from "../admin_binding.ts";
import { decodeEscaped, decodeHex, type HealthExpect, type HealthSettings } from "../health.ts";
import type {
  BackendConfig,
  BalancerKind,
  ClusterConfig,
  ExternalRouting,
  FerryConfig,
  ListenerConfig,
} from "../types.ts";
import { checkValue, type Problems, unknownKeys } from "./check.ts";
import { DEFAULT_DNS_PROBE, type DnsProbeSettings, normalizeDnsName, parseDnsType } from "../dns_message.ts";
import { buildProtection } from "./protection_schema.ts";
import { parseDuration } from "./duration.ts";
import {
  AdminSchema,
  ClusterSchema,
  ConfigSchema,
  FleetSchema,
  ListenerSchema,
  type RawBackend,
  type RawCluster,
  type RawConfigFile,
  type RawHealth,
  type RawListener,
  RecordsSchema,
  RedisSchema,
  RelaySchema,
  type Schema,
} from "./schema.ts";
import { describe, isTable, join, own, quote, suggest } from "./words.ts";
import { checkTcpCluster } from "./tcp_rules.ts";

/** `T` with every optional key present (the checker filled in the defaults); optional-without-default stay. */
export type Filled<T> = T extends readonly (infer E)[] ? Filled<E>[]
  : T extends Record<string, unknown> ? { [K in keyof T]-?: Filled<Exclude<T[K], undefined>> }
  : T;

const ms = (d: string | number): number => (typeof d === "number" ? d : parseDuration(d) as number);
const addr = (text: string): SocketAddress => parseSocketAddress(text) as SocketAddress;
/** A payload key: "" means unset, like an absent key. */
const bytes = (text: string, decode: (s: string) => Uint8Array | string) =>
  text === "" ? null : decode(text) as Uint8Array;

function buildHealth(p: Problems, h: Filled<RawHealth>, path: string): HealthSettings | undefined {
  let ok = true;
  const send = bytes(h.send, decodeEscaped);
  const sendHex = bytes(h.send_hex, decodeHex);
  if (send !== null && sendHex !== null) {
    p.add(`${path}.send_hex`, "give either send or send_hex, not both");
    ok = false;
  }
  const payload = send ?? sendHex;
  if (h.mode === "udp" && payload === null) {
    p.add(`${path}.send`, "a udp health check needs a payload to send (send or send_hex)");
    ok = false;
  }
  const given = [h.expect, h.expect_prefix, h.expect_regex].filter((x) => x !== "").length;
  if (given > 1) {
    p.add(path, "give at most one of expect, expect_prefix and expect_regex");
    ok = false;
  }
  let expect: HealthExpect | null = null;
  if (h.expect !== "") expect = { kind: "exact", bytes: decodeEscaped(h.expect) as Uint8Array };
  if (h.expect_prefix !== "") {
    expect = { kind: "prefix", bytes: decodeEscaped(h.expect_prefix) as Uint8Array };
  }
  if (h.expect_regex !== "") expect = { kind: "regex", source: h.expect_regex };
  const dnsKeys = (["dns_name", "dns_type", "dns_transport", "dns_accept_nxdomain"] as const)
    .filter((k) => h[k] !== undefined);
  let dns: DnsProbeSettings | undefined;
  if (h.mode !== "dns") {
    for (const k of dnsKeys) p.add(`${path}.${k}`, 'only for mode = "dns"');
    if (dnsKeys.length > 0) ok = false;
  } else {
    if (payload !== null || given > 0) {
      p.add(path, 'mode = "dns" builds its own query and checks the reply: no send or expect keys');
      ok = false;
    }
    const d = DEFAULT_DNS_PROBE;
    dns = {
      name: h.dns_name === undefined ? d.name : (normalizeDnsName(h.dns_name) as { name: string }).name,
      type: h.dns_type === undefined ? d.type : parseDnsType(h.dns_type) as number,
      transport: h.dns_transport ?? d.transport,
      acceptNxdomain: h.dns_accept_nxdomain ?? d.acceptNxdomain,
    };
  }
  const failTimeout = ms(h.fail_timeout);
  if (failTimeout === 0 && h.max_fails > 0) {
    p.add(`${path}.fail_timeout`, "must be more than 0 while max_fails is above 0");
    ok = false;
  }
  if (!ok) return undefined;
  return {
    mode: h.mode,
    interval: ms(h.interval),
    timeout: ms(h.timeout),
    rise: h.rise,
    fall: h.fall,
    jitter: ms(h.jitter),
    send: payload,
    expect,
    port: h.port,
    maxFails: h.max_fails,
    failTimeout,
    closeFlowsOnDown: h.close_flows_on_down,
    ...(dns === undefined ? {} : { dns }),
  };
}

/** The routing keys of a `balancer = "redis"` cluster (null for any other balancer). */
function buildExternal(
  p: Problems,
  name: string,
  c: Filled<RawCluster>,
  path: string,
): ExternalRouting | null | undefined {
  if (c.balancer !== "redis") {
    let ok = true;
    for (const key of ["redis_key", "redis_fallback", "redis_cache"]) {
      if (own(c, key) !== undefined) {
        p.add(`${path}.${key}`, 'only applies to balancer = "redis"');
        ok = false;
      }
    }
    return ok ? null : undefined;
  }
  const key = c.redis_key ?? `ferry:backend:${name}`;
  if (key === "") {
    p.add(`${path}.redis_key`, "must not be empty");
    return undefined;
  }
  return {
    key,
    fallback: c.redis_fallback ?? "drop",
    cacheMs: c.redis_cache === undefined ? 0 : ms(c.redis_cache),
  };
}

function buildCluster(p: Problems, name: string, c: Filled<RawCluster>): ClusterConfig | undefined {
  const path = `clusters.${name}`;
  let ok = true;
  const frontTimeout = ms(c.front_timeout), backTimeout = ms(c.back_timeout);
  if (frontTimeout === 0 && backTimeout === 0) {
    p.add(path, "front_timeout and back_timeout are both 0: a flow would never expire");
    ok = false;
  }
  const seen = new Map<string, number>();
  const backends: BackendConfig[] = c.backends.map((b: Filled<RawBackend>, i: number) => {
    const address = addr(b.address);
    const key = formatSocketAddress(address);
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else {
      p.add(`${path}.backends[${i}].address`, `duplicate backend ${key} (also backends[${first}])`);
      ok = false;
    }
    return { address, weight: b.weight, state: b.state };
  });
  if (c.balancer === "maglev" && backends.length > c.maglev_table_size) {
    p.add(
      `${path}.maglev_table_size`,
      `${c.maglev_table_size} slots cannot hold ${backends.length} backends; use a larger prime`,
    );
    ok = false;
  }
  const health = buildHealth(p, c.health, `${path}.health`);
  const external = buildExternal(p, name, c, path);
  if (!ok || health === undefined || external === undefined) return undefined;
  // A file's "redis" is the core's "external": the shell resolves each new flow's backend.
  const balancer: BalancerKind = c.balancer === "redis" ? "external" : c.balancer;
  return {
    name,
    balancer,
    affinity: c.affinity,
    requests: c.requests,
    responses: c.responses,
    reuseUpstream: c.reuse_upstream,
    frontTimeout,
    backTimeout,
    proxyProtocol: c.proxy_protocol,
    hashSeed: c.hash_seed,
    failOpen: c.fail_open,
    maglevTableSize: c.maglev_table_size,
    connectTimeout: ms(c.connect_timeout),
    idleTimeout: ms(c.idle_timeout),
    proxyProtocolVersion: c.proxy_protocol_version,
    health,
    // Only when set, so a cluster without one reads as it always did.
    ...(c.sequence === undefined ? {} : { sequence: { offset: c.sequence.offset, size: c.sequence.size } }),
    external,
    backends,
  };
}

function buildListener(
  p: Problems,
  l: Filled<RawListener>,
  path: string,
  given: Record<string, unknown>,
): ListenerConfig | undefined {
  let ok = true;
  if (l.protocol === "tcp") {
    // TCP is a byte stream: datagram and UDP socket keys there would be silently meaningless.
    for (const key of ["max_datagram_size", "recv_buffer", "send_buffer"]) {
      if (own(given, key) !== undefined) {
        p.add(`${path}.${key}`, "only applies to udp listeners");
        ok = false;
      }
    }
  }
  const protection = buildProtection(p, l, l.protocol, path);
  if (!ok || protection === null) return undefined;
  return {
    ...(protection === undefined ? {} : { protection }),
    name: l.name,
    protocol: l.protocol,
    address: addr(l.address),
    cluster: l.cluster,
    maxFlows: l.max_flows,
    maxDatagramSize: l.max_datagram_size,
    sources: {
      reject: l.sources.reject,
      deny: l.sources.deny.map((c) => parseCidr(c) as Exclude<ReturnType<typeof parseCidr>, string>),
      allow: l.sources.allow.map((c) => parseCidr(c) as Exclude<ReturnType<typeof parseCidr>, string>),
    },
    datapath: l.datapath,
    recvBuffer: l.recv_buffer ?? null,
    sendBuffer: l.send_buffer ?? null,
  };
}

/**
 * Rules over listeners as written (before their own checks), so a duplicate is reported even when other
 * keys of the same entry are bad: unique names, and one socket per protocol and address — including the
 * admin API's own TCP address.
 */
function checkBindings(
  p: Problems,
  raw: Record<string, unknown>,
  adminListen: SocketAddress | undefined,
): void {
  const listeners = Array.isArray(own(raw, "listeners")) ? own(raw, "listeners") as unknown[] : [];
  const names = new Map<string, number>();
  const sockets: { protocol: string; address: SocketAddress; who: string }[] = [];
  if (adminListen !== undefined && adminListen.port !== 0) {
    sockets.push({ protocol: "tcp", address: adminListen, who: "admin.listen" });
  }
  listeners.forEach((l, i) => {
    if (typeof l !== "object" || l === null || Array.isArray(l)) return;
    const t = l as Record<string, unknown>;
    const name = own(t, "name");
    if (typeof name === "string") {
      const first = names.get(name);
      if (first === undefined) names.set(name, i);
      else p.add(`listeners[${i}].name`, `duplicate listener name "${name}" (also listeners[${first}])`);
    }
    const address = own(t, "address");
    const protocol = own(t, "protocol") ?? "udp";
    if (typeof address !== "string" || typeof protocol !== "string") return;
    const parsed = parseSocketAddress(address);
    if (typeof parsed === "string") return;
    const clash = sockets.find((s) => s.protocol === protocol && overlaps(s.address, parsed));
    const key = `${protocol} ${formatSocketAddress(parsed)}`;
    if (clash === undefined) sockets.push({ protocol, address: parsed, who: `listeners[${i}]` });
    else if (formatSocketAddress(clash.address) === formatSocketAddress(parsed)) {
      p.add(`listeners[${i}].address`, `${key} is already used by ${clash.who}`);
    } else {
      p.add(
        `listeners[${i}].address`,
        `${key} overlaps ${clash.who} (${formatSocketAddress(clash.address)}): a wildcard address takes ` +
          "the port on every address of its family",
      );
    }
  });
}

/** Whether two sockets of one protocol would need the same port: equal, or one is the family's wildcard. */
function overlaps(a: SocketAddress, b: SocketAddress): boolean {
  if (a.port !== b.port || a.family !== b.family) return false;
  const wildcard = (x: SocketAddress) => x.ip === "0.0.0.0" || x.ip === "::";
  return a.ip === b.ip || wildcard(a) || wildcard(b);
}

/** Checks one part of the document; its filled value, or undefined when anything in it is bad. */
function part<T>(p: Problems, schema: Schema, value: unknown, path: string): Filled<T> | undefined {
  const before = p.errors.length;
  const out = checkValue(p, schema, value ?? {}, path);
  return p.errors.length === before ? out as Filled<T> : undefined;
}

/**
 * Validates a parsed document and builds the running config from it. Each section, cluster and listener
 * is checked on its own, so the rules across its keys still run (and report) when another part is bad.
 */
export function buildConfig(p: Problems, raw: Record<string, unknown>): FerryConfig | undefined {
  const top = ConfigSchema as unknown as { properties: Record<string, Schema> };
  unknownKeys(p, raw, Object.keys(top.properties), "");
  const relay = part<RawConfigFile["relay"]>(p, RelaySchema, own(raw, "relay"), "relay");
  const admin = part<RawConfigFile["admin"]>(p, AdminSchema, own(raw, "admin"), "admin");
  const redis = part<RawConfigFile["redis"]>(p, RedisSchema, own(raw, "redis"), "redis");
  const fleet = part<RawConfigFile["fleet"]>(p, FleetSchema, own(raw, "fleet"), "fleet");
  const records = part<RawConfigFile["records"]>(p, RecordsSchema, own(raw, "records"), "records");
  if (records !== undefined) {
    if (ms(records.interim) > 0 && ms(records.interim) < 1000) {
      p.add("records.interim", "must be 0 or at least 1s");
    }
    if (records.max_size > 0 && records.max_size < 4096) {
      p.add("records.max_size", "must be 0 or at least 4096");
    }
  }
  const listen = admin === undefined ? undefined : addr(admin.listen);
  checkBindings(p, raw, listen);

  // Clusters first: listeners are checked against the names defined here, even those whose contents are
  // bad, so a broken cluster is reported once (at the cluster), not again at every listener that uses it.
  const clusterNames = new Set<string>();
  const clusters: ClusterConfig[] = [];
  const clusterTable = own(raw, "clusters") ?? {};
  if (!isTable(clusterTable)) p.add("clusters", `expected a table, got ${describe(clusterTable)}`);
  else {
    // Code-unit order, not locale order: the result must not depend on the machine's locale.
    for (const name of Object.keys(clusterTable).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
      const path = join("clusters", name);
      if (!/^[a-z0-9_-]{1,64}$/.test(name)) {
        p.add(path, `${quote(name)} is not a valid cluster name (1-64 of a-z, 0-9, _ and -)`);
        continue;
      }
      clusterNames.add(name);
      const c = part<RawCluster>(p, ClusterSchema, own(clusterTable, name), path);
      const built = c === undefined ? undefined : buildCluster(p, name, c);
      if (built !== undefined) clusters.push(built);
    }
  }
  const listenerList = own(raw, "listeners") ?? [];
  const listeners: ListenerConfig[] = [];
  if (!Array.isArray(listenerList)) p.add("listeners", `expected an array, got ${describe(listenerList)}`);
  else {
    listenerList.forEach((given: unknown, i: number) => {
      const path = `listeners[${i}]`;
      const cluster = isTable(given) ? own(given, "cluster") : undefined;
      if (typeof cluster === "string" && !clusterNames.has(cluster)) {
        const hint = suggest(cluster, [...clusterNames]);
        p.add(
          `${path}.cluster`,
          `no cluster named ${quote(cluster)} is defined` +
            (hint === undefined ? "" : `; did you mean "${hint}"?`),
        );
      }
      const l = part<RawListener>(p, ListenerSchema, given, path);
      const built = l === undefined || !clusterNames.has(l.cluster)
        ? undefined
        : buildListener(p, l, path, given as Record<string, unknown>);
      if (built !== undefined) {
        listeners.push(built);
        checkTcpCluster(p, built, clusters, path);
      }
    });
  }
  if (admin !== undefined && listen !== undefined) {
    const binding = checkAdminBinding(listen, admin.token);
    if (binding !== null) p.add("admin.token", binding);
  }
  if (redis !== undefined && redis.url === "") {
    for (const cl of clusters) {
      if (cl.balancer === "external") p.add(`clusters.${cl.name}.balancer`, '"redis" needs [redis] url');
    }
    if (fleet !== undefined && fleet.instance !== "") p.add("fleet.instance", "a fleet needs [redis] url");
  }
  if (p.errors.length > 0 || relay === undefined || admin === undefined || redis === undefined) {
    return undefined;
  }
  if (fleet === undefined || records === undefined || listen === undefined) return undefined;
  return {
    relay: {
      gracePeriod: ms(relay.grace_period),
      workers: relay.workers,
      logLevel: relay.log_level,
      logFormat: relay.log_format,
      datapath: relay.datapath,
    },
    admin: { listen, token: admin.token },
    redis: { url: redis.url, disconnectChannel: redis.disconnect_channel, timeout: ms(redis.timeout) },
    fleet: { instance: fleet.instance, prefix: fleet.prefix, heartbeat: ms(fleet.heartbeat) },
    records: {
      mode: records.mode,
      sample: records.sample,
      interim: ms(records.interim),
      format: records.format,
      file: records.file,
      maxSize: records.max_size,
      keep: records.keep,
    },
    listeners,
    clusters,
  };
}
