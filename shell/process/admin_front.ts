/**
 * The admin API's TCP front, in the admin thread: it accepts the connections itself so it can hold them to
 * limits neither Deno.serve nor Bun.serve enforces — a cap on open connections, a deadline for the first
 * request head (a half-open connection that never finishes its headers is closed), and an idle timeout
 * that trickled bytes cannot defeat for the head — and passes each admitted connection's bytes through to
 * the HTTP server on a private Unix socket.
 *
 * At the cap, a new connection pushes out the oldest one still without a request head after
 * `evictHeadlessAfterMs`, else the one idle the longest for at least `evictAfterMs`: an operator gets in
 * past a pile of half-open connections. When every open
 * connection is busy, the new one is answered 503 with Retry-After and closed, before anything is parsed.
 *
 * @module
 */

import net from "node:net";
import type { AdminThreadCounts, AdminThreadLimits } from "./admin_thread_protocol.ts";

/** One admitted connection. */
interface Conn {
  readonly client: net.Socket;
  readonly link: net.Socket;
  readonly opened: number;
  lastActive: number;
  /** True once the first request head ("\r\n\r\n") came in. */
  headed: boolean;
  /** The last three bytes seen before the head ended, so a terminator split over chunks is found. */
  tail: string;
}

/** The answer to a connection past the cap. */
const REFUSAL = (() => {
  const body = JSON.stringify({
    error: "busy: the admin API has as many connections as it takes; retry",
    errors: [],
  });
  return `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n` +
    `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
})();

/** Longest a refused connection's request head is waited for before the 503 goes out anyway, in ms. */
const REFUSAL_WAIT_MS = 200;

/** The TCP front: listen, admit, time out, pass through. */
export class AdminFront {
  readonly #limits: AdminThreadLimits;
  readonly #linkPath: string;
  readonly #server: net.Server;
  readonly #conns = new Set<Conn>();
  readonly #sweep: ReturnType<typeof setInterval>;
  #refusing = 0;
  readonly #counts = { connectionsRefused: 0, connectionsEvicted: 0, headerTimeouts: 0, idleTimeouts: 0 };

  /** A front passing connections to the HTTP server at Unix socket `linkPath`. */
  constructor(limits: AdminThreadLimits, linkPath: string) {
    this.#limits = limits;
    this.#linkPath = linkPath;
    this.#server = net.createServer((client) => this.#admit(client));
    // One timer for every deadline: cheap at a few dozen connections, and nothing per connection to leak.
    const every = Math.max(50, Math.min(1000, limits.headerTimeoutMs / 5));
    this.#sweep = setInterval(() => this.#expire(Date.now()), every);
  }

  /** Listens on `hostname:port`; resolves with the port bound, rejects when it cannot bind. */
  listen(hostname: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen({ host: hostname, port }, () => {
        this.#server.off("error", reject);
        this.#server.on("error", () => {}); // accept errors (EMFILE, say) must not end the thread
        resolve((this.#server.address() as net.AddressInfo).port);
      });
    });
  }

  /** What was refused and closed so far, and how many are open. */
  counts(): Omit<AdminThreadCounts, "busy"> {
    return { ...this.#counts, open: this.#conns.size };
  }

  /**
   * Stops listening; closes every connection (`graceful`: each once its bytes are through, within
   * `idleTimeoutMs`; the admin thread first waits for the requests in hand to be answered).
   */
  async close(graceful: boolean): Promise<void> {
    const closed = new Promise<void>((r) => this.#server.close(() => r()));
    if (!graceful) { for (const c of this.#conns) this.#end(c); }
    const until = Date.now() + this.#limits.idleTimeoutMs;
    while (this.#conns.size > 0 && Date.now() < until) {
      // A graceful close waits for connections with no exchange in flight (the request that asked for a
      // move gets its answer), then ends them.
      for (const c of this.#conns) if (Date.now() - c.lastActive >= 50) this.#end(c, true);
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const c of this.#conns) this.#end(c);
    clearInterval(this.#sweep);
    await closed;
  }

  #admit(client: net.Socket): void {
    client.on("error", () => {});
    const now = Date.now();
    if (this.#conns.size >= this.#limits.maxConnections && !this.#evictOne(now)) {
      this.#counts.connectionsRefused++;
      return this.#refuse(client);
    }
    const link = net.connect({ path: this.#linkPath });
    link.on("error", () => {});
    const conn: Conn = { client, link, opened: now, lastActive: now, headed: false, tail: "" };
    this.#conns.add(conn);
    client.on("data", (chunk: Uint8Array) => {
      conn.lastActive = Date.now();
      if (!conn.headed) this.#scanHead(conn, chunk);
    });
    link.on("data", () => (conn.lastActive = Date.now()));
    client.pipe(link);
    link.pipe(client);
    const gone = () => this.#end(conn);
    client.once("close", gone);
    link.once("close", gone);
  }

  /**
   * Answers a connection past the cap 503 and closes it: once its request head is in (or after
   * REFUSAL_WAIT_MS), so a client mid-send reads the answer rather than a reset. At most
   * `maxRefusing` such connections wait at once (their descriptors are in the admin reserve); past that,
   * a connection is closed at once.
   */
  #refuse(client: net.Socket): void {
    if (this.#refusing >= this.#limits.maxRefusing) return void client.destroy();
    this.#refusing++;
    let tail = "", done = false;
    const answer = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // end, not destroy: closing with the client's bytes unread would reset the answer away.
      client.end(REFUSAL);
    };
    const timer = setTimeout(answer, REFUSAL_WAIT_MS);
    client.on("data", (chunk: Uint8Array) => {
      const text = tail + Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString("latin1");
      if (text.includes("\r\n\r\n")) answer();
      else tail = text.slice(-3);
    });
    client.once("close", () => {
      clearTimeout(timer);
      done = true;
      this.#refusing--;
    });
    // A client that never reads must not hold the descriptor: the answer is small, one second is plenty.
    setTimeout(() => client.destroy(), REFUSAL_WAIT_MS + 1000).unref?.();
  }

  /** Marks `conn` headed once "\r\n\r\n" has arrived (the head's end, possibly split over chunks). */
  #scanHead(conn: Conn, chunk: Uint8Array): void {
    // latin1: one char per byte, so the terminator's position is the byte's.
    const text = conn.tail + Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString("latin1");
    if (text.includes("\r\n\r\n")) conn.headed = true;
    else conn.tail = text.slice(-3);
  }

  /** Closes the connection idle (or headless) the longest, if for at least `evictAfterMs`. */
  #evictOne(now: number): boolean {
    let victim: Conn | null = null;
    for (const c of this.#conns) {
      const since = c.headed ? c.lastActive : c.opened;
      if (now - since < (c.headed ? this.#limits.evictAfterMs : this.#limits.evictHeadlessAfterMs)) continue;
      const best = victim === null ? Infinity : (victim.headed ? victim.lastActive : victim.opened);
      // Headless ones go first: a connection that never finished a request head is the likelier attacker.
      if (victim === null || (!c.headed && victim.headed) || (c.headed === victim.headed && since < best)) {
        victim = c;
      }
    }
    if (victim === null) return false;
    this.#counts.connectionsEvicted++;
    this.#end(victim);
    return true;
  }

  #expire(now: number): void {
    for (const c of this.#conns) {
      if (!c.headed && now - c.opened >= this.#limits.headerTimeoutMs) {
        this.#counts.headerTimeouts++;
        this.#end(c);
      } else if (now - c.lastActive >= this.#limits.idleTimeoutMs) {
        this.#counts.idleTimeouts++;
        this.#end(c);
      }
    }
  }

  /** Closes `conn` (`flush`: its last bytes to the client first). */
  #end(conn: Conn, flush = false): void {
    if (!this.#conns.delete(conn)) return;
    conn.link.unpipe(conn.client);
    conn.link.destroy();
    if (flush) {
      conn.client.end();
      setTimeout(() => conn.client.destroy(), 1000).unref?.();
    } else conn.client.destroy();
  }
}
