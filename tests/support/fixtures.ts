/**
 * Builders of validated configs for core tests: every knob has a test-friendly default, overridable.
 *
 * @module
 */

import { parseSocketAddress, type SocketAddress } from "../../core/address.ts";
import { DEFAULT_HEALTH } from "../../core/health.ts";
import type {
  BackendConfig,
  BackendState,
  ClusterConfig,
  FerryConfig,
  ListenerConfig,
} from "../../core/types.ts";

/** Parses "ip:port" or throws (tests only). */
export function addr(text: string): SocketAddress {
  const a = parseSocketAddress(text);
  if (typeof a === "string") throw new Error(a);
  return a;
}

/** A backend config: "ip:port", weight 1, up. */
export function backend(address: string, weight = 1, state: BackendState = "up"): BackendConfig {
  return { address: addr(address), weight, state };
}

/** A cluster named "c" with `count` backends 10.0.0.1:9000… unless `backends` is given. */
export function cluster(over: Partial<ClusterConfig> = {}, count = 3): ClusterConfig {
  return {
    name: "c",
    balancer: "round_robin",
    affinity: "ip_port",
    requests: 0,
    responses: 0,
    frontTimeout: 30_000,
    backTimeout: 30_000,
    proxyProtocol: "off",
    hashSeed: 7,
    failOpen: true,
    maglevTableSize: 65537,
    connectTimeout: 5000,
    idleTimeout: 600_000,
    proxyProtocolVersion: 2,
    health: DEFAULT_HEALTH,
    external: null,
    backends: Array.from({ length: count }, (_, i) => backend(`10.0.0.${i + 1}:9000`)),
    ...over,
  };
}

/** A UDP listener "l" on 127.0.0.1:7000 to cluster "c". */
export function listener(over: Partial<ListenerConfig> = {}): ListenerConfig {
  return {
    name: "l",
    protocol: "udp",
    address: addr("127.0.0.1:7000"),
    cluster: "c",
    maxFlows: 0,
    maxDatagramSize: 1500,
    sources: { reject: ["port0", "unspecified", "multicast", "broadcast"], deny: [], allow: [] },
    datapath: "auto",
    recvBuffer: null,
    sendBuffer: null,
    ...over,
  };
}

/** A whole config: one listener, one cluster, unless given. */
export function config(
  clusters: ClusterConfig[] = [cluster()],
  listeners: ListenerConfig[] = [listener()],
): FerryConfig {
  return {
    relay: { gracePeriod: 30_000, workers: 1, logLevel: "info", logFormat: "auto", datapath: "auto" },
    admin: { listen: addr("127.0.0.1:9901"), token: "" },
    redis: { url: "", disconnectChannel: "ferry:disconnect", timeout: 200 },
    fleet: { instance: "", prefix: "ferry:fleet", heartbeat: 5000 },
    records: { mode: "off", sample: 100, interim: 0, format: "json", file: "", maxSize: 104857600, keep: 5 },
    listeners,
    clusters,
  };
}

/** A payload of `n` bytes. */
export function bytes(n: number, fill = 0x61): Uint8Array {
  return new Uint8Array(n).fill(fill);
}
