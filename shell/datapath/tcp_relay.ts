/**
 * The TCP driver: binds TCP listeners, admits each client through the core (caps, draining, source policy,
 * backend choice), connects to the chosen backend, writes the PROXY header, then moves bytes both ways
 * with backpressure and half-close until both directions are done. Runtime-neutral: a `TcpSockets`
 * adapter does the I/O, so Bun and Deno proxy identically.
 *
 * Per chunk the driver only counts bytes, stamps the activity time and writes to the other side, pausing
 * the source when that write could not finish. Timers are per connection, not per chunk: one for the
 * connect, then one idle timer that checks the last-activity stamp when it fires and re-arms itself for
 * the remainder.
 *
 * @module
 */

import type { SocketAddress } from "../../core/address.ts";
import type { Cluster } from "../../core/cluster.ts";
import type { Connection, ConnectionEnd } from "../../core/connection.ts";
import type { Listener } from "../../core/listener.ts";
import { encodeProxyV1, encodeProxyV2 } from "../../core/proxy_v2.ts";
import type { RelayCore } from "../../core/relay_core.ts";
import {
  isRefused,
  type TcpEvents,
  type TcpListenerSocket,
  type TcpSockets,
  type TcpStream,
} from "./tcp_sockets.ts";
import type { Clock, CoreDriver, CoreLoop, DriverEvent } from "../relay/core_loop.ts";

/** Client bytes held while the backend connects; beyond this the client is paused (the kernel holds more). */
export const EARLY_LIMIT = 256 * 1024;

/**
 * How long a client whose backend failed (refused, connect timeout) may take to finish after our FIN. Its
 * bytes are read and dropped meanwhile: closing a socket with unread bytes makes the kernel send a reset
 * instead, and a client that sent its request at once would see its connection reset, not closed.
 */
export const LINGER_MS = 1000;

/** setTimeout's largest delay (a longer one fires at once). */
const MAX_TIMER = 0x7fff_ffff;

/** A connection's shell-side state: both streams, its timer, and the knobs captured at admission. */
class Link {
  up: TcpStream | null = null;
  /** Client data that arrived before the backend connected (copies: read buffers are reused). */
  early: Uint8Array[] | null = [];
  earlyBytes = 0;
  /** Each side's FIN seen; each side's stream closed cleanly. */
  clientEof = false;
  upEof = false;
  clientClosed = false;
  upClosed = false;
  /** The backend's data came before its stream was handed over and the client could not take it all. */
  pauseUp = false;
  ended = false;
  /** Clock time of the last byte either way. */
  last = 0;
  timer: ReturnType<typeof setTimeout> | null = null;
  abort: AbortController | null = new AbortController();

  constructor(
    readonly conn: Connection,
    readonly client: TcpStream,
    readonly connectTimeout: number,
    readonly idleTimeout: number,
    readonly header: Uint8Array | null,
  ) {}
}

/** Drives one RelayCore's TCP listeners over one runtime's sockets. */
export class TcpRelay implements CoreDriver {
  readonly #core: RelayCore;
  readonly #loop: CoreLoop;
  readonly #sockets: TcpSockets;
  readonly #clock: Clock;
  /** Keyed by the core's listener object: a reload may replace a listener of the same name. */
  readonly #bound = new Map<Listener, TcpListenerSocket>();
  readonly #links = new Set<Link>();
  /** Ended connections whose client is being closed gracefully (see LINGER_MS). */
  readonly #lingering = new Set<Link>();
  #onEnded: ((conn: Connection, end: ConnectionEnd, proxyHeader: boolean) => void) | null = null;

  /** A driver for the core of `loop` over `sockets`. */
  constructor(loop: CoreLoop, sockets: TcpSockets) {
    this.#core = loop.core;
    this.#loop = loop;
    this.#sockets = sockets;
    this.#clock = loop.clock;
  }

  /** A removed listener of this driver has no connection left (from the core loop): stop accepting on it. */
  onEvent(e: DriverEvent): void {
    if (e.kind === "listener_done") this.unbind(e.listener);
  }

  /** Told of every ended connection and whether a PROXY header went to its backend (session records). */
  setConnectionEnded(handler: (conn: Connection, end: ConnectionEnd, proxyHeader: boolean) => void): void {
    this.#onEnded = handler;
  }

  /** Binds the socket of a TCP listener of the core. Returns the bound address. */
  async bind(listener: Listener, reusePort: boolean): Promise<SocketAddress> {
    const socket = await this.#sockets.listen(
      listener.config.address,
      reusePort,
      (client) => this.#accept(listener, client),
    );
    listener.localAddress = socket.local;
    this.#bound.set(listener, socket);
    this.#loop.route(listener, this);
    return socket.local;
  }

  /** Stops accepting on a listener; its open connections carry on. */
  unbind(listener: Listener): void {
    this.#bound.get(listener)?.close();
    this.#bound.delete(listener);
  }

  /** The bound address of a listener, if bound. */
  local(listener: Listener): SocketAddress | undefined {
    return this.#bound.get(listener)?.local;
  }

  /** Open connections. */
  get active(): number {
    return this.#links.size;
  }

  /** Closes every connection (of one listener, if given) now, ending them as `end`. Returns how many. */
  closeAll(end: ConnectionEnd, listener?: Listener): number {
    let n = 0;
    for (const link of [...this.#links]) {
      if (listener !== undefined && link.conn.listener !== listener) continue;
      this.#finish(link, end);
      n++;
    }
    return n;
  }

  /** Closes every listener and connection now; connections end as "aborted". */
  stop(): void {
    for (const socket of this.#bound.values()) socket.close();
    this.#bound.clear();
    this.closeAll("aborted");
    for (const link of [...this.#lingering]) this.#unlinger(link);
  }

  // ---- admission and connect -----------------------------------------------------------------------------

  #accept(listener: Listener, client: TcpStream): TcpEvents | null {
    const r = this.#core.openConnection(listener, client.remote.ip, client.remote.port, this.#clock());
    if (typeof r === "number") {
      client.close(); // refused (shed, source policy, no backend) and counted by the core
      return null;
    }
    // Admission succeeded, so the listener has a cluster; its knobs now are this connection's for life.
    const knobs = (listener.cluster as Cluster).config;
    const local = client.local.ip !== "" ? client.local : listener.localAddress;
    const header = knobs.proxyProtocol === "off"
      ? null
      : knobs.proxyProtocolVersion === 1
      ? encodeProxyV1(client.remote, local)
      : encodeProxyV2(client.remote, local, "stream");
    const link = new Link(r, client, knobs.connectTimeout, knobs.idleTimeout, header);
    this.#links.add(link);
    const wait = Math.min(knobs.connectTimeout, MAX_TIMER);
    link.timer = setTimeout(() => this.#guard(link, () => this.#connectTimedOut(link)), wait);
    const signal = (link.abort as AbortController).signal;
    this.#sockets.connect(r.backend.address, this.#upEvents(link), signal)
      .then((up) => this.#connected(link, up), (e) => this.#finish(link, isRefused(e) ? "refused" : "error"))
      .catch(() => this.#finish(link, "error"));
    return this.#clientEvents(link);
  }

  #connected(link: Link, up: TcpStream): void {
    if (link.ended) return up.close();
    link.up = up;
    link.abort = null;
    this.#clearTimer(link);
    link.last = this.#clock();
    if (link.idleTimeout > 0) this.#armIdle(link, link.idleTimeout);
    // The header goes before any client byte; writes keep their order, so queue everything now.
    let ok = link.header === null || up.write(link.header);
    for (const d of link.early ?? []) ok = up.write(d);
    link.early = null;
    if (ok) link.client.resume();
    else link.client.pause(); // the backend's drain resumes it
    if (link.pauseUp) up.pause();
    if (link.clientEof) up.end();
  }

  #connectTimedOut(link: Link): void {
    link.timer = null;
    if (link.up === null) this.#finish(link, "connect_timeout");
  }

  // ---- the two directions --------------------------------------------------------------------------------

  #clientEvents(link: Link): TcpEvents {
    const core = this.#core;
    const conn = link.conn;
    const client = link.client;
    return {
      data: (d) => {
        if (link.ended) return;
        const n = d.byteLength;
        core.connectionBytes(conn, "to_backend", n);
        link.last = this.#clock();
        const up = link.up;
        if (up !== null) {
          if (!up.write(d)) client.pause();
        } else if (link.early !== null) {
          link.early.push(d.slice());
          link.earlyBytes += n;
          if (link.earlyBytes >= EARLY_LIMIT) client.pause();
        }
      },
      end: () => {
        if (link.ended || link.clientEof) return;
        link.clientEof = true;
        link.up?.end(); // still connecting: #connected sends it after the early data
      },
      drain: () => link.up?.resume(),
      closed: (error) => this.#closed(link, true, error),
    };
  }

  #upEvents(link: Link): TcpEvents {
    const core = this.#core;
    const conn = link.conn;
    const client = link.client;
    return {
      data: (d) => {
        if (link.ended) return;
        core.connectionBytes(conn, "to_client", d.byteLength);
        link.last = this.#clock();
        if (!client.write(d)) {
          if (link.up !== null) link.up.pause();
          else link.pauseUp = true;
        }
      },
      end: () => {
        if (link.ended || link.upEof) return;
        link.upEof = true;
        client.end();
      },
      drain: () => client.resume(),
      closed: (error) => this.#closed(link, false, error),
    };
  }

  /** One stream closed: an error ends the connection; a clean close ends it once the other is closed too. */
  #closed(link: Link, isClient: boolean, error: unknown): void {
    if (link.ended) {
      if (isClient) this.#unlinger(link); // a lingering client finished
      return;
    }
    if (error !== undefined) return this.#finish(link, "error");
    // A clean close implies that side's FIN (Bun reports a FIN that completes a close as `close` only).
    if (isClient) {
      link.clientClosed = true;
      if (!link.clientEof) {
        link.clientEof = true;
        link.up?.end();
      }
    } else {
      link.upClosed = true;
      if (!link.upEof) {
        link.upEof = true;
        link.client.end();
      }
    }
    if (link.clientClosed && link.upClosed) this.#finish(link, "closed");
  }

  // ---- timers and teardown -------------------------------------------------------------------------------

  #armIdle(link: Link, delay: number): void {
    // A longer idle timeout simply takes several checks.
    link.timer = setTimeout(() => this.#guard(link, () => this.#idleCheck(link)), Math.min(delay, MAX_TIMER));
  }

  /** The idle timer fired: end the connection if nothing moved since, else wait out the remainder. */
  #idleCheck(link: Link): void {
    link.timer = null;
    if (link.ended) return;
    const quiet = this.#clock() - link.last;
    if (quiet >= link.idleTimeout) this.#finish(link, "idle");
    else this.#armIdle(link, Math.max(1, Math.ceil(link.idleTimeout - quiet)));
  }

  #clearTimer(link: Link): void {
    if (link.timer !== null) clearTimeout(link.timer);
    link.timer = null;
  }

  /** Runs a timer body; a throw ends that connection instead of reaching the runtime. */
  #guard(link: Link, body: () => void): void {
    try {
      body();
    } catch {
      this.#finish(link, "error");
    }
  }

  /** Ends a connection once: closes both streams, cancels a pending connect, tells the core. */
  #finish(link: Link, end: ConnectionEnd): void {
    if (link.ended) return;
    link.ended = true;
    this.#clearTimer(link);
    link.early = null;
    link.abort?.abort();
    link.abort = null;
    this.#links.delete(link);
    try {
      link.up?.close();
    } catch { /* already gone */ }
    if ((end === "refused" || end === "connect_timeout") && !link.clientClosed) this.#linger(link);
    else this.#unlinger(link, true);
    this.#core.endConnection(link.conn, end, this.#clock());
    // A removed listener's last connection queues `listener_done`: the core loop drains it.
    this.#onEnded?.(link.conn, end, link.header !== null && link.up !== null);
  }

  /** Closes an ended connection's client gracefully: FIN, drop what it still sends, close when it is done. */
  #linger(link: Link): void {
    this.#lingering.add(link);
    try {
      link.client.resume(); // it may have been paused on the early-data limit
      link.client.end();
    } catch {
      return this.#unlinger(link);
    }
    link.timer = setTimeout(() => this.#unlinger(link), LINGER_MS);
  }

  /** Closes the client of an ended connection (`force`: even if it was not lingering). */
  #unlinger(link: Link, force = false): void {
    if (!this.#lingering.delete(link) && !force) return;
    this.#clearTimer(link);
    try {
      link.client.close();
    } catch { /* already gone */ }
  }
}
