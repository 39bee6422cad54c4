/**
 * A validated config back in file shape: the object a config file parses to, every key explicit (defaults
 * included), durations as the shortest exact text and addresses canonical. `configToRaw` is the inverse of
 * validation (`validateConfig(configToRaw(c))` yields `c`), typed by the declaration so a key added there
 * and forgotten here is a type error. API edits work on this shape, and `configToToml` writes it.
 *
 * @module
 */

import { stringify } from "smol-toml";
import { type Cidr, formatIp, formatSocketAddress } from "../address.ts";
import { encodeEscaped, type HealthSettings } from "../health.ts";
import type { FerryConfig } from "../types.ts";
import { formatDuration } from "./duration.ts";
import { dnsTypeName } from "../dns_message.ts";
import { protectionToRaw } from "./protection_schema.ts";
import type { Filled } from "./build.ts";
import type { RawCluster, RawConfigFile, RawHealth, RawListener } from "./schema.ts";

/** A config in file shape, every section present. */
export type RawConfig = Filled<Omit<RawConfigFile, "clusters" | "listeners">> & {
  listeners: RawListener[];
  clusters: Record<string, RawCluster>;
};

/** A CIDR block as text; the address is kept as written (not masked) so the round trip is exact. */
function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.ip)}/${cidr.prefix}`;
}

/** Health settings in file shape; payloads written back as escaped text, "" where unset. */
function healthToRaw(h: HealthSettings): Filled<RawHealth> {
  return {
    mode: h.mode,
    interval: formatDuration(h.interval),
    timeout: formatDuration(h.timeout),
    rise: h.rise,
    fall: h.fall,
    jitter: formatDuration(h.jitter),
    send: h.send === null ? "" : encodeEscaped(h.send),
    send_hex: "",
    expect: h.expect?.kind === "exact" ? encodeEscaped(h.expect.bytes) : "",
    expect_prefix: h.expect?.kind === "prefix" ? encodeEscaped(h.expect.bytes) : "",
    expect_regex: h.expect?.kind === "regex" ? h.expect.source : "",
    port: h.port,
    max_fails: h.maxFails,
    fail_timeout: formatDuration(h.failTimeout),
    close_flows_on_down: h.closeFlowsOnDown,
    ...(h.mode === "dns" && h.dns !== undefined
      ? {
        dns_name: h.dns.name === "" ? "." : h.dns.name,
        dns_type: dnsTypeName(h.dns.type),
        dns_transport: h.dns.transport,
        dns_accept_nxdomain: h.dns.acceptNxdomain,
      }
      : {}),
  } as Filled<RawHealth>;
}

/** The config in file shape (a fresh object each call; callers may edit it). */
export function configToRaw(config: FerryConfig): RawConfig {
  return {
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
    records: {
      mode: config.records.mode,
      sample: config.records.sample,
      interim: formatDuration(config.records.interim),
      format: config.records.format,
      file: config.records.file,
      max_size: config.records.maxSize,
      keep: config.records.keep,
    },
    listeners: config.listeners.map((l) => {
      const out: RawListener = {
        name: l.name,
        protocol: l.protocol,
        address: formatSocketAddress(l.address),
        cluster: l.cluster,
        max_flows: l.maxFlows,
      };
      // Written only for UDP, because the validator refuses them on a TCP listener.
      if (l.protocol === "udp") out.max_datagram_size = l.maxDatagramSize;
      out.sources = {
        reject: [...l.sources.reject],
        deny: l.sources.deny.map(formatCidr),
        allow: l.sources.allow.map(formatCidr),
      };
      out.datapath = l.datapath;
      if (l.recvBuffer !== null) out.recv_buffer = l.recvBuffer;
      if (l.sendBuffer !== null) out.send_buffer = l.sendBuffer;
      Object.assign(out, protectionToRaw(l.protection));
      return out;
    }),
    clusters: Object.fromEntries(config.clusters.map((cl): [string, RawCluster] => [cl.name, {
      balancer: cl.balancer === "external" ? "redis" : cl.balancer,
      ...(cl.external === null ? {} : {
        redis_key: cl.external.key,
        redis_fallback: cl.external.fallback,
        redis_cache: formatDuration(cl.external.cacheMs),
      }),
      affinity: cl.affinity,
      requests: cl.requests,
      responses: cl.responses,
      reuse_upstream: cl.reuseUpstream ?? true,
      front_timeout: formatDuration(cl.frontTimeout),
      back_timeout: formatDuration(cl.backTimeout),
      proxy_protocol: cl.proxyProtocol,
      hash_seed: cl.hashSeed,
      fail_open: cl.failOpen,
      maglev_table_size: cl.maglevTableSize,
      connect_timeout: formatDuration(cl.connectTimeout),
      idle_timeout: formatDuration(cl.idleTimeout),
      proxy_protocol_version: cl.proxyProtocolVersion,
      health: healthToRaw(cl.health),
      ...(cl.sequence ? { sequence: { offset: cl.sequence.offset, size: cl.sequence.size } } : {}),
      backends: cl.backends.map((b) => ({
        address: formatSocketAddress(b.address),
        weight: b.weight,
        state: b.state,
      })),
    }])),
  };
}

/**
 * Writes a validated config back as TOML, every key explicit (defaults included) so what is running can be
 * read at a glance and saved as a file. `parseConfigToml(configToToml(c))` yields a config equal to `c`.
 */
export function configToToml(config: FerryConfig): string {
  return stringify(configToRaw(config));
}
