/**
 * The validated configuration the core runs on. `core/config.ts` turns a parsed TOML object into these;
 * everything here is already checked, durations are milliseconds and addresses are parsed.
 *
 * @module
 */

import type { ProtectionConfig } from "./protection.ts";
import type { Cidr, SocketAddress } from "./address.ts";
import type { HealthSettings } from "./health.ts";
import type { SequenceSettings } from "./sequence.ts";

/** How a cluster picks a backend for a new flow. `external` means the shell resolves it asynchronously. */
export type BalancerKind =
  | "round_robin"
  | "random"
  | "least_flows"
  | "power_of_two"
  | "rendezvous"
  | "maglev"
  | "peak_ewma"
  | "external";

/** The balancers a config file may name (external resolution is wired by a shell, not chosen by name). */
export const BALANCER_NAMES = [
  "round_robin",
  "random",
  "least_flows",
  "power_of_two",
  "rendezvous",
  "maglev",
  "peak_ewma",
] as const;

/**
 * What a client is for backend choice. A flow is always one client ip:port (each needs its own return path);
 * `ip` makes every port of one client IP land on the same backend, `ip_port` lets each port choose anew.
 */
export type Affinity = "ip" | "ip_port";

/** Where the PROXY protocol v2 header goes: nowhere, on a flow's first datagram, or on every datagram. */
export type ProxyProtocolMode = "off" | "first" | "every";

/** A backend's administrative or health state. Only `up` backends receive new flows. */
export type BackendState = "up" | "down" | "draining";

/** How a cluster with `balancer = "redis"` routes: the shell reads `key` for each new flow. */
export interface ExternalRouting {
  /** The Redis key holding the backend "ip:port" (udp-gate: "udp_gate:backend"). */
  readonly key: string;
  /** When Redis has no usable answer: a balancer over the cluster's own backends, or "drop". */
  readonly fallback: typeof BALANCER_NAMES[number] | "drop";
  /** Cache a key's value this long (ms); 0 = one GET per new flow, as udp-gate does. */
  readonly cacheMs: number;
}

/** One backend of a cluster, as configured. */
export interface BackendConfig {
  readonly address: SocketAddress;
  /** Relative share of new flows, 1..1000. */
  readonly weight: number;
  /** Initial administrative state; health checks may later mark it down or up. */
  readonly state: BackendState;
}

/** The knobs of a cluster. A flow captures the object it was admitted under and keeps it for its life. */
export interface ClusterConfig {
  readonly name: string;
  readonly balancer: BalancerKind;
  readonly affinity: Affinity;
  /** Close a flow after this many client datagrams (0 = unlimited). */
  readonly requests: number;
  /** Close a flow after this many backend replies (0 = unlimited; DNS uses 1). */
  readonly responses: number;
  /**
   * Native UDP path: a flow closed by `responses` (every datagram answered) hands its connected upstream
   * socket to a later flow to the same backend after a quarantine (shell/datapath/native/upstream_pool.ts).
   * Absent = true.
   */
  readonly reuseUpstream?: boolean;
  /** Idle deadline reset by each client datagram, in ms (0 = none). */
  readonly frontTimeout: number;
  /** Idle deadline reset by each backend reply, in ms (0 = none). */
  readonly backTimeout: number;
  readonly proxyProtocol: ProxyProtocolMode;
  /** Seed of the hash balancers: equal seeds and backends make every instance choose alike. */
  readonly hashSeed: number;
  /** With every backend down or draining: true uses them anyway (counted), false drops as NoBackend. */
  readonly failOpen: boolean;
  /** Maglev lookup table size; a prime. */
  readonly maglevTableSize: number;
  /** TCP: how long a backend connect may take, in ms. */
  readonly connectTimeout: number;
  /** TCP: close a connection idle this long in both directions, in ms (0 = never). */
  readonly idleTimeout: number;
  /** TCP: PROXY protocol version sent when `proxyProtocol` is not "off" (UDP always uses v2). */
  readonly proxyProtocolVersion: 1 | 2;
  /** Active probes and passive failure detection. */
  readonly health: HealthSettings;
  /** Where datagrams carry a sequence number for sequence-aware loss; null or absent = not read. */
  readonly sequence?: SequenceSettings | null;
  /** Set when `balancer` is "external" (a file's `balancer = "redis"`). */
  readonly external: ExternalRouting | null;
  readonly backends: readonly BackendConfig[];
}

/** Source address classes a listener can refuse. */
export type SourceClass = "port0" | "unspecified" | "multicast" | "broadcast" | "loopback";

/** Which client sources a listener accepts: refused classes, then deny blocks, then (if any) allow blocks. */
export interface SourcePolicy {
  readonly reject: readonly SourceClass[];
  readonly deny: readonly Cidr[];
  /** When non-empty, only sources inside one of these blocks are accepted. */
  readonly allow: readonly Cidr[];
}

/**
 * Which UDP data path serves a listener: the native Linux path (libc through FFI, batched syscalls), the
 * runtime's socket API, or `auto` (native where libc loads on Linux x86_64/aarch64, else runtime).
 */
export type Datapath = "auto" | "native" | "runtime";

/** A listening socket and where its traffic goes. */
export interface ListenerConfig {
  readonly name: string;
  readonly protocol: "udp" | "tcp";
  readonly address: SocketAddress;
  readonly cluster: string;
  /** Most live flows (UDP) or connections (TCP); 0 = the relay's automatic limit. */
  readonly maxFlows: number;
  /** Larger datagrams are dropped as Truncated. */
  readonly maxDatagramSize: number;
  readonly sources: SourcePolicy;
  /** UDP data path for this listener; "auto" follows `relay.datapath`. */
  readonly datapath: Datapath;
  /**
   * Native path: SO_RCVBUF / SO_SNDBUF to ask for, in bytes; null = 4 MiB, 0 = the kernel's default.
   * (The kernel caps them at net.core.rmem_max / wmem_max; the status shows what it granted.)
   */
  readonly recvBuffer: number | null;
  readonly sendBuffer: number | null;
  /** Edge protection (limits, first-datagram filter, amplification guard); absent = all off. */
  readonly protection?: ProtectionConfig;
}

/** The admin API's settings. */
export interface AdminConfig {
  readonly listen: SocketAddress;
  readonly token: string;
}

/** Log verbosity. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** The Redis connection of routing, the disconnect channel and the fleet. */
export interface RedisSettings {
  /** "redis://host:port[/db]"; "" = no Redis. */
  readonly url: string;
  /** Channel whose messages ("ip:port" or "ip") close that client's flows; "" = not subscribed. */
  readonly disconnectChannel: string;
  /** A routing GET slower than this falls back (ms): a slow Redis never holds up other flows. */
  readonly timeout: number;
}

/** A fleet of relays sharing backend changes and heartbeats through Redis. */
export interface FleetSettings {
  /** This instance's name; "" = not in a fleet. */
  readonly instance: string;
  /** Prefix of the fleet's keys and channel. */
  readonly prefix: string;
  /** How often this instance writes its heartbeat (ms); it expires after three. */
  readonly heartbeat: number;
}

/** Process-wide settings. */
export interface RelaySettings {
  /** How long a shutdown (SIGTERM/SIGINT) lets existing flows and connections run, in ms. */
  readonly gracePeriod: number;
  /** Independent relay workers sharing each port through SO_REUSEPORT. */
  readonly workers: number;
  readonly logLevel: LogLevel;
  /** "auto": readable lines on a terminal, JSON lines otherwise. */
  readonly logFormat: "auto" | "text" | "json";
  /** The UDP data path of listeners that say "auto". */
  readonly datapath: Datapath;
}

/** Session records: one structured record per ended UDP flow or TCP connection (shell/records/). */
export interface RecordsSettings {
  /** off | all | sampled (1 in `sample`). */
  readonly mode: "off" | "all" | "sampled";
  /** With mode = "sampled": keep one record in this many. */
  readonly sample: number;
  /** Interim records of live flows this often (ms); 0 = only the final record. */
  readonly interim: number;
  readonly format: "json" | "text";
  /** File to append to; "" = stderr. */
  readonly file: string;
  /** Rotate the file once it is this large (bytes); 0 = never. */
  readonly maxSize: number;
  /** Rotated files kept (FILE.1 ... FILE.N). */
  readonly keep: number;
}

/** A whole validated configuration. */
export interface FerryConfig {
  readonly relay: RelaySettings;
  readonly admin: AdminConfig;
  readonly redis: RedisSettings;
  readonly fleet: FleetSettings;
  readonly records: RecordsSettings;
  readonly listeners: readonly ListenerConfig[];
  readonly clusters: readonly ClusterConfig[];
}
