/**
 * A listener's counters, declared once as data: {@link LISTENER_COUNTERS}. From it derive the core's
 * counter objects and their types (one for UDP listeners, one for TCP), the snapshot the control interface
 * carries (core/counter_snapshot.ts), the sum over workers, the `/metrics` families (admin/metric_names.ts)
 * and the README's metrics table. A leaf module (it imports only the leaf reasons and drops), so nothing
 * needs core/listener.ts to count.
 *
 * @module
 */

import { CLOSE_REASONS, CONNECTION_ENDS } from "./reasons.ts";
import { DROP_REASONS } from "./drops.ts";

/** A listener's protocol. */
export type Protocol = "udp" | "tcp";

/** The declaration of one listener figure. */
export interface CounterDecl {
  /** The metric family it is exposed as (a counter's name ends in `_total`). */
  readonly metric: string;
  /** A counter only grows; a gauge is a level. */
  readonly kind: "counter" | "gauge";
  /** The listeners it exists on: only those get the field and the family. */
  readonly protocol: Protocol | "both";
  /** What one unit of it is. */
  readonly unit: "datagrams" | "bytes" | "flows" | "connections" | "replies";
  /**
   * Who keeps it: "core" (a number field on the listener's counter object, incremented in place), "live"
   * (the listener's live flow or connection count, read at snapshot time) or "shell" (a figure the shell
   * reads from its socket at snapshot time).
   */
  readonly source: "core" | "live" | "shell";
  /** A labelled family: one number per key, under one label. */
  readonly by?: { readonly label: string; readonly keys: readonly string[] };
  /** The HELP text (the protocol it applies to is added where it is shown). */
  readonly help: string;
}

/**
 * Every listener figure, in the order the API and `/metrics` list them. Adding one here adds the field to
 * the core's counters and the snapshot type, the worker sum, the family and its README row; only the code
 * that increments it is left to write. Datagram and byte figures are payload only (no PROXY header). The
 * four a UDP flow's forwarding path increments come first, so they are the first fields of every counter
 * object built from this.
 */
export const LISTENER_COUNTERS = {
  datagramsIn: {
    metric: "ferry_listener_datagrams_in_total",
    kind: "counter",
    protocol: "udp",
    unit: "datagrams",
    source: "core",
    help: "Datagrams received from clients.",
  },
  bytesIn: {
    metric: "ferry_listener_bytes_in_total",
    kind: "counter",
    protocol: "udp",
    unit: "bytes",
    source: "core",
    help: "Bytes of datagrams received from clients.",
  },
  datagramsOut: {
    metric: "ferry_listener_datagrams_out_total",
    kind: "counter",
    protocol: "udp",
    unit: "datagrams",
    source: "core",
    help: "Datagrams sent to clients (backend replies relayed).",
  },
  bytesOut: {
    metric: "ferry_listener_bytes_out_total",
    kind: "counter",
    protocol: "udp",
    unit: "bytes",
    source: "core",
    help: "Bytes of datagrams sent to clients.",
  },
  activeFlows: {
    metric: "ferry_listener_active_flows",
    kind: "gauge",
    protocol: "udp",
    unit: "flows",
    source: "live",
    help: "Live UDP flows.",
  },
  flowsCreated: {
    metric: "ferry_listener_flows_created_total",
    kind: "counter",
    protocol: "udp",
    unit: "flows",
    source: "core",
    help: "UDP flows admitted.",
  },
  flowsClosed: {
    metric: "ferry_listener_flows_closed_total",
    kind: "counter",
    protocol: "udp",
    unit: "flows",
    source: "core",
    by: { label: "reason", keys: CLOSE_REASONS },
    help: "UDP flows closed, by reason.",
  },
  drops: {
    metric: "ferry_listener_drops_total",
    kind: "counter",
    protocol: "both",
    unit: "datagrams",
    source: "core",
    by: { label: "reason", keys: DROP_REASONS },
    help: `Datagrams dropped, by reason (${DROP_REASONS.join(", ")}; see core/drops.ts).`,
  },
  connectionsActive: {
    metric: "ferry_listener_tcp_connections_active",
    kind: "gauge",
    protocol: "tcp",
    unit: "connections",
    source: "live",
    help: "Open TCP connections.",
  },
  connectionsTotal: {
    metric: "ferry_listener_tcp_connections_total",
    kind: "counter",
    protocol: "tcp",
    unit: "connections",
    source: "core",
    help: "TCP connections accepted.",
  },
  connectionsEnded: {
    metric: "ferry_listener_tcp_connections_closed_total",
    kind: "counter",
    protocol: "tcp",
    unit: "connections",
    source: "core",
    by: { label: "reason", keys: CONNECTION_ENDS },
    help: "TCP connections ended, by reason.",
  },
  bytesUp: {
    metric: "ferry_listener_tcp_bytes_up_total",
    kind: "counter",
    protocol: "tcp",
    unit: "bytes",
    source: "core",
    help: "TCP bytes relayed from clients to backends.",
  },
  bytesDown: {
    metric: "ferry_listener_tcp_bytes_down_total",
    kind: "counter",
    protocol: "tcp",
    unit: "bytes",
    source: "core",
    help: "TCP bytes relayed from backends to clients.",
  },
  rxqOverflows: {
    metric: "ferry_listener_rxq_overflows_total",
    kind: "counter",
    protocol: "udp",
    unit: "datagrams",
    source: "shell",
    help:
      "Native path: datagrams the kernel dropped because the listener's receive queue was full (read at each scrape).",
  },
  clientUnreachable: {
    metric: "ferry_listener_client_unreachable_total",
    kind: "counter",
    protocol: "udp",
    unit: "replies",
    source: "core",
    help:
      "UDP replies that left but were answered with ICMP port unreachable (the client had gone); seen on Bun's runtime path.",
  },
  upstreamRxqOverflows: {
    metric: "ferry_listener_upstream_rxq_overflows_total",
    kind: "counter",
    protocol: "udp",
    unit: "replies",
    source: "shell",
    help:
      "Native path: backend replies the kernel dropped because a flow's upstream socket's receive queue was full.",
  },
} as const satisfies Record<string, CounterDecl>;

/** The declaration's type, each entry's literal values kept. */
export type ListenerCounterDecls = typeof LISTENER_COUNTERS;
type Decls = ListenerCounterDecls;

/** The name of one declared listener figure. */
export type CounterField = keyof Decls;

/** The fields declared for `P` listeners whose source is one of `S`. */
export type FieldsFor<P extends Protocol, S extends CounterDecl["source"] = CounterDecl["source"]> = {
  [K in CounterField]: Decls[K]["protocol"] extends P | "both" ? Decls[K]["source"] extends S ? K : never
    : never;
}[CounterField];

/** One field's value: a number, or a number per key for a labelled figure. */
export type ValueOf<D> = D extends { readonly by: { readonly keys: readonly (infer K extends string)[] } }
  ? Record<K, number>
  : number;

/**
 * The counter object of a `P` listener: the figures the core keeps, as plain number fields. Distributes
 * over a union: `CountersFor<Protocol>` is one protocol's counters or the other's.
 */
export type CountersFor<P extends Protocol> = P extends Protocol
  ? { [K in FieldsFor<P, "core">]: ValueOf<Decls[K]> }
  : never;

/** A UDP listener's counters: flows, datagrams and bytes each way, drops. */
export type UdpListenerCounters = CountersFor<"udp">;
/** A TCP listener's counters: connections, bytes each way, drops. */
export type TcpListenerCounters = CountersFor<"tcp">;
/** Either listener's counters; `drops` is common to both. */
export type ListenerCounters = UdpListenerCounters | TcpListenerCounters;

/** The metric family name of one declared figure. */
export type ListenerMetricName = Decls[CounterField]["metric"];

/** One declared figure: its field and its declaration (whose family name is a declared one). */
export type DeclaredCounter = readonly [CounterField, CounterDecl & { readonly metric: ListenerMetricName }];

/** The declared fields of a `protocol` listener, with their declarations, in declaration order. */
export function countersFor(protocol: Protocol): readonly DeclaredCounter[] {
  return protocol === "udp" ? UDP_FIELDS : TCP_FIELDS;
}

/** Whether a figure declared for `declared` exists on a `protocol` listener. */
export function appliesTo(declared: CounterDecl["protocol"], protocol: Protocol): boolean {
  return declared === "both" || declared === protocol;
}

const ALL_FIELDS = Object.entries(LISTENER_COUNTERS) as unknown as DeclaredCounter[];
const UDP_FIELDS = ALL_FIELDS.filter(([, d]) => appliesTo(d.protocol, "udp"));
const TCP_FIELDS = ALL_FIELDS.filter(([, d]) => appliesTo(d.protocol, "tcp"));

/** A number per key, all zero. */
export function zeroKeys(keys: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) out[k] = 0;
  return out;
}

/**
 * Fresh zeroed counters of a `protocol` listener, built from the declaration. Every listener of one
 * protocol gets its fields added in one order, so they share one object shape and the forwarding path's
 * increments stay monomorphic.
 */
export function newListenerCounters(protocol: "udp"): UdpListenerCounters;
/** Fresh zeroed counters of a TCP listener. */
export function newListenerCounters(protocol: "tcp"): TcpListenerCounters;
/** Fresh zeroed counters of a listener of either protocol. */
export function newListenerCounters(protocol: Protocol): ListenerCounters;
export function newListenerCounters(protocol: Protocol): ListenerCounters {
  const out: Record<string, number | Record<string, number>> = {};
  for (const [field, d] of countersFor(protocol)) {
    if (d.source === "core") out[field] = d.by === undefined ? 0 : zeroKeys(d.by.keys);
  }
  return out as unknown as ListenerCounters;
}
