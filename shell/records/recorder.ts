/**
 * Session records and flow histograms: when a UDP flow or TCP connection ends, one structured record
 * (listener, protocol, client, backend, start, duration, datagrams and bytes each way, close reason, RTT,
 * jitter, loss, first reply, whether a PROXY header was sent), and the observations of the flow
 * histograms. Long flows also get an interim record every `[records] interim`.
 *
 * Driven from the core's "closed" events and the TCP driver's connection ends, never from the forwarding
 * path: a flow costs nothing here until it ends. Sampling is by flow id, so a sampled flow's interim and
 * final records are all kept.
 *
 * @module
 */

import type { Connection, ConnectionEnd } from "../../core/connection.ts";
import type { Flow } from "../../core/flow.ts";
import type { RecordsSettings } from "../../core/types.ts";
import { log } from "../process/logging.ts";
import { FlowStats } from "./flow_stats.ts";
import { type RecordSink, rotatingFileSink, stderrSink } from "./sinks.ts";

/** One session record as written (JSON keys; the text format shows the same figures). */
export interface SessionRecord {
  /** "end" for the final record, "interim" for one of a live flow. */
  readonly record: "end" | "interim";
  /** ISO time the record was made. */
  readonly time: string;
  readonly listener: string;
  readonly protocol: "udp" | "tcp";
  readonly cluster: string;
  readonly client: string;
  readonly backend: string | null;
  /** ISO time the flow was admitted. */
  readonly start: string;
  readonly duration_s: number;
  /** Client → backend and backend → client; datagrams are null for TCP. */
  readonly datagrams_up: number | null;
  readonly bytes_up: number;
  readonly datagrams_down: number | null;
  readonly bytes_down: number;
  /** Why it ended (null in an interim record). */
  readonly reason: string | null;
  /** UDP quality figures (null for TCP, or before the first reply). */
  readonly rtt_ms: number | null;
  readonly jitter_ms: number | null;
  readonly loss_permille: number | null;
  readonly first_reply_ms: number | null;
  readonly proxy_header: boolean;
  /** The relay worker (relay.workers > 1), else absent. */
  readonly worker?: number;
}

/** Options of a recorder. */
export interface RecorderOptions {
  /** The relay worker this recorder belongs to (relay.workers > 1): a file gets ".worker<N>" appended. */
  readonly worker?: number;
  /** Wall-clock ms (default Date.now). */
  readonly wall?: () => number;
  /** Opens the destination (tests); default stderr or the rotating file of `settings.file`. */
  readonly openSink?: (settings: RecordsSettings, path: string) => RecordSink;
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;
const orNull = (n: number) => (n === n ? round3(n) : null);

/** The records and histograms of one relay. */
export class FlowRecorder {
  /** Flow histograms for /metrics (always recorded, whatever `mode`). */
  readonly stats = new FlowStats();
  readonly #clock: () => number;
  readonly #wall: () => number;
  readonly #options: RecorderOptions;
  #settings: RecordsSettings;
  #sink: RecordSink | null = null;
  #sinkKey = "";
  #interim: ReturnType<typeof setInterval> | null = null;
  #live: { flows: () => Iterable<Flow>; connections: () => Iterable<Connection> } | null = null;
  /** Records written, for tests and the benchmark. */
  written = 0;

  /** A recorder on the relay's monotonic `clock`. */
  constructor(settings: RecordsSettings, clock: () => number, options: RecorderOptions = {}) {
    this.#clock = clock;
    this.#wall = options.wall ?? Date.now;
    this.#options = options;
    this.#settings = settings;
    this.configure(settings);
  }

  /** Applies new settings (live): reopens the destination if it changed, restarts the interim timer. */
  configure(settings: RecordsSettings): void {
    this.#settings = settings;
    const path = settings.file === "" || this.#options.worker === undefined
      ? settings.file
      : `${settings.file}.worker${this.#options.worker}`;
    const key = settings.mode === "off" ? "" : `${path}\0${settings.maxSize}\0${settings.keep}`;
    if (key !== this.#sinkKey) {
      this.#sink?.close();
      this.#sink = null;
      this.#sinkKey = key;
      if (key !== "") {
        try {
          this.#sink = this.#options.openSink?.(settings, path) ??
            (path === "" ? stderrSink() : rotatingFileSink(path, settings.maxSize, settings.keep, warn));
        } catch (e) {
          warn(`session records: cannot open ${path}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    }
    this.#restartInterim();
  }

  /** Where interim records find the live flows and connections. */
  watch(flows: () => Iterable<Flow>, connections: () => Iterable<Connection>): void {
    this.#live = { flows, connections };
    this.#restartInterim();
  }

  #restartInterim(): void {
    if (this.#interim !== null) clearInterval(this.#interim);
    this.#interim = null;
    const every = this.#settings.interim;
    if (every <= 0 || this.#sink === null || this.#live === null) return;
    this.#interim = setInterval(() => this.#writeInterim(every), every);
    const t = this.#interim as unknown as { unref?: () => void };
    if (typeof t.unref === "function") t.unref();
    else if ("Deno" in globalThis) Deno.unrefTimer(this.#interim as unknown as number);
  }

  #writeInterim(every: number): void {
    const live = this.#live;
    if (live === null) return;
    const now = this.#clock();
    try {
      for (const f of live.flows()) {
        if (now - f.quality.createdAt >= every && this.#keep(f.id)) {
          this.#write(this.#flowRecord(f, now, null));
        }
      }
      for (const c of live.connections()) {
        if (c.end === null && now - c.openedAt >= every && this.#keep(c.id)) {
          this.#write(this.#connectionRecord(c, now, null, false));
        }
      }
    } catch (e) {
      warn(`session records: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  #keep(id: number): boolean {
    const s = this.#settings;
    return this.#sink !== null && (s.mode === "all" || (s.mode === "sampled" && id % s.sample === 0));
  }

  /** A UDP flow closed (the core's "closed" event). Never throws. */
  flowClosed(flow: Flow): void {
    try {
      const now = this.#clock();
      const q = flow.quality;
      this.stats.duration(flow.listener.config.name, "udp", (now - q.createdAt) / 1000);
      this.stats.quality(flow.knobs.name, q.srtt, q.firstRtt);
      if (this.#keep(flow.id)) this.#write(this.#flowRecord(flow, now, flow.closeReason));
    } catch (e) {
      warn(`session records: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** A TCP connection ended; `proxyHeader`: a PROXY header was sent to the backend. Never throws. */
  connectionEnded(conn: Connection, end: ConnectionEnd, proxyHeader: boolean): void {
    try {
      const now = this.#clock();
      this.stats.duration(conn.listener.config.name, "tcp", (now - conn.openedAt) / 1000);
      if (this.#keep(conn.id)) this.#write(this.#connectionRecord(conn, now, end, proxyHeader));
    } catch (e) {
      warn(`session records: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  #base(now: number, start: number): { time: string; start: string; duration_s: number } {
    const wall = this.#wall();
    return {
      time: new Date(wall).toISOString(),
      start: new Date(wall - (now - start)).toISOString(),
      duration_s: round3((now - start) / 1000),
    };
  }

  #flowRecord(f: Flow, now: number, reason: string | null): SessionRecord {
    const q = f.quality;
    const b = this.#base(now, q.createdAt);
    return {
      record: reason === null ? "interim" : "end",
      time: b.time,
      listener: f.listener.config.name,
      protocol: "udp",
      cluster: f.knobs.name,
      client: f.clientIp.includes(":") ? `[${f.clientIp}]:${f.clientPort}` : `${f.clientIp}:${f.clientPort}`,
      backend: f.backend?.key ?? null,
      start: b.start,
      duration_s: b.duration_s,
      datagrams_up: q.datagramsIn,
      bytes_up: q.bytesIn,
      datagrams_down: q.datagramsOut,
      bytes_down: q.bytesOut,
      reason,
      rtt_ms: orNull(q.srtt),
      jitter_ms: q.srtt === q.srtt ? round3(q.rttvar) : null,
      loss_permille: q.lossPermille,
      first_reply_ms: orNull(q.firstRtt),
      proxy_header: f.proxyHeader !== null && q.datagramsIn > 0,
      ...(this.#options.worker === undefined ? {} : { worker: this.#options.worker }),
    };
  }

  #connectionRecord(c: Connection, now: number, end: string | null, proxyHeader: boolean): SessionRecord {
    const b = this.#base(now, c.openedAt);
    return {
      record: end === null ? "interim" : "end",
      time: b.time,
      listener: c.listener.config.name,
      protocol: "tcp",
      cluster: c.cluster,
      client: c.clientIp.includes(":") ? `[${c.clientIp}]:${c.clientPort}` : `${c.clientIp}:${c.clientPort}`,
      backend: c.backend.key,
      start: b.start,
      duration_s: b.duration_s,
      datagrams_up: null,
      bytes_up: c.bytesUp,
      datagrams_down: null,
      bytes_down: c.bytesDown,
      reason: end,
      rtt_ms: null,
      jitter_ms: null,
      loss_permille: null,
      first_reply_ms: null,
      proxy_header: proxyHeader,
      ...(this.#options.worker === undefined ? {} : { worker: this.#options.worker }),
    };
  }

  #write(r: SessionRecord): void {
    const sink = this.#sink;
    if (sink === null) return;
    sink.write(this.#settings.format === "json" ? `${JSON.stringify(r)}\n` : textRecord(r));
    this.written++;
  }

  /** Writes what is buffered now. */
  flush(): void {
    this.#sink?.flush();
  }

  /** Stops the interim timer, flushes and closes the destination. */
  close(): void {
    if (this.#interim !== null) clearInterval(this.#interim);
    this.#interim = null;
    this.#sink?.close();
    this.#sink = null;
    this.#sinkKey = "";
  }
}

/** One record as a text line: `TIME end|interim LISTENER PROTO CLIENT -> BACKEND key=value ...`. */
export function textRecord(r: SessionRecord): string {
  const updown = (d: number | null, b: number) => (d === null ? `${b}B` : `${d}/${b}B`);
  const fields = [
    r.time,
    r.record,
    r.listener,
    r.protocol,
    `${r.client} -> ${r.backend ?? "-"}`,
    `cluster=${r.cluster}`,
    `reason=${r.reason ?? "-"}`,
    `start=${r.start}`,
    `duration=${r.duration_s}s`,
    `up=${updown(r.datagrams_up, r.bytes_up)}`,
    `down=${updown(r.datagrams_down, r.bytes_down)}`,
  ];
  if (r.protocol === "udp") {
    fields.push(
      `rtt=${r.rtt_ms ?? "-"}ms`,
      `jitter=${r.jitter_ms ?? "-"}ms`,
      `loss=${r.loss_permille}‰`,
      `first_reply=${r.first_reply_ms ?? "-"}ms`,
    );
  }
  fields.push(`proxy=${r.proxy_header ? "yes" : "no"}`);
  if (r.worker !== undefined) fields.push(`worker=${r.worker}`);
  return `${fields.join(" ")}\n`;
}

function warn(message: string): void {
  log.warning(message, { event: "records_error" });
}
