/**
 * The distributions an operator needs, recorded once per flow or connection when it ends (never per
 * datagram): flow duration per listener, RTT and admission-to-first-reply per cluster. The bucket bounds
 * are declared here, once; `/metrics` renders them as Prometheus histograms (`le` labels).
 *
 * Buckets, in seconds:
 * - duration: 0.1 s (a DNS exchange) to 4 h (a long game or VPN session);
 * - RTT and first reply: 1 ms (same rack) to 2.5 s / 5 s (a struggling backend), dense where games and
 *   media care (5-100 ms).
 *
 * @module
 */

import type { HistogramSnapshot } from "../../core/control_api.ts";

/** Upper bounds of `ferry_flow_duration_seconds`. */
export const DURATION_BUCKETS: readonly number[] = [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 14400];
/** Upper bounds of `ferry_flow_rtt_seconds` (each flow's smoothed RTT when it ends). */
export const RTT_BUCKETS: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
];
/** Upper bounds of `ferry_flow_first_reply_seconds`. */
export const FIRST_REPLY_BUCKETS: readonly number[] = [...RTT_BUCKETS, 5];

/** One histogram series: counts per bucket (not cumulative; the last is +Inf), sum and count. */
export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array(bounds.length + 1).fill(0);
  }

  /** Adds one observation. */
  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

/** The flow histograms of one relay, one map per family keyed by its label value (no allocation on a hit). */
export class FlowStats {
  readonly #udpDuration = new Map<string, Histogram>();
  readonly #tcpDuration = new Map<string, Histogram>();
  readonly #rtt = new Map<string, Histogram>();
  readonly #firstReply = new Map<string, Histogram>();

  #get(map: Map<string, Histogram>, key: string, bounds: readonly number[]): Histogram {
    let h = map.get(key);
    if (h === undefined) {
      h = new Histogram(bounds);
      map.set(key, h);
    }
    return h;
  }

  /** A flow or connection of `listener` ended after `seconds`. */
  duration(listener: string, protocol: "udp" | "tcp", seconds: number): void {
    const map = protocol === "udp" ? this.#udpDuration : this.#tcpDuration;
    this.#get(map, listener, DURATION_BUCKETS).observe(seconds);
  }

  /** A flow of `cluster` ended with this smoothed RTT and first reply (ms; NaN when it had no reply). */
  quality(cluster: string, srttMs: number, firstReplyMs: number): void {
    if (srttMs === srttMs) this.#get(this.#rtt, cluster, RTT_BUCKETS).observe(srttMs / 1000);
    if (firstReplyMs === firstReplyMs) {
      this.#get(this.#firstReply, cluster, FIRST_REPLY_BUCKETS).observe(firstReplyMs / 1000);
    }
  }

  /** Every series, as plain data (it crosses worker threads). */
  snapshot(): HistogramSnapshot[] {
    const out: HistogramSnapshot[] = [];
    const add = (
      name: string,
      map: Map<string, Histogram>,
      label: (key: string) => Record<string, string>,
    ) => {
      for (const [key, h] of map) {
        out.push({
          name,
          labels: label(key),
          bounds: [...h.bounds],
          counts: [...h.counts],
          sum: h.sum,
          count: h.count,
        });
      }
    };
    add("ferry_flow_duration_seconds", this.#udpDuration, (listener) => ({ listener, protocol: "udp" }));
    add("ferry_flow_duration_seconds", this.#tcpDuration, (listener) => ({ listener, protocol: "tcp" }));
    add("ferry_flow_rtt_seconds", this.#rtt, (cluster) => ({ cluster }));
    add("ferry_flow_first_reply_seconds", this.#firstReply, (cluster) => ({ cluster }));
    return out;
  }
}

/** Sums the series of several relays (workers) that have the same name and labels. */
export function mergeHistograms(parts: readonly (readonly HistogramSnapshot[])[]): HistogramSnapshot[] {
  const out = new Map<string, HistogramSnapshot>();
  for (const part of parts) {
    for (const s of part) {
      const key = `${s.name}\0${JSON.stringify(s.labels)}`;
      const prev = out.get(key);
      out.set(
        key,
        prev === undefined ? { ...s, counts: [...s.counts] } : {
          ...prev,
          counts: prev.counts.map((n, i) => n + (s.counts[i] ?? 0)),
          sum: prev.sum + s.sum,
          count: prev.count + s.count,
        },
      );
    }
  }
  return [...out.values()];
}
